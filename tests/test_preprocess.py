"""Preprocessing: one scaling/PCA policy, feature columns read from the extraction table, bad input named."""

import numpy as np
import pandas as pd
import pytest

from synapse_core.cluster.preprocess import (
    feature_columns,
    feature_matrix,
    prepare,
    preprocess_features,
)


def table(n=6, n_feat=3, with_morph=True, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"bbox_name": ["bbox1"] * n, "Var1": [f"s{i}" for i in range(n)]})
    for j in range(n_feat):
        df[f"feat_{j + 1}"] = rng.normal(size=n)
    if with_morph:
        df["morph_cleft_area_vox2"] = rng.uniform(10, 20, n)
    return df


def test_feature_columns_sort_deep_features_numerically():
    df = pd.DataFrame({"feat_10": [1.0], "feat_2": [1.0], "feat_1": [1.0], "morph_a": [1.0]})
    assert feature_columns(df, "feat") == ["feat_1", "feat_2", "feat_10"]


def test_feature_set_auto_prefers_deep_features_and_falls_back_to_morphology():
    assert feature_columns(table(), "auto") == ["feat_1", "feat_2", "feat_3"]
    assert feature_columns(table(n_feat=0), "auto") == ["morph_cleft_area_vox2"]
    assert feature_columns(table(), "both")[-1] == "morph_cleft_area_vox2"


def test_missing_feature_columns_error_names_the_feature_set():
    with pytest.raises(ValueError, match=r"feature_set='morph'.*no morph_\*"):
        feature_columns(table(with_morph=False), "morph")


def test_standard_scaling_gives_zero_mean_unit_variance():
    X = np.random.default_rng(1).normal(5, 3, size=(200, 4))
    Z, explained = preprocess_features(X, "standard")
    assert Z.dtype == np.float32 and explained is None
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=0), 1, atol=1e-4)


def test_pca_keeps_requested_components_and_reports_variance():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(100, 2)) @ rng.normal(size=(2, 10)) + 0.01 * rng.normal(size=(100, 10))
    Z, explained = preprocess_features(X, "standard", pca_components=2, seed=0)
    assert Z.shape == (100, 2)
    assert explained > 0.99


def test_nan_feature_error_names_row_key_and_column():
    df = table()
    df.loc[3, "feat_2"] = np.nan
    with pytest.raises(ValueError, match=r"row 3 \(bbox1, Var1=s3\) in column\(s\) feat_2.*--nan-policy drop"):
        feature_matrix(df, "feat")


def test_nan_policy_drop_keeps_good_rows_and_records_dropped_ones():
    df = table()
    df.loc[1, "feat_1"] = np.inf
    Z, kept, record = prepare(df, "feat", nan_policy="drop")
    assert Z.shape == (5, 3)
    assert kept.tolist() == [True, False, True, True, True, True]
    assert record.dropped_rows == (("bbox1", "s1"),)
    assert record.n_rows_in == 6 and record.n_rows_used == 5


def test_non_numeric_feature_column_error_names_column_and_value():
    df = table()
    df["feat_2"] = df["feat_2"].astype(object)
    df.loc[2, "feat_2"] = "oops"
    with pytest.raises(ValueError, match=r"feature column 'feat_2' is not numeric: row 2 .*'oops'"):
        feature_matrix(df, "feat")


def test_record_names_the_space():
    _, _, record = prepare(table(n=10, n_feat=5), "feat", pca_components=2)
    assert record.space == "standard-scaled feat_* (5 d) → PCA 2"
    assert record.columns == ("feat_1", "feat_2", "feat_3", "feat_4", "feat_5")


def test_nan_policy_impute_uses_the_column_median_and_records_it():
    df = table(n=5, n_feat=0)
    df["morph_mito_to_cleft_distance_nm"] = [10.0, np.nan, 30.0, 40.0, 50.0]
    Z, kept, record = prepare(df, "morph", scaler="none", nan_policy="impute")
    assert kept.all() and Z[1, 1] == 35.0
    assert record.imputed_values == (("morph_mito_to_cleft_distance_nm", 1),)


def test_auto_feature_set_follows_the_extraction_runs_feature_set_column():
    df = pd.DataFrame({"feat_1": [1.0, 2.0], "morph_a": [3.0, 4.0], "feature_set": ["morphology"] * 2})
    assert feature_columns(df, "auto") == ["morph_a"]
    assert feature_columns(df.assign(feature_set="both"), "auto") == ["feat_1", "morph_a"]


def test_both_feature_blocks_get_equal_total_variance():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(50, 12)), columns=[f"feat_{i + 1}" for i in range(10)] + ["morph_a", "morph_b"])
    Z, _, record = prepare(df, feature_set="both")
    var = Z.var(axis=0)
    assert var[:10].sum() == pytest.approx(var[10:].sum(), rel=1e-4)
    assert "blocks weighted equally" in record.space


def morph_table(distances, has_mito):
    return pd.DataFrame({
        "bbox_name": "bbox1", "Var1": [f"s{i}" for i in range(len(distances))],
        "morph_mito_to_cleft_distance_nm": distances, "morph_cleft_area_um2": np.linspace(0.1, 0.2, len(distances)),
        "morph_has_mito": has_mito, "morph_has_cleft": 1.0,
    })


def test_nan_of_an_absent_structure_is_imputed_with_the_median_of_synapses_that_have_it():
    df = morph_table([10.0, np.nan, 30.0, 40.0], [1.0, 0.0, 1.0, 1.0])
    Z, kept, record = prepare(df, "morph", scaler="none", nan_policy="error")  # no error: absence is data
    assert kept.all() and Z[1, 0] == 30.0  # median of 10, 30, 40
    assert Z[:, record.columns.index("morph_has_mito")].tolist() == [1.0, 0.0, 1.0, 1.0]  # it carries the absence
    assert record.absent_structure_imputed == (("morph_mito_to_cleft_distance_nm", 1),)
    assert record.imputed_values == () and record.as_dict()["absent_structure_imputed"] == {
        "morph_mito_to_cleft_distance_nm": 1}


def test_absent_structure_rows_are_kept_under_the_drop_policy():
    df = morph_table([10.0, np.nan, 30.0, np.nan], [1.0, 0.0, 1.0, 1.0])
    _, kept, record = prepare(df, "morph", nan_policy="drop")
    assert kept.tolist() == [True, True, True, False]  # row 3 has a mitochondrion: its NaN is broken data
    assert record.dropped_rows == (("bbox1", "s3"),)


def test_nan_of_a_present_structure_still_follows_the_error_policy():
    df = morph_table([10.0, np.nan, 30.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"row 1 \(bbox1, Var1=s1\) in column\(s\) morph_mito_to_cleft_distance_nm"):
        feature_matrix(df, "morph")


def test_a_structure_absent_from_every_synapse_gives_a_constant_zero_column():
    df = morph_table([np.nan, np.nan, np.nan], [0.0, 0.0, 0.0])
    Z, _, record = prepare(df, "morph", scaler="standard")
    assert np.all(Z[:, 0] == 0.0)
    assert record.absent_structure_imputed == (("morph_mito_to_cleft_distance_nm", 3),)


def test_presence_indicators_enter_as_0_1_steps_not_standardised():
    df = morph_table(list(np.linspace(10.0, 50.0, 15)), [1.0] * 14 + [0.0])
    Z, _, record = prepare(df, "morph", scaler="standard")
    has = Z[:, record.columns.index("morph_has_mito")]
    assert has.max() - has.min() == pytest.approx(1.0) and has.mean() == pytest.approx(0.0, abs=1e-6)
    assert Z[:, record.columns.index("morph_cleft_area_um2")].std() == pytest.approx(1.0, rel=1e-4)
    assert "morph_has_* kept as 0/1" in record.space
