"""Saving and loading a run's configuration as JSON, validated by the stages' settings declarations."""

from __future__ import annotations

import json

import pytest

from synapse_core.app import run_config
from synapse_core.app.run_config import DataChoice, RunConfig, settings_from_dict, settings_to_dict
from synapse_core.cluster.settings import ClusterSettings
from synapse_core.crops.settings import CropSettings
from synapse_core.features.settings import ExtractSettings


def config_text(**sections) -> str:
    return json.dumps({"format": run_config.FORMAT, "version": run_config.VERSION, **sections})


def test_nested_settings_round_trip_through_json():
    s = ExtractSettings(crop=CropSettings(size=64, alpha=0.5), features="morphology", checkpoint="/ckpt.pth",
                        layer="stage3,stage4")
    text = json.dumps(settings_to_dict(s))
    assert settings_from_dict(ExtractSettings, json.loads(text)) == s


def test_tuples_are_written_as_json_lists_and_read_back_as_tuples():
    s = ClusterSettings(k_range=(3, 7))
    assert settings_to_dict(s)["k_range"] == [3, 7]
    assert settings_from_dict(ClusterSettings, {"k_range": [3, 7]}).k_range == (3, 7)


def test_missing_keys_take_defaults():
    loaded = settings_from_dict(ExtractSettings, {"crop": {"size": 40}})
    assert loaded == ExtractSettings(crop=CropSettings(size=40))


def test_unknown_key_is_named_in_the_error():
    with pytest.raises(ValueError, match=r"extraction\.crop: unknown field\(s\) colour; allowed: size, "):
        settings_from_dict(ExtractSettings, {"crop": {"colour": 3}}, "extraction")


def test_wrong_type_is_named_with_its_field():
    with pytest.raises(ValueError, match=r"ExtractSettings\.crop\.size='80' must be a valid integer"):
        settings_from_dict(ExtractSettings, {"crop": {"size": "80"}})


def test_true_is_not_taken_for_an_integer():
    with pytest.raises(ValueError, match=r"clustering\.n_stability=True must be a valid integer"):
        settings_from_dict(ClusterSettings, {"n_stability": True}, "clustering")


def test_literal_field_refuses_other_values():
    with pytest.raises(ValueError, match="features='deep' must be 'auto', 'vgg3d', 'morphology', 'both' or 'pixels'"):
        settings_from_dict(ExtractSettings, {"features": "deep"})


def test_integer_is_accepted_for_a_float_field():
    alpha = settings_from_dict(CropSettings, {"alpha": 1}).alpha
    assert alpha == 1.0 and isinstance(alpha, float)


def test_value_outside_the_declared_range_is_refused_naming_field_and_range():
    with pytest.raises(ValueError, match=r"extraction\.crop\.alpha=1\.5 must be less than or equal to 1"):
        settings_from_dict(ExtractSettings, {"crop": {"alpha": 1.5}}, "extraction")


def test_impute_nan_policy_is_loaded_as_impute():
    assert settings_from_dict(ClusterSettings, {"nan_policy": "impute"}).nan_policy == "impute"


def test_multi_layer_setting_is_loaded_as_it_was_written():
    assert settings_from_dict(ExtractSettings, {"layer": "stage3,stage4"}).layer == "stage3,stage4"


def test_run_config_round_trips_through_text():
    config = RunConfig(
        data=DataChoice(root="demo", subfolder="", bboxes=("bbox1", "bbox2")),
        extraction=settings_to_dict(ExtractSettings(features="both")),
        clustering={"method": "kmeans", "k": 4},
    )
    text = run_config.dumps(config)
    assert json.loads(text)["format"] == "synapse-cluster-em/run-config"
    assert run_config.loads(text) == config


def test_loads_refuses_an_invalid_clustering_value_naming_the_field():
    with pytest.raises(ValueError, match=r"my\.json: clustering\.nan_policy='median' must be 'error', 'drop' or "
                                         r"'impute'"):
        run_config.loads(config_text(clustering={"nan_policy": "median"}), source="my.json")


def test_loads_refuses_an_unknown_extraction_layer_naming_it():
    with pytest.raises(ValueError, match=r"my\.json: extraction: unknown layer 'stage9'"):
        run_config.loads(config_text(extraction={"layer": "stage9"}), source="my.json")


def test_loads_refuses_a_bbox_list_given_as_text():
    with pytest.raises(ValueError, match=r"data\.bboxes='bbox1' must be a valid array"):
        run_config.loads(config_text(data={"bboxes": "bbox1"}))


def test_loads_refuses_text_that_is_not_json():
    with pytest.raises(ValueError, match=r"my.json: not valid JSON \(line 1"):
        run_config.loads("{not json", source="my.json")


def test_loads_refuses_another_format():
    with pytest.raises(ValueError, match="not a run configuration"):
        run_config.loads(json.dumps({"format": "other", "version": 1}))


def test_loads_refuses_a_newer_version():
    with pytest.raises(ValueError, match="version 2 is not supported"):
        run_config.loads(json.dumps({"format": run_config.FORMAT, "version": 2}))


def test_loads_refuses_pickle_bytes():
    import pickle

    with pytest.raises(ValueError, match="run config: not UTF-8 text"):
        run_config.loads(pickle.dumps({"a": 1}))


def test_loads_refuses_oversized_input():
    with pytest.raises(ValueError, match=f"{run_config.MAX_CONFIG_BYTES + 1} bytes is larger than the "
                                         f"{run_config.MAX_CONFIG_BYTES} allowed"):
        run_config.loads(b" " * (run_config.MAX_CONFIG_BYTES + 1))


def test_real_settings_round_trip_through_a_saved_run_config():
    extraction = ExtractSettings(crop=CropSettings(segmentation_type=12, vesicle_box=20), pooling="max")
    clustering = ClusterSettings(method="hdbscan", nan_policy="impute", k=5, reproducible=False)
    config = RunConfig(extraction=settings_to_dict(extraction), clustering=settings_to_dict(clustering))
    loaded = run_config.loads(run_config.dumps(config))
    assert settings_from_dict(ExtractSettings, loaded.extraction) == extraction
    assert settings_from_dict(ClusterSettings, loaded.clustering) == clustering
