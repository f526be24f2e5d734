"""Projection: UMAP and openTSNE maps, seeded, cached by (feature content, settings)."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

from synapse_core.cluster.diagnostics import knn_overlap
from synapse_core.cluster.projection import cache_key, exact_knn, project, projection_cache
from synapse_core.cluster.settings import ProjectionSettings


@pytest.fixture(scope="module")
def labelled_blobs():
    """80 points in 10 d from 3 separated blobs, and the blob (0, 1, 2) of each point."""
    X, y = make_blobs(n_samples=80, n_features=10, centers=3, random_state=0)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def blobs(labelled_blobs):
    return labelled_blobs[0]


@pytest.fixture(scope="module")
def umap_2d(blobs):
    return project(blobs, ProjectionSettings("umap", 2, seed=3))


@pytest.mark.slow  # the first UMAP of a session compiles numba code (15-60 s)
def test_umap_keeps_the_separated_groups_apart_in_2d(labelled_blobs, umap_2d):
    assert umap_2d.shape == (80, 2) and umap_2d.dtype == np.float32
    assert silhouette_score(umap_2d, labelled_blobs[1]) > 0.8  # measured 0.97


@pytest.mark.slow
def test_seeded_umap_is_reproducible_and_the_seed_matters(blobs, umap_2d):
    np.testing.assert_array_equal(project(blobs, ProjectionSettings("umap", 2, seed=3)), umap_2d)
    assert not np.allclose(project(blobs, ProjectionSettings("umap", 2, seed=4)), umap_2d)


@pytest.mark.slow
def test_umap_keeps_feature_space_neighbourhoods(blobs, umap_2d):
    assert knn_overlap(blobs, umap_2d, k=5) > 0.3  # chance is 5/79 ≈ 0.06


@pytest.mark.slow
def test_umap_3d_keeps_groups_and_neighbourhoods(labelled_blobs):
    X, groups = labelled_blobs
    umap_3d = project(X, ProjectionSettings("umap", 3, seed=0))
    assert umap_3d.shape == (80, 3)
    assert silhouette_score(umap_3d, groups) > 0.8  # measured 0.93
    assert knn_overlap(X, umap_3d, k=5) > 0.3


@pytest.mark.parametrize("dims", [2, 3])
def test_opentsne_is_seeded_reproducible_and_keeps_the_groups_apart(labelled_blobs, dims):
    X, groups = labelled_blobs
    s = ProjectionSettings("tsne", dims, seed=1, perplexity=10)
    a = project(X, s)
    assert a.shape == (80, dims)
    np.testing.assert_allclose(project(X, s), a)
    assert not np.allclose(project(X, ProjectionSettings("tsne", dims, seed=2, perplexity=10)), a)
    assert silhouette_score(a, groups) > 0.7  # measured 0.87 (2 d), 0.88 (3 d)


def test_tsne_perplexity_is_capped_for_few_synapses():
    X = np.random.default_rng(0).normal(size=(12, 4))
    asked = project(X, ProjectionSettings("tsne", 2, perplexity=30))
    capped = (12 - 1) / 3 - 1  # 3 · perplexity must stay below the 11 other synapses
    np.testing.assert_array_equal(asked, project(X, ProjectionSettings("tsne", 2, perplexity=capped)))
    assert not np.array_equal(asked, project(X, ProjectionSettings("tsne", 2, perplexity=1.0)))


def test_projection_is_cached_by_features_and_settings(tmp_path, blobs):
    s = ProjectionSettings("tsne", 2, seed=0, perplexity=10)
    first = project(blobs, s, cache_dir=tmp_path)
    assert (tmp_path / "projections").is_dir() and not (tmp_path / "projections" / "projections").exists()
    with projection_cache(tmp_path) as cache:
        assert cache_key(blobs, s) in cache
        cache.set(cache_key(blobs, s), np.full((80, 2), 7.0, np.float32))  # mark the entry
    assert (project(blobs, s, cache_dir=tmp_path) == 7.0).all()
    other = ProjectionSettings("tsne", 2, seed=1, perplexity=10)
    assert cache_key(blobs, other) != cache_key(blobs, s)
    assert cache_key(blobs[:-1], s) != cache_key(blobs, s)
    assert cache_key(blobs.astype(np.float64), s) == cache_key(blobs, s)  # project() works in float32
    assert not (first == 7.0).all()


def test_the_exact_neighbour_graph_has_each_synapse_first_at_distance_zero():
    """UMAP takes the first non-zero distance as the nearest neighbour's: a self-distance residue would replace it."""
    Z = (np.random.default_rng(0).normal(size=(200, 40)) * 10 + 50).astype(np.float32)
    ind, dist = exact_knn(Z, 6)
    assert (ind[:, 0] == np.arange(200)).all() and (dist[:, 0] == 0).all()
    D = np.linalg.norm(Z[:, None].astype(np.float64) - Z[None].astype(np.float64), axis=-1)
    np.testing.assert_array_equal(ind[:, 1:], np.argsort(D, axis=1)[:, 1:6])
    np.testing.assert_allclose(dist[:, 1:], np.take_along_axis(D, ind[:, 1:], axis=1), rtol=1e-4)


def test_projection_of_three_synapses_is_refused():
    with pytest.raises(ValueError, match="at least 4 synapses; got 3"):
        project(np.zeros((3, 5)), ProjectionSettings())


@pytest.mark.parametrize("field, value, message", [
    ("method", "pca", "ProjectionSettings.method='pca' must be 'umap' or 'tsne'"),
    ("dims", 4, "dims=4 must be 2 or 3"),
    ("n_neighbors", 1, "n_neighbors=1"),
])
def test_bad_projection_settings_name_the_parameter(field, value, message):
    with pytest.raises(ValueError, match=message):
        ProjectionSettings(**{field: value})
