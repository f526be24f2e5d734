"""Validation: fatal problems name the file/folder; row problems name bbox, Var1 and column."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import small_volumes, synapse_rows, write_small_dataset, write_stack
from synapse_core.cli.parser import main
from synapse_core.data.dataset import DatasetError, open_dataset


def _issues(tmp_path, overrides):
    root = write_small_dataset(tmp_path / "DATA", rows=synapse_rows(3, overrides))
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    return ds, ds.report.row_issues


def test_missing_coordinate_names_bbox_var1_and_column_and_keeps_other_rows(tmp_path):
    ds, issues = _issues(tmp_path, {(1, "central_coord_2"): None})
    assert issues[["bbox_name", "Var1", "column", "problem", "action"]].values.tolist() == [
        ["bbox1", "syn_2", "central_coord_2", "missing coordinate", "skipped"]]
    assert list(ds.synapses["Var1"]) == ["syn_1", "syn_3"]


def test_non_numeric_coordinate_is_reported_with_its_value(tmp_path):
    _, issues = _issues(tmp_path, {(0, "side_2_coord_3"): "four"})
    assert issues.iloc[0]["column"] == "side_2_coord_3"
    assert issues.iloc[0]["problem"] == "not a number: 'four'"
    assert issues.iloc[0]["row"] == 2  # spreadsheet row (header is row 1)


def test_point_outside_the_volume_names_the_point_and_the_limits(tmp_path):
    ds, issues = _issues(tmp_path, {(2, "central_coord_3"): 50})
    assert issues.iloc[0]["Var1"] == "syn_3"
    assert issues.iloc[0]["column"] == "central_coord_1..3"
    assert issues.iloc[0]["problem"] == (
        "central point (x, y, z) = (12, 12, 50) is outside the volume; valid x < 24, y < 24, z < 8")
    assert len(ds.synapses) == 2


def test_duplicate_bbox_and_var1_keeps_the_first(tmp_path):
    ds, issues = _issues(tmp_path, {(2, "Var1"): "syn_1"})
    problem = issues.iloc[0]["problem"]
    assert problem.startswith("duplicate (bbox_name, Var1) = (bbox1, syn_1): row 2 of ")
    assert problem.endswith(" has the same id and is kept; give this synapse its own Var1")
    assert list(ds.synapses["note"]) == ["row 1", "row 2"]


def test_side_point_on_background_is_skipped(tmp_path):
    ds, issues = _issues(tmp_path, {(0, "side_1_coord_2"): 0})  # y = 0 is the background border
    assert issues.iloc[0]["column"] == "side_1_coord_1..3"
    assert "lies on background (seg id 0)" in issues.iloc[0]["problem"]
    assert list(ds.synapses["Var1"]) == ["syn_2", "syn_3"]


def test_both_sides_in_one_neuron_is_a_warning_and_the_row_is_kept(tmp_path):
    ds, issues = _issues(tmp_path, {(0, "side_2_coord_1"): 9})  # x = 9 is neuron 3, like side 1
    assert issues.iloc[0]["action"] == "kept"
    assert "same neuron (seg id 3)" in issues.iloc[0]["problem"]
    assert len(ds.synapses) == 3


def test_missing_var1_is_reported(tmp_path):
    _, issues = _issues(tmp_path, {(1, "Var1"): None})
    assert issues[["row", "column", "problem"]].values.tolist() == [[3, "Var1", "missing synapse id"]]


def test_missing_required_column_is_fatal_and_names_file_and_column(tmp_path):
    root = write_small_dataset(tmp_path / "DATA", rows=synapse_rows().drop(columns=["side_2_coord_3"]))
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    assert len(ds.report.fatal) == 1
    assert "bbox1.xlsx: missing column(s) ['side_2_coord_3']" in ds.report.fatal[0]


def test_missing_seg_folder_is_fatal_for_that_bbox_only(tmp_path):
    root = write_small_dataset(tmp_path / "DATA", bboxes=("bbox1", "bbox2"))
    for f in (root / "seg" / "bbox2").iterdir():
        f.unlink()
    (root / "seg" / "bbox2").rmdir()
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    assert ds.report.fatal == [f"bbox2: segmentation folder {root / 'seg' / 'bbox2'} is missing "
                               f"(expected next to {root / 'raw' / 'bbox2'})"]
    assert list(ds.bboxes) == ["bbox1"]
    assert set(ds.report.row_issues["bbox_name"]) == {"bbox2"}
    assert len(ds.synapses) == 3


def test_slice_counts_that_differ_are_fatal(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    (root / "mask" / "bbox1" / "slice_7.tif").unlink()
    with pytest.raises(DatasetError) as err:
        open_dataset(root, cache_dir=tmp_path / "cache")
    assert "bbox1: slice counts differ: raw 8" in str(err.value)
    assert "mask 7" in str(err.value)


def test_slice_shapes_that_differ_are_fatal(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    raw, seg, _ = small_volumes()
    write_stack(root / "mask" / "bbox1", np.zeros((8, 20, 24), np.uint8))
    with pytest.raises(DatasetError) as err:
        open_dataset(root, cache_dir=tmp_path / "cache")
    assert "bbox1: slice shapes (rows, columns) differ: raw (24, 24)" in str(err.value)
    assert "mask (20, 24)" in str(err.value)


def test_a_slice_with_another_shape_inside_the_stack_is_named(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    write_stack(root / "raw" / "bbox1", np.zeros((1, 20, 24), np.uint8), names=["slice_5.tif"])
    with pytest.raises(DatasetError) as err:
        open_dataset(root, cache_dir=tmp_path / "cache")
    assert "slice_5.tif: slice shape (20, 24) differs from slice_0.tif (24, 24)" in str(err.value)


def test_unreadable_slice_is_fatal_and_names_the_file(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    (root / "seg" / "bbox1" / "slice_3.tif").write_bytes(b"not a tiff")
    with pytest.raises(DatasetError) as err:
        open_dataset(root, cache_dir=tmp_path / "cache")
    assert f"{root / 'seg' / 'bbox1' / 'slice_3.tif'}: unreadable TIFF" in str(err.value)


def test_missing_data_folder_names_it(tmp_path):
    with pytest.raises(DatasetError, match="nowhere: data folder not found"):
        open_dataset(tmp_path / "nowhere", cache_dir=tmp_path / "cache")


def test_root_without_raw_folder_says_what_layout_is_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no raw/ folder"):
        open_dataset(tmp_path / "empty", cache_dir=tmp_path / "cache")


def test_validate_cli_exits_zero_on_good_data(tmp_path, capsys):
    root = write_small_dataset(tmp_path / "DATA")
    assert main(["validate", "--data", str(root), "--cache-dir", str(tmp_path / "c")]) == 0
    assert "Synapses: 3 valid of 3 rows, 0 skipped" in capsys.readouterr().out


def test_validate_cli_exits_nonzero_on_fatal_problems(tmp_path, capsys):
    root = write_small_dataset(tmp_path / "DATA", bboxes=("bbox1", "bbox2"))
    (root / "raw" / "bbox2" / "slice_0.tif").unlink()
    assert main(["validate", "--data", str(root), "--cache-dir", str(tmp_path / "c")]) == 1
    out = capsys.readouterr().out
    assert "FATAL (1):" in out and "bbox2: slice counts differ" in out


def test_validate_cli_exits_zero_with_row_problems_and_lists_them(tmp_path, capsys):
    root = write_small_dataset(tmp_path / "DATA", rows=synapse_rows(3, {(1, "central_coord_2"): None}))
    assert main(["validate", "--data", str(root), "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "bbox1/syn_2 (row 3 of" in out and "column central_coord_2: missing coordinate [skipped]" in out


def test_validate_cli_prints_each_bbox_voxel_size_labels_and_segmentation_types(tmp_path, capsys):
    root = write_small_dataset(tmp_path / "DATA")
    (root / "synapse_dataset.toml").write_text("voxel_size_nm = [40, 4, 4]\n")
    assert main(["validate", "--data", str(root), "--cache-dir", str(tmp_path / "c"), "--size", "8"]) == 0
    out = capsys.readouterr().out
    assert "    voxel size 40×4×4 nm (z, y, x) from synapse_dataset.toml voxel_size_nm, anisotropy 10" in out
    assert ("    mask labels: mito 5, vesicle 6, cleft 7, cleft2 7 (the original tool's label table "
            "(bbox1 and unknown names)); ids in the mask: 6") in out
    assert "Segmentation types per bbox:\n  bbox1: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13" in out


def test_validate_cli_warns_when_the_stack_is_thinner_than_the_crop_and_names_the_numbers(tmp_path, capsys):
    root = write_small_dataset(tmp_path / "DATA")  # 8 slices
    (root / "synapse_dataset.toml").write_text("voxel_size_nm = [8, 8, 8]\n")
    assert main(["validate", "--data", str(root), "--cache-dir", str(tmp_path / "c")]) == 0  # default crop: 80
    out = capsys.readouterr().out
    assert ("  - bbox1: the stack is 64 nm (8 voxels × 8 nm) in z, thinner than a crop (640 nm (80 voxels)); "
            "90% of every crop's z extent is padding outside the data") in out
    assert "  - bbox1: the stack is 192 nm (24 voxels × 8 nm) in y" in out


def test_validate_cli_reports_label_ids_absent_from_the_mask_with_the_line_to_add(tmp_path, capsys):
    root = write_small_dataset(tmp_path / "DATA")  # mask holds only id 6
    assert main(["validate", "--data", str(root), "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    line = (f"add under [bboxes.bbox1] in {root / 'synapse_dataset.toml'}: "
            'labels = { mito = "none", vesicle = 6, cleft = "none", cleft2 = "none" }')
    assert (f"  - bbox1: mito id 5 (mitochondria, from the original tool's label table (bbox1 and unknown names)) "
            f"occurs nowhere in the mask; ids in the mask: 6 (128 voxels). If bbox1 has no mitochondria, say so, or "
            f"give the right id: {line}") in out
    assert "  - bbox1: cleft id 7 (cleft, from" in out and out.count("occurs nowhere") == 2


def test_validate_cli_on_a_bbox_without_mask_says_which_types_work(tmp_path, capsys):
    root = write_small_dataset(tmp_path / "DATA")
    for f in (root / "mask" / "bbox1").iterdir():
        f.unlink()
    (root / "mask" / "bbox1").rmdir()
    assert main(["validate", "--data", str(root), "--cache-dir", str(tmp_path / "c"), "--segmentation-type", "5"]) == 0
    out = capsys.readouterr().out
    assert "segmentation type 5 (Sides + vesicles + cleft) cannot be used for bbox bbox1: it has no semantic mask" in out
    assert "  bbox1: 0, 3 (not 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13: no semantic mask)" in out
