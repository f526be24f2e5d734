"""Validation of synapse rows and the report shown by the CLI and the dashboard's data page.

Fatal problems (a missing folder, raw/seg/mask stacks that differ, an unreadable file) exclude a
bbox; per-row problems skip just that row. Every good row is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from synapse_core.data.tables import COORD_COLUMNS, POINTS, SOURCE_FILE, SOURCE_ROW, point_columns
from synapse_core.data.volumes import point_values

ISSUE_COLUMNS = ("bbox_name", "Var1", "row", "column", "problem", "action", "file")


@dataclass
class ValidationReport:
    """What was found at a data root: fatal problems, warnings and per-row issues.

    ``row_issues`` has one row per problem: ``bbox_name``, ``Var1``, ``row`` (spreadsheet row
    number, header = 1), ``column``, ``problem``, ``action`` ("skipped" or "kept") and ``file``.
    """

    root: str
    fatal: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    row_issues: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ISSUE_COLUMNS))
    bboxes: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_rows_total: int = 0
    n_rows_valid: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing fatal was found."""
        return not self.fatal

    @property
    def n_rows_skipped(self) -> int:
        return self.n_rows_total - self.n_rows_valid

    def text(self) -> str:
        """The report as plain text (what ``python -m synapse_core validate`` prints)."""
        lines = [f"Data root: {self.root}"]
        if not self.bboxes.empty:
            lines.append(f"Bounding boxes ({len(self.bboxes)}):")
            for _, b in self.bboxes.iterrows():
                lines.append(f"  {b['bbox_name']}: shape (z, y, x) {b['shape_zyx']}, {b['n_synapses']} synapses, "
                             f"mask: {b['mask']}, source: {b['source']}")
        lines.append(f"Synapses: {self.n_rows_valid} valid of {self.n_rows_total} rows, {self.n_rows_skipped} skipped")
        if self.fatal:
            lines.append(f"FATAL ({len(self.fatal)}):")
            lines += [f"  - {m}" for m in self.fatal]
        if self.warnings:
            lines.append(f"Warnings ({len(self.warnings)}):")
            lines += [f"  - {m}" for m in self.warnings]
        if len(self.row_issues):
            lines.append(f"Row problems ({len(self.row_issues)}):")
            for _, r in self.row_issues.iterrows():
                lines.append(f"  - {r['bbox_name']}/{r['Var1']} (row {r['row']} of {r['file']}), "
                             f"column {r['column']}: {r['problem']} [{r['action']}]")
        lines.append("Result: " + ("FATAL problems found" if self.fatal else "OK"))
        return "\n".join(lines)


def _issue(row, column: str, problem: str, action: str = "skipped") -> dict:
    return {
        "bbox_name": row.get("bbox_name"),
        "Var1": row.get("Var1"),
        "row": row.get(SOURCE_ROW),
        "column": column,
        "problem": problem,
        "action": action,
        "file": row.get(SOURCE_FILE),
    }


def validate_rows(table: pd.DataFrame, shapes_zyx: dict[str, tuple], seg_volumes: dict | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check synapse rows; return ``(valid_rows, issues)``.

    Parameters
    ----------
    table : rows with ``bbox_name``, ``Var1``, the coordinate columns (x, y, z) and source columns.
    shapes_zyx : volume shape (z, y, x) per usable bbox; rows of other bboxes are skipped.
    seg_volumes : optional seg array-like per bbox, for the "side point on background (id 0)" check.

    Checks: missing ``Var1``; missing or non-numeric coordinates; a point outside the volume;
    a duplicate ``(bbox_name, Var1)`` (the first is kept); a side point on background id 0.
    Both side points in the same neuron is reported as a warning and the row is kept.
    Coordinates of valid rows are returned as int64.
    """
    issues: list[dict] = []
    bad = np.zeros(len(table), bool)
    t = table.reset_index(drop=True)
    records = t.to_dict("records")
    numeric = {c: pd.to_numeric(t[c], errors="coerce") for c in COORD_COLUMNS}
    for i, row in enumerate(records):
        bbox = row.get("bbox_name")
        if bbox not in shapes_zyx:
            issues.append(_issue(row, "bbox_name", f"bbox {bbox!r} has no usable volumes (see fatal problems above)"))
            bad[i] = True
            continue
        var1 = row.get("Var1")
        if var1 is None or (isinstance(var1, float) and np.isnan(var1)) or not str(var1).strip():
            issues.append(_issue(row, "Var1", "missing synapse id"))
            bad[i] = True
        shape = shapes_zyx[bbox]
        for point in POINTS:
            cols = point_columns(point)
            vals = []
            for c in cols:
                v = numeric[c].iloc[i]
                raw = row.get(c)
                if raw is None or (isinstance(raw, float) and np.isnan(raw)):
                    issues.append(_issue(row, c, "missing coordinate"))
                    bad[i] = True
                elif np.isnan(v):
                    issues.append(_issue(row, c, f"not a number: {raw!r}"))
                    bad[i] = True
                vals.append(v)
            if any(np.isnan(v) for v in vals):
                continue
            x, y, z = (int(round(v)) for v in vals)
            if not (0 <= z < shape[0] and 0 <= y < shape[1] and 0 <= x < shape[2]):
                issues.append(_issue(
                    row, f"{cols[0]}..3",
                    f"{point} point (x, y, z) = ({x}, {y}, {z}) is outside the volume; valid x < {shape[2]}, "
                    f"y < {shape[1]}, z < {shape[0]}",
                ))
                bad[i] = True
    dup = t.duplicated(subset=["bbox_name", "Var1"], keep="first") & t["Var1"].notna()
    for i in np.flatnonzero(dup.to_numpy() & ~bad):
        issues.append(_issue(records[i], "Var1", f"duplicate (bbox_name, Var1) = ({records[i]['bbox_name']}, "
                                                 f"{records[i]['Var1']}); the first occurrence is kept"))
        bad[i] = True
    if seg_volumes:
        ok = np.flatnonzero(~bad)
        bboxes = t["bbox_name"].to_numpy()
        xyz = {p: np.stack([numeric[c].to_numpy() for c in point_columns(p)], 1) for p in ("side_1", "side_2")}
        for bbox, seg in seg_volumes.items():
            rows_b = ok[bboxes[ok] == bbox]
            if seg is None or not len(rows_b):
                continue
            ids = {p: point_values(seg, np.rint(xyz[p][rows_b][:, ::-1]).astype(np.int64)) for p in xyz}
            for j, i in enumerate(rows_b):
                row = records[i]
                for p in ("side_1", "side_2"):
                    if ids[p][j] == 0:
                        x, y, z = np.rint(xyz[p][i]).astype(int)
                        issues.append(_issue(row, f"{p}_coord_1..3",
                                             f"{p} point (x, y, z) = ({x}, {y}, {z}) lies on background (seg id 0); "
                                             "move it inside the neuron"))
                        bad[i] = True
                if ids["side_1"][j] == ids["side_2"][j] != 0:
                    issues.append(_issue(row, "side_1_coord_1..3/side_2_coord_1..3",
                                         f"both side points lie in the same neuron (seg id {ids['side_1'][j]})",
                                         action="kept"))
    valid = t.loc[~bad].copy()
    for c in COORD_COLUMNS:
        valid[c] = numeric[c][~bad].round().astype(np.int64)
    valid["Var1"] = valid["Var1"].astype(str).str.strip()
    return valid.reset_index(drop=True), pd.DataFrame(issues, columns=ISSUE_COLUMNS)
