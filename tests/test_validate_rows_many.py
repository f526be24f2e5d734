"""validate_rows on large tables: the vectorised screen finds the same problems, in the same order."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import small_volumes

from synapse_core.data.tables import SOURCE_FILE, SOURCE_ROW
from synapse_core.data.validate import validate_rows


def _table(n: int) -> pd.DataFrame:
    """``n`` valid rows of bbox1 for :func:`small_volumes` (side points in neurons 3 and 4)."""
    t = pd.DataFrame({
        "bbox_name": "bbox1", "Var1": [f"syn_{i}" for i in range(n)],
        "central_coord_1": 12, "central_coord_2": 10, "central_coord_3": 4,
        "side_1_coord_1": 8, "side_1_coord_2": 10, "side_1_coord_3": 4,
        "side_2_coord_1": 16, "side_2_coord_2": 10, "side_2_coord_3": 4,
    })
    t[SOURCE_FILE] = "bbox1.xlsx"
    t[SOURCE_ROW] = t.index + 2
    return t.astype({c: object for c in ("Var1", "central_coord_2", "side_1_coord_3", "side_2_coord_1")})


def test_problem_rows_among_thousands_of_valid_rows_are_each_reported_in_row_order():
    t = _table(3000)
    t.loc[10, "Var1"] = None                 # missing id
    t.loc[700, "central_coord_2"] = "four"   # not a number
    t.loc[701, "side_1_coord_3"] = np.inf    # not finite
    t.loc[1500, "central_coord_2"] = 30      # outside (y < 24)
    t.loc[2000, "bbox_name"] = "bbox9"       # no volumes
    t.loc[2500, "side_2_coord_1"] = 9        # same neuron as side 1: kept
    t.loc[2600, "side_1_coord_2"] = 0        # background border
    t.loc[2999, "Var1"] = "syn_5 "           # duplicate of row 5 once stripped
    _, seg, _ = small_volumes()
    valid, issues = validate_rows(t, {"bbox1": seg.shape}, {"bbox1": seg})
    assert issues[["row", "column", "action"]].values.tolist() == [
        [12, "Var1", "skipped"],
        [702, "central_coord_2", "skipped"],
        [703, "side_1_coord_3", "skipped"],
        [1502, "central_coord_1..3", "skipped"],
        [2002, "bbox_name", "skipped"],
        [2502, "side_1_coord_1..3/side_2_coord_1..3", "kept"],
        [2602, "side_1_coord_1..3", "skipped"],
        [3001, "Var1", "skipped"],
    ]
    assert issues["problem"].iloc[1] == "not a number: 'four'"
    assert issues["problem"].iloc[-1].startswith("duplicate (bbox_name, Var1) = (bbox1, syn_5) (ids compared without "
                                                 "surrounding spaces: 'syn_5 ' and 'syn_5'): row 7 of bbox1.xlsx")
    assert len(valid) == 3000 - 7
    assert valid["central_coord_2"].dtype == np.int64 and "syn_2500" in set(valid["Var1"])
