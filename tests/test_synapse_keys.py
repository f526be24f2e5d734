"""Synapse keys: ids, the one row lookup and its error, file names shared by the CLI and the dashboard."""

from __future__ import annotations

import pandas as pd
import pytest

from synapse_core.data.synapse_keys import (
    UnknownSynapseError,
    split_synapse_id,
    synapse_file_name,
    synapse_ids,
    synapse_row,
    synapse_rows,
)


@pytest.fixture
def table():
    return pd.DataFrame({"bbox_name": ["bbox1", "bbox1", "bbox2", "bbox2", "bbox2"],
                         "Var1": ["a", "b", "a", "c", "007"], "x": [1, 2, 3, 4, 5]})


def test_synapse_ids_join_bbox_and_var1(table):
    assert synapse_ids(table).tolist() == ["bbox1|a", "bbox1|b", "bbox2|a", "bbox2|c", "bbox2|007"]
    assert split_synapse_id("bbox2|syn|7") == ("bbox2", "syn|7")


def test_rows_come_back_in_table_order_whatever_the_key_order(table):
    rows = synapse_rows(table, ["bbox2|c", ("bbox1", "a")])
    assert rows["x"].tolist() == [1, 4]


def test_one_row_is_found_by_bbox_and_var1_as_text(table):
    assert synapse_row(table, "bbox2", "007")["x"] == 5
    assert synapse_row(table.assign(Var1=[1, 2, 3, 4, 7]), "bbox2", "4")["x"] == 4


def test_an_unknown_synapse_is_one_error_that_names_it_and_the_bboxes(table):
    with pytest.raises(UnknownSynapseError) as info:
        synapse_row(table, "bbox2", "zz")
    assert str(info.value) == ("synapse bbox2/zz is not in the synapse table (bboxes there: bbox1, bbox2); "
                               "name synapses as BBOX/VAR1 from that table")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_unknown_synapses_can_be_left_out(table):
    assert synapse_rows(table, ["bbox1|b", "bbox9|q"], missing="ignore")["x"].tolist() == [2]


def test_many_unknown_synapses_are_listed_with_a_count(table):
    with pytest.raises(UnknownSynapseError, match=r"synapse b/0, b/1, b/2, b/3, b/4 and 2 more are not in"):
        synapse_rows(table, [("b", i) for i in range(7)])


def test_a_malformed_id_is_an_error():
    with pytest.raises(ValueError, match="must look like 'bbox1|Var1'"):
        synapse_rows(pd.DataFrame({"bbox_name": [], "Var1": []}), ["bbox1-a"])


@pytest.mark.parametrize("bbox, var1, name", [
    ("bbox1", "syn_001", "bbox1_syn_001.gif"),
    ("bbox 1", "a/b", "bbox_1_a_b-5c922ca0.gif"),
    ("bbox1", "a//:b", "bbox1_a_b-e12ba792.gif"),
    ("bbox1", 7, "bbox1_7.gif"),
])
def test_file_names_replace_unsafe_characters(bbox, var1, name):
    assert synapse_file_name(bbox, var1) == name


def test_ids_that_sanitise_alike_get_distinct_file_names():
    names = {synapse_file_name("bbox1", v) for v in ("a/b", "a_b", "a:b", "a b", "a\\b")}
    assert len(names) == 5


def test_a_very_long_id_gives_a_file_name_a_file_system_accepts():
    name = synapse_file_name("bbox1", "x" * 400)
    assert len(name.encode()) < 255 and name.endswith(".gif")


def test_the_cli_reports_an_unknown_synapse_as_a_user_error(demo_root, demo_cache, tmp_path, capsys):
    from synapse_core.cli.parser import main

    code = main(["gif", "--data", str(demo_root), "--cache-dir", str(demo_cache), "--out", str(tmp_path),
                 "--synapse", "bbox1/syn_001", "bbox1/nope"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: synapse bbox1/nope is not in the synapse table (bboxes there: bbox1,")
