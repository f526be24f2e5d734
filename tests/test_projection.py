"""Projection: UMAP and openTSNE maps, seeded, cached by (feature content, settings)."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from synapse_core.cluster.diagnostics import knn_overlap
from synapse_core.cluster.projection import ProjectionSettings, cache_key, project, projection_cache


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=80, n_features=10, centers=3, random_state=0)
    return X.astype(np.float32)


@pytest.fixture(scope="module")
def umap_2d(blobs):
    return project(blobs, ProjectionSettings("umap", 2, seed=3))


def test_umap_gives_one_2d_point_per_synapse(blobs, umap_2d):
    assert umap_2d.shape == (80, 2) and umap_2d.dtype == np.float32
    assert np.isfinite(umap_2d).all()


def test_seeded_umap_is_reproducible(blobs, umap_2d):
    np.testing.assert_array_equal(project(blobs, ProjectionSettings("umap", 2, seed=3)), umap_2d)


def test_umap_keeps_feature_space_neighbourhoods(blobs, umap_2d):
    assert knn_overlap(blobs, umap_2d, k=5) > 0.3  # chance is 5/79 ≈ 0.06


def test_umap_3d(blobs):
    assert project(blobs, ProjectionSettings("umap", 3, seed=0)).shape == (80, 3)


@pytest.mark.parametrize("dims", [2, 3])
def test_opentsne_is_seeded_and_reproducible(blobs, dims):
    s = ProjectionSettings("tsne", dims, seed=1, perplexity=10)
    a = project(blobs, s)
    assert a.shape == (80, dims)
    np.testing.assert_allclose(project(blobs, s), a)


def test_tsne_perplexity_is_capped_for_few_synapses():
    X = np.random.default_rng(0).normal(size=(12, 4))
    assert project(X, ProjectionSettings("tsne", 2, perplexity=30)).shape == (12, 2)


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


def test_projection_of_three_synapses_is_refused():
    with pytest.raises(ValueError, match="at least 4 synapses; got 3"):
        project(np.zeros((3, 5)), ProjectionSettings())


@pytest.mark.parametrize("field, value, message", [
    ("method", "pca", "projection method='pca'"),
    ("dims", 4, "dims=4 must be 2 or 3"),
    ("n_neighbors", 1, "n_neighbors=1"),
])
def test_bad_projection_settings_name_the_parameter(field, value, message):
    with pytest.raises(ValueError, match=message):
        ProjectionSettings(**{field: value})
