"""Synapse-table and row faults: each gives a message naming the file, row and column, and keeps every valid row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from faultlib import synapse_rows, tables_root

from synapse_core.data.dataset import open_dataset
from synapse_core.data.tables import TableError, read_table


def _open(tmp_path, write):
    return open_dataset(tables_root(tmp_path, write), cache_dir=tmp_path / "cache")


def _issues(ds):
    return ds.report.row_issues.to_dict("records")


def test_a_semicolon_csv_is_read(tmp_path):
    ds = _open(tmp_path, lambda d: synapse_rows().to_csv(d / "bbox1.csv", sep=";", index=False))
    assert list(ds.synapses["Var1"]) == ["syn_1", "syn_2", "syn_3"]
    assert list(ds.synapses["central_coord_1"]) == [12, 12, 12]


def test_a_tab_separated_csv_is_read(tmp_path):
    ds = _open(tmp_path, lambda d: synapse_rows().to_csv(d / "bbox1.csv", sep="\t", index=False))
    assert len(ds.synapses) == 3


def test_a_csv_saved_under_an_xlsx_name_is_read(tmp_path):
    ds = _open(tmp_path, lambda d: synapse_rows().to_csv(d / "bbox1.xlsx", index=False))
    assert list(ds.synapses["note"]) == ["row 1", "row 2", "row 3"]


def test_a_latin1_csv_keeps_its_accented_text(tmp_path):
    def write(d):
        rows = synapse_rows()
        rows["note"] = ["épine", "bouton à vésicules", "naïve"]
        (d / "bbox1.csv").write_bytes(rows.to_csv(index=False).encode("latin-1"))

    ds = _open(tmp_path, write)
    assert list(ds.synapses["note"]) == ["épine", "bouton à vésicules", "naïve"]


def test_a_spreadsheet_saved_under_a_csv_name_is_named_with_the_fix(tmp_path):
    path = tmp_path / "bbox1.csv"
    synapse_rows().to_excel(path, index=False)
    with pytest.raises(TableError, match=r"bbox1.csv: cannot read .*xlsx spreadsheet saved under a .csv name; rename "
                                         r"it to .xlsx"):
        read_table(path)


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02garbage\xff", b"PK\x03\x04 truncated zip"])
def test_an_unreadable_table_is_named(tmp_path, content):
    path = tmp_path / "bbox1.xlsx"
    path.write_bytes(content)
    with pytest.raises(TableError, match=f"{path}: "):
        read_table(path)


def test_missing_columns_are_named_with_the_columns_found(tmp_path):
    path = tmp_path / "t.csv"
    synapse_rows().drop(columns=["side_2_coord_3"]).rename(columns={"Var1": "id"}).to_csv(path, index=False)
    with pytest.raises(TableError) as err:
        read_table(path)
    assert "missing column(s) ['Var1', 'side_2_coord_3']" in str(err.value) and "columns found: id," in str(err.value)


def test_a_repeated_column_is_named(tmp_path):
    path = tmp_path / "t.csv"
    text = synapse_rows().to_csv(index=False).splitlines()
    path.write_text("\n".join([text[0] + ",Var1"] + [line + ",x" for line in text[1:]]))
    with pytest.raises(TableError, match=r"column\(s\) \['Var1'\] appear more than once"):
        read_table(path)


def test_a_damaged_table_of_one_bbox_leaves_the_other_bboxes_rows(tmp_path):
    from faultlib import write_small_dataset

    root = write_small_dataset(tmp_path / "DATA", bboxes=("bbox1", "bbox2"))
    (root / "excel" / "bbox2.xlsx").write_bytes(b"\x00garbage")
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    assert ds.synapses.groupby("bbox_name").size().to_dict() == {"bbox1": 3}
    assert any("bbox2.xlsx: not an Excel file" in m for m in ds.report.fatal)


@pytest.mark.parametrize("value", ["inf", "-inf", "1e400", np.inf])
def test_an_infinite_coordinate_is_a_row_error_naming_the_column(tmp_path, value):
    ds = _open(tmp_path, lambda d: synapse_rows(overrides={(1, "central_coord_2"): value}).to_csv(
        d / "bbox1.csv", index=False))
    (issue,) = _issues(ds)
    assert (issue["Var1"], issue["row"], issue["column"]) == ("syn_2", 3, "central_coord_2")
    assert issue["problem"].startswith("not a finite number")
    assert list(ds.synapses["Var1"]) == ["syn_1", "syn_3"]


@pytest.mark.parametrize("value", [1e30, -1, 24])
def test_a_coordinate_outside_the_volume_is_named_and_no_overflow(tmp_path, value):
    ds = _open(tmp_path, lambda d: synapse_rows(overrides={(0, "side_1_coord_1"): value}).to_csv(
        d / "bbox1.csv", index=False))
    (issue,) = _issues(ds)
    assert issue["Var1"] == "syn_1" and issue["column"] == "side_1_coord_1..3" and "outside the volume" in issue["problem"]
    assert list(ds.synapses["Var1"]) == ["syn_2", "syn_3"]


def test_ids_differing_only_by_spaces_are_duplicates_and_the_kept_row_is_named(tmp_path):
    ds = _open(tmp_path, lambda d: synapse_rows(overrides={(0, "Var1"): "syn_2 "}).to_csv(d / "bbox1.csv", index=False))
    (issue,) = _issues(ds)
    assert issue["row"] == 3 and issue["column"] == "Var1"
    assert "duplicate (bbox_name, Var1) = (bbox1, syn_2)" in issue["problem"]
    assert "row 2 of " in issue["problem"] and "is kept" in issue["problem"]
    assert list(ds.synapses["Var1"]) == ["syn_2", "syn_3"]
    assert ds.synapses["Var1"].is_unique


def test_a_valid_row_is_kept_when_it_duplicates_an_invalid_one(tmp_path):
    rows = synapse_rows(overrides={(0, "central_coord_1"): "twelve", (1, "Var1"): "syn_1"})
    ds = _open(tmp_path, lambda d: rows.to_csv(d / "bbox1.csv", index=False))
    assert list(ds.synapses["Var1"]) == ["syn_1", "syn_3"]
    assert list(ds.synapses["note"]) == ["row 2", "row 3"]  # the valid second row, not the broken first
    (issue,) = _issues(ds)
    assert issue["row"] == 2 and issue["column"] == "central_coord_1" and "not a number: 'twelve'" in issue["problem"]


def test_a_duplicate_of_a_row_with_a_point_on_background_is_kept(tmp_path):
    rows = synapse_rows(overrides={(0, "side_1_coord_2"): 0, (1, "Var1"): "syn_1"})
    ds = _open(tmp_path, lambda d: rows.to_csv(d / "bbox1.csv", index=False))
    assert list(ds.synapses["note"]) == ["row 2", "row 3"]


def test_a_missing_id_is_named(tmp_path):
    ds = _open(tmp_path, lambda d: synapse_rows(overrides={(2, "Var1"): ""}).to_csv(d / "bbox1.csv", index=False))
    (issue,) = _issues(ds)
    assert (issue["row"], issue["column"], issue["problem"]) == (4, "Var1", "missing synapse id")
    assert list(ds.synapses["Var1"]) == ["syn_1", "syn_2"]


def test_an_id_with_markup_is_kept_as_text(tmp_path):
    evil = '<img src=x onerror="alert(1)">'
    ds = _open(tmp_path, lambda d: synapse_rows(overrides={(0, "Var1"): evil}).to_csv(d / "bbox1.csv", index=False))
    assert ds.synapses["Var1"].iloc[0] == evil


def test_fractional_coordinates_are_rounded_to_voxels(tmp_path):
    ds = _open(tmp_path, lambda d: synapse_rows(overrides={(0, "central_coord_2"): 10.4}).to_csv(
        d / "bbox1.csv", index=False))
    assert ds.synapses["central_coord_2"].iloc[0] == 10 and ds.synapses["central_coord_2"].dtype == np.int64


def test_coordinates_as_text_with_spaces_are_read(tmp_path):
    rows = synapse_rows().astype({"central_coord_1": object})
    rows.loc[0, "central_coord_1"] = " 12 "
    ds = _open(tmp_path, lambda d: rows.to_csv(d / "bbox1.csv", index=False))
    assert len(ds.synapses) == 3 and pd.api.types.is_integer_dtype(ds.synapses["central_coord_1"])
