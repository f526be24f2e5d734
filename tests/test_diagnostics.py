"""Diagnostics: stability under resampling, bbox (batch) effect, map faithfulness."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from synapse_core.cluster.algorithms import fit_kmeans
from synapse_core.cluster.diagnostics import bbox_composition, bbox_effect, knn_overlap, stability


def kmeans_fit(k):
    return lambda Z, seed: fit_kmeans(Z, k, seed=seed, n_init=3)[0]


def test_separated_groups_are_stable_under_resampling():
    X, _ = make_blobs(n_samples=200, n_features=5, centers=3, cluster_std=0.5, random_state=0)
    labels = fit_kmeans(X, 3, seed=0)[0]
    s = stability(X, labels, kmeans_fit(3), n_runs=5, seed=0)
    assert s["ari_min"] > 0.99
    assert all(j > 0.99 for j in s["cluster_jaccard"].values())
    assert s["subsample_size"] == 160 and len(s["ari_runs"]) == 5


def test_clusters_cut_from_structureless_data_are_unstable():
    X = np.random.default_rng(0).uniform(size=(200, 5))
    labels = fit_kmeans(X, 6, seed=0)[0]
    s = stability(X, labels, kmeans_fit(6), n_runs=5, seed=0)
    assert s["ari_mean"] < 0.9


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
