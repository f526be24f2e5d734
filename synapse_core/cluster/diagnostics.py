"""How much to trust a clustering and its map.

* :func:`stability` — do the clusters come back when the data are resampled? Subsamples (without
  replacement) are re-clustered with a new seed each time; the adjusted Rand index (ARI) against the
  full-data labels on the shared rows, and per cluster the best Jaccard overlap (Hennig's
  cluster-wise stability: > 0.75 stable, < 0.5 dissolved). **Measured against a null that can
  fail**: the same statistic on data drawn from one Gaussian with the data's mean and covariance
  (:func:`gaussian_null`), clustered the same way. KMeans splits a single elongated cloud the same
  way every time, so a high ARI alone proves nothing; only an ARI above the null's says the
  partition is more reproducible than cutting a structureless cloud.
* :func:`subsample_stability` — the same idea without a reference clustering: mean ARI between the
  clusterings of pairs of subsamples, on the rows they share (used per k by ``--k auto``).
* :func:`cluster_alignment` — do the clusters follow an acquisition or annotation nuisance rather
  than the synapse? Adjusted mutual information (AMI) between the cluster labels and each nuisance
  column of :func:`nuisance_columns` (bbox, presynaptic side, crop coverage, orientation of the
  synapse in the volume), with a warning above ``ALIGNMENT_WARN_AMI``.
* :func:`bbox_composition` and :func:`bbox_effect` — do the clusters just sort synapses by bbox
  (a batch effect: staining, alignment, section thickness)? Composition table, AMI between cluster
  and bbox, and a k-NN mixing score in feature space.
* :func:`knn_overlap` — is the map faithful? Mean fraction of each synapse's k nearest neighbours in
  feature space that are also among its k nearest neighbours on the 2D/3D map.

All inputs are plain arrays or DataFrames; labels use −1 for noise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from synapse_core.cluster.sampling import cap_rows

#: Share of the distance from the null's mean ARI to a perfect 1.0 that the data must cover.
STABILITY_MARGIN = 0.5
#: Rows the stability diagnostic re-clusters at most (seeded sample above it; data and null alike). Was 5000:
#: at 10⁴ rows its 43 k-means refits then took ~400 of the ~440 CPU s of a fresh ``cluster`` (issue 16).
STABILITY_MAX_ROWS = 2000
#: AMI between clusters and a nuisance column above which :func:`cluster_alignment` warns.
ALIGNMENT_WARN_AMI = 0.25


def gaussian_null(Z: np.ndarray, n_rows: int | None = None, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Structureless data with the same mean and covariance as ``Z``: one Gaussian cloud.

    The null of SigClust (Liu et al. 2008, JASA 103:1281): if ``Z`` is one Gaussian cloud, any
    clustering statistic of ``Z`` looks like the same statistic on this sample. Unlike shuffling
    each column independently, it keeps the correlations (so an elongated cloud stays elongated and
    is split as reproducibly as the data) and it does not keep multimodal marginals (so planted
    groups are not copied into the null).

    Parameters
    ----------
    Z : ndarray, shape (n_synapses, d)
        Data (the clustering space).
    n_rows : int, optional
        Rows to draw (default: n_synapses).
    seed : int or numpy Generator

    Returns
    -------
    ndarray, float32, shape (n_rows, d)

    Example
    -------
    >>> Z = np.random.default_rng(0).normal(size=(500, 3)) * [1.0, 2.0, 4.0]
    >>> bool(np.allclose(gaussian_null(Z, 100000, seed=1).std(axis=0), Z.std(axis=0), rtol=0.02))
    True
    """
    Z = np.asarray(Z, dtype=np.float64)
    n, d = Z.shape
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    m = n if n_rows is None else int(n_rows)
    mean = Z.mean(axis=0)
    cov = np.atleast_2d(np.cov(Z, rowvar=False)) if n > 1 else np.zeros((d, d))
    evals, evecs = np.linalg.eigh(cov)
    root = evecs * np.sqrt(np.clip(evals, 0, None))  # (d, d): cov = root @ root.T
    return (rng.standard_normal((m, d)) @ root.T + mean).astype(np.float32)


def diagnostic_rows(n: int, seed: int = 0, max_rows: int | None = None) -> np.ndarray | None:
    """Rows the whole-table diagnostics (:func:`bbox_effect`, :func:`knn_overlap`, :func:`cluster_alignment`) use.

    ``max_rows=None``: every row up to ``LARGE_ROWS`` synapses, above it a seeded sample of ``FIT_ROWS``
    (:mod:`synapse_core.cluster.settings`; the large-data path, issue 15). Returns sorted row indices, or None
    for all rows. The same ``(n, seed, max_rows)`` gives the same rows in every diagnostic.
    """
    if max_rows is None:
        from synapse_core.cluster.settings import FIT_ROWS, LARGE_ROWS

        max_rows = FIT_ROWS if n > LARGE_ROWS else n
    if n <= int(max_rows):
        return None
    return cap_rows(n, int(max_rows), np.random.default_rng([seed, 4]))


def _subsample_vs_reference(Z, labels, fit, n_runs, fraction, seed, rng):
    """ARI of re-clustered subsamples against ``labels`` on the same rows, and per-cluster Jaccard."""
    from sklearn.metrics import adjusted_rand_score

    n = len(Z)
    m = int(min(max(2, round(fraction * n)), n))
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
    return m, aris, jacc


def stability(
    Z: np.ndarray,
    labels: np.ndarray,
    fit: Callable[[np.ndarray, int], np.ndarray],
    n_runs: int = 10,
    fraction: float = 0.8,
    seed: int = 0,
    max_rows: int = STABILITY_MAX_ROWS,
    n_null: int = 3,
    margin: float = STABILITY_MARGIN,
) -> dict:
    """Re-cluster random subsamples, compare with the full-data clustering, and do the same on a null.

    Parameters
    ----------
    Z : ndarray, shape (n_synapses, d)
        Clustering space.
    labels : ndarray of int, shape (n_synapses,)
        Labels of the full-data clustering (−1 = noise).
    fit : callable (Z_subset, seed) → labels
        The same clustering (method, k) as produced ``labels`` (``run_clustering`` passes KMeans with
        ``k_selection.SAMPLE_N_INIT`` = 3 restarts unless ``kmeans_n_init`` is set; it clusters the null
        samples too, so data and null are refitted alike).
    n_runs : int
        Number of subsamples (of the data and of each null sample).
    fraction : float
        Fraction of synapses in each subsample (0 < fraction ≤ 1).
    seed : int
        Seed of the subsampling and of the null; run i re-clusters with seed + 1 + i.
    max_rows : int
        Above this many synapses a seeded sample of ``max_rows`` rows is used (data and null alike;
        default ``STABILITY_MAX_ROWS`` = 2000: subsamples of 1600 rows at ``fraction=0.8``). The fits
        run single-threaded (measured on the shared 2-core machine at 10⁴ × 192 rows: 5000-row fits
        with threads 120 CPU s for 3 restarts each, 2000-row fits single-threaded 9 CPU s for 10).
    n_null : int
        Gaussian null samples (:func:`gaussian_null`, same number of rows), each clustered and
        subsampled like the data; 0 skips the null.
    margin : float
        Stable beyond chance when the data's mean ARI exceeds every null sample's and
        ``(ari − null) / (1 − null) ≥ margin`` (null = mean over null samples): the data close at
        least that share of the distance from the null to perfect agreement. A plain difference
        would not do: one elongated Gaussian cloud is often split with ARI 0.8–0.95, so even
        perfectly separated groups (ARI 1.0) cannot beat it by a fixed amount, while a cloud that
        happens to be elongated (the data are one draw) beats a lower null mean by chance.

    Returns
    -------
    dict
        ``ari_mean``, ``ari_min``, ``ari_runs`` (list), ``cluster_jaccard`` ({cluster: mean best
        Jaccard}), ``n_runs``, ``subsample_size``; ``null_ari_mean``, ``null_ari_sd`` (between
        null samples), ``null_ari_samples`` (mean ARI of each null sample), ``ari_excess``
        (``(ari_mean − null_ari_mean) / (1 − null_ari_mean)``), ``beats_null`` (bool) and
        ``verdict`` (one sentence), all None when ``n_null=0``.

    Example
    -------
    >>> from synapse_core.cluster.algorithms import fit_kmeans
    >>> Z = np.random.default_rng(0).normal(size=(100, 4))
    >>> fit = lambda Zs, s: fit_kmeans(Zs, 3, seed=s, n_init=3)[0]
    >>> stability(Z, fit(Z, 0), fit, n_runs=4)["beats_null"]
    False
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"stability fraction={fraction!r} must be in (0, 1]")
    from threadpoolctl import threadpool_limits

    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    rows = cap_rows(len(Z), max_rows, rng)
    Zr, lr = np.asarray(Z)[rows], labels[rows]
    # small fits are slower with threads (measured 10-16x on a busy 2-core machine)
    with threadpool_limits(1):
        return _stability(Zr, lr, fit, n_runs, fraction, seed, rng, n_null, margin)


def _stability(Zr, lr, fit, n_runs, fraction, seed, rng, n_null, margin):
    m, aris, jacc = _subsample_vs_reference(Zr, lr, fit, n_runs, fraction, seed, rng)
    out = {
        "n_runs": int(n_runs),
        "subsample_size": m,
        "ari_mean": float(np.mean(aris)) if aris else None,
        "ari_min": float(np.min(aris)) if aris else None,
        "ari_runs": aris,
        "cluster_jaccard": {c: (float(np.mean(v)) if v else None) for c, v in jacc.items()},
        "null": None, "null_ari_mean": None, "null_ari_sd": None, "null_ari_samples": None, "ari_excess": None,
        "beats_null": None, "verdict": None,
    }
    if n_null <= 0 or not aris:
        return out
    per_sample = []
    for j in range(int(n_null)):
        Zn = gaussian_null(Zr, seed=rng)
        null_seed = seed + 1000 * (j + 1)
        ln = np.asarray(fit(Zn, null_seed))
        per_sample.append(float(np.mean(_subsample_vs_reference(Zn, ln, fit, n_runs, fraction, null_seed, rng)[1])))
    null_mean = float(np.mean(per_sample))
    null_sd = float(np.std(per_sample, ddof=1)) if len(per_sample) > 1 else 0.0
    ari = out["ari_mean"]
    excess = (ari - null_mean) / (1 - null_mean) if null_mean < 1 else (0.0 if ari < 1 else np.nan)
    beats = bool(ari > max(per_sample) and excess >= margin)
    verdict = (f"stable beyond chance: subsample ARI {out['ari_mean']:.2f} vs {null_mean:.2f} on a single "
               "Gaussian cloud of the same covariance" if beats else
               f"no more stable than cutting a single Gaussian cloud of the same covariance "
               f"(subsample ARI {ari:.2f} vs null {null_mean:.2f}, best null sample {max(per_sample):.2f})")
    out.update(null="Gaussian with the data's mean and covariance, clustered the same way",
               null_ari_mean=null_mean, null_ari_sd=null_sd, null_ari_samples=per_sample,
               ari_excess=float(excess), beats_null=beats, verdict=verdict)
    return out


def subsample_stability(
    Z: np.ndarray,
    fit: Callable[[np.ndarray], np.ndarray],
    n_subsamples: int = 6,
    fraction: float = 0.8,
    seed: int | np.random.Generator = 0,
) -> tuple[float, list[float]]:
    """Mean ARI between the clusterings of every pair of random subsamples, on their shared rows.

    No reference clustering is needed (Ben-Hur et al. 2002; Lange et al. 2004): a partition that
    reflects structure comes back whichever synapses are left out.

    Parameters
    ----------
    Z : ndarray, shape (n_synapses, d)
    fit : callable Z_subset → labels
        One clustering (method and k fixed).
    n_subsamples : int
        Subsamples drawn (≥ 2); n·(n−1)/2 pairs are compared.
    fraction : float
        Share of synapses in each subsample (0 < fraction ≤ 1).
    seed : int or numpy Generator

    Returns
    -------
    (mean ARI, list of the pairwise ARIs)
    """
    from sklearn.metrics import adjusted_rand_score

    if not 0 < fraction <= 1:
        raise ValueError(f"subsample fraction={fraction!r} must be in (0, 1]")
    if n_subsamples < 2:
        raise ValueError(f"n_subsamples={n_subsamples!r} must be at least 2 (pairs of subsamples are compared)")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = len(Z)
    m = int(min(max(2, round(fraction * n)), n))
    subs = []
    for _ in range(int(n_subsamples)):
        idx = np.sort(rng.choice(n, size=m, replace=False))
        full = np.full(n, -2, dtype=np.int64)  # −2: not in this subsample
        full[idx] = np.asarray(fit(Z[idx]))
        subs.append(full)
    aris = []
    for i in range(len(subs)):
        for j in range(i + 1, len(subs)):
            shared = (subs[i] != -2) & (subs[j] != -2)
            aris.append(float(adjusted_rand_score(subs[i][shared], subs[j][shared])))
    return float(np.mean(aris)), aris


def nuisance_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The columns of a synapse table that clusters should *not* follow, one column each.

    * ``bbox_name`` — the volume of origin (staining, alignment, section thickness);
    * ``presynaptic_side`` — which annotated side (1 or 2) is presynaptic, i.e. the mirror
      orientation of the crop;
    * ``coverage`` — share of the crop inside the data (padding);
    * ``orientation_z``, ``orientation_y``, ``orientation_x`` — the unit vector from the
      presynaptic to the postsynaptic side point (side 1 → side 2 where ``presynaptic_side`` is
      not 1 or 2), in voxel axes (z, y, x), from ``side_{1,2}_coord_{3,2,1}`` (x, y, z voxels);
      columns already named ``orientation_*`` or ``cleft_normal_*`` are taken as they are.

    Columns absent from ``table`` are left out. The index of ``table`` is kept.
    """
    out = pd.DataFrame(index=table.index)
    for col in ("bbox_name", "presynaptic_side", "coverage"):
        if col in table.columns:
            out[col] = table[col]
    given = [c for c in table.columns if str(c).startswith(("orientation_", "cleft_normal_"))]
    for c in given:
        out[c] = table[c]
    side_cols = [f"side_{s}_coord_{a}" for s in (1, 2) for a in (3, 2, 1)]
    if not given and all(c in table.columns for c in side_cols):
        s1 = table[side_cols[:3]].to_numpy(dtype=float)  # (z, y, x)
        s2 = table[side_cols[3:]].to_numpy(dtype=float)
        v = s2 - s1
        if "presynaptic_side" in table.columns:
            flip = pd.to_numeric(table["presynaptic_side"], errors="coerce").to_numpy() == 2
            v[flip] *= -1  # point from the presynaptic to the postsynaptic side
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.where(norm > 0, v / norm, np.nan)
        for j, axis in enumerate("zyx"):
            out[f"orientation_{axis}"] = v[:, j]
    return out


def _as_categories(values: pd.Series, n_bins: int) -> np.ndarray | None:
    """Categorical codes of a column: as is when it has few values or is not numeric, else quantile bins."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique(dropna=True) > n_bins:
        codes = pd.qcut(values, q=n_bins, labels=False, duplicates="drop")
    else:
        codes = pd.Series(pd.factorize(values, use_na_sentinel=True)[0], index=values.index).where(values.notna())
    return None if codes.nunique(dropna=True) < 2 else codes.to_numpy(dtype=float)


def cluster_alignment(labels: np.ndarray, nuisance: pd.DataFrame, threshold: float = ALIGNMENT_WARN_AMI,
                      n_bins: int = 4, seed: int = 0, max_rows: int | None = None) -> dict:
    """Adjusted mutual information between cluster labels and each nuisance column, with warnings.

    Parameters
    ----------
    labels : ndarray of int, shape (n_synapses,)
        Cluster labels (−1 = noise; noise rows are left out).
    nuisance : DataFrame, n_synapses rows
        Columns the clusters should not follow (e.g. :func:`nuisance_columns`). Numeric columns
        with more than ``n_bins`` values are cut into ``n_bins`` quantile bins; rows with a missing
        value are left out of that column's AMI.
    threshold : float
        AMI above which a column is reported in ``warnings``. Default 0.25: independent labels give
        AMI ≈ 0 (about ±0.05 for 30–60 synapses), labels that *are* the column give 1, and
        clusters that split every type in two by a binary column (k = 2 × types) give ≈ 0.4–0.6.
    n_bins : int
        Quantile bins of continuous columns.
    seed, max_rows
        Rows used: :func:`diagnostic_rows` (every row up to ``LARGE_ROWS`` synapses, above it a seeded
        sample of ``FIT_ROWS``; the AMI's expected-information term grows with the cluster sizes).

    Returns
    -------
    dict
        ``ami`` ({column: AMI or None when the column has one value}), ``threshold``,
        ``warnings`` (list of sentences naming the column and its AMI), ``aligned`` (columns above
        the threshold), ``n_rows_used`` (rows the AMIs were computed on).

    Example
    -------
    >>> side = np.array([1, 2] * 20)
    >>> cluster_alignment(side - 1, pd.DataFrame({"presynaptic_side": side}))["aligned"]
    ['presynaptic_side']
    """
    from sklearn.metrics import adjusted_mutual_info_score

    labels = np.asarray(labels)
    if len(labels) != len(nuisance):
        raise ValueError(f"labels ({len(labels)}) and nuisance rows ({len(nuisance)}) differ")
    rows = diagnostic_rows(len(labels), seed, max_rows)
    if rows is not None:
        labels, nuisance = labels[rows], nuisance.iloc[rows]
    ami, warnings, aligned = {}, [], []
    clustered = labels >= 0
    for col in nuisance.columns:
        codes = _as_categories(nuisance[col].reset_index(drop=True), n_bins)
        if codes is None:
            ami[str(col)] = None
            continue
        ok = clustered & np.isfinite(codes)
        if ok.sum() < 3 or len(np.unique(labels[ok])) < 2:
            ami[str(col)] = None
            continue
        value = float(adjusted_mutual_info_score(codes[ok].astype(int), labels[ok]))
        ami[str(col)] = value
        if value > threshold:
            aligned.append(str(col))
            warnings.append(f"clusters align with {col} (AMI {value:.2f} > {threshold:g}): they may sort "
                            f"synapses by {_NUISANCE_MEANING.get(str(col).split('_')[0], col)} rather than "
                            "by the synapse itself")
    return {"ami": ami, "threshold": threshold, "n_bins": n_bins, "warnings": warnings, "aligned": aligned,
            "n_rows_used": len(labels)}


_NUISANCE_MEANING = {
    "bbox": "volume of origin (a batch effect)",
    "presynaptic": "which side is presynaptic (mirror orientation)",
    "coverage": "how much of the crop lies inside the data (padding)",
    "orientation": "their orientation in the volume",
    "cleft": "their orientation in the volume",
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
                max_queries: int = 5000, max_rows: int | None = None, features: dict | None = None) -> dict:
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
        Seed of the query sample when n_synapses > ``max_queries``, and of the row sample.
    max_queries : int
        At most this many synapses are queried for their neighbours (seeded sample).
    max_rows : int or None
        Rows used for everything (AMI, neighbour search, shares): :func:`diagnostic_rows` — every row up to
        ``LARGE_ROWS`` synapses, above it a seeded sample of ``FIT_ROWS`` (neighbours are then found among
        the sampled synapses, and the expected share is that of the sample).
    features : dict or None
        :func:`feature_neighbours` of ``Z`` with the same ``k``, ``seed``, ``max_queries`` and ``max_rows``,
        if already computed (the same neighbours: None computes them here).

    Returns
    -------
    dict
        ``n_rows_used``: rows used. ``cluster_bbox_ami``: adjusted mutual information between cluster and bbox (0: clusters
        independent of bbox, 1: clusters are the bboxes). ``knn_same_bbox``: observed fraction of
        feature-space neighbours from the same bbox; ``knn_same_bbox_expected``: that fraction if bboxes
        were perfectly mixed (Σ p_b² over bbox shares, corrected for excluding the point itself);
        ``batch_effect_score`` = (observed − expected) / (1 − expected): 0 well mixed, 1 every
        neighbour from the same bbox (None with a single bbox).
    """
    from sklearn.metrics import adjusted_mutual_info_score

    bbox = np.asarray(bbox).astype(str)
    labels = np.asarray(labels)
    n = len(Z)
    rows = diagnostic_rows(n, seed, max_rows)
    if rows is not None:
        n, labels, bbox = len(rows), labels[rows], bbox[rows]
    names, counts = np.unique(bbox, return_counts=True)
    out = {"n_bboxes": len(names), "n_rows_used": int(n)}
    out["cluster_bbox_ami"] = float(adjusted_mutual_info_score(bbox, labels)) if len(names) > 1 else None
    if len(names) < 2 or n < 3:
        out.update(knn_same_bbox=None, knn_same_bbox_expected=None, batch_effect_score=None)
        return out
    if features is None:
        features = feature_neighbours(Z, k, seed, max_queries, max_rows)
    queries, ind, k = features["queries"], features["neighbours"], features["k"]
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


def feature_neighbours(Z: np.ndarray, k: int = 10, seed: int = 0, max_queries: int = 5000,
                       max_rows: int | None = None) -> dict:
    """The feature-space half of :func:`knn_overlap`, which needs no map (``run_clustering`` computes it
    while a map process works). Parameters as :func:`knn_overlap`.

    Returns
    -------
    dict: ``rows`` (:func:`diagnostic_rows`), ``queries`` (indices into those rows), ``k`` (capped) and
    ``neighbours`` (int, shape (n_queries, k): each query's k nearest other synapses in ``Z``).
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(Z)
    if n < 3:
        raise ValueError(f"k-NN overlap needs at least 3 synapses; got {n}")
    rows = diagnostic_rows(n, seed, max_rows)
    if rows is not None:
        Z, n = np.asarray(Z)[rows], len(rows)
    k = int(min(k, n - 1))
    queries = cap_rows(n, max_queries, np.random.default_rng(seed))
    neighbours = _drop_self(NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z[queries])[1], queries, k)
    return {"rows": rows, "queries": queries, "k": k, "neighbours": neighbours}


def knn_overlap(Z: np.ndarray, Y: np.ndarray, k: int = 10, seed: int = 0, max_queries: int = 5000,
                max_rows: int | None = None, features: dict | None = None) -> float:
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
        At most ``max_queries`` synapses are queried (seeded sample); neighbours come from all rows used.
    max_rows : int or None
        Rows used: :func:`diagnostic_rows` — every row up to ``LARGE_ROWS`` synapses, above it a seeded
        sample of ``FIT_ROWS`` (neighbours among the sampled synapses in both spaces).
    features : dict or None
        :func:`feature_neighbours` of ``Z`` with the same ``k``, ``seed``, ``max_queries`` and ``max_rows``,
        if already computed (None: computed here).

    Returns
    -------
    float in [0, 1]. A random map scores about k / (n_rows_used − 1).
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(Z)
    if len(Y) != n:
        raise ValueError(f"feature rows ({n}) and map rows ({len(Y)}) differ")
    if features is None:
        features = feature_neighbours(Z, k, seed, max_queries, max_rows)
    rows, queries, k, a = features["rows"], features["queries"], features["k"], features["neighbours"]
    if rows is not None:
        Y = np.asarray(Y)[rows]
    b = _drop_self(NearestNeighbors(n_neighbors=k + 1).fit(Y).kneighbors(Y[queries])[1], queries, k)
    shared = [len(np.intersect1d(x, y, assume_unique=True)) for x, y in zip(a, b)]
    return float(np.mean(shared) / k)
