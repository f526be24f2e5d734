"""``data.csv_ahead``: a CSV written from lines rendered ahead is byte for byte ``DataFrame.to_csv``'s."""

import numpy as np
import pandas as pd

from synapse_core.data.csv_ahead import (
    RenderedAhead,
    render_ahead,
    render_rows,
    write_csv,
)


def _table(n=25):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "bbox_name": [f"bbox{i % 3}" for i in range(n)],
        "Var1": [f'syn "{i}", left' if i % 4 == 0 else f"syn{i}" for i in range(n)],  # quotes and commas
        "feat_1": rng.normal(size=n) * 10.0 ** rng.integers(-8, 17, size=n),  # scientific and plain notation
        "feat_2": rng.normal(size=n).astype(np.float32),
        "count": np.arange(n),
        "flag": np.arange(n) % 2 == 0,
    })
    df.loc[3, "feat_1"] = np.nan
    df.loc[5, "feat_2"] = -0.0
    df.loc[7, "Var1"] = None
    return df


def _added(df):
    out = df.copy()
    out["cluster"] = np.arange(len(df)) % 3
    out["proj_1"] = np.linspace(-1, 1, len(df), dtype=np.float32)
    out["cluster_space"] = "standard-scaled feat_*"
    return out


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_all_rows_rendered_ahead_give_to_csv_bytes(tmp_path):
    df = _table()
    ahead = render_ahead(df, keep_going=lambda: True, chunk=7)
    full = _added(df)
    write_csv(full, tmp_path / "a.csv", ahead)
    full.to_csv(tmp_path / "b.csv", index=False)
    assert _read(tmp_path / "a.csv") == _read(tmp_path / "b.csv")


def test_rows_rendered_before_the_stop_are_used_and_the_rest_rendered_at_writing(tmp_path):
    df = _table()
    calls = iter([True, True, False])
    ahead = render_ahead(df, keep_going=lambda: next(calls), chunk=7)
    assert len(ahead.lines) == 14
    full = _added(df)
    write_csv(full, tmp_path / "a.csv", ahead)
    full.to_csv(tmp_path / "b.csv", index=False)
    assert _read(tmp_path / "a.csv") == _read(tmp_path / "b.csv")


def test_nothing_is_rendered_when_the_wait_is_already_over():
    assert render_ahead(_table(), keep_going=lambda: False) is None


def test_a_field_with_a_line_break_is_not_rendered_ahead():
    df = _table()
    df.loc[2, "Var1"] = "two\nlines"
    assert render_rows(df, 0, len(df)) is None
    assert render_ahead(df, keep_going=lambda: True) is None


def test_lines_of_other_columns_are_not_used(tmp_path):
    full = _added(_table())
    stale = RenderedAhead(["Var1", "bbox_name"], ["x,y"] * 5)  # not the table's leading columns
    write_csv(full, tmp_path / "a.csv", stale)
    full.to_csv(tmp_path / "b.csv", index=False)
    assert _read(tmp_path / "a.csv") == _read(tmp_path / "b.csv")
