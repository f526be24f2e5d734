"""Synapse tables: find and read them (Excel or CSV, per bbox or one combined file).

Schema (one row per synapse): ``Var1`` (id, unique within a bbox), ``central_coord_1..3``,
``side_1_coord_1..3``, ``side_2_coord_1..3`` — each triple is (x, y, z) voxel indices into the
bbox volume, which is indexed ``[z, y, x]``. A combined table also has ``bbox_name``. Extra
columns are carried through to every output.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

POINTS = ("central", "side_1", "side_2")
COORD_COLUMNS = tuple(f"{p}_coord_{i}" for p in POINTS for i in (1, 2, 3))
REQUIRED_COLUMNS = ("Var1", *COORD_COLUMNS)
#: Where each row came from: file path and the row number a spreadsheet shows (header = row 1).
SOURCE_FILE, SOURCE_ROW = "_source_file", "_source_row"
TABLE_SUFFIXES = (".xlsx", ".xls", ".csv")
COMBINED_NAMES = ("synapse_info",)


class TableError(ValueError):
    """A synapse table that cannot be used at all; the message names the file."""


def point_columns(point: str) -> tuple[str, str, str]:
    """The (x, y, z) column names of ``point`` ("central", "side_1" or "side_2")."""
    return tuple(f"{point}_coord_{i}" for i in (1, 2, 3))


def read_table(path: str | Path) -> pd.DataFrame:
    """Read one synapse table (.xlsx/.xls via openpyxl, or .csv) with source-file/row columns added.

    ``Var1`` is read as text so ids like ``007`` keep their zeros. Raises :class:`TableError`
    naming the file when it is unreadable or lacks required columns.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".csv":
            df = pd.read_csv(path, dtype={"Var1": str, "bbox_name": str})
        else:
            df = pd.read_excel(path, dtype={"Var1": str, "bbox_name": str})
    except Exception as exc:
        raise TableError(f"{path}: cannot read the synapse table ({exc.__class__.__name__}: {exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise TableError(
            f"{path}: missing column(s) {missing}; a synapse table needs {list(REQUIRED_COLUMNS)} "
            "(coordinates as x, y, z voxel indices)"
        )
    df[SOURCE_FILE] = str(path)
    df[SOURCE_ROW] = df.index + 2
    return df


def find_tables(root: Path, bbox_names: list[str]) -> tuple[dict[str, Path], list[Path]]:
    """Locate synapse tables under ``root``.

    Returns ``(per_bbox, combined)``: ``{bbox: file}`` for ``excel/<bbox>.xlsx|.csv`` or
    ``<bbox>.xlsx|.csv`` next to the volumes, and the combined ``synapse_info.xlsx|.csv`` files
    (in ``root`` or ``root/excel``) whose ``bbox_name`` column says where each row belongs.
    """
    per_bbox: dict[str, Path] = {}
    combined: list[Path] = []
    for folder in (root / "excel", root):
        if not folder.is_dir():
            continue
        for bbox in bbox_names:
            if bbox in per_bbox:
                continue
            for suffix in TABLE_SUFFIXES:
                if (folder / f"{bbox}{suffix}").is_file():
                    per_bbox[bbox] = folder / f"{bbox}{suffix}"
                    break
        for name in COMBINED_NAMES:
            for suffix in TABLE_SUFFIXES:
                if (folder / f"{name}{suffix}").is_file():
                    combined.append(folder / f"{name}{suffix}")
    return per_bbox, combined
