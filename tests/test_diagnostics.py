"""Diagnostics: stability under resampling (against a null that can fail), alignment with nuisances,
bbox (batch) effect, map faithfulness."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from synapse_core.cluster.algorithms import fit_kmeans
from synapse_core.cluster.diagnostics import (
    ALIGNMENT_WARN_AMI,
    bbox_composition,
    bbox_effect,
    cluster_alignment,
    diagnostic_rows,
    gaussian_null,
    knn_overlap,
    nuisance_columns,
    stability,
    subsample_stability,
)


def kmeans_fit(k):
    return lambda Z, seed: fit_kmeans(Z, k, seed=seed, n_init=3)[0]


def test_separated_groups_are_stable_under_resampling():
    X, _ = make_blobs(n_samples=200, n_features=5, centers=3, cluster_std=0.5, random_state=0)
    labels = fit_kmeans(X, 3, seed=0)[0]
    s = stability(X, labels, kmeans_fit(3), n_runs=5, seed=0)
    assert s["ari_min"] > 0.99
    assert all(j > 0.99 for j in s["cluster_jaccard"].values())
    assert s["subsample_size"] == 160 and len(s["ari_runs"]) == 5
    assert s["beats_null"] is True and s["null_ari_mean"] < 0.9


def test_clusters_cut_from_structureless_data_are_unstable():
    X = np.random.default_rng(0).uniform(size=(200, 5))
    labels = fit_kmeans(X, 6, seed=0)[0]
    s = stability(X, labels, kmeans_fit(6), n_runs=5, seed=0)
    assert s["ari_mean"] < 0.9
    assert s["beats_null"] is False


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("n, dims, k", [(100, 4, 3), (36, 16, 3), (60, 16, 5)])
def test_stability_of_a_single_gaussian_cloud_does_not_beat_its_null(n, dims, k, seed):
    X = np.random.default_rng(seed).normal(size=(n, dims))
    s = stability(X, kmeans_fit(k)(X, 0), kmeans_fit(k), n_runs=6, seed=seed)
    assert s["beats_null"] is False
    assert s["verdict"].startswith("no more stable than")


def test_stability_null_can_be_skipped():
    X, _ = make_blobs(n_samples=60, n_features=3, centers=2, random_state=0)
    s = stability(X, kmeans_fit(2)(X, 0), kmeans_fit(2), n_runs=3, n_null=0)
    assert s["null_ari_mean"] is None and s["beats_null"] is None and s["ari_mean"] == 1.0


def test_gaussian_null_keeps_the_mean_and_covariance_of_the_data():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(400, 3)) @ np.array([[2.0, 0.0, 0.0], [1.5, 0.5, 0.0], [0.0, 0.0, 0.2]]) + [5, -1, 0]
    N = gaussian_null(Z, 200000, seed=1)
    np.testing.assert_allclose(N.mean(axis=0), Z.mean(axis=0), atol=0.02)
    np.testing.assert_allclose(np.cov(N, rowvar=False), np.cov(Z, rowvar=False), atol=0.03)


def test_gaussian_null_does_not_copy_planted_groups():
    X, _ = make_blobs(n_samples=300, n_features=2, centers=[[-10, 0], [10, 0]], cluster_std=0.5, random_state=0)
    N = gaussian_null(X, seed=0)
    assert (np.abs(X[:, 0]) < 5).mean() == 0.0
    assert (np.abs(N[:, 0]) < 5).mean() > 0.3  # one cloud: the gap between the groups is filled


def test_subsample_stability_separates_groups_from_noise():
    X, _ = make_blobs(n_samples=120, n_features=5, centers=3, cluster_std=0.5, random_state=0)
    noise = np.random.default_rng(0).normal(size=(120, 5))
    fit = lambda Z: fit_kmeans(Z, 3, seed=0, n_init=3)[0]
    assert subsample_stability(X, fit, n_subsamples=4, seed=0)[0] == 1.0
    mean, pairs = subsample_stability(noise, fit, n_subsamples=4, seed=0)
    assert mean < 0.8 and len(pairs) == 6


def test_alignment_warns_when_clusters_are_the_presynaptic_side():
    side = np.random.default_rng(0).integers(1, 3, size=60)
    a = cluster_alignment(side - 1, pd.DataFrame({"presynaptic_side": side}))
    assert a["ami"]["presynaptic_side"] == 1.0
    assert a["aligned"] == ["presynaptic_side"]
    assert "presynaptic_side" in a["warnings"][0] and "mirror" in a["warnings"][0]


def test_alignment_is_silent_when_clusters_are_independent_of_the_side():
    rng = np.random.default_rng(0)
    labels, side = rng.integers(0, 4, size=60), rng.integers(1, 3, size=60)
    a = cluster_alignment(labels, pd.DataFrame({"presynaptic_side": side}))
    assert abs(a["ami"]["presynaptic_side"]) < 0.05
    assert a["warnings"] == [] and a["aligned"] == []


def test_alignment_warns_when_each_type_is_split_by_side():
    rng = np.random.default_rng(1)
    synapse_type, side = rng.integers(0, 3, size=90), rng.integers(1, 3, size=90)
    a = cluster_alignment(synapse_type * 2 + side, pd.DataFrame({"presynaptic_side": side}))
    assert a["ami"]["presynaptic_side"] > ALIGNMENT_WARN_AMI


def test_alignment_bins_a_continuous_nuisance_into_quantiles():
    coverage = np.linspace(0.5, 1.0, 80)
    a = cluster_alignment((coverage > 0.75).astype(int), pd.DataFrame({"coverage": coverage}))
    assert a["aligned"] == ["coverage"] and a["ami"]["coverage"] > 0.5


def test_alignment_leaves_out_noise_and_one_valued_columns():
    labels = np.array([0, 0, 1, 1, -1, -1] * 5)
    nuisance = pd.DataFrame({"bbox_name": ["bbox1"] * 30, "presynaptic_side": [1, 1, 2, 2, 1, 2] * 5})
    a = cluster_alignment(labels, nuisance)
    assert a["ami"]["bbox_name"] is None and a["ami"]["presynaptic_side"] == 1.0


def test_alignment_rejects_misaligned_rows():
    with pytest.raises(ValueError, match=r"labels \(3\) and nuisance rows \(2\)"):
        cluster_alignment(np.zeros(3, int), pd.DataFrame({"coverage": [1.0, 0.9]}))


def test_nuisance_columns_point_from_the_presynaptic_to_the_postsynaptic_side():
    table = pd.DataFrame({
        "bbox_name": ["bbox1", "bbox2"], "presynaptic_side": [1, 2], "coverage": [1.0, 0.8],
        # side points as x, y, z voxels (coord_1 = x, coord_3 = z)
        "side_1_coord_1": [0, 0], "side_1_coord_2": [0, 0], "side_1_coord_3": [0, 0],
        "side_2_coord_1": [0, 3], "side_2_coord_2": [0, 0], "side_2_coord_3": [2, 0],
    })
    nc = nuisance_columns(table)
    assert list(nc.columns) == ["bbox_name", "presynaptic_side", "coverage", "orientation_z", "orientation_y",
                                "orientation_x"]
    assert nc.loc[0, ["orientation_z", "orientation_y", "orientation_x"]].tolist() == [1.0, 0.0, 0.0]
    assert nc.loc[1, ["orientation_z", "orientation_y", "orientation_x"]].tolist() == [0.0, 0.0, -1.0]


def test_nuisance_columns_keep_given_orientation_columns_and_skip_absent_ones():
    table = pd.DataFrame({"Var1": ["a"], "cleft_normal_z": [0.5], "feat_1": [1.0]})
    assert list(nuisance_columns(table).columns) == ["cleft_normal_z"]


def test_stability_fraction_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match="fraction=1.5"):
        stability(np.zeros((10, 2)), np.zeros(10, int), kmeans_fit(2), fraction=1.5)


def test_bbox_composition_counts_synapses_per_cluster_and_bbox():
    comp = bbox_composition(np.array([0, 0, 1, 1, 1]), np.array(["bbox1", "bbox2", "bbox1", "bbox1", "bbox2"]))
    assert comp.loc[1, "bbox1"] == 2 and comp.loc[0, "bbox2"] == 1
    assert bbox_composition(np.array([0, 0, 1]), np.array(["a", "b", "a"]), normalize=True).loc[0, "a"] == 0.5


def test_batch_effect_score_is_high_when_bboxes_form_the_clusters():
    X, y = make_blobs(n_samples=150, n_features=4, centers=3, cluster_std=0.3, random_state=0)
    bbox = np.array([f"bbox{i + 1}" for i in y])
    e = bbox_effect(X, y, bbox, k=10)
    assert e["batch_effect_score"] > 0.95
    assert e["cluster_bbox_ami"] > 0.95


def test_batch_effect_score_is_near_zero_when_bboxes_are_mixed():
    X, y = make_blobs(n_samples=300, n_features=4, centers=3, cluster_std=0.3, random_state=0)
    bbox = np.random.default_rng(0).choice(["bbox1", "bbox2", "bbox3"], size=300)
    e = bbox_effect(X, y, bbox, k=10)
    assert abs(e["batch_effect_score"]) < 0.1
    assert abs(e["cluster_bbox_ami"]) < 0.05


def test_batch_effect_is_undefined_with_one_bbox():
    e = bbox_effect(np.random.default_rng(0).normal(size=(20, 3)), np.zeros(20, int), np.array(["bbox1"] * 20))
    assert e["batch_effect_score"] is None and e["n_bboxes"] == 1


def test_knn_overlap_is_one_for_a_map_that_keeps_distances():
    Z = np.random.default_rng(0).normal(size=(100, 2))
    assert knn_overlap(np.column_stack([Z, np.zeros(100)]), Z, k=5) == 1.0


def test_knn_overlap_of_a_random_map_is_near_chance():
    rng = np.random.default_rng(0)
    n, k = 400, 10
    score = knn_overlap(rng.normal(size=(n, 8)), rng.normal(size=(n, 2)), k=k)
    assert score < 3 * k / (n - 1)


def test_knn_overlap_rejects_misaligned_rows():
    with pytest.raises(ValueError, match=r"feature rows \(5\) and map rows \(4\)"):
        knn_overlap(np.zeros((5, 3)), np.zeros((4, 2)))


def test_diagnostics_use_every_row_up_to_the_large_data_size_and_a_seeded_sample_above():
    from synapse_core.cluster.settings import FIT_ROWS, LARGE_ROWS

    assert diagnostic_rows(LARGE_ROWS) is None
    rows = diagnostic_rows(LARGE_ROWS + 1, seed=3)
    assert len(rows) == FIT_ROWS and np.array_equal(rows, diagnostic_rows(LARGE_ROWS + 1, seed=3))


def test_bounded_batch_effect_reports_its_rows_and_still_sees_bboxes_that_form_the_clusters():
    X, y = make_blobs(n_samples=600, n_features=4, centers=3, cluster_std=0.3, random_state=0)
    e = bbox_effect(X, y, np.array([f"bbox{i + 1}" for i in y]), k=10, max_rows=200)
    assert e["n_rows_used"] == 200 and e["batch_effect_score"] > 0.95 and e["cluster_bbox_ami"] > 0.95


def test_bounded_alignment_reports_its_rows_and_still_warns():
    side = np.array([1, 2] * 300)
    a = cluster_alignment(side - 1, pd.DataFrame({"presynaptic_side": side}), max_rows=100)
    assert a["n_rows_used"] == 100 and a["aligned"] == ["presynaptic_side"]


def test_bounded_knn_overlap_of_a_distance_keeping_map_stays_one():
    Z = np.random.default_rng(0).normal(size=(600, 2))
    assert knn_overlap(np.column_stack([Z, np.zeros(600)]), Z, k=5, max_rows=150) == 1.0
