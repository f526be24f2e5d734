"""Choosing the number of clusters k from the data — including k = 1, "no clear cluster structure".

:func:`sweep_k` clusters the preprocessed features for every k in a range and records, per k:

* ``silhouette``: mean silhouette (−1..1, higher is better), on a seeded random sample of at
  most ``silhouette_sample`` synapses when N is large (exact below that);
* ``calinski_harabasz``: between/within dispersion ratio (higher is better);
* ``inertia``: within-cluster sum of squared distances (the elbow curve; always decreases);
* ``smallest_cluster``: synapses in the smallest cluster;
* ``stability``: mean ARI between the clusterings of pairs of random subsamples (80 %) on the
  synapses they share (:func:`synapse_core.cluster.diagnostics.subsample_stability`);
* ``silhouette_null``, ``silhouette_null_sd``, ``stability_null``, ``stability_null_sd``: the same
  statistics on samples of **one Gaussian cloud with the data's mean and covariance**
  (:func:`synapse_core.cluster.diagnostics.gaussian_null`), clustered the same way;
* ``gap``, ``gap_sd``: Tibshirani's gap statistic against that Gaussian null,
  mean log(W_null / m) − log(W / n) with W the inertia (a second opinion, reported, not used).

:func:`decide_k` (and :func:`choose_k`, which returns only its k) applies the rule of ``--k auto``:

    A k ≥ 2 is **supported** when (1) its silhouette beats the null's mean by more than
    ``max(0.02, 2 × null sd)``, (2) its subsample stability is at least 0.75 and at least the
    null's, and (3) every cluster holds at least ``min_cluster_size`` (5) synapses. **k = the
    supported k with the largest silhouette excess over the null**; excesses within
    ``tolerance`` of the best are a tie and the smallest k wins. **When no k is supported,
    k = 1: "no clear cluster structure"** — all synapses form one cluster.

Why this rule. Silhouette alone always names some k ≥ 2, and on small samples (36 synapses in 192
dimensions) random sampling makes a few points look like a group: measured on data with 3 planted
types it chose k = 7–11. Comparing against the same statistic on a structureless reference turns
"largest" into "larger than chance", and makes k = 1 a possible answer: the silhouette test is the
one that can fail. The reference is a Gaussian with the data's covariance (the null of SigClust, Liu
et al. 2008) rather than column-permuted features: shuffling each column keeps a multimodal column
multimodal (the planted groups survive in the null) and makes a correlated cloud round (the data,
one elongated cloud, would then look "structured" next to it). Stability (Ben-Hur et al. 2002, Lange
et al. 2004) is required as well because silhouette can be beaten by a partition that does not come
back when a fifth of the synapses is left out (0.75: the usual "stable" level of Hennig's
cluster-wise Jaccard). Stability is not used as the test against k = 1, because KMeans splits one elongated
cloud the same way every time (null stabilities of 0.8–0.9 at k = 2 are common), so clear groups
often cannot beat the null's stability by a margin; it must only not fall below it. The minimum
cluster size stops a few outliers from being called a type. With fewer synapses than dimensions the
Gaussian null is conservative (its sample covariance is more elongated than the data's), so weak
structure in very small samples is reported as "no clear cluster structure" rather than guessed. The
gap statistic (Tibshirani et al. 2001) is computed against the same null and reported (``gap_k``),
like the inertia elbow (:func:`elbow_k`), as a second opinion; Calinski–Harabasz is reported but not
used (it favours many small clusters on structureless data).

Cost: per k, 1 clustering of the data, ``n_subsamples`` of data subsamples, ``n_null`` of null
samples and ``n_subsamples`` × ``n_null_stability`` of null subsamples (21 with the defaults),
on at most ``max_rows`` synapses (seeded sample) for the stability and null parts. The 20 clusterings
of samples use ``sample_fit`` — for KMeans ``SAMPLE_N_INIT`` = 3 k-means++ restarts instead of 10
(issue 16: the sweep 2..12 of 10⁴ × 192 rows 30 → 15 CPU s, same k; the subsample stabilities of
the data and of the null are then a little lower and noisier at k where k-means has local minima,
e.g. 0.84 instead of 1.0 at k = 3 on the benchmark data; silhouettes do not change). Every fit runs
single-threaded; the silhouettes' pairwise distances (≤ ``SILHOUETTE_DISTANCE_ROWS`` rows) are computed
once for all k (same values; sweep 18 → 15 CPU s at 10⁴ rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from synapse_core.cluster.diagnostics import gaussian_null, subsample_stability
from synapse_core.cluster.sampling import cap_rows

#: The silhouette must beat the null's mean by at least this much (and by 2 null sd).
SILHOUETTE_MARGIN = 0.02
#: A supported k reproduces on subsamples at least this well (mean pairwise ARI).
STABILITY_MIN = 0.75
#: Every cluster of a supported k holds at least this many synapses.
MIN_CLUSTER_SIZE = 5

#: k-means++ restarts of the sweep's default clustering of its stability subsamples and null samples (≤ ``max_rows``
#: synapses each; 10 before issue 16, which made them 2/3 of the CPU time of a fresh 10⁴-row ``cluster``).
SAMPLE_N_INIT = 3

NO_STRUCTURE = "no clear cluster structure"


@dataclass
class KSweep:
    """Result of :func:`sweep_k`.

    Attributes
    ----------
    curves : DataFrame
        One row per k: ``k``, ``silhouette``, ``calinski_harabasz``, ``inertia``,
        ``n_clusters_found``, ``smallest_cluster``, ``stability``, ``silhouette_null``,
        ``silhouette_null_sd``, ``stability_null``, ``stability_null_sd``, ``gap``, ``gap_sd``.
        ``curves.attrs`` holds ``silhouette_sample``, ``null_rows``, ``gap_k1``, ``gap_k1_sd``,
        ``gap_k`` and the sweep's settings (``n_null``, ``n_subsamples``, ...).
    labels : dict of int → ndarray
        Cluster labels (n_synapses,) of each k, so the chosen k need not be fitted again.
    """

    curves: pd.DataFrame
    labels: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class KDecision:
    """Outcome of :func:`decide_k`.

    Attributes
    ----------
    k : int
        Chosen number of clusters; 1 means no k beat the null (all synapses in cluster 0).
    structure : bool
        False when k = 1 ("no clear cluster structure").
    verdict : str
        One sentence for people: the chosen k and the numbers that decided it.
    rule : str
        The rule, with its thresholds.
    curves : DataFrame
        The sweep's curves plus ``silhouette_excess``, ``silhouette_beats_null``,
        ``stable``, ``large_enough`` and ``supported`` per k.
    """

    k: int
    structure: bool
    verdict: str
    rule: str
    curves: pd.DataFrame

    def as_dict(self) -> dict:
        """JSON-ready summary (no per-k table; that is ``curves``)."""
        c = self.curves
        return {
            "k": self.k, "structure": self.structure, "verdict": self.verdict, "rule": self.rule,
            "supported_k": [int(k) for k in c.loc[c["supported"], "k"]],
            "gap_k": c.attrs.get("gap_k"), "null": c.attrs.get("null"),
            "null_rows": c.attrs.get("null_rows"),
        }


def within_cluster_ss(Z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Sum of squared distances to the cluster means (noise label −1 ignored) and the means (k, d)."""
    ids = np.unique(labels[labels >= 0])
    centres = np.stack([Z[labels == c].mean(axis=0) for c in ids]) if len(ids) else np.zeros((0, Z.shape[1]))
    total = 0.0
    for i, c in enumerate(ids):
        d = Z[labels == c] - centres[i]
        total += float(np.einsum("ij,ij->", d, d, dtype=np.float64))
    return total, centres


def assign_nearest(Z: np.ndarray, centres: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Label (n_synapses,) of the nearest of ``centres`` (k, d) for each row of ``Z``, in chunks (bounded memory)."""
    labels = np.empty(len(Z), dtype=np.int64)
    c2 = np.einsum("ij,ij->i", centres, centres)
    for start in range(0, len(Z), chunk):
        part = Z[start:start + chunk]
        labels[start:start + chunk] = np.argmin(c2[None, :] - 2.0 * part @ centres.T, axis=1)
    return labels


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


#: Up to this many rows the sweep computes the silhouette's pairwise distances once for every k (a float32
#: matrix of rows² values: 100 MB at 5000) instead of once per k.
SILHOUETTE_DISTANCE_ROWS = 5000


def _distances(Z, sample):
    """Pairwise Euclidean distances of the silhouette rows (float32), or None when there are too many."""
    from sklearn.metrics import pairwise_distances

    Zs = Z if sample is None else Z[sample]
    return pairwise_distances(Zs) if len(Zs) <= SILHOUETTE_DISTANCE_ROWS else None


def _silhouette(Z, labels, sample, D=None):
    from sklearn.metrics import silhouette_score

    Zs, ls = (Z, labels) if sample is None else (Z[sample], labels[sample])
    ok = ls >= 0
    if not 2 <= len(np.unique(ls[ok])) < ok.sum():
        return np.nan
    if D is not None:  # the same distances, computed once for every k
        return float(silhouette_score(D if ok.all() else D[np.ix_(ok, ok)], ls[ok], metric="precomputed"))
    return float(silhouette_score(Zs[ok], ls[ok]))


def _log_w(Z, labels) -> float:
    w = within_cluster_ss(Z, labels)[0]
    return float(np.log(max(w, 1e-300) / len(Z)))


def sweep_k(
    Z: np.ndarray,
    k_range: tuple[int, int] = (2, 12),
    fit: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray | None, float | None]] | None = None,
    seed: int = 0,
    silhouette_sample: int = 5000,
    *,
    n_null: int = 5,
    n_subsamples: int = 5,
    n_null_stability: int = 2,
    subsample_fraction: float = 0.8,
    max_rows: int = 1000,
    fit_rows: int | None = None,
    sample_fit: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> KSweep:
    """Cluster ``Z`` for each k in ``k_range`` (inclusive); score each k on the data and on a null.

    Parameters
    ----------
    Z : ndarray, shape (n_synapses, d)
        Preprocessed features (the clustering space).
    k_range : (int, int)
        Smallest and largest k, inclusive; the top is capped at n_synapses − 1.
    fit : callable (Z, k) → (labels, centroids or None, inertia or None), optional
        Clustering to sweep; default KMeans (:func:`synapse_core.cluster.algorithms.fit_kmeans` with ``seed``).
    seed : int
        Seed of the default KMeans, the silhouette sample, the subsamples and the null samples.
    silhouette_sample : int
        Data silhouette on at most this many synapses (seeded sample); 0 or less: all.
    n_null : int
        Gaussian null samples (silhouette, gap); at least 2.
    n_subsamples : int
        Subsamples per k for the stability (pairs compared: n(n−1)/2); at least 2.
    n_null_stability : int
        Null samples whose stability is measured too (the first ones); at least 1.
    subsample_fraction : float
        Share of synapses in each stability subsample.
    max_rows : int
        Stability and null statistics use at most this many synapses (seeded sample); null samples
        have that many rows.
    fit_rows : int or None
        With more synapses than this, each k is fitted on a seeded sample of ``fit_rows`` synapses
        and every synapse is then assigned to the nearest centre of that fit (labels, inertia and
        Calinski–Harabasz are of the full assignment). None: ``FIT_ROWS`` above ``LARGE_ROWS``
        synapses (:mod:`synapse_core.cluster.settings`), else every synapse is fitted.
    sample_fit : callable (Z, k) → labels, optional
        Clustering of the stability subsamples and of the null samples (data and null alike, so the
        comparison stays fair). Default: with the default ``fit``, KMeans with ``SAMPLE_N_INIT`` (3)
        k-means++ restarts; with a given ``fit``, that fit's labels.

    Returns
    -------
    KSweep
    """
    from sklearn.metrics import calinski_harabasz_score
    from threadpoolctl import threadpool_limits

    for name, value, low in (("n_null", n_null, 2), ("n_subsamples", n_subsamples, 2),
                             ("n_null_stability", n_null_stability, 1), ("max_rows", max_rows, 10)):
        if int(value) < low:
            raise ValueError(f"{name}={value!r} must be at least {low}")
    n_null_stability = min(int(n_null_stability), int(n_null))
    Z = np.asarray(Z, dtype=np.float32)
    ks = check_k_range(k_range, len(Z))
    if fit is None:
        from synapse_core.cluster.algorithms import fit_kmeans

        def fit(Z_, k_):
            return fit_kmeans(Z_, k_, seed=seed)

        if sample_fit is None:
            def sample_fit(Z_, k_):
                return fit_kmeans(Z_, k_, seed=seed, n_init=SAMPLE_N_INIT)[0]

    rng = np.random.default_rng(seed)
    sample = None
    if silhouette_sample and silhouette_sample > 0 and len(Z) > silhouette_sample:
        sample = rng.choice(len(Z), size=silhouette_sample, replace=False)
    rows = cap_rows(len(Z), max_rows, rng)
    Zr = Z[rows]
    nulls = [gaussian_null(Zr, seed=rng) for _ in range(int(n_null))]
    dist_data, dist_nulls = _distances(Z, sample), [_distances(Zn, None) for Zn in nulls]
    null_log_w1 = np.array([_log_w(Zn, np.zeros(len(Zn), int)) for Zn in nulls])
    log_w1 = _log_w(Z, np.zeros(len(Z), int))

    def labels_of(Z_, k_):
        return np.asarray(fit(Z_, k_)[0] if sample_fit is None else sample_fit(Z_, k_))

    if fit_rows is None:
        from synapse_core.cluster.settings import FIT_ROWS, LARGE_ROWS

        fit_rows = FIT_ROWS if len(Z) > LARGE_ROWS else None
    fit_sample = None
    if fit_rows is not None and len(Z) > int(fit_rows):
        fit_sample = cap_rows(len(Z), int(fit_rows), np.random.default_rng([seed, 1]))

    def fit_all(k_):
        """(labels, inertia) of every synapse: fitted directly, or fitted on ``fit_sample`` and assigned."""
        if fit_sample is None:
            labels_, _, inertia_ = fit(Z, k_)
            return np.asarray(labels_), inertia_
        sub_labels, centres, _ = fit(Z[fit_sample], k_)
        if centres is None:  # a method without centres: the means of its clusters
            centres = within_cluster_ss(Z[fit_sample], np.asarray(sub_labels))[1]
        return assign_nearest(Z, np.asarray(centres, dtype=np.float32)), None

    # Single-threaded: small fits are faster so, and so are the large path's fits on its FIT_ROWS sample and the
    # full fits at 10⁴ rows (measured on the shared 2-core machine: MiniBatchKMeans on 50 000 × 50, k = 12: 1.4 s
    # with threads, 0.6 s without; the whole sweep 2..12 of 10⁴ × 192 rows: 56 CPU s / 98 s wall with threads,
    # 30 CPU s / 42 s wall without, identical curves). Threads only spin on a machine whose cores are busy.
    rows_out, labels_by_k = [], {}
    with threadpool_limits(1):
        for k in ks:
            labels, inertia = fit_all(k)
            if inertia is None:
                inertia = within_cluster_ss(Z, labels)[0]
            found = labels[labels >= 0]
            n_found = len(np.unique(found))
            sil = _silhouette(Z, labels, sample, dist_data) if n_found >= 2 else np.nan
            ch = float(calinski_harabasz_score(Z, labels)) if 2 <= n_found < len(Z) else np.nan
            def fit_k(Z_, k=k):
                return labels_of(Z_, k)

            stab = subsample_stability(Zr, fit_k, n_subsamples, subsample_fraction, rng)[0]
            null_sil, null_log_w, null_stab = [], [], []
            for j, Zn in enumerate(nulls):
                ln = labels_of(Zn, k)
                null_sil.append(_silhouette(Zn, ln, None, dist_nulls[j]))
                null_log_w.append(_log_w(Zn, ln))
                if j < n_null_stability:
                    null_stab.append(subsample_stability(Zn, fit_k, n_subsamples, subsample_fraction, rng)[0])
            null_log_w = np.array(null_log_w)
            rows_out.append({
                "k": k, "silhouette": sil, "calinski_harabasz": ch, "inertia": float(inertia),
                "n_clusters_found": n_found,
                "smallest_cluster": int(np.bincount(found).min()) if n_found else 0,
                "stability": stab,
                "silhouette_null": float(np.nanmean(null_sil)) if np.isfinite(null_sil).any() else np.nan,
                "silhouette_null_sd": float(np.nanstd(null_sil, ddof=1)) if np.isfinite(null_sil).sum() > 1 else np.nan,
                "stability_null": float(np.mean(null_stab)),
                "stability_null_sd": float(np.std(null_stab, ddof=1)) if len(null_stab) > 1 else np.nan,
                "gap": float(null_log_w.mean() - np.log(max(float(inertia), 1e-300) / len(Z))),
                "gap_sd": float(null_log_w.std() * np.sqrt(1 + 1 / len(null_log_w))),
            })
            labels_by_k[k] = labels
    curves = pd.DataFrame(rows_out)
    gap1 = float(null_log_w1.mean() - log_w1)
    gap1_sd = float(null_log_w1.std() * np.sqrt(1 + 1 / len(null_log_w1)))
    curves.attrs.update(
        silhouette_sample=None if sample is None else len(sample), null_rows=len(Zr),
        fit_rows=None if fit_sample is None else len(fit_sample),
        null="one Gaussian cloud with the data's mean and covariance, clustered the same way",
        n_null=int(n_null), n_subsamples=int(n_subsamples), n_null_stability=n_null_stability,
        subsample_fraction=float(subsample_fraction), gap_k1=gap1, gap_k1_sd=gap1_sd,
    )
    curves.attrs["gap_k"] = gap_k(curves)
    return KSweep(curves, labels_by_k)


def gap_k(curves: pd.DataFrame) -> int | None:
    """Tibshirani's 1-SE rule: the smallest k with gap(k) ≥ gap(k+1) − sd(k+1), k = 1 included.

    Uses ``curves.attrs["gap_k1"]`` / ``["gap_k1_sd"]`` for k = 1 when present (as written by
    :func:`sweep_k`). Returns None without a ``gap`` column.
    """
    if "gap" not in curves.columns:
        return None
    k = curves["k"].to_numpy(dtype=int)
    g = curves["gap"].to_numpy(dtype=float)
    sd = curves["gap_sd"].to_numpy(dtype=float)
    if "gap_k1" in curves.attrs and k[0] == 2:
        k, g, sd = np.r_[1, k], np.r_[curves.attrs["gap_k1"], g], np.r_[curves.attrs["gap_k1_sd"], sd]
    for i in range(len(k) - 1):
        if g[i] >= g[i + 1] - sd[i + 1]:
            return int(k[i])
    return int(k[-1])


_NEEDED = ("k", "silhouette", "silhouette_null", "silhouette_null_sd", "stability", "stability_null",
           "smallest_cluster")


def decide_k(curves: pd.DataFrame, tolerance: float = 0.0, min_cluster_size: int = MIN_CLUSTER_SIZE,
             silhouette_margin: float = SILHOUETTE_MARGIN, stability_min: float = STABILITY_MIN) -> KDecision:
    """The ``--k auto`` rule (module docstring): supported k with the largest silhouette excess, else k = 1.

    Parameters
    ----------
    curves : DataFrame
        Output of :func:`sweep_k` (columns ``k``, ``silhouette``, ``silhouette_null``,
        ``silhouette_null_sd``, ``stability``, ``stability_null``, ``smallest_cluster``).
    tolerance : float
        Silhouette-excess difference treated as a tie (smallest k wins); 0: exact maximum.
    min_cluster_size : int
        Smallest cluster (synapses) a supported k may have.
    silhouette_margin : float
        Least silhouette excess over the null's mean (it must also exceed 2 null standard deviations).
    stability_min : float
        Least subsample stability (mean pairwise ARI); it must also be at least the null's.

    Returns
    -------
    KDecision

    Raises
    ------
    ValueError
        ``curves`` lacks a column (not from :func:`sweep_k`).

    Example
    -------
    >>> curves = pd.DataFrame({"k": [2, 3], "silhouette": [0.30, 0.62], "silhouette_null": [0.25, 0.2],
    ...     "silhouette_null_sd": [0.01, 0.01], "stability": [0.5, 0.98], "stability_null": [0.6, 0.4],
    ...     "smallest_cluster": [20, 12]})
    >>> decide_k(curves).k
    3
    """
    missing = [c for c in _NEEDED if c not in curves.columns]
    if missing:
        raise ValueError(f"k curves lack column(s) {', '.join(missing)}; compute them with sweep_k")
    c = curves.copy()
    c.attrs = dict(curves.attrs)
    sil_sd = np.nan_to_num(c["silhouette_null_sd"].to_numpy(dtype=float))
    c["silhouette_excess"] = c["silhouette"] - c["silhouette_null"]
    c["silhouette_beats_null"] = (c["silhouette_excess"] > np.maximum(silhouette_margin, 2 * sil_sd)).fillna(False)
    c["stable"] = (c["stability"] >= np.maximum(stability_min, c["stability_null"])).fillna(False)
    c["large_enough"] = c["smallest_cluster"] >= int(min_cluster_size)
    c["supported"] = c["silhouette_beats_null"] & c["stable"] & c["large_enough"]
    rule = (f"supported k: silhouette > Gaussian null + max({silhouette_margin:g}, 2 sd), stability ≥ "
            f"max({stability_min:g}, null), clusters ≥ {int(min_cluster_size)} synapses; largest silhouette excess"
            + (f" (ties within {tolerance:g} → smallest k)" if tolerance else "")
            + f"; none → k = 1; k = {int(c['k'].min())}..{int(c['k'].max())}")
    sup = c[c["supported"]]
    if sup.empty:
        best_sil = c.loc[c["silhouette_excess"].idxmax()] if c["silhouette_excess"].notna().any() else None
        detail = ""
        if best_sil is not None:
            detail = (f": best k = {int(best_sil['k'])} has silhouette {best_sil['silhouette']:.2f} vs null "
                      f"{best_sil['silhouette_null']:.2f} and stability {best_sil['stability']:.2f} vs null "
                      f"{best_sil['stability_null']:.2f}, smallest cluster {int(best_sil['smallest_cluster'])}")
        verdict = f"{NO_STRUCTURE} (k = 1){detail}"
        return KDecision(1, False, verdict, rule, c)
    excess = sup["silhouette_excess"].to_numpy(dtype=float)
    ok = excess >= excess.max() - tolerance
    k = int(sup["k"].to_numpy()[ok].min())
    row = c.set_index("k").loc[k]
    verdict = (f"cluster structure at k = {k}: silhouette {row['silhouette']:.2f} vs {row['silhouette_null']:.2f} "
               f"on a structureless Gaussian, subsample stability {row['stability']:.2f} vs "
               f"{row['stability_null']:.2f}, smallest cluster {int(row['smallest_cluster'])} synapses")
    return KDecision(k, True, verdict, rule, c)


def choose_k(curves: pd.DataFrame, tolerance: float = 0.0, **rule) -> int:
    """The k picked by ``--k auto`` (1 = no clear cluster structure); see :func:`decide_k`."""
    return decide_k(curves, tolerance, **rule).k


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
