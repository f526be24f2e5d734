"""Morphology targets for training: transform, standardisation, NaN handling, and the masked loss."""

import math

import numpy as np
import pytest
import torch

from synapse_core.features.train_targets import masked_mse, morphology_targets


def test_volumes_are_log_scaled_so_doubling_is_one_equal_step():
    rows = [{"morph_pre_volume_um3": v} for v in (1.0, 2.0, 4.0)]
    t = morphology_targets(rows).values[:, 0]
    assert t[1] - t[0] == pytest.approx(t[2] - t[1], rel=0.02)


def test_each_column_is_standardised():
    rows = [{"morph_cleft_thickness_nm": v, "morph_intensity_mean": w} for v, w in ((10, 0.1), (20, 0.5), (60, 0.3))]
    t = morphology_targets(rows).values
    assert np.allclose(t.mean(0), 0, atol=1e-6) and np.allclose(t.std(0), 1, atol=1e-6)


def test_absent_structure_volume_zero_gets_a_finite_target_below_every_present_one():
    rows = [{"morph_mito_volume_um3": v} for v in (0.0, 0.02, 0.05)]
    t = morphology_targets(rows).values[:, 0]
    assert np.isfinite(t).all() and t[0] < t[1] < t[2]


def test_undefined_value_stays_nan_and_the_rest_is_standardised_without_it():
    rows = [{"morph_mito_to_cleft_distance_nm": v} for v in (math.nan, 40.0, 80.0)]
    t = morphology_targets(rows).values[:, 0]
    assert math.isnan(t[0]) and t[1:] == pytest.approx([-1.0, 1.0])


def test_constant_and_all_nan_columns_are_dropped():
    rows = [{"morph_has_mito": 0.0, "morph_mito_intensity_mean": math.nan, "morph_pre_volume_um3": v}
            for v in (0.1, 0.3)]
    assert morphology_targets(rows).columns == ["morph_pre_volume_um3"]


def test_no_varying_measurement_is_refused_with_the_flag_to_use():
    with pytest.raises(ValueError, match="--morphology-weight 0"):
        morphology_targets([{"morph_has_mito": 0.0}, {"morph_has_mito": 0.0}])


def test_masked_mse_averages_only_the_finite_targets():
    pred = torch.tensor([[1.0, 5.0], [3.0, 0.0]])
    target = torch.tensor([[0.0, math.nan], [1.0, math.nan]])
    assert float(masked_mse(pred, target)) == pytest.approx((1.0 + 4.0) / 2)


def test_masked_mse_gives_no_gradient_to_a_nan_target():
    pred = torch.tensor([[1.0, 5.0]], requires_grad=True)
    masked_mse(pred, torch.tensor([[0.0, math.nan]])).backward()
    assert pred.grad.tolist() == [[2.0, 0.0]]
