"""Saving and loading a run's configuration as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from synapse_core.app import run_config
from synapse_core.app.run_config import DataChoice, RunConfig, settings_from_dict, settings_to_dict


@dataclass(frozen=True)
class Inner:
    size: int = 80
    alpha: float = 1.0


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    features: Literal["vgg3d", "morphology"] = "vgg3d"
    checkpoint: str | None = None
    layers: tuple[int, ...] = (20,)
    smart: bool = True


def test_nested_settings_round_trip_through_json():
    s = Outer(inner=Inner(size=64, alpha=0.5), features="morphology", checkpoint="/ckpt.pth", layers=(3, 20))
    text = json.dumps(settings_to_dict(s))
    assert settings_from_dict(Outer, json.loads(text)) == s


def test_missing_keys_take_defaults():
    assert settings_from_dict(Outer, {"inner": {"size": 40}}) == Outer(inner=Inner(size=40))


def test_unknown_key_is_named_in_the_error():
    with pytest.raises(ValueError, match=r"extraction\.inner: unknown field\(s\) colour"):
        settings_from_dict(Outer, {"inner": {"colour": 3}}, "extraction")


def test_wrong_type_is_named_with_its_field():
    with pytest.raises(ValueError, match=r"Outer\.inner\.size: expected an integer, got '80'"):
        settings_from_dict(Outer, {"inner": {"size": "80"}})


def test_literal_field_refuses_other_values():
    with pytest.raises(ValueError, match="'both' is not one of 'vgg3d', 'morphology'"):
        settings_from_dict(Outer, {"features": "both"})


def test_integer_is_accepted_for_a_float_field():
    assert settings_from_dict(Inner, {"alpha": 1}).alpha == 1.0


def test_run_config_round_trips_through_text():
    config = RunConfig(
        data=DataChoice(root="demo", subfolder="", bboxes=("bbox1", "bbox2")),
        extraction=settings_to_dict(Outer()),
        clustering={"method": "kmeans", "n_clusters": 4},
    )
    text = run_config.dumps(config)
    assert json.loads(text)["format"] == "synapse-cluster-em/run-config"
    assert run_config.loads(text) == config


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

    with pytest.raises(ValueError, match="not"):
        run_config.loads(pickle.dumps({"a": 1}))


def test_loads_refuses_oversized_input():
    with pytest.raises(ValueError, match=f"{run_config.MAX_CONFIG_BYTES + 1} bytes is larger than the "
                                         f"{run_config.MAX_CONFIG_BYTES} allowed"):
        run_config.loads(b" " * (run_config.MAX_CONFIG_BYTES + 1))


def test_real_extract_settings_round_trip():
    extract = pytest.importorskip("synapse_core.features.extract")
    settings = extract.ExtractSettings()
    rebuilt = settings_from_dict(extract.ExtractSettings, json.loads(json.dumps(settings_to_dict(settings))))
    assert rebuilt == settings
