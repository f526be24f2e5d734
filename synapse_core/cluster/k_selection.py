"""Choosing the number of clusters k from the data.

:func:`sweep_k` clusters the preprocessed features for every k in a range and records, per k:

* ``silhouette``: mean silhouette (−1..1, higher is better), on a seeded random sample of at
  most ``silhouette_sample`` synapses when N is large (exact below that);
* ``calinski_harabasz``: between/within dispersion ratio (higher is better);
* ``inertia``: within-cluster sum of squared distances (the elbow curve; always decreases).

:func:`choose_k` applies the rule used by ``--k auto``:

    **k = the k with the highest silhouette**; when several k are within ``tolerance`` of the best
    silhouette the smallest of them is taken (the simplest description that is as good).

Silhouette is used because it is bounded, comparable across k and penalises both merging
distinct groups and splitting one group, whereas inertia always falls with k and
Calinski–Harabasz favours many small clusters on data without structure. The elbow of the inertia
curve (:func:`elbow_k`, the point farthest from the chord between the ends of the normalised
curve) is reported next to it as a second opinion but is not used to decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd


@dataclass
class KSweep:
    """Result of :func:`sweep_k`.

    Attributes
    ----------
    curves : DataFrame
        Columns ``k``, ``silhouette``, ``calinski_harabasz``, ``inertia`` (one row per k).
    labels : dict of int → ndarray
        Cluster labels (n_synapses,) of each k, so the chosen k need not be fitted again.
    centroids : dict of int → ndarray
        Cluster centres (k, d) of each k.
    """

    curves: pd.DataFrame
    labels: dict[int, np.ndarray] = field(default_factory=dict)
    centroids: dict[int, np.ndarray] = field(default_factory=dict)


def within_cluster_ss(Z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Sum of squared distances to the cluster means (noise label −1 ignored) and the means (k, d)."""
    ids = np.unique(labels[labels >= 0])
    centres = np.stack([Z[labels == c].mean(axis=0) for c in ids]) if len(ids) else np.zeros((0, Z.shape[1]))
    total = 0.0
    for i, c in enumerate(ids):
        d = Z[labels == c] - centres[i]
        total += float(np.einsum("ij,ij->", d, d, dtype=np.float64))
    return total, centres


def check_k_range(k_range: tuple[int, int], n_synapses: int) -> list[int]:
    """The k values a sweep can use: ``k_range`` (inclusive) capped at n_synapses − 1.

    Raises
    ------
    ValueError
        Invalid range, or too few synapses for any k ≥ 2.
    """
    lo, hi = (int(v) for v in k_range)
    if lo < 2 or hi < lo:
        raise ValueError(f"k_range={tuple(k_range)!r} must be (low, high) with 2 ≤ low ≤ high")
    if n_synapses < 3:
        raise ValueError(
            f"choosing k needs at least 3 synapses (silhouette needs 2 ≤ k ≤ n−1); got {n_synapses}. "
            "Add synapses or give a fixed --k"
        )
    hi = min(hi, n_synapses - 1)
    if hi < lo:
        raise ValueError(
            f"k_range={tuple(k_range)!r}: with {n_synapses} synapses k can be at most {n_synapses - 1}; "
            "lower the range (--k-range) or add synapses"
        )
    return list(range(lo, hi + 1))


def sweep_k(
    Z: np.ndarray,
    k_range: tuple[int, int] = (2, 12),
    fit: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray | None, float | None]] | None = None,
    seed: int = 0,
    silhouette_sample: int = 5000,
) -> KSweep:
    """Cluster ``Z`` for each k in ``k_range`` (inclusive) and score each k.

    Parameters
    ----------
    Z : ndarray, shape (n_synapses, d)
        Preprocessed features (the clustering space).
    k_range : (int, int)
        Smallest and largest k, inclusive; the top is capped at n_synapses − 1.
    fit : callable (Z, k) → (labels, centroids or None, inertia or None), optional
        Clustering to sweep; default KMeans (:func:`synapse_core.cluster.algorithms.fit_kmeans` with ``seed``).
    seed : int
        Seed of the default KMeans and of the silhouette sample.
    silhouette_sample : int
        Silhouette is computed on at most this many synapses (seeded sample); 0 or less: all.

    Returns
    -------
    KSweep
    """
    from sklearn.metrics import calinski_harabasz_score, silhouette_score

    Z = np.asarray(Z, dtype=np.float32)
    ks = check_k_range(k_range, len(Z))
    if fit is None:
        from synapse_core.cluster.algorithms import fit_kmeans

        def fit(Z_, k_):
            return fit_kmeans(Z_, k_, seed=seed)

    sample = None
    if silhouette_sample and silhouette_sample > 0 and len(Z) > silhouette_sample:
        sample = np.random.default_rng(seed).choice(len(Z), size=silhouette_sample, replace=False)
    rows, labels_by_k, centroids_by_k = [], {}, {}
    for k in ks:
        labels, centroids, inertia = fit(Z, k)
        labels = np.asarray(labels)
        if centroids is None or inertia is None:
            inertia, centroids = within_cluster_ss(Z, labels)
        n_found = len(np.unique(labels[labels >= 0]))
        if n_found < 2:
            sil = ch = np.nan
        else:
            Zs, ls = (Z, labels) if sample is None else (Z[sample], labels[sample])
            sil = float(silhouette_score(Zs, ls)) if len(np.unique(ls)) >= 2 else np.nan
            ch = float(calinski_harabasz_score(Z, labels))
        rows.append({"k": k, "silhouette": sil, "calinski_harabasz": ch, "inertia": float(inertia),
                     "n_clusters_found": n_found})
        labels_by_k[k] = labels
        centroids_by_k[k] = np.asarray(centroids)
    curves = pd.DataFrame(rows)
    curves.attrs["silhouette_sample"] = None if sample is None else int(len(sample))
    return KSweep(curves, labels_by_k, centroids_by_k)


def choose_k(curves: pd.DataFrame, tolerance: float = 0.0) -> int:
    """The k picked by ``--k auto``: highest silhouette; ties within ``tolerance`` → smallest k.

    Parameters
    ----------
    curves : DataFrame
        Output of :func:`sweep_k` (columns ``k``, ``silhouette``).
    tolerance : float
        Silhouette difference treated as a tie (0: exact maximum).

    Raises
    ------
    ValueError
        No finite silhouette in the sweep.
    """
    sil = curves["silhouette"].to_numpy(dtype=float)
    if not np.isfinite(sil).any():
        raise ValueError("no k in the sweep produced two or more clusters; cannot choose k (give a fixed --k)")
    best = np.nanmax(sil)
    ok = np.isfinite(sil) & (sil >= best - tolerance)
    return int(curves["k"].to_numpy()[ok].min())


def elbow_k(curves: pd.DataFrame) -> int | None:
    """Elbow of the inertia curve: the k farthest below the chord joining the ends of the normalised curve.

    Returns None for fewer than 3 k values.
    """
    if len(curves) < 3:
        return None
    k = curves["k"].to_numpy(dtype=float)
    y = curves["inertia"].to_numpy(dtype=float)
    kn = (k - k[0]) / (k[-1] - k[0])
    span = y[0] - y[-1]
    if span <= 0:
        return None
    yn = (y - y[-1]) / span  # 1 at the first k, 0 at the last
    gap = (1.0 - kn) - yn  # distance below the chord from (0,1) to (1,0)
    return int(k[int(np.argmax(gap))])
