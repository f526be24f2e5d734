"""Settings are declared once: the CLI flags, the dashboard widgets and run configurations follow the declaration."""

from __future__ import annotations

import typing

import pandas as pd
import pytest

from synapse_core.app.widgets import unshowable, widget_options
from synapse_core.cli.parser import build_parser, main
from synapse_core.cli.options import settings_from_args
from synapse_core.cluster.settings import METHODS, NAN_POLICIES, ClusterSettings, ProjectionSettings
from synapse_core.crops.settings import CropSettings
from synapse_core.features.settings import POOLING_METHODS, ExtractSettings
from synapse_core.settings_base import SettingsError, field_spec, field_specs

REQUIRED = {
    "crop": ["--data", "d", "--out", "o.npy"],
    "gif": ["--data", "d", "--out", "gifs"],
    "extract": ["--data", "d", "--out", "f.csv"],
    "cluster": ["--features", "f.csv", "--out", "c.csv"],
}
SETTINGS = {"crop": CropSettings, "gif": CropSettings, "extract": ExtractSettings, "cluster": ClusterSettings}


def parse(command: str, *flags: str):
    return build_parser(command).parse_args([command, *REQUIRED[command], *flags])


def settings_of(command: str, *flags: str):
    args = parse(command, *flags)
    if command == "extract":
        return settings_from_args(ExtractSettings, args, crop=settings_from_args(CropSettings, args))
    return settings_from_args(SETTINGS[command], args)


# Every spelling the CLI accepted before the settings were declared once: (flag, text, field, value).
CROP_ALIASES = [
    ("--segmentation-type", "11", "segmentation_type", 11), ("--segmentation_type", "11", "segmentation_type", 11),
    ("--seg-type", "11", "segmentation_type", 11), ("--alpha", "0.3", "alpha", 0.3), ("--gray", "0.5", "gray", 0.5),
    ("--gray_color", "0.5", "gray", 0.5), ("--gray-color", "0.5", "gray", 0.5), ("--size", "64", "size", 64),
    ("--crop-size", "64", "size", 64), ("--subvol_size", "64", "size", 64), ("--subvol-size", "64", "size", 64),
    ("--no-smart-crop", None, "smart_crop", False), ("--no_smart_crop", None, "smart_crop", False),
    ("--presynapse-weight", "0.5", "presynapse_weight", 0.5), ("--presynapse_weight", "0.5", "presynapse_weight", 0.5),
    ("--vesicle-box-fill", "0.9", "vesicle_box_fill", 0.9), ("--vesicle_box_fill", "0.9", "vesicle_box_fill", 0.9),
]
EXTRACT_ALIASES = [
    ("--checkpoint", "c.pth", "checkpoint", "c.pth"), ("--checkpoint_path", "c.pth", "checkpoint", "c.pth"),
    ("--checkpoint-path", "c.pth", "checkpoint", "c.pth"), ("--layer", "stage3", "layer", "stage3"),
    ("--layer_num", "stage3", "layer", "stage3"), ("--layer-num", "stage3", "layer", "stage3"),
    ("--pooling", "max", "pooling", "max"), ("--pooling_method", "max", "pooling", "max"),
    ("--pooling-method", "max", "pooling", "max"), ("--features", "both", "features", "both"),
    ("--batch-size", "8", "batch_size", 8), ("--batch_size", "8", "batch_size", 8), ("--device", "cpu", "device", "cpu"),
    ("--precision", "bf16", "precision", "bf16"), ("--seed", "3", "seed", 3), ("--fmaps", "8", "fmaps", 8),
    ("--workers", "0", "workers", 0),
]
CLUSTER_ALIASES = [
    ("--method", "hdbscan", "method", "hdbscan"), ("--clustering-algorithm", "DBSCAN", "method", "dbscan"),
    ("--clustering_algorithm", "KMeans", "method", "kmeans"), ("--k", "5", "k", 5), ("--n-clusters", "5", "k", 5),
    ("--n_clusters", "auto", "k", "auto"), ("--k-range", "3-8", "k_range", (3, 8)), ("--k_range", "3,8", "k_range", (3, 8)),
    ("--projection", "tsne", "projection", "tsne"), ("--dims", "3", "dims", 3), ("--seed", "4", "seed", 4),
    ("--feature-set", "morph", "feature_set", "morph"), ("--feature_set", "both", "feature_set", "both"),
    ("--scaler", "robust", "scaler", "robust"), ("--pca", "5", "pca_components", 5),
    ("--pca-components", "5", "pca_components", 5), ("--nan-policy", "impute", "nan_policy", "impute"),
    ("--nan_policy", "drop", "nan_policy", "drop"), ("--parallel", None, "reproducible", False),
    ("--n-neighbors", "20", "umap_n_neighbors", 20), ("--n_neighbors", "20", "umap_n_neighbors", 20),
    ("--min-dist", "0.3", "umap_min_dist", 0.3), ("--min_dist", "0.3", "umap_min_dist", 0.3),
    ("--perplexity", "12.5", "tsne_perplexity", 12.5), ("--min-cluster-size", "7", "min_cluster_size", 7),
    ("--min-samples", "3", "min_samples", 3), ("--dbscan_min_samples", "3", "min_samples", 3),
    ("--eps", "0.5", "dbscan_eps", 0.5), ("--dbscan-eps", "0.5", "dbscan_eps", 0.5),
    ("--dbscan_eps", "0.5", "dbscan_eps", 0.5), ("--linkage", "average", "linkage", "average"),
    ("--n-stability", "0", "n_stability", 0),
]
ALIASES = ([("crop", *a) for a in CROP_ALIASES] + [("gif", *a) for a in CROP_ALIASES[:3]]
           + [("extract", *a) for a in EXTRACT_ALIASES + CROP_ALIASES[:2]] + [("cluster", *a) for a in CLUSTER_ALIASES])


@pytest.mark.parametrize("command, flag, text, field, value", ALIASES)
def test_every_cli_spelling_sets_its_settings_field(command, flag, text, field, value):
    settings = settings_of(command, flag, *([text] if text is not None else []))
    target = settings.crop if command == "extract" and field in CropSettings.__pydantic_fields__ else settings
    assert getattr(target, field) == value and type(getattr(target, field)) is type(value)


@pytest.mark.parametrize("command", ["crop", "gif", "extract", "cluster"])
def test_cli_defaults_are_the_declared_defaults(command):
    assert settings_of(command) == SETTINGS[command]()


@pytest.mark.parametrize("cls, command", [(CropSettings, "crop"), (ExtractSettings, "extract"),
                                          (ClusterSettings, "cluster")])
def test_every_declared_field_has_a_flag_with_its_description_as_help(cls, command):
    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    helps: dict[str, str] = {}
    for action in sub._actions:  # a bool field has two flags (on, off) with one dest
        helps[action.dest] = helps.get(action.dest, "") + (action.help or "")
    for spec in field_specs(cls):
        if spec.name == "crop":
            continue
        assert spec.help.replace("%", "%%") in helps[spec.name], spec.name


def test_bad_cli_value_exits_2_naming_the_flag_the_value_and_the_choices(capsys):
    assert main(["cluster", "--features", "f.csv", "--out", "c.csv", "--nan-policy", "median"]) == 2
    assert "--nan-policy='median' must be 'error', 'drop' or 'impute'" in capsys.readouterr().err


def test_out_of_range_crop_flag_exits_2_naming_the_flag(capsys):
    assert main(["crop", "--data", "d", "--out", "o.npy", "--synapse", "b/s", "--gray_color", "1.5"]) == 2
    assert "--gray=1.5 must be less than or equal to 1" in capsys.readouterr().err


def test_optional_number_flag_accepts_none():
    assert settings_of("cluster", "--pca", "5", "--pca", "none").pca_components is None


@pytest.mark.parametrize("cls", [CropSettings, ExtractSettings, ClusterSettings, ProjectionSettings])
def test_widget_choices_are_the_declared_literal_choices(cls):
    hints = typing.get_type_hints(cls, include_extras=False)
    literal_fields = [name for name, tp in hints.items() if typing.get_origin(tp) is typing.Literal]
    assert literal_fields, cls
    for name in literal_fields:
        assert widget_options(cls, name)["options"] == list(typing.get_args(hints[name])), name


def test_widget_range_and_help_come_from_the_declaration():
    opts = widget_options(CropSettings, "alpha", step=0.05)
    assert (opts["min_value"], opts["max_value"], opts["step"]) == (0.0, 1.0, 0.05)
    assert opts["help"] == field_spec(CropSettings, "alpha").help and "1 flat gray" in opts["help"]
    assert widget_options(ClusterSettings, "k_range")["min_value"] == 2


def test_a_value_outside_the_widget_options_is_named_not_replaced():
    assert unshowable("clustering.nan_policy", "impute", options=list(NAN_POLICIES)) is None
    assert unshowable("clustering.nan_policy", "impute", options=["drop", "error"]) == (
        "clustering.nan_policy='impute' cannot be shown: the widget offers 'drop', 'error'")
    assert unshowable("clustering.k_range", (2, 40), min_value=2, max_value=30) == (
        "clustering.k_range=(2, 40) cannot be shown: the widget's largest value is 30")


def test_vesicle_box_larger_than_the_crop_is_refused_for_box_types_only():
    assert CropSettings(size=20, segmentation_type=10, vesicle_box=25).vesicle_box == 25
    with pytest.raises(SettingsError, match=r"vesicle_box=25 must be at most size \(20\) for segmentation types 12"):
        CropSettings(size=20, segmentation_type=12)


def test_settings_refuse_text_for_a_number_and_name_the_field():
    with pytest.raises(ValueError, match=r"CropSettings\.size='80' must be a valid integer"):
        CropSettings(size="80")


def test_settings_refuse_an_unknown_field_listing_the_fields():
    with pytest.raises(ValueError, match=r"ClusterSettings: unknown field\(s\) n_clusters; allowed: method, k, "):
        ClusterSettings(n_clusters=3)


def test_cache_keys_of_the_settings_keep_their_text():
    assert ProjectionSettings("umap", 2, seed=3).key() == (
        '{"dims": 2, "method": "umap", "metric": "euclidean", "min_dist": 0.1, "n_neighbors": 15, '
        '"perplexity": 30.0, "reproducible": true, "seed": 3}')
    assert CropSettings().locate_token().startswith(  # fields added later sort after these
        '{"fallback_side": 1, "mito_dilation": 2, "presynapse_radius": null, "presynapse_weight": 0.7, '
        '"size": 80, "smart_crop": true')
    assert '"k_range": [2, 12]' in ClusterSettings().key() and '"tsne_perplexity": 30.0' in ClusterSettings().key()


def test_cli_help_lists_the_declared_choices():
    parser = build_parser("extract")
    sub = next(a for a in parser._actions if a.dest == "command").choices["extract"]
    pooling = next(a for a in sub._actions if a.dest == "pooling")
    assert pooling.metavar == "{" + ",".join(POOLING_METHODS) + "}"
    assert pooling.option_strings == ["--pooling", "--pooling_method", "--pooling-method"]


# --- the dashboard: widgets show what a loaded run configuration says, or say why they cannot ------

CLUSTERING = "app_pages/clustering.py"
EXTRACTION = "app_pages/extraction.py"
TINY_FEATURES = pd.DataFrame({"bbox_name": ["bbox1"], "Var1": ["syn_001"], "morph_volume_nm3": [1.0]})


@pytest.fixture
def app(monkeypatch, demo_root, demo_cache):
    from app_helpers import configure, open_page

    configure(monkeypatch, demo_root, demo_cache)
    return open_page


@pytest.mark.slow  # a Streamlit page run
def test_clustering_widgets_offer_the_declared_choices(app):
    at = app(CLUSTERING, state={"features": TINY_FEATURES})
    assert at.selectbox(key="w_c_method").options == list(METHODS)
    assert len(at.selectbox(key="w_c_nan_policy").options) == len(NAN_POLICIES)


@pytest.mark.slow  # a Streamlit page run
def test_loaded_impute_nan_policy_is_shown_as_impute(app):
    at = app(CLUSTERING, state={"features": TINY_FEATURES, "loaded_clustering": {"nan_policy": "impute"}})
    assert at.selectbox(key="w_c_nan_policy").value == "impute"
    assert not at.error


@pytest.mark.slow  # a Streamlit page run
def test_loaded_invalid_clustering_value_is_an_error_naming_the_field(app):
    at = app(CLUSTERING, state={"features": TINY_FEATURES, "loaded_clustering": {"nan_policy": "median"}})
    assert any("clustering.nan_policy='median' must be 'error', 'drop' or 'impute'" in e.value for e in at.error)


@pytest.mark.slow  # a Streamlit page run
def test_loaded_k_range_beyond_the_slider_default_is_shown(app):
    at = app(CLUSTERING, state={"features": TINY_FEATURES, "loaded_clustering": {"k_range": [3, 40]}})
    assert at.slider(key="w_c_k_range").value == (3, 40)


@pytest.mark.slow  # opens the demo dataset behind the page
def test_loaded_multi_layer_setting_is_selected_as_written(app):
    at = app(EXTRACTION, state={"loaded_extraction": {"layer": "stage3,stage4"}})
    assert at.multiselect(key="w_x_layer").value == ["stage3", "stage4"]
    assert not at.error


@pytest.mark.slow  # opens the demo dataset behind the page
def test_loaded_layer_the_widget_cannot_show_is_an_error_naming_the_field(app):
    at = app(EXTRACTION, state={"loaded_extraction": {"layer": "layer20"}})
    from app_helpers import errors

    assert any("extraction.layer=['layer20'] cannot be shown" in e for e in errors(at))
    assert at.multiselect(key="w_x_layer").value == ["stage4"]
