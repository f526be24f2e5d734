"""Choosing k: the sweep's curves and the ``--k auto`` rule (highest silhouette, ties → smallest k)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from synapse_core.cluster.k_selection import check_k_range, choose_k, elbow_k, sweep_k


@pytest.mark.parametrize("n_groups", [3, 5])
def test_auto_k_recovers_the_number_of_separated_groups(n_groups):
    X, _ = make_blobs(n_samples=240, n_features=8, centers=n_groups, cluster_std=1.0, random_state=n_groups)
    sweep = sweep_k(X, (2, 8), seed=0)
    assert choose_k(sweep.curves) == n_groups


def test_sweep_reports_one_row_per_k_with_falling_inertia():
    X, _ = make_blobs(n_samples=120, n_features=4, centers=3, random_state=0)
    curves = sweep_k(X, (2, 6), seed=0).curves
    assert curves["k"].tolist() == [2, 3, 4, 5, 6]
    assert list(curves.columns[:4]) == ["k", "silhouette", "calinski_harabasz", "inertia"]
    assert (np.diff(curves["inertia"]) < 0).all()


def test_silhouette_is_sampled_for_large_n():
    X, _ = make_blobs(n_samples=3000, n_features=4, centers=3, random_state=0)
    sweep = sweep_k(X, (2, 4), seed=0, silhouette_sample=500)
    assert sweep.curves.attrs["silhouette_sample"] == 500
    assert choose_k(sweep.curves) == 3


def test_sweep_keeps_labels_of_every_k():
    X, _ = make_blobs(n_samples=60, n_features=3, centers=3, random_state=0)
    sweep = sweep_k(X, (2, 4), seed=0)
    assert sorted(sweep.labels) == [2, 3, 4]
    assert len(np.unique(sweep.labels[4])) == 4


def test_choose_k_breaks_near_ties_toward_smaller_k():
    curves = pd.DataFrame({"k": [2, 3, 4], "silhouette": [0.40, 0.495, 0.50]})
    assert choose_k(curves) == 4
    assert choose_k(curves, tolerance=0.01) == 3


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
