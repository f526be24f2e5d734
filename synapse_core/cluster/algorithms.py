"""Clustering algorithms on the clustering space: KMeans, agglomerative, HDBSCAN, DBSCAN (−1 = noise)."""

from __future__ import annotations

import numpy as np

from synapse_core.cluster.settings import FEW_ROWS, MINIBATCH_ROWS, ClusterSettings


def kmeans_plusplus_float64(X: np.ndarray, n_clusters: int, random_state) -> np.ndarray:
    """k-means++ seeding of float32 ``X`` (n_synapses, d) computed on a float64 copy → centres (k, d) float32.

    scikit-learn seeds float32 data by casting the whole of ``X`` to float64 again for every candidate
    centre (8.8 of the 17.8 s of KMeans in a 10⁴-row k sweep, issue 16); one cast per seeding does the same
    work. The draws come from the same ``random_state`` in the same order and the centres are rows of ``X``,
    so the seeding is the same unless a draw falls within float32 rounding of a boundary between two rows'
    shares of the potential (not seen on any test or benchmark data).
    Used as ``KMeans(init=...)``: scikit-learn passes its ``RandomState``.
    """
    from sklearn.cluster import kmeans_plusplus

    _, rows = kmeans_plusplus(np.asarray(X, dtype=np.float64), n_clusters, random_state=random_state)
    return X[rows]


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

    init = kmeans_plusplus_float64 if np.asarray(Z).dtype == np.float32 else "k-means++"
    if algorithm == "minibatch" or (algorithm == "auto" and len(Z) > MINIBATCH_ROWS):
        km = MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=3, random_state=seed, max_no_improvement=10,
                             init=init)
    else:
        km = KMeans(n_clusters=k, n_init=n_init, random_state=seed, init=init)
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
        from synapse_core.cluster.settings import HDBSCAN_FIT_ROWS

        if len(Z) > HDBSCAN_FIT_ROWS:  # full HDBSCAN on 50 000 rows did not finish in 8 min
            return _hdbscan_on_sample(Z, s, seed, HDBSCAN_FIT_ROWS)
        mcs = int(min(s.min_cluster_size, len(Z)))
        ms = int(min(s.min_samples, len(Z) - 1))
        return HDBSCAN(min_cluster_size=mcs, min_samples=max(ms, 1), copy=True).fit_predict(Z).astype(np.int64)
    eps = s.dbscan_eps if s.dbscan_eps is not None else auto_eps(Z, s.min_samples)
    return DBSCAN(eps=eps, min_samples=s.min_samples).fit_predict(Z).astype(np.int64)


#: Dimensions of the reduced space HDBSCAN runs in on its sampled path (tree searches slow down
#: sharply with dimension: 50 PCs at 50 000 rows did not finish in 25 min on 2 busy cores).
HDBSCAN_LARGE_DIMS = 10


def _hdbscan_on_sample(Z: np.ndarray, s: ClusterSettings, seed: int, fit_rows: int) -> np.ndarray:
    """HDBSCAN on a seeded ``fit_rows`` sample in a reduced space; every other synapse takes its nearest
    sampled neighbour's label (noise if that neighbour is noise).

    Used above ``HDBSCAN_FIT_ROWS`` synapses: HDBSCAN's cost grows faster than linearly in
    rows and in dimensions, so density is estimated on the sample, in its first ``HDBSCAN_LARGE_DIMS``
    principal components (seeded randomized PCA of the sample); the assignment uses the same space.
    """
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    from synapse_core.cluster.sampling import cap_rows

    rows = cap_rows(len(Z), fit_rows, np.random.default_rng([seed, 3]))
    reduce = None
    if Z.shape[1] > HDBSCAN_LARGE_DIMS:
        reduce = PCA(n_components=HDBSCAN_LARGE_DIMS, svd_solver="randomized", random_state=seed).fit(Z[rows])

    def space(part):
        return part if reduce is None else reduce.transform(part).astype(np.float32)

    Zs = space(Z[rows])
    mcs = int(min(s.min_cluster_size, fit_rows))
    ms = int(min(s.min_samples, fit_rows - 1))
    sub = HDBSCAN(min_cluster_size=mcs, min_samples=max(ms, 1), copy=True).fit_predict(Zs).astype(np.int64)
    nn = NearestNeighbors(n_neighbors=1).fit(Zs)
    labels = np.empty(len(Z), dtype=np.int64)
    for start in range(0, len(Z), 100_000):  # bounded memory
        part = space(Z[start:start + 100_000])
        labels[start:start + 100_000] = sub[nn.kneighbors(part, return_distance=False)[:, 0]]
    labels[rows] = sub
    return labels
