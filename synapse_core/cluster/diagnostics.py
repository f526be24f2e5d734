"""How much to trust a clustering and its map.

* :func:`stability` — do the clusters come back when the data are resampled? Bootstrap-style
  subsamples (without replacement) are re-clustered with a new seed each time; the adjusted Rand
  index (ARI) against the full-data labels on the shared rows, and per cluster the best Jaccard
  overlap (Hennig's cluster-wise stability: > 0.75 stable, < 0.5 dissolved).
* :func:`bbox_composition` and :func:`bbox_effect` — do the clusters just sort synapses by bbox
  (a batch effect: staining, alignment, section thickness)? Composition table, adjusted mutual
  information (AMI) between cluster and bbox, and a k-NN mixing score in feature space.
* :func:`knn_overlap` — is the map faithful? Mean fraction of each synapse's k nearest neighbours in
  feature space that are also among its k nearest neighbours on the 2D/3D map.

All inputs are plain arrays; labels use −1 for noise.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd


def stability(
    Z: np.ndarray,
    labels: np.ndarray,
    fit: Callable[[np.ndarray, int], np.ndarray],
    n_runs: int = 10,
    fraction: float = 0.8,
    seed: int = 0,
    max_rows: int = 20000,
) -> dict:
    """Re-cluster random subsamples and compare with the full-data clustering.

    Parameters
    ----------
    Z : ndarray, shape (n_synapses, d)
        Clustering space.
    labels : ndarray of int, shape (n_synapses,)
        Labels of the full-data clustering (−1 = noise).
    fit : callable (Z_subset, seed) → labels
        The same clustering (method, k) as produced ``labels``.
    n_runs : int
        Number of subsamples.
    fraction : float
        Fraction of synapses in each subsample (0 < fraction ≤ 1), capped at ``max_rows`` rows.
    seed : int
        Seed of the subsampling; run i re-clusters with seed + 1 + i.

    Returns
    -------
    dict
        ``ari_mean``, ``ari_min``, ``ari_runs`` (list), ``cluster_jaccard`` ({cluster: mean best
        Jaccard}), ``n_runs``, ``subsample_size``.
    """
    from sklearn.metrics import adjusted_rand_score

    if not 0 < fraction <= 1:
        raise ValueError(f"stability fraction={fraction!r} must be in (0, 1]")
    n = len(Z)
    m = int(min(max(2, round(fraction * n)), max_rows, n))
    rng = np.random.default_rng(seed)
    clusters = [c for c in np.unique(labels) if c >= 0]
    aris, jacc = [], {int(c): [] for c in clusters}
    for i in range(int(n_runs)):
        idx = np.sort(rng.choice(n, size=m, replace=False))
        sub = np.asarray(fit(Z[idx], seed + 1 + i))
        ref = labels[idx]
        aris.append(float(adjusted_rand_score(ref, sub)))
        for c in clusters:
            a = ref == c
            if not a.any():
                continue
            best = 0.0
            for d in np.unique(sub[sub >= 0]):
                b = sub == d
                best = max(best, float((a & b).sum() / (a | b).sum()))
            jacc[int(c)].append(best)
    return {
        "n_runs": int(n_runs),
        "subsample_size": m,
        "ari_mean": float(np.mean(aris)) if aris else None,
        "ari_min": float(np.min(aris)) if aris else None,
        "ari_runs": aris,
        "cluster_jaccard": {c: (float(np.mean(v)) if v else None) for c, v in jacc.items()},
    }


def bbox_composition(labels: np.ndarray, bbox: np.ndarray, normalize: bool = False) -> pd.DataFrame:
    """Synapse counts per (cluster, bbox): rows clusters, columns bboxes.

    Parameters
    ----------
    labels : ndarray of int
    bbox : ndarray of str
    normalize : bool
        True: each row divided by the cluster size (fractions).
    """
    table = pd.crosstab(pd.Series(labels, name="cluster"), pd.Series(bbox, name="bbox_name"))
    if normalize:
        table = table.div(table.sum(axis=1), axis=0)
    return table


def bbox_effect(Z: np.ndarray, labels: np.ndarray, bbox: np.ndarray, k: int = 10, seed: int = 0,
                max_queries: int = 5000) -> dict:
    """How strongly the bbox of origin drives the clusters and the feature space.

    Parameters
    ----------
    Z : ndarray, shape (n_synapses, d)
        Clustering space.
    labels : ndarray of int, shape (n_synapses,)
    bbox : ndarray of str, shape (n_synapses,)
    k : int
        Neighbours per synapse for the mixing score (capped at n_synapses − 1).
    seed : int
        Seed of the query sample when n_synapses > ``max_queries``.

    Returns
    -------
    dict
        ``cluster_bbox_ami``: adjusted mutual information between cluster and bbox (0: clusters
        independent of bbox, 1: clusters are the bboxes). ``knn_same_bbox``: observed fraction of
        feature-space neighbours from the same bbox; ``knn_same_bbox_expected``: that fraction if bboxes
        were perfectly mixed (Σ p_b² over bbox shares, corrected for excluding the point itself);
        ``batch_effect_score`` = (observed − expected) / (1 − expected): 0 well mixed, 1 every
        neighbour from the same bbox (None with a single bbox).
    """
    from sklearn.metrics import adjusted_mutual_info_score
    from sklearn.neighbors import NearestNeighbors

    bbox = np.asarray(bbox).astype(str)
    n = len(Z)
    names, counts = np.unique(bbox, return_counts=True)
    out = {"n_bboxes": int(len(names))}
    out["cluster_bbox_ami"] = float(adjusted_mutual_info_score(bbox, labels)) if len(names) > 1 else None
    if len(names) < 2 or n < 3:
        out.update(knn_same_bbox=None, knn_same_bbox_expected=None, batch_effect_score=None)
        return out
    k = int(min(k, n - 1))
    queries = np.arange(n)
    if n > max_queries:
        queries = np.sort(np.random.default_rng(seed).choice(n, size=max_queries, replace=False))
    nn = NearestNeighbors(n_neighbors=k + 1).fit(Z)
    _, ind = nn.kneighbors(Z[queries])
    ind = _drop_self(ind, queries, k)
    observed = float((bbox[ind] == bbox[queries][:, None]).mean())
    # expected same-bbox share among the other n−1 synapses, averaged over queries
    share = {b: c for b, c in zip(names, counts)}
    expected = float(np.mean([(share[b] - 1) / (n - 1) for b in bbox[queries]]))
    score = (observed - expected) / (1 - expected) if expected < 1 else None
    out.update(knn_same_bbox=observed, knn_same_bbox_expected=expected,
               batch_effect_score=None if score is None else float(score), knn_k=k)
    return out


def _drop_self(ind: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Neighbour lists of k+1 (which contain the query itself, usually first) → k others."""
    out = np.empty((len(queries), k), dtype=ind.dtype)
    for r, (row, q) in enumerate(zip(ind, queries)):
        others = row[row != q]
        out[r] = others[:k]
    return out


def knn_overlap(Z: np.ndarray, Y: np.ndarray, k: int = 10, seed: int = 0, max_queries: int = 5000) -> float:
    """Mean share of feature-space k-NN that are also map k-NN (1: neighbourhoods preserved).

    Parameters
    ----------
    Z : ndarray, shape (n_synapses, d)
        Feature space the map was computed from.
    Y : ndarray, shape (n_synapses, 2 or 3)
        The map.
    k : int
        Neighbourhood size (capped at n_synapses − 1).
    seed, max_queries
        At most ``max_queries`` synapses are queried (seeded sample); neighbours come from all.

    Returns
    -------
    float in [0, 1]. A random map scores about k / (n_synapses − 1).
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(Z)
    if len(Y) != n:
        raise ValueError(f"feature rows ({n}) and map rows ({len(Y)}) differ")
    if n < 3:
        raise ValueError(f"k-NN overlap needs at least 3 synapses; got {n}")
    k = int(min(k, n - 1))
    queries = np.arange(n)
    if n > max_queries:
        queries = np.sort(np.random.default_rng(seed).choice(n, size=max_queries, replace=False))
    a = _drop_self(NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z[queries])[1], queries, k)
    b = _drop_self(NearestNeighbors(n_neighbors=k + 1).fit(Y).kneighbors(Y[queries])[1], queries, k)
    shared = [len(np.intersect1d(x, y, assume_unique=True)) for x, y in zip(a, b)]
    return float(np.mean(shared) / k)
