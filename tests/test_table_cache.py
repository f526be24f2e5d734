"""Parsed synapse tables are kept in the cache folder and read back only while the file is unchanged."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from conftest import synapse_rows

from synapse_core.data.dataset import read_table_cached
from synapse_core.data.paths import allowed_roots
from synapse_core.data.tables import TableError, read_table


def test_a_cached_table_equals_the_parsed_one_and_a_changed_file_is_parsed_again(tmp_path):
    path = tmp_path / "bbox1.xlsx"
    synapse_rows(3).to_excel(path, index=False)
    first = read_table_cached(path, None, tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "tables").glob("*.parquet"))) == 1
    pd.testing.assert_frame_equal(read_table_cached(path, None, tmp_path / "cache"), first, check_exact=True)
    pd.testing.assert_frame_equal(first, read_table(path), check_exact=True)
    synapse_rows(4).to_excel(path, index=False)
    os.utime(path, ns=(1, 1))  # another mtime even on a coarse clock
    assert list(read_table_cached(path, None, tmp_path / "cache")["Var1"]) == ["syn_1", "syn_2", "syn_3", "syn_4"]


def test_a_column_mixing_text_and_numbers_is_not_stored_and_still_read(tmp_path):
    path = tmp_path / "bbox1.xlsx"
    synapse_rows(3, {(1, "central_coord_2"): "four"}).to_excel(path, index=False)
    table = read_table_cached(path, None, tmp_path / "cache")
    assert table["central_coord_2"].tolist() == [10, "four", 12]
    assert not list((tmp_path / "cache" / "tables").glob("*.parquet"))


def test_a_cached_table_outside_the_data_roots_is_still_refused(tmp_path):
    path = tmp_path / "elsewhere" / "bbox1.xlsx"
    path.parent.mkdir()
    synapse_rows(2).to_excel(path, index=False)
    read_table_cached(path, None, tmp_path / "cache")
    (tmp_path / "DATA").mkdir()
    with pytest.raises(TableError, match="outside the allowed data roots"):
        read_table_cached(path, allowed_roots(tmp_path / "DATA", environ={}), tmp_path / "cache")
