"""Clustering settings: every choice that decides a clustering run, declared once."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from synapse_core.cluster.preprocess import FEATURE_SETS, NAN_POLICIES, SCALERS
from synapse_core.cluster.projection import ProjectionSettings

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
