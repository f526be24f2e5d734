"""Data page (AppTest): data roots, bboxes, validation report, slice viewer, synapse table."""

from __future__ import annotations

import pytest
from app_helpers import errors, metrics, open_page

pytestmark = pytest.mark.usefixtures("demo_app")


def test_data_page_shows_the_demo_dataset():
    at = open_page()
    m = metrics(at)
    assert (m["Bboxes"], m["Valid synapses"], m["Skipped rows"]) == ("4", "60", "0")
    assert m["Voxel size (z, y, x) nm"] == "8 × 8 × 8"
    assert at.selectbox(key="w_root").options == ["demo"]


def test_choosing_one_bbox_filters_the_synapse_table():
    at = open_page()
    at.multiselect(key="w_bboxes").set_value(["bbox2"]).run()
    assert metrics(at)["Valid synapses"] == "15"
    table = at.dataframe[-1].value
    assert set(table["bbox_name"]) == {"bbox2"} and len(table) == 15


def test_slice_viewer_shows_the_chosen_slice_and_nearby_synapses(demo_dataset):
    at = open_page()
    at.selectbox(key="w_view_bbox").set_value("bbox1").run()
    at.slider(key="w_view_z").set_value(38).run()
    caption = next(c.value for c in at.caption if c.value.startswith("bbox1, z = 38"))
    bbox1 = demo_dataset.synapses[demo_dataset.synapses["bbox_name"] == "bbox1"]
    n_within_3_slices = int(((bbox1["central_coord_3"] - 38).abs() <= 3).sum())
    assert n_within_3_slices > 1  # the demo plants synapse centres at z ≈ 38 ± 4
    assert int(caption.split(";")[1].split()[0]) == n_within_3_slices


def test_url_query_restores_bbox_and_slice():
    at = open_page(query={"view_bbox": "bbox3", "view_z": "20"})
    assert at.selectbox(key="w_view_bbox").value == "bbox3"
    assert at.slider(key="w_view_z").value == 20


def test_url_query_with_unknown_bbox_falls_back_to_a_valid_one():
    at = open_page(query={"view_bbox": "../../etc", "view_z": "100000"})
    assert at.selectbox(key="w_view_bbox").value == "bbox1"
    assert at.slider(key="w_view_z").value == 38  # the centre z of bbox1's first synapse


def test_jump_to_synapse_moves_the_slice_to_its_centre(demo_dataset):
    at = open_page()
    at.selectbox(key="w_view_bbox").set_value("bbox2").run()
    at.selectbox(key="view_jump").set_value("syn_007").run()
    expected = int(demo_dataset.synapse("bbox2", "syn_007")["central_coord_3"])
    assert at.slider(key="w_view_z").value == expected
    assert any(c.value.startswith(f"bbox2, z = {expected} of 112") for c in at.caption)


def test_only_configured_roots_are_offered(monkeypatch, demo_root, tmp_path):
    other = tmp_path / "empty_root"
    other.mkdir()
    monkeypatch.setenv("SYNAPSE_DATA_ROOTS", f"demo={demo_root}:scratch={other}")
    at = open_page()
    assert at.selectbox(key="w_root").options == ["demo", "scratch"]


def test_a_folder_that_is_not_a_dataset_shows_an_error(monkeypatch, tmp_path):
    (tmp_path / "lab" / "notes").mkdir(parents=True)
    (tmp_path / "lab" / "notes" / "readme.txt").write_text("not EM data")
    monkeypatch.setenv("SYNAPSE_DATA_ROOTS", f"lab={tmp_path / 'lab'}")
    at = open_page()
    at.selectbox(key="w_subfolder").set_value("notes").run()
    assert any("not a usable dataset" in e and "no raw/ folder" in e for e in errors(at))


def test_slice_viewer_draws_side_points_and_a_scale_bar_in_nm(demo_dataset):
    import json

    at = open_page(query={"view_z": str(int(demo_dataset.synapses["central_coord_3"].iloc[0]))})
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t.get("name") for t in spec["data"]]
    assert "side 1 point" in names and "side 2 point" in names
    bar = spec["layout"]["annotations"][0]["text"]
    assert bar.endswith(" nm") or bar.endswith(" µm")


def select_table_row(at, row: int):
    """Select row ``row`` of the synapse table as a click would (its selection state), and rerun."""
    at.session_state["data_table"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    return at.run()


def chosen_trace(at) -> dict | None:
    import json

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return next((t for t in spec["data"] if str(t.get("name", "")).startswith("chosen")), None)


def test_selecting_a_table_row_shows_that_synapse_in_the_viewer(demo_dataset):
    at = open_page()
    listed = at.dataframe[-1].value
    row = int((listed["bbox_name"] == "bbox3").to_numpy().argmax()) + 2  # the third synapse of bbox3
    bbox, var1 = listed.iloc[row]["bbox_name"], listed.iloc[row]["Var1"]
    select_table_row(at, row)
    centre = demo_dataset.synapse(bbox, var1)
    assert at.selectbox(key="w_view_bbox").value == bbox
    assert at.slider(key="w_view_z").value == int(centre["central_coord_3"])
    assert at.selectbox(key="view_jump").value == var1
    assert chosen_trace(at)["name"] == f"chosen: {var1}"
    assert at.query_params["view_synapse"] == f"{bbox}|{var1}"


def test_jumping_to_a_synapse_selects_its_table_row():
    at = open_page()
    at.selectbox(key="w_view_bbox").set_value("bbox2").run()
    at.selectbox(key="view_jump").set_value("syn_007").run()
    listed = at.dataframe[-1].value
    (row,) = at.session_state["data_table"]["selection"]["rows"]
    assert (listed.iloc[row]["bbox_name"], listed.iloc[row]["Var1"]) == ("bbox2", "syn_007")
    assert any(c.value.startswith("Chosen synapse") and "bbox2 / syn_007, centre" in c.value for c in at.caption)


def test_a_link_with_a_synapse_opens_the_viewer_on_it(demo_dataset):
    at = open_page(query={"view_synapse": "bbox4|syn_005"})
    assert at.selectbox(key="w_view_bbox").value == "bbox4"
    assert at.slider(key="w_view_z").value == int(demo_dataset.synapse("bbox4", "syn_005")["central_coord_3"])
    assert chosen_trace(at)["name"] == "chosen: syn_005"
