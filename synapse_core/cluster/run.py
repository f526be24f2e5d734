"""Features → clusters (+ map, k curves, diagnostics, per-cluster summary): the clustering stage.

Entry point: :func:`run_clustering` (``python -m synapse_core cluster`` and the dashboard call it).

Policy
------
* One preprocessing for everything (:func:`synapse_core.cluster.preprocess.prepare`): scaling (standard by
  default), optional PCA. Clustering, k selection, diagnostics and the projection all use that
  matrix, the *clustering space*; clustering never runs on the 2D/3D map. The space is written in
  every output (column ``cluster_space``, ``diagnostics["cluster_space"]``).
* Methods: ``kmeans`` (default; MiniBatchKMeans above ``MINIBATCH_ROWS`` synapses), ``agglomerative``
  (Ward), ``hdbscan`` (``sklearn.cluster.HDBSCAN``), ``dbscan``.
* **Noise is labelled −1** (HDBSCAN/DBSCAN points in no cluster), not 999 as in the original tool;
  noise rows have ``distance_to_centroid`` NaN and are excluded from centroids and effect sizes.
* ``k="auto"`` sweeps ``k_range`` and picks k by the rule of :func:`synapse_core.cluster.k_selection.choose_k`
  (highest silhouette). HDBSCAN/DBSCAN find their own number of clusters and ignore ``k``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, asdict, field

import numpy as np
import pandas as pd

from synapse_core.cluster import summary as cluster_summary
from synapse_core.cluster import diagnostics
from synapse_core.cluster import k_selection
from synapse_core.cluster.preprocess import FEATURE_SETS, NAN_POLICIES, SCALERS, PreprocessRecord, prepare
from synapse_core.cluster.projection import ProjectionSettings, project

log = logging.getLogger(__name__)

METHODS = ("kmeans", "hdbscan", "dbscan", "agglomerative")
PROJECTIONS = ("umap", "tsne", "none")
KMEANS_ALGORITHMS = ("auto", "full", "minibatch")
#: Above this many synapses ``kmeans_algorithm="auto"`` uses MiniBatchKMeans.
MINIBATCH_ROWS = 20000
#: Agglomerative clustering needs O(N²) memory; refuse beyond this many synapses.
AGGLOMERATIVE_MAX_ROWS = 20000
NOISE = -1
#: Up to this many synapses KMeans uses 10 restarts by default, above it 3.
FEW_ROWS = 5000


@dataclass(frozen=True)
class ClusterSettings:
    """Everything that decides a clustering run. Frozen: ``key()`` is the run's cache key.

    Attributes
    ----------
    method : {"kmeans", "hdbscan", "dbscan", "agglomerative"}
    k : "auto" or int
        Number of clusters (kmeans, agglomerative); ``"auto"``: chosen from ``k_range`` by silhouette.
    k_range : (int, int)
        Inclusive range swept by ``k="auto"`` (top capped at n_synapses − 1).
    projection : {"umap", "tsne", "none"}
    dims : {2, 3}
        Map dimensions.
    seed : int
        Seed of every random step (PCA, KMeans, projection, silhouette sample, stability).
    scaler : {"standard", "robust", "none"}
    pca_components : int or None
        PCA after scaling (None: keep all scaled features).
    feature_set : {"auto", "feat", "morph", "both"}
        ``feat_*`` deep features, ``morph_*`` morphology, or both; auto: feat_* when present.
    nan_policy : {"error", "drop", "impute"}
        Rows with NaN/inf features: stop with an error naming them, leave them out, or replace
        missing values by the column median (recorded either way).
    umap_n_neighbors, umap_min_dist, tsne_perplexity, metric
        Projection parameters.
    reproducible : bool
        True: seeded single-threaded projection (identical reruns); False: parallel UMAP.
    kmeans_algorithm : {"auto", "full", "minibatch"}
    kmeans_n_init : int or None
        KMeans restarts; None: 10 up to 5 000 synapses, 3 above.
    min_cluster_size, min_samples : int
        HDBSCAN / DBSCAN density parameters.
    dbscan_eps : float or None
        DBSCAN radius in the clustering space; None: median distance to the ``min_samples``-th neighbour.
    linkage : str
        Agglomerative linkage ("ward", "average", "complete", "single").
    silhouette_sample : int
        Silhouette on at most this many synapses (seeded sample).
    k_tolerance : float
        Silhouette difference treated as a tie when choosing k (smallest k wins).
    n_stability : int
        Subsamples for the stability diagnostic (0: skip).
    stability_fraction : float
    knn_k : int
        Neighbours for the map-faithfulness and bbox-mixing diagnostics.
    n_representatives : int
        Synapses closest to each centre listed per cluster.
    """

    method: str = "kmeans"
    k: int | str = "auto"
    k_range: tuple[int, int] = (2, 12)
    projection: str = "umap"
    dims: int = 2
    seed: int = 0
    scaler: str = "standard"
    pca_components: int | None = None
    feature_set: str = "auto"
    nan_policy: str = "error"
    umap_n_neighbors: int = 15
    umap_min_dist: float = 0.1
    tsne_perplexity: float = 30.0
    metric: str = "euclidean"
    reproducible: bool = True
    kmeans_algorithm: str = "auto"
    kmeans_n_init: int | None = None
    min_cluster_size: int = 5
    min_samples: int = 5
    dbscan_eps: float | None = None
    linkage: str = "ward"
    silhouette_sample: int = 5000
    k_tolerance: float = 0.0
    n_stability: int = 10
    stability_fraction: float = 0.8
    knn_k: int = 10
    n_representatives: int = 5

    def __post_init__(self):
        def bad(name, value, accepted):
            raise ValueError(f"{name}={value!r} is not valid; accepted: {accepted}")

        if self.method not in METHODS:
            bad("method", self.method, ", ".join(METHODS))
        if self.projection not in PROJECTIONS:
            bad("projection", self.projection, ", ".join(PROJECTIONS))
        if self.dims not in (2, 3):
            bad("dims", self.dims, "2 or 3")
        if self.scaler not in SCALERS:
            bad("scaler", self.scaler, ", ".join(SCALERS))
        if self.feature_set not in FEATURE_SETS:
            bad("feature_set", self.feature_set, ", ".join(FEATURE_SETS))
        if self.nan_policy not in NAN_POLICIES:
            bad("nan_policy", self.nan_policy, ", ".join(NAN_POLICIES))
        if self.kmeans_algorithm not in KMEANS_ALGORITHMS:
            bad("kmeans_algorithm", self.kmeans_algorithm, ", ".join(KMEANS_ALGORITHMS))
        if self.k != "auto" and not (isinstance(self.k, (int, np.integer)) and not isinstance(self.k, bool)
                                     and self.k >= 2):
            bad("k", self.k, '"auto" or an integer ≥ 2')
        if len(self.k_range) != 2:
            bad("k_range", self.k_range, "(low, high)")
        object.__setattr__(self, "k_range", (int(self.k_range[0]), int(self.k_range[1])))
        if self.k_range[0] < 2 or self.k_range[1] < self.k_range[0]:
            bad("k_range", self.k_range, "(low, high) with 2 ≤ low ≤ high")
        if self.pca_components is not None and int(self.pca_components) < 1:
            bad("pca_components", self.pca_components, "a positive integer or None")
        if self.min_cluster_size < 2:
            bad("min_cluster_size", self.min_cluster_size, "an integer ≥ 2")
        if self.min_samples < 1:
            bad("min_samples", self.min_samples, "an integer ≥ 1")
        if self.dbscan_eps is not None and not self.dbscan_eps > 0:
            bad("dbscan_eps", self.dbscan_eps, "a positive number or None")

    def key(self) -> str:
        """Stable string of all fields (hash it for a cache key)."""
        return json.dumps(asdict(self), sort_keys=True, default=str)

    def projection_settings(self) -> ProjectionSettings | None:
        """The projection part of these settings (None when ``projection="none"``)."""
        if self.projection == "none":
            return None
        return ProjectionSettings(
            method=self.projection, dims=self.dims, seed=self.seed, n_neighbors=self.umap_n_neighbors,
            min_dist=self.umap_min_dist, metric=self.metric, perplexity=self.tsne_perplexity,
            reproducible=self.reproducible,
        )


@dataclass
class ClusterResult:
    """Output of :func:`run_clustering`.

    Attributes
    ----------
    table : DataFrame
        Input rows that were clustered (original order) plus ``cluster`` (int, −1 noise),
        ``proj_1..proj_<dims>`` (map coordinates; absent with ``projection="none"``),
        ``distance_to_centroid`` (Euclidean, clustering space; NaN for noise), ``cluster_space``.
    k_curves : DataFrame or None
        ``k``, ``silhouette``, ``calinski_harabasz``, ``inertia``, ``n_clusters_found`` per swept k
        (None when k was not swept).
    diagnostics : dict
        JSON-serialisable: settings, preprocessing record, chosen k and rule, silhouette, stability,
        bbox effect, map faithfulness, timings.
    summary : DataFrame
        One row per cluster (:func:`synapse_core.cluster.summary.summarise_clusters`).
    representatives : DataFrame
        ``cluster``, ``rank``, ``bbox_name``, ``Var1``, ``distance_to_centroid``.
    effect_sizes : DataFrame
        ``cluster``, ``column``, ``cluster_mean``, ``rest_mean``, ``effect_size`` (Cohen's d, morph_*).
    composition : DataFrame
        Synapse counts, clusters × bboxes.
    features : ndarray, float32, shape (n_rows, d)
        The clustering space (preprocessed features), row-aligned with ``table``.
    settings : ClusterSettings
    preprocess : PreprocessRecord
    """

    table: pd.DataFrame
    k_curves: pd.DataFrame | None
    diagnostics: dict
    summary: pd.DataFrame
    representatives: pd.DataFrame
    effect_sizes: pd.DataFrame
    composition: pd.DataFrame
    features: np.ndarray
    settings: ClusterSettings
    preprocess: PreprocessRecord
    centroids: dict = field(default_factory=dict)

    @property
    def projection_columns(self) -> list[str]:
        return [c for c in self.table.columns if str(c).startswith("proj_")]


# ---------------------------------------------------------------- clustering algorithms


def fit_kmeans(Z: np.ndarray, k: int, seed: int = 0, algorithm: str = "auto",
               n_init: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """KMeans on ``Z`` (n_synapses, d) → (labels (n,), centres (k, d), inertia).

    ``algorithm="auto"`` uses MiniBatchKMeans (batch 4096, 3 inits) above ``MINIBATCH_ROWS`` rows.
    ``n_init=None``: 10 k-means++ restarts up to ``FEW_ROWS`` synapses, 3 above (restarts cost
    linear time and matter less when clusters hold many points).
    """
    if n_init is None:
        n_init = 10 if len(Z) <= FEW_ROWS else 3
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if algorithm == "minibatch" or (algorithm == "auto" and len(Z) > MINIBATCH_ROWS):
        km = MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=3, random_state=seed, max_no_improvement=10)
    else:
        km = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    labels = km.fit_predict(Z)
    return labels.astype(np.int64), km.cluster_centers_, float(km.inertia_)


def auto_eps(Z: np.ndarray, min_samples: int) -> float:
    """DBSCAN radius: median distance of each synapse to its ``min_samples``-th nearest neighbour."""
    from sklearn.neighbors import NearestNeighbors

    k = int(min(min_samples, len(Z) - 1))
    d, _ = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z)
    eps = float(np.median(d[:, k]))
    return eps if eps > 0 else 1e-6


def fit_labels(Z: np.ndarray, s: ClusterSettings, k: int | None, seed: int) -> np.ndarray:
    """Labels (n_synapses,) of one clustering of ``Z`` with method ``s.method`` (−1 = noise)."""
    from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering

    if s.method == "kmeans":
        return fit_kmeans(Z, k, seed, s.kmeans_algorithm, s.kmeans_n_init)[0]
    if s.method == "agglomerative":
        return AgglomerativeClustering(n_clusters=k, linkage=s.linkage).fit_predict(Z).astype(np.int64)
    if s.method == "hdbscan":
        mcs = int(min(s.min_cluster_size, len(Z)))
        ms = int(min(s.min_samples, len(Z) - 1))
        return HDBSCAN(min_cluster_size=mcs, min_samples=max(ms, 1), copy=True).fit_predict(Z).astype(np.int64)
    eps = s.dbscan_eps if s.dbscan_eps is not None else auto_eps(Z, s.min_samples)
    return DBSCAN(eps=eps, min_samples=s.min_samples).fit_predict(Z).astype(np.int64)


def _check_size(n: int, s: ClusterSettings) -> None:
    if n < 3:
        raise ValueError(
            f"cannot cluster {n} synapse{'s' if n != 1 else ''}: at least 3 are needed "
            "(check the feature table or the --nan-policy/--feature-set choice)"
        )
    if s.method in ("kmeans", "agglomerative") and s.k != "auto" and s.k > n - 1:
        raise ValueError(
            f"k={s.k} is too large for {n} synapses: k must be at most n−1 = {n - 1}; "
            "lower --k or use --k auto"
        )
    if s.method == "agglomerative" and n > AGGLOMERATIVE_MAX_ROWS:
        raise ValueError(
            f"method='agglomerative' needs O(N²) memory; {n} synapses is above {AGGLOMERATIVE_MAX_ROWS}. "
            "Use --method kmeans or hdbscan"
        )
    if s.projection != "none" and n < 4:
        raise ValueError(f"projection={s.projection!r} needs at least 4 synapses; got {n}. Use --projection none")


def _json_ready(obj):
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def run_clustering(features_df: pd.DataFrame, settings: ClusterSettings = ClusterSettings(),
                   cache_dir: str | os.PathLike | None = None) -> ClusterResult:
    """Cluster the synapses of an extraction table and describe the result.

    Parameters
    ----------
    features_df : DataFrame
        One row per synapse with ``bbox_name``, ``Var1`` and ``feat_*`` and/or ``morph_*`` columns.
    settings : ClusterSettings
    cache_dir : path or None
        Projection cache directory (None: no cache).

    Returns
    -------
    ClusterResult

    Raises
    ------
    ValueError
        Missing key columns, bad features (named row/column), too few synapses for k.
    """
    import time

    from sklearn.metrics import silhouette_score

    s = settings
    timings = {}
    missing = [c for c in ("bbox_name", "Var1") if c not in features_df.columns]
    if missing:
        raise ValueError(f"the feature table lacks column(s) {', '.join(missing)} (the synapse key)")
    t = time.perf_counter()
    Z, kept, record = prepare(features_df, s.feature_set, s.scaler, s.pca_components, s.nan_policy, s.seed)
    timings["preprocess_s"] = time.perf_counter() - t
    table = features_df.loc[kept].reset_index(drop=True).copy()
    n = len(Z)
    _check_size(n, s)

    # --- clusters (in the clustering space)
    t = time.perf_counter()
    curves, chosen_rule, elbow = None, None, None
    if s.method in ("kmeans", "agglomerative"):
        if s.k == "auto":
            def fit_k(Z_, k_):
                if s.method == "kmeans":
                    return fit_kmeans(Z_, k_, s.seed, s.kmeans_algorithm, s.kmeans_n_init)
                return fit_labels(Z_, s, k_, s.seed), None, None

            sweep = k_selection.sweep_k(Z, s.k_range, fit_k, s.seed, s.silhouette_sample)
            curves = sweep.curves
            k = k_selection.choose_k(curves, s.k_tolerance)
            labels = sweep.labels[k]
            elbow = k_selection.elbow_k(curves)
            chosen_rule = (f"highest silhouette over k={curves['k'].min()}..{curves['k'].max()}"
                           + (f" (ties within {s.k_tolerance} → smallest k)" if s.k_tolerance else ""))
        else:
            k = int(s.k)
            labels = fit_labels(Z, s, k, s.seed)
            chosen_rule = "fixed by the user"
    else:
        k = None
        labels = fit_labels(Z, s, None, s.seed)
        chosen_rule = f"found by {s.method} (k is not used)"
    timings["cluster_s"] = time.perf_counter() - t
    labels = np.asarray(labels, dtype=np.int64)
    dist, centroids = cluster_summary.distance_to_centroid(Z, labels)
    table["cluster"] = labels
    n_clusters = int(len(centroids))

    # --- map (for looking at only)
    Y = None
    ps = s.projection_settings()
    if ps is not None:
        if ps.reproducible and n > MINIBATCH_ROWS:
            # measured (benchmarks/cluster.py): seeded single-thread UMAP is ~4x slower than parallel
            log.warning("%d synapses: the reproducible (single-threaded) %s map is slow; "
                        "--parallel (reproducible=False) is ~4x faster but not repeatable", n, ps.method)
        t = time.perf_counter()
        Y = project(Z, ps, cache_dir)
        timings["projection_s"] = time.perf_counter() - t
        for j in range(Y.shape[1]):
            table[f"proj_{j + 1}"] = Y[:, j]
    table["distance_to_centroid"] = dist
    table["cluster_space"] = record.space

    # --- diagnostics
    t = time.perf_counter()
    clustered = labels >= 0
    sil = None
    if len(np.unique(labels[clustered])) >= 2:
        sample = s.silhouette_sample if clustered.sum() > s.silhouette_sample > 0 else None
        sil = float(silhouette_score(Z[clustered], labels[clustered], sample_size=sample, random_state=s.seed))
    stab = None
    if s.n_stability > 0 and n_clusters >= 1:
        stab = diagnostics.stability(
            Z, labels, lambda Zs, seed_: fit_labels(Zs, s, k, seed_), n_runs=s.n_stability,
            fraction=s.stability_fraction, seed=s.seed,
        )
    bbox = table["bbox_name"].astype(str).to_numpy()
    composition = diagnostics.bbox_composition(labels, bbox)
    effect = diagnostics.bbox_effect(Z, labels, bbox, k=s.knn_k, seed=s.seed)
    faithful = None
    if Y is not None:
        faithful = diagnostics.knn_overlap(Z, Y, k=s.knn_k, seed=s.seed)
    timings["diagnostics_s"] = time.perf_counter() - t

    summary = cluster_summary.summarise_clusters(table, s.n_representatives)
    reps = cluster_summary.representatives(table, s.n_representatives)
    effects = cluster_summary.morphology_effect_sizes(table)

    diag = {
        "settings": asdict(s),
        "settings_key": hashlib.sha256(s.key().encode()).hexdigest()[:16],
        "preprocess": record.as_dict(),
        "cluster_space": record.space,
        "projection_input_space": record.space if ps is not None else None,
        "method": s.method,
        "noise_label": NOISE,
        "k": k,
        "k_rule": chosen_rule,
        "elbow_k": elbow,
        "n_synapses": n,
        "n_clusters": n_clusters,
        "n_noise": int((labels == NOISE).sum()),
        "cluster_sizes": {int(c): int((labels == c).sum()) for c in np.unique(labels)},
        "silhouette": sil,
        "silhouette_sample": s.silhouette_sample if n > s.silhouette_sample > 0 else None,
        "stability": stab,
        "bbox_effect": effect,
        "map_knn_overlap": faithful,
        "map_knn_overlap_random": (min(s.knn_k, n - 1) / (n - 1)) if Y is not None else None,
        "timings": timings,
    }
    return ClusterResult(
        table=table, k_curves=curves, diagnostics=_json_ready(diag), summary=summary, representatives=reps,
        effect_sizes=effects, composition=composition, features=Z, settings=s, preprocess=record,
        centroids=centroids,
    )


def write_result(result: ClusterResult, out_csv: str | os.PathLike) -> dict[str, str]:
    """Write a run next to ``out_csv``: the table, k curves, diagnostics and per-cluster description.

    Files (``<stem>`` = name of ``out_csv`` without suffix): ``out_csv`` (clustered table),
    ``<stem>_k_curves.csv`` (when k was swept), ``<stem>_diagnostics.json``, ``<stem>_summary.csv``,
    ``<stem>_representatives.csv``, ``<stem>_effect_sizes.csv``, ``<stem>_bbox_composition.csv``.

    Returns
    -------
    dict name → path of every file written.
    """
    out_csv = os.fspath(out_csv)
    folder = os.path.dirname(os.path.abspath(out_csv))
    os.makedirs(folder, exist_ok=True)
    stem = os.path.splitext(os.path.basename(out_csv))[0]
    paths = {"table": out_csv}
    result.table.to_csv(out_csv, index=False)

    def side(name):
        return os.path.join(folder, f"{stem}_{name}")

    if result.k_curves is not None:
        paths["k_curves"] = side("k_curves.csv")
        result.k_curves.to_csv(paths["k_curves"], index=False)
    paths["diagnostics"] = side("diagnostics.json")
    with open(paths["diagnostics"], "w") as f:
        json.dump(result.diagnostics, f, indent=2)
    for name, df in (("summary", result.summary), ("representatives", result.representatives),
                     ("effect_sizes", result.effect_sizes)):
        paths[name] = side(f"{name}.csv")
        df.to_csv(paths[name], index=False)
    paths["bbox_composition"] = side("bbox_composition.csv")
    result.composition.to_csv(paths["bbox_composition"])
    return paths
