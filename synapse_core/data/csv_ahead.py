"""A table's CSV text rendered ahead: its leading columns while the process waits, the rest at writing (issue 16).

``cluster`` writes the input rows with the clusters and the map's coordinates appended. The map comes last
(a child process computes it, :mod:`synapse_core.cluster.map_process`) and formatting 10⁴ × 192 floats as CSV
takes seconds, so the waiting process renders the input columns meanwhile (:func:`render_ahead`) and
:func:`write_csv` adds the columns that came after. The file is byte for byte what ``DataFrame.to_csv(path,
index=False)`` writes: pandas formats each field on its own (no column-wide float format), so the rows of
two column blocks joined by a comma are the rows of the whole table.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

#: Rows rendered between two ``keep_going`` checks (~0.2 s for 192 float columns).
CHUNK_ROWS = 1000
#: Largest table (rows × columns) rendered ahead: its text is held in memory until it is written (~20 B a field).
MAX_CELLS = 5_000_000


@dataclass
class RenderedAhead:
    """CSV lines (no line ends, no header) of the first ``len(lines)`` rows of the table's first columns."""

    columns: list[str]
    lines: list[str]


def render_rows(df: pd.DataFrame, start: int, stop: int) -> list[str] | None:
    """The CSV lines of rows ``start:stop`` of ``df`` (``to_csv`` without index and header); None when a field
    holds a line break (its row spans several lines: such a table is written in one piece)."""
    text = df.iloc[start:stop].to_csv(index=False, header=False, lineterminator="\n")
    lines = text.split("\n")[:-1]
    return lines if len(lines) == stop - start else None


def render_ahead(df: pd.DataFrame, keep_going: Callable[[], bool], chunk: int = CHUNK_ROWS) -> RenderedAhead | None:
    """Render the rows of ``df`` in chunks of ``chunk`` while ``keep_going()`` is true.

    Returns None when nothing was rendered, the table is larger than :data:`MAX_CELLS`, or a field holds a
    line break.
    """
    if len(df) * max(len(df.columns), 1) > MAX_CELLS:
        return None
    lines: list[str] = []
    while len(lines) < len(df) and keep_going():
        got = render_rows(df, len(lines), min(len(lines) + chunk, len(df)))
        if got is None:
            return None
        lines.extend(got)
    return RenderedAhead(list(df.columns), lines) if lines else None


def write_csv(df: pd.DataFrame, path: str | os.PathLike, ahead: RenderedAhead | None = None) -> None:
    """Write ``df`` as ``df.to_csv(path, index=False)`` does, reusing the lines of ``ahead`` (rendered from
    ``df``'s leading columns with the same values) for its first rows."""
    n = 0 if ahead is None else len(ahead.lines)
    if not 0 < n <= len(df) or list(df.columns[:len(ahead.columns)]) != ahead.columns:
        df.to_csv(path, index=False)
        return
    rest = df.columns[len(ahead.columns):]
    head_rest = render_rows(df[rest], 0, n) if len(rest) else [None] * n
    tail = render_rows(df, n, len(df))
    if head_rest is None or tail is None:  # a line break in a field: in one piece
        df.to_csv(path, index=False)
        return
    header = df.iloc[:0].to_csv(index=False, lineterminator="\n").rstrip("\n")
    head = [a if b is None else a + "," + b for a, b in zip(ahead.lines, head_rest)]
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(os.linesep.join([header, *head, *tail]) + os.linesep)
