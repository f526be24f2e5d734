"""Choosing k: curves of the data against a structureless null, and the ``--k auto`` rule (k = 1 possible)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from synapse_core.cluster.k_selection import (
    NO_STRUCTURE,
    check_k_range,
    choose_k,
    decide_k,
    elbow_k,
    gap_k,
    sweep_k,
)

#: Seeds beyond the first repeat a case on fresh data (marked slow: each sweep fits ~150 clusterings).
SEEDS = [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]


def standardised(X):
    return (X - X.mean(axis=0)) / X.std(axis=0)


def planted_groups(n_groups, n_per_group, dims, seed):
    """Groups whose centres are drawn N(0, 1) per dimension, points N(0, 1) around them.

    In 64-d the centres lie ~11 apart while each group's radius is ~8: separated, not trivially.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, dims))
    X = np.concatenate([c + rng.normal(size=(n_per_group, dims)) for c in centres])
    return standardised(X), np.repeat(np.arange(n_groups), n_per_group)


def curves_table(**columns):
    """Hand-written k curves with every column decide_k reads (defaults: a supported k)."""
    n = len(columns["k"])
    base = {"silhouette": [0.6] * n, "silhouette_null": [0.2] * n, "silhouette_null_sd": [0.01] * n,
            "stability": [0.95] * n, "stability_null": [0.5] * n, "stability_null_sd": [0.05] * n,
            "smallest_cluster": [20] * n}
    base.update(columns)
    return pd.DataFrame(base)


@pytest.mark.slow  # sweeps k against a sampled null (> 2 s)
@pytest.mark.parametrize("n_groups", [3, 5])
def test_auto_k_recovers_the_number_of_separated_groups(n_groups):
    X, _ = make_blobs(n_samples=240, n_features=8, centers=n_groups, cluster_std=1.0, random_state=n_groups)
    sweep = sweep_k(X, (2, 8), seed=0)
    assert choose_k(sweep.curves) == n_groups


@pytest.mark.slow  # sweeps k against a sampled null (> 2 s)
@pytest.mark.parametrize("seed", SEEDS)
def test_three_groups_of_twelve_synapses_in_64_dimensions_give_k_3(seed):
    X, _ = planted_groups(3, 12, 64, seed)
    assert choose_k(sweep_k(X, (2, 8), seed=0).curves) == 3


@pytest.mark.slow  # sweeps k against a sampled null (> 2 s)
@pytest.mark.parametrize("seed", SEEDS)
def test_two_groups_give_k_2(seed):
    X, _ = planted_groups(2, 18, 64, seed)
    assert choose_k(sweep_k(X, (2, 8), seed=0).curves) == 2


@pytest.mark.slow  # sweeps k against a sampled null (> 2 s)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n, dims", [(36, 16), (36, 192), (200, 16), (200, 192)])
def test_one_gaussian_blob_has_no_clear_cluster_structure(n, dims, seed):
    X = standardised(np.random.default_rng(seed).normal(size=(n, dims)))
    decision = decide_k(sweep_k(X, (2, 8), seed=0).curves)
    assert decision.k == 1
    assert not decision.structure and decision.verdict.startswith(NO_STRUCTURE)


@pytest.mark.slow  # sweeps k against a sampled null (> 2 s)
def test_an_elongated_correlated_blob_has_no_clear_cluster_structure():
    rng = np.random.default_rng(0)
    rotation = np.linalg.qr(rng.normal(size=(16, 16)))[0]
    X = standardised((rng.normal(size=(200, 16)) * np.geomspace(5, 0.2, 16)) @ rotation)
    assert choose_k(sweep_k(X, (2, 8), seed=0).curves) == 1


def test_sweep_reports_one_row_per_k_with_falling_inertia():
    X, _ = make_blobs(n_samples=120, n_features=4, centers=3, random_state=0)
    curves = sweep_k(X, (2, 6), seed=0).curves
    assert curves["k"].tolist() == [2, 3, 4, 5, 6]
    assert list(curves.columns[:4]) == ["k", "silhouette", "calinski_harabasz", "inertia"]
    assert (np.diff(curves["inertia"]) < 0).all()


def test_sweep_reports_the_null_stability_and_gap_curves():
    X, _ = make_blobs(n_samples=90, n_features=6, centers=3, random_state=0)
    curves = sweep_k(X, (2, 5), seed=0).curves
    for col in ("stability", "silhouette_null", "silhouette_null_sd", "stability_null", "gap", "gap_sd",
                "smallest_cluster"):
        assert curves[col].notna().all(), col
    best = curves.set_index("k").loc[3]
    assert best["silhouette"] > best["silhouette_null"] + 0.2
    assert best["stability"] > 0.95 and best["smallest_cluster"] == 30
    assert curves.attrs["gap_k"] == 3 and np.isfinite(curves.attrs["gap_k1"])


@pytest.mark.slow  # two sweeps against a sampled null (> 2 s)
def test_sweep_is_repeatable_with_the_same_seed():
    X, _ = planted_groups(3, 12, 16, 0)
    a, b = sweep_k(X, (2, 5), seed=4).curves, sweep_k(X, (2, 5), seed=4).curves
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_silhouette_is_sampled_for_large_n():
    X, _ = make_blobs(n_samples=3000, n_features=4, centers=3, random_state=0)
    sweep = sweep_k(X, (2, 4), seed=0, silhouette_sample=500)
    assert sweep.curves.attrs["silhouette_sample"] == 500
    assert sweep.curves.attrs["null_rows"] == 1000
    assert choose_k(sweep.curves) == 3


def test_sweep_keeps_labels_of_every_k():
    X, _ = make_blobs(n_samples=60, n_features=3, centers=3, random_state=0)
    sweep = sweep_k(X, (2, 4), seed=0)
    assert sorted(sweep.labels) == [2, 3, 4]
    assert len(np.unique(sweep.labels[4])) == 4


def test_choose_k_takes_the_largest_silhouette_excess_and_breaks_near_ties_toward_smaller_k():
    curves = curves_table(k=[2, 3, 4], silhouette=[0.40, 0.695, 0.70])
    assert choose_k(curves) == 4
    assert choose_k(curves, tolerance=0.01) == 3


def test_choose_k_judges_silhouette_against_the_null_not_its_raw_value():
    curves = curves_table(k=[2, 3], silhouette=[0.70, 0.60], silhouette_null=[0.65, 0.20])
    assert choose_k(curves) == 3


def test_nothing_beating_the_null_gives_k_1_with_the_verdict():
    curves = curves_table(k=[2, 3], silhouette=[0.21, 0.20], silhouette_null=[0.20, 0.20])
    decision = decide_k(curves)
    assert decision.k == 1 and decision.structure is False
    assert NO_STRUCTURE in decision.verdict and decision.as_dict()["supported_k"] == []


def test_k_with_unstable_clusters_is_not_supported():
    curves = curves_table(k=[2, 3], silhouette=[0.40, 0.70], stability=[0.95, 0.60])
    assert choose_k(curves) == 2


def test_k_as_stable_as_its_null_only_below_the_floor_is_not_supported():
    curves = curves_table(k=[2, 3], silhouette=[0.40, 0.70], stability=[0.95, 0.90], stability_null=[0.5, 0.92])
    assert choose_k(curves) == 2


def test_k_with_a_cluster_below_the_minimum_size_is_not_supported():
    curves = curves_table(k=[2, 3], silhouette=[0.40, 0.70], smallest_cluster=[18, 3])
    assert choose_k(curves) == 2
    assert choose_k(curves, min_cluster_size=3) == 3


def test_decide_k_refuses_curves_without_the_null():
    with pytest.raises(ValueError, match="silhouette_null.*sweep_k"):
        decide_k(pd.DataFrame({"k": [2, 3], "silhouette": [0.4, 0.5]}))


def test_gap_rule_takes_the_first_k_within_one_sd_of_the_next():
    curves = pd.DataFrame({"k": [2, 3, 4], "gap": [0.2, 0.6, 0.58], "gap_sd": [0.05, 0.05, 0.05]})
    curves.attrs.update(gap_k1=0.0, gap_k1_sd=0.05)
    assert gap_k(curves) == 3


def test_elbow_is_at_the_bend_of_the_inertia_curve():
    curves = pd.DataFrame({"k": [2, 3, 4, 5, 6, 7], "inertia": [100.0, 60.0, 20.0, 18.0, 16.0, 14.0]})
    assert elbow_k(curves) == 4


def test_k_range_is_capped_at_n_minus_one():
    assert check_k_range((2, 12), 6) == [2, 3, 4, 5]


def test_too_few_synapses_for_k_range_names_the_parameter():
    with pytest.raises(ValueError, match=r"k_range=\(5, 8\).*at most 3"):
        check_k_range((5, 8), 4)


def test_choosing_k_for_two_synapses_is_refused():
    with pytest.raises(ValueError, match=r"at least 3 synapses .*got 2"):
        sweep_k(np.zeros((2, 3)), (2, 4))


def test_sweep_settings_below_their_minimum_are_refused():
    with pytest.raises(ValueError, match="n_null=1 must be at least 2"):
        sweep_k(np.random.default_rng(0).normal(size=(20, 3)), (2, 4), n_null=1)
