"""Clustering and projection settings: every choice that decides a clustering run, declared once.

Imports no pandas, scikit-learn or torch: the CLI builds ``cluster --help`` from this module.
"""

from __future__ import annotations

import json
import typing
from dataclasses import asdict
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator

from synapse_core.settings_base import settings

Method = Literal["kmeans", "hdbscan", "dbscan", "agglomerative"]
ProjectionMethod = Literal["umap", "tsne"]
FeatureSet = Literal["auto", "feat", "morph", "both"]
Scaler = Literal["standard", "robust", "none"]
NanPolicy = Literal["error", "drop", "impute"]
KMeansAlgorithm = Literal["auto", "full", "minibatch"]
Linkage = Literal["ward", "average", "complete", "single"]
Dims = Literal[2, 3]

METHODS: tuple[str, ...] = typing.get_args(Method)
#: Map methods; ``ClusterSettings.projection`` also accepts ``"none"`` (no map).
PROJECTION_METHODS: tuple[str, ...] = typing.get_args(ProjectionMethod)
PROJECTIONS: tuple[str, ...] = PROJECTION_METHODS + ("none",)
#: Accepted values of ``feature_set``: deep ``feat_*``, morphology ``morph_*``, both, or auto.
FEATURE_SETS: tuple[str, ...] = typing.get_args(FeatureSet)
SCALERS: tuple[str, ...] = typing.get_args(Scaler)
NAN_POLICIES: tuple[str, ...] = typing.get_args(NanPolicy)
KMEANS_ALGORITHMS: tuple[str, ...] = typing.get_args(KMeansAlgorithm)
LINKAGES: tuple[str, ...] = typing.get_args(Linkage)
#: Above this many synapses ``kmeans_algorithm="auto"`` uses MiniBatchKMeans.
MINIBATCH_ROWS = 20000
#: Agglomerative clustering needs O(N²) memory; refuse beyond this many synapses.
AGGLOMERATIVE_MAX_ROWS = 20000
NOISE = -1
#: Up to this many synapses KMeans uses 10 restarts by default, above it 3.
FEW_ROWS = 5000
#: Above this many synapses the large-data path runs (issue 15): float32 scaling and randomized PCA, the k sweep
#: and the UMAP map fitted on a seeded FIT_ROWS subsample with every synapse then assigned (nearest centre,
#: UMAP transform), HDBSCAN fitted on the subsample with the rest taking their nearest fitted neighbour's label.
LARGE_ROWS = 100_000
#: Rows of the seeded subsample the large-data path fits on.
FIT_ROWS = 50_000
#: Above this many synapses HDBSCAN fits on a seeded subsample of this size (its cost grows faster than linearly:
#: 50 000 rows did not finish in 8 min on 2 busy cores; every other synapse takes its nearest fitted neighbour's label).
HDBSCAN_FIT_ROWS = 20_000

Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
ClusterCount = Annotated[int, Field(ge=2)]


@settings
class ProjectionSettings:
    """How to draw the map. Frozen: also the cache key.

    Example
    -------
    >>> s = ProjectionSettings("tsne", 3, perplexity=10)
    >>> s.perplexity, s == ProjectionSettings(method="tsne", dims=3, perplexity=10.0)
    (10.0, True)
    """

    method: ProjectionMethod = Field("umap", description="map method: UMAP or t-SNE (openTSNE)")
    dims: Dims = Field(2, description="map dimensions")
    seed: Seed = Field(0, description="seed of the projection")
    n_neighbors: int = Field(15, ge=2, description="UMAP neighbourhood size (capped at n_synapses − 1)")
    min_dist: float = Field(0.1, ge=0, description="UMAP minimum distance between embedded points (map units)")
    metric: str = Field("euclidean", min_length=1, description="distance in feature space (UMAP and t-SNE "
                                                               "neighbour search)")
    perplexity: float = Field(30.0, gt=0, description="t-SNE perplexity (capped so that 3·perplexity < "
                                                      "n_synapses − 1)")
    reproducible: bool = Field(True, description="seeded and single-threaded, same output every run; off: all "
                                                 "cores, not repeatable")

    def key(self) -> str:
        """Stable string of all fields (part of the projection cache key)."""
        return json.dumps(asdict(self), sort_keys=True)


@settings
class ClusterSettings:
    """Everything that decides a clustering run. Frozen: ``key()`` is the run's cache key.

    ``k="auto"`` chooses k from ``k_range`` by silhouette (top capped at n_synapses − 1; a
    difference of at most ``k_tolerance`` is a tie and the smallest k wins). ``nan_policy`` decides
    what happens to rows with NaN/inf features: stop with an error naming them, leave them out, or
    replace missing values by the column median (recorded either way). ``reproducible=False``
    (``--parallel``) lets the projection use every core; the map then changes between runs.

    Example
    -------
    >>> ClusterSettings(k=1)
    Traceback (most recent call last):
    ...
    synapse_core.settings_base.SettingsError: ClusterSettings.k=1 must be "auto" or an integer ≥ 2
    """

    method: Method = Field("kmeans", description="clustering method (noise label −1 for hdbscan/dbscan)")
    k: ClusterCount | Literal["auto"] = Field("auto", description="number of clusters (kmeans, agglomerative), or "
                                                                  "auto to choose it by silhouette over k_range")
    k_range: tuple[ClusterCount, ClusterCount] = Field((2, 12), description="smallest and largest k swept by k=auto "
                                                                            "(e.g. 2-12)")
    projection: Literal["umap", "tsne", "none"] = Field("umap", description="map method (none: no map)")
    dims: Dims = Field(2, description="map dimensions")
    seed: Seed = Field(0, description="seed of every random step (PCA, KMeans, projection, silhouette sample, "
                                      "stability)")
    scaler: Scaler = Field("standard", description="column scaling before everything")
    pca_components: int | None = Field(None, ge=1, description="principal components kept after scaling "
                                                               "(None: keep all scaled features)")
    feature_set: FeatureSet = Field("auto", description="feat (deep), morph (morphology), both, or auto (feat_* "
                                                        "when present)")
    nan_policy: NanPolicy = Field("error", description="rows with NaN features: stop with an error naming them, "
                                                       "drop them, or impute the column median (reported)")
    umap_n_neighbors: int = Field(15, ge=2, description="UMAP neighbourhood size (capped at n_synapses − 1)")
    umap_min_dist: float = Field(0.1, ge=0, description="UMAP minimum distance between embedded points")
    tsne_perplexity: float = Field(30.0, gt=0, description="t-SNE perplexity")
    metric: str = Field("euclidean", min_length=1, description="distance of the projection's neighbour search")
    reproducible: bool = Field(True, description="seeded single-threaded projection (identical reruns); off: "
                                                 "parallel, not repeatable")
    kmeans_algorithm: KMeansAlgorithm = Field("auto", description=f"auto: MiniBatchKMeans above {MINIBATCH_ROWS} "
                                                                  "synapses, else full KMeans")
    kmeans_n_init: int | None = Field(None, ge=1, description=f"KMeans restarts (None: 10 up to {FEW_ROWS} "
                                                              "synapses, 3 above)")
    min_cluster_size: int = Field(5, ge=2, description="HDBSCAN smallest cluster (synapses)")
    min_samples: int = Field(5, ge=1, description="HDBSCAN/DBSCAN neighbours that make a core point")
    dbscan_eps: float | None = Field(None, gt=0, description="DBSCAN radius in the clustering space (None: median "
                                                             "distance to the min_samples-th neighbour)")
    linkage: Linkage = Field("ward", description="agglomerative linkage")
    silhouette_sample: int = Field(5000, ge=0, description="silhouette on at most this many synapses (seeded sample; "
                                                          "0: all synapses)")
    k_tolerance: float = Field(0.0, ge=0, description="silhouette difference treated as a tie when choosing k "
                                                      "(smallest k wins)")
    n_stability: int = Field(10, ge=0, description="subsamples for the stability diagnostic (0: skip)")
    stability_fraction: float = Field(0.8, gt=0, le=1, description="fraction of synapses in each stability subsample")
    knn_k: int = Field(10, ge=1, description="neighbours for the map-faithfulness and bbox-mixing diagnostics")
    n_representatives: int = Field(5, ge=0, description="synapses closest to each centre listed per cluster")

    @field_validator("k", mode="wrap")
    @classmethod
    def _k(cls, value, handler):
        try:
            return handler(value)
        except ValidationError:
            raise ValueError('must be "auto" or an integer ≥ 2') from None

    @field_validator("k_range", mode="wrap")
    @classmethod
    def _k_range(cls, value, handler):
        try:
            # A JSON array reaches a wrap validator as a list; the tuple field takes it as one.
            low, high = handler(tuple(value) if isinstance(value, list) else value)
        except ValidationError:
            raise ValueError("must be (low, high) with 2 ≤ low ≤ high") from None
        if high < low:
            raise ValueError("must be (low, high) with 2 ≤ low ≤ high")
        return low, high

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
