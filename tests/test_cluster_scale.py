"""The large-data clustering path (issue 15): above LARGE_ROWS synapses fits use a seeded subsample."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from synapse_core.cluster import settings as cluster_settings
from synapse_core.cluster.k_selection import assign_nearest, sweep_k
from synapse_core.cluster.preprocess import preprocess_features


def blobs(n=3000, groups=4, d=8, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, groups, n)
    centres = rng.normal(0, 6, size=(groups, d))
    return (centres[truth] + rng.normal(size=(n, d))).astype(np.float32), truth


def test_assign_nearest_is_the_nearest_centre():
    Z, _ = blobs(500)
    centres = Z[:5]
    brute = np.argmin(((Z[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(assign_nearest(Z, centres, chunk=64), brute)


def test_a_sweep_fitted_on_a_sample_labels_every_synapse_like_a_full_fit():
    Z, truth = blobs(1500, groups=3)
    sampled = sweep_k(Z, (3, 3), seed=0, fit_rows=400, max_rows=200, n_null=2, n_subsamples=2)
    assert sampled.curves.attrs["fit_rows"] == 400 and len(sampled.labels[3]) == len(Z)
    assert adjusted_rand_score(truth, sampled.labels[3]) > 0.99


def test_the_sweep_switches_to_a_sample_above_large_rows(monkeypatch):
    monkeypatch.setattr(cluster_settings, "LARGE_ROWS", 1000)
    monkeypatch.setattr(cluster_settings, "FIT_ROWS", 500)
    Z, _ = blobs(1500)
    assert sweep_k(Z, (2, 3), seed=0, max_rows=300, n_null=2, n_subsamples=2).curves.attrs["fit_rows"] == 500


def test_large_preprocessing_matches_the_small_path_in_float32(monkeypatch):
    X, _ = blobs(2000, d=12)
    small, _ = preprocess_features(X, "standard", None)
    monkeypatch.setattr(cluster_settings, "LARGE_ROWS", 1000)
    large, _ = preprocess_features(X, "standard", None)
    np.testing.assert_allclose(large, small, atol=1e-4)


def test_large_pca_keeps_the_same_variance(monkeypatch):
    X, _ = blobs(2000, d=12)
    _, small = preprocess_features(X, "standard", 4, seed=0)
    monkeypatch.setattr(cluster_settings, "LARGE_ROWS", 1000)
    _, large = preprocess_features(X, "standard", 4, seed=0)
    assert large == pytest.approx(small, abs=1e-4)


def test_hdbscan_on_a_sample_finds_the_planted_groups_for_every_synapse(monkeypatch):
    from synapse_core.cluster.algorithms import fit_labels
    from synapse_core.cluster.settings import ClusterSettings

    monkeypatch.setattr(cluster_settings, "LARGE_ROWS", 1000)
    monkeypatch.setattr(cluster_settings, "HDBSCAN_FIT_ROWS", 800)
    Z, truth = blobs(3000, d=16)  # more dimensions than the reduced space HDBSCAN runs in
    labels = fit_labels(Z, ClusterSettings(method="hdbscan", min_cluster_size=20), None, seed=0)
    clustered = labels >= 0
    assert clustered.mean() > 0.9 and adjusted_rand_score(truth[clustered], labels[clustered]) > 0.99


@pytest.mark.slow  # compiles UMAP (numba) unless the disk cache is warm
def test_umap_above_large_rows_is_fitted_on_a_sample_and_places_every_synapse(monkeypatch, tmp_path):
    from synapse_core.cluster.projection import run_umap
    from synapse_core.cluster.settings import ProjectionSettings

    monkeypatch.setattr(cluster_settings, "LARGE_ROWS", 600)
    monkeypatch.setattr(cluster_settings, "FIT_ROWS", 400)
    Z, truth = blobs(900)
    Y = run_umap(Z, ProjectionSettings("umap", 2, seed=0), tmp_path)
    assert Y.shape == (900, 2) and np.isfinite(Y).all()
    centre = np.stack([Y[truth == g].mean(0) for g in range(4)])
    assert (assign_nearest(Y, centre) == truth).mean() > 0.95  # transformed synapses land with their group


def test_pca_from_the_covariance_equals_scikit_learns_pca():
    from sklearn.decomposition import PCA

    from synapse_core.cluster.preprocess import pca_by_covariance

    rng = np.random.default_rng(0)
    Z = (rng.normal(size=(3000, 12)) @ rng.normal(size=(12, 12))).astype(np.float32)
    scores, explained = pca_by_covariance(Z, 4, chunk=700)
    pca = PCA(4).fit(Z)
    np.testing.assert_allclose(scores, pca.transform(Z), atol=1e-3 * np.abs(scores).max())
    assert explained == pytest.approx(pca.explained_variance_ratio_.sum(), abs=1e-6)


def test_small_tables_keep_the_small_path_in_float64(monkeypatch):
    from synapse_core.cluster.preprocess import feature_matrix

    table = pd.DataFrame({"bbox_name": ["b"] * 30, "Var1": range(30), "feat_1": np.arange(30.0), "feat_2": 1.0})
    assert feature_matrix(table)[0].dtype == np.float64
    monkeypatch.setattr(cluster_settings, "LARGE_ROWS", 20)
    assert feature_matrix(table)[0].dtype == np.float32


def test_a_placed_synapse_sits_at_the_weighted_mean_of_its_fitted_neighbours():
    from synapse_core.cluster.placement import place_by_neighbours

    Y_fit = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32)

    def query(part, k):  # every query: neighbours 0 and 1 at equal distance
        return np.tile([0, 1], (len(part), 1)), np.ones((len(part), 2), dtype=np.float32)

    np.testing.assert_allclose(place_by_neighbours(query, Y_fit, np.zeros((3, 5)), 2), [[5.0, 0.0]] * 3)


def test_a_saved_result_opens_with_the_same_table_and_settings(tmp_path):
    from synapse_core.cluster.run import open_result, run_clustering, save_result
    from synapse_core.cluster.settings import ClusterSettings

    Z, _ = blobs(300, groups=3, d=4)
    table = pd.DataFrame({"bbox_name": np.where(np.arange(300) % 2, "b1", "b2"), "Var1": np.arange(300)})
    table[[f"feat_{i + 1}" for i in range(4)]] = Z
    result = run_clustering(table, ClusterSettings(k=3, projection="none", n_stability=0))
    key = save_result(result, tmp_path)
    opened = open_result(tmp_path, key)
    pd.testing.assert_frame_equal(opened.table, result.table)
    np.testing.assert_array_equal(opened.features, result.features)
    assert opened.settings == result.settings and opened.diagnostics["k"] == 3


def test_a_result_key_cannot_name_another_folder(tmp_path):
    from synapse_core.cluster.run import open_result

    with pytest.raises(ValueError, match="not a result key"):
        open_result(tmp_path, "../../etc")


def test_hdbscan_fits_a_sample_above_its_fit_rows_even_below_large_rows(monkeypatch):
    import sklearn.cluster

    from synapse_core.cluster.algorithms import fit_labels
    from synapse_core.cluster.settings import ClusterSettings

    fitted_rows = []
    original = sklearn.cluster.HDBSCAN.fit_predict
    monkeypatch.setattr(sklearn.cluster.HDBSCAN, "fit_predict",
                        lambda self, X, *a, **k: fitted_rows.append(len(X)) or original(self, X, *a, **k))
    monkeypatch.setattr(cluster_settings, "HDBSCAN_FIT_ROWS", 800)
    Z, _ = blobs(3000, d=16)
    assert len(Z) < cluster_settings.LARGE_ROWS
    labels = fit_labels(Z, ClusterSettings(method="hdbscan", min_cluster_size=20), None, seed=0)
    assert fitted_rows == [800] and len(labels) == 3000
