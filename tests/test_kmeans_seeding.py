"""k-means++ seeding of float32 data on a float64 copy (issue 16): the same clusters as scikit-learn's own seeding."""

import numpy as np
import pytest
from sklearn.cluster import KMeans, MiniBatchKMeans

from synapse_core.cluster.algorithms import fit_kmeans, kmeans_plusplus_float64


def _blobs(n: int, d: int, centres: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, size=(centres, d))
    return (means[rng.integers(0, centres, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("k", [2, 5, 9])
def test_kmeans_on_float32_gives_the_labels_of_scikit_learns_own_seeding(seed, k):
    Z = _blobs(1500, 24, 6, seed)
    labels, centres, inertia = fit_kmeans(Z, k, seed=seed, n_init=3)
    reference = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(Z)
    np.testing.assert_array_equal(labels, reference.labels_)
    np.testing.assert_array_equal(centres, reference.cluster_centers_)
    assert inertia == float(reference.inertia_)


def test_minibatch_kmeans_on_float32_gives_the_labels_of_scikit_learns_own_seeding():
    Z = _blobs(6000, 16, 5, 7)
    labels = fit_kmeans(Z, 5, seed=3, algorithm="minibatch")[0]
    reference = MiniBatchKMeans(n_clusters=5, batch_size=4096, n_init=3, random_state=3,
                                max_no_improvement=10).fit(Z)
    np.testing.assert_array_equal(labels, reference.predict(Z))


def test_the_seeding_returns_float32_rows_of_the_data():
    Z = _blobs(300, 8, 3, 0)
    centres = kmeans_plusplus_float64(Z, 4, np.random.RandomState(0))
    assert centres.dtype == np.float32
    assert all((Z == c).all(axis=1).any() for c in centres)
