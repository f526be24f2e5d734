"""Plain-data helpers behind the dashboard: ids, selections, samples, overlays, gallery cache."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synapse_core.app import state as app_state
from synapse_core.data.labels import LabelIds
from synapse_core.data.synapse_keys import UnknownSynapseError
from synapse_core.viz.slice_overlay import STRUCTURE_COLOURS, overlay_slice


@pytest.fixture
def clustered():
    return pd.DataFrame({
        "bbox_name": ["bbox1", "bbox1", "bbox2", "bbox2", "bbox2"],
        "Var1": ["a", "b", "a", "c", "d"],
        "cluster": [0, 0, 1, 1, 1],
        "distance_to_centroid": [0.5, 0.1, 0.9, 0.2, 0.4],
    })


def test_selection_ids_come_from_customdata_not_point_indices():
    # Two traces: point index 0 exists in both; only customdata tells them apart.
    event = {"selection": {"points": [
        {"curve_number": 0, "point_index": 0, "customdata": ["bbox1|a", "bbox1", "a", "0"]},
        {"curve_number": 1, "point_index": 0, "customdata": ["bbox2|c", "bbox2", "c", "1"]},
        {"curve_number": 1, "point_index": 0, "customdata": ["bbox2|c", "bbox2", "c", "1"]},
    ]}}
    assert app_state.ids_from_plotly_selection(event) == ["bbox1|a", "bbox2|c"]


def test_empty_selection_event_selects_nothing():
    assert app_state.ids_from_plotly_selection(None) == []
    assert app_state.ids_from_plotly_selection({"selection": {"points": []}}) == []


def test_random_sample_is_reproducible_and_bounded_by_cluster_size(clustered):
    first = app_state.sample_per_cluster(clustered, 2, seed=3)
    assert first == app_state.sample_per_cluster(clustered, 2, seed=3)
    assert len(first[0]) == 2 and len(first[1]) == 2
    assert set(first[1]) <= {"bbox2|a", "bbox2|c", "bbox2|d"}
    assert app_state.sample_per_cluster(clustered, 10, seed=3)[0] == ["bbox1|a", "bbox1|b"]


def test_nearest_neighbours_are_found_in_the_clustering_space_not_in_all_columns():
    from synapse_core.cluster.run import run_clustering
    from synapse_core.cluster.settings import ClusterSettings

    # Deep features place q next to p; a morphology column (not clustered with feature_set="feat")
    # would place s next to p if every feat_*/morph_* column were re-standardised.
    features = pd.DataFrame({"bbox_name": ["b"] * 6, "Var1": list("pqrstu"),
                             "feat_1": [0.0, 1.0, 3.0, 5.0, 11.0, 12.0],
                             "morph_volume_nm3": [0.0, 1000.0, 1000.0, 0.0, 1000.0, 1000.0]})
    result = run_clustering(features, ClusterSettings(k=2, projection="none", feature_set="feat", n_stability=0))
    nn = app_state.nearest_neighbours(result.table, result.features, "b|p", 2)
    assert nn["Var1"].tolist() == ["q", "r"]
    std = np.std([0.0, 1.0, 3.0, 5.0, 11.0, 12.0])
    assert nn["clustering_space_distance"].tolist() == pytest.approx([1.0 / std, 3.0 / std], rel=1e-6)
    everything = features[["feat_1", "morph_volume_nm3"]].to_numpy()
    everything = (everything - everything.mean(0)) / everything.std(0)
    assert np.argsort(np.linalg.norm(everything - everything[0], axis=1))[1] == 3  # "s": the two spaces differ


def test_nearest_neighbours_of_an_unknown_synapse_is_an_error():
    table = pd.DataFrame({"bbox_name": ["b", "b"], "Var1": ["p", "q"]})
    with pytest.raises(UnknownSynapseError, match="synapse b/zz is not in the clustered table"):
        app_state.nearest_neighbours(table, np.zeros((2, 3)), "b|zz", 2)


def test_nearest_neighbours_need_one_clustering_space_row_per_table_row():
    table = pd.DataFrame({"bbox_name": ["b", "b"], "Var1": ["p", "q"]})
    with pytest.raises(ValueError, match=r"shape \(3, 2\); it must have one row per table row \(2\)"):
        app_state.nearest_neighbours(table, np.zeros((3, 2)), "b|p", 1)


def test_decoders_drop_values_that_are_not_allowed():
    assert app_state.decode_list("bbox1,../x,bbox3", ["bbox1", "bbox3"]) == ["bbox1", "bbox3"]
    assert app_state.decode_number("12", 0, 10, 5, int) == 5
    assert app_state.decode_number("abc", 0, 10, 5, int) == 5
    assert app_state.decode_number("7", 0, 10, 5, int) == 7
    assert app_state.decode_choice("3", [1, 2, 3], 1) == 3


def test_overlay_tints_only_mask_voxels_in_their_colour():
    raw = np.full((4, 4), 100, np.uint8)
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = 6  # vesicle
    mask[1, 1] = 7  # cleft
    rgb = overlay_slice(raw, mask, LabelIds(mito=5, vesicle=6, cleft=7, cleft2=7), opacity=1.0)
    assert tuple(rgb[0, 0]) == STRUCTURE_COLOURS["vesicle_cloud"]
    assert tuple(rgb[1, 1]) == STRUCTURE_COLOURS["cleft"]
    assert tuple(rgb[3, 3]) == (100, 100, 100)


def test_overlay_refuses_opacity_outside_unit_range():
    with pytest.raises(ValueError, match=r"opacity must be in \[0, 1\], got 1.5"):
        overlay_slice(np.zeros((2, 2), np.uint8), None, LabelIds(1, 2, 3, 3), opacity=1.5)


def test_gallery_gif_is_cached_and_zip_holds_one_gif_per_synapse(demo_dataset, tmp_path):
    from synapse_core.crops.settings import CropSettings
    from synapse_core.viz import gallery

    settings = CropSettings(size=32)
    first = gallery.synapse_gif(demo_dataset, "bbox1", "syn_001", settings, tmp_path)
    assert Image.open(io.BytesIO(first)).n_frames > 1
    key = gallery.picture_key(demo_dataset, "bbox1", "syn_001", settings, "gif", **gallery.gif_options())
    assert gallery.gallery_cache(tmp_path).get(key) == first
    data, discarded = gallery.gif_zip(demo_dataset, [("bbox1", "syn_001"), ("bbox2", "syn_002")], settings, tmp_path)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names == ["bbox1_syn_001.gif", "bbox2_syn_002.gif", "manifest.csv"]
    assert discarded == []


def test_gallery_zip_manifest_names_each_file_with_its_cluster_and_annotation(demo_dataset, tmp_path):
    import pandas as pd

    from synapse_core.crops.settings import CropSettings
    from synapse_core.viz import gallery

    table = pd.DataFrame({"bbox_name": ["bbox1", "bbox2"], "Var1": ["syn_001", "syn_002"], "cluster": [3, 1],
                          "annotation": ["docked", None], "selection_big": [True, False]})
    data, _ = gallery.gif_zip(demo_dataset, [("bbox2", "syn_002"), ("bbox1", "syn_001")], CropSettings(size=32),
                              tmp_path, table=table)
    manifest = pd.read_csv(io.BytesIO(zipfile.ZipFile(io.BytesIO(data)).read("manifest.csv")))
    assert manifest["file"].tolist() == ["bbox2_syn_002.gif", "bbox1_syn_001.gif"]
    assert manifest["cluster"].tolist() == [1, 3]
    assert manifest["annotation"].fillna("").tolist() == ["", "docked"]
    assert manifest["selection_big"].tolist() == [False, True]
    assert manifest["status"].tolist() == ["written", "written"]


def test_a_click_is_one_point_without_box_and_a_drag_is_a_box():
    from synapse_core.app.state import map_event

    point = {"customdata": ["b1|s1", "b1", "s1", "0"]}
    other = {"customdata": ["b1|s2", "b1", "s2", "0"]}
    assert map_event({"selection": {"points": [point], "box": [], "lasso": []}}) == ("click", ["b1|s1"])
    assert map_event({"selection": {"points": [point], "box": [{"x": [0, 1]}], "lasso": []}}) == ("box", ["b1|s1"])
    assert map_event({"selection": {"points": [point, other], "box": [], "lasso": []}}) == ("box", ["b1|s1", "b1|s2"])
    assert map_event({"selection": {"points": [], "box": [], "lasso": []}}) == ("none", [])


def test_adding_to_a_selection_keeps_order_and_drops_duplicates():
    from synapse_core.app.state import add_to_selection

    assert add_to_selection(["a", "b"], ["b", "c", "c"]) == ["a", "b", "c"]


def test_measurements_read_in_words_with_units_and_absent_structures_say_so():
    from synapse_core.app.state import plain_measurements

    row = {"morph_vesicle_cloud_volume_um3": 0.0123, "morph_cleft_thickness_nm": 40.6,
           "morph_mito_to_cleft_distance_nm": float("nan"), "morph_has_mito": 0, "morph_cleft_intensity_mean": 0.26,
           "cluster": 3}
    assert plain_measurements(row) == [
        ("vesicle cloud volume", "0.0123 µm³"), ("cleft thickness", "40.6 nm"),
        ("mitochondria to cleft distance", "not in the crop"), ("cleft intensity mean", "0.26 (normalised gray, 0–1)")]


def test_a_view_is_stored_under_its_hash_and_read_back(tmp_path):
    from synapse_core.app.state import load_view, save_view

    key = save_view(tmp_path, '{"format": "x"}')
    assert len(key) == 16 and (tmp_path / "views" / f"{key}.json").exists()
    assert load_view(tmp_path, key) == '{"format": "x"}'
    assert save_view(tmp_path, '{"format": "x"}') == key


def test_an_unknown_or_malformed_view_key_reads_nothing(tmp_path):
    from synapse_core.app.state import load_view

    assert load_view(tmp_path, "0123456789abcdef") is None
    assert load_view(tmp_path, "../../etc/passwd") is None


@pytest.mark.parametrize("n", [1, 4, 40])
def test_nearest_neighbours_are_those_of_a_stable_sort_of_every_float64_distance(n):
    rng = np.random.default_rng(3)
    space = rng.normal(size=(40, 5)).astype(np.float32)
    space[[7, 19, 30]] = space[2] + 0.5  # ties, broken by table order
    table = pd.DataFrame({"bbox_name": ["b"] * 40, "Var1": [f"s{i}" for i in range(40)]})
    d = np.linalg.norm(space.astype(np.float64) - space[2].astype(np.float64), axis=1)
    d[2] = np.inf
    order = np.argsort(d, kind="stable")[: min(n, 39)]
    nn = app_state.nearest_neighbours(table, space, "b|s2", n)
    assert nn["Var1"].tolist() == table["Var1"].to_numpy()[order].tolist()
    assert nn["clustering_space_distance"].tolist() == d[order].tolist()  # the same float64 values
