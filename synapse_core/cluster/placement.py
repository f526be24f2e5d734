"""Place synapses on a map fitted without them: the large-data path of the UMAP map (issue 15).

Above ``LARGE_ROWS`` synapses UMAP is fitted on a seeded ``FIT_ROWS`` sample
(:mod:`synapse_core.cluster.settings`); every other synapse is put at the **membership-weighted mean
of the map positions of its ``n_neighbors`` nearest fitted synapses** (nearest in the clustering
space, weights UMAP's fuzzy memberships ``exp(−(d − ρ) / σ)`` with ρ the distance to the nearest
fitted synapse and σ from UMAP's ``smooth_knn_dist``). That point is where UMAP's own ``transform``
starts; ``transform`` then refines it with 30 epochs of stochastic gradient descent, which cost
~13× the neighbour search (measured on the shared 2-core machine: 40 000 rows against a 12 000-row
fit, 34.7 s for ``transform`` vs 2.6 s for the search), i.e. ~15 min at 10⁶ synapses. Without the
refinement a placed synapse sits inside the patch of its neighbours instead of being pushed apart
from the others: clusters and their relations are kept; the map is a little smoother inside a patch.
"""

from __future__ import annotations

import numpy as np

#: Rows placed per batch (bounded memory: the neighbour lists of one batch).
PLACE_BATCH = 100_000
#: Below this many fitted rows UMAP uses exact neighbours (umap-learn's small-data rule), and so do we.
EXACT_QUERY_ROWS = 4096


def neighbour_weights(distances: np.ndarray, n_neighbors: int) -> np.ndarray:
    """UMAP's fuzzy membership of each query to its neighbours, normalised per row.

    Parameters
    ----------
    distances : ndarray, shape (n_queries, k)
        Distances to the k nearest fitted synapses, ascending.
    n_neighbors : int
        UMAP's neighbourhood size (the target sum of memberships, log2 of it, as in UMAP).

    Returns
    -------
    ndarray, float64, shape (n_queries, k), rows summing to 1.
    """
    from umap.umap_ import smooth_knn_dist

    d = np.asarray(distances, dtype=np.float32)
    sigmas, rhos = smooth_knn_dist(d, float(n_neighbors), local_connectivity=1.0)
    w = np.exp(-np.maximum(d.astype(np.float64) - rhos[:, None], 0.0) / sigmas[:, None])
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / d.shape[1])
    return w


def place_by_neighbours(query, Y_fit: np.ndarray, Z_rest: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Map positions of ``Z_rest`` from the map ``Y_fit`` of the fitted synapses.

    Parameters
    ----------
    query : callable (Z_part, k) → (indices (m, k), distances (m, k))
        Nearest fitted synapses of each row (e.g. the fitted UMAP's neighbour index).
    Y_fit : ndarray, shape (n_fit, dims)
        Map positions of the fitted synapses.
    Z_rest : ndarray, shape (n_rest, d)
        Clustering-space rows to place.
    n_neighbors : int

    Returns
    -------
    ndarray, float32, shape (n_rest, dims)
    """
    Y_fit = np.asarray(Y_fit, dtype=np.float64)
    out = np.empty((len(Z_rest), Y_fit.shape[1]), dtype=np.float32)
    for start in range(0, len(Z_rest), PLACE_BATCH):
        ind, dist = query(Z_rest[start:start + PLACE_BATCH], n_neighbors)
        w = neighbour_weights(dist, n_neighbors)
        out[start:start + PLACE_BATCH] = np.einsum("nk,nkd->nd", w, Y_fit[np.asarray(ind)])
    return out


def umap_neighbour_query(reducer, Z_fit: np.ndarray, seed: int = 0):
    """``query(Z_part, k)`` of the nearest rows of ``Z_fit`` (the rows ``reducer`` was fitted on).

    Uses the fitted UMAP's own nearest-neighbour-descent index (the one its ``transform`` searches).
    A UMAP without one was fitted on exact neighbours: below ``EXACT_QUERY_ROWS`` fitted rows (UMAP's
    own limit for exact neighbours) the query is exact too (scikit-learn, no compilation); above it
    a new seeded ``pynndescent`` index is built.
    """
    index = getattr(reducer, "_knn_search_index", None)
    if index is None and len(Z_fit) < EXACT_QUERY_ROWS and isinstance(reducer.metric, str):
        from sklearn.neighbors import NearestNeighbors

        exact = NearestNeighbors(metric=reducer.metric).fit(np.asarray(Z_fit, dtype=np.float32))

        def exact_query(part, k):
            dist, ind = exact.kneighbors(np.asarray(part, dtype=np.float32), n_neighbors=min(k, len(Z_fit)))
            return ind, dist

        return exact_query
    if index is None:
        from pynndescent import NNDescent

        index = NNDescent(Z_fit, metric=reducer.metric, n_neighbors=max(15, reducer.n_neighbors),
                          random_state=seed, n_jobs=1)
    index.prepare()

    def query(part, k):
        return index.query(np.asarray(part, dtype=np.float32), k=k)

    return query
