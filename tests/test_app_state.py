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
from synapse_core.viz.slice_overlay import STRUCTURE_COLOURS, overlay_slice


@pytest.fixture
def clustered():
    return pd.DataFrame({
        "bbox_name": ["bbox1", "bbox1", "bbox2", "bbox2", "bbox2"],
        "Var1": ["a", "b", "a", "c", "d"],
        "cluster": [0, 0, 1, 1, 1],
        "distance_to_centroid": [0.5, 0.1, 0.9, 0.2, 0.4],
    })


def test_synapse_ids_join_bbox_and_var1(clustered):
    assert app_state.synapse_ids(clustered).tolist() == ["bbox1|a", "bbox1|b", "bbox2|a", "bbox2|c", "bbox2|d"]
    assert app_state.split_synapse_id("bbox2|syn|7") == ("bbox2", "syn|7")


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


def test_rows_for_ids_keeps_table_order(clustered):
    rows = app_state.rows_for_ids(clustered, ["bbox2|d", "bbox1|a"])
    assert rows["Var1"].tolist() == ["a", "d"]


def test_representatives_are_closest_to_the_centroid(clustered):
    assert app_state.representatives(clustered, 2) == {0: ["bbox1|b", "bbox1|a"], 1: ["bbox2|c", "bbox2|d"]}


def test_random_sample_is_reproducible_and_bounded_by_cluster_size(clustered):
    first = app_state.sample_per_cluster(clustered, 2, seed=3)
    assert first == app_state.sample_per_cluster(clustered, 2, seed=3)
    assert len(first[0]) == 2 and len(first[1]) == 2
    assert set(first[1]) <= {"bbox2|a", "bbox2|c", "bbox2|d"}
    assert app_state.sample_per_cluster(clustered, 10, seed=3)[0] == ["bbox1|a", "bbox1|b"]


def test_nearest_neighbours_are_ordered_by_standardised_distance():
    features = pd.DataFrame({"bbox_name": ["b"] * 4, "Var1": list("pqrs"),
                             "feat_1": [0.0, 1.0, 3.0, 10.0], "feat_2": [0.0, 0.0, 0.0, 0.0]})
    nn = app_state.nearest_neighbours(features, "b|p", 2, ["feat_1", "feat_2"])
    assert nn["Var1"].tolist() == ["q", "r"]
    std = np.std([0.0, 1.0, 3.0, 10.0])
    assert nn["feature_distance"].tolist() == pytest.approx([1.0 / std, 3.0 / std])


def test_nearest_neighbours_of_an_unknown_synapse_is_an_error():
    features = pd.DataFrame({"bbox_name": ["b"], "Var1": ["p"], "feat_1": [0.0]})
    with pytest.raises(ValueError, match="'b\\|zz' is not in the feature table"):
        app_state.nearest_neighbours(features, "b|zz", 2, ["feat_1"])


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
    with pytest.raises(ValueError, match="opacity"):
        overlay_slice(np.zeros((2, 2), np.uint8), None, LabelIds(1, 2, 3, 3), opacity=1.5)


def test_gallery_gif_is_cached_and_zip_holds_one_gif_per_synapse(demo_dataset, tmp_path):
    from synapse_core.viz import gallery
    from synapse_core.crops.build import CropSettings

    settings = CropSettings(size=32)
    first = gallery.synapse_gif(demo_dataset, "bbox1", "syn_001", settings, tmp_path)
    assert Image.open(io.BytesIO(first)).n_frames > 1
    key = gallery.picture_key(demo_dataset, "bbox1", "syn_001", settings, "gif", overlays=(), image="blended",
                              fps=10.0, scale=2, first_slice="center")
    assert gallery.gallery_cache(tmp_path).get(key) == first
    data, discarded = gallery.gif_zip(demo_dataset, [("bbox1", "syn_001"), ("bbox2", "syn_002")], settings, tmp_path)
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["bbox1_syn_001.gif", "bbox2_syn_002.gif"]
    assert discarded == []
