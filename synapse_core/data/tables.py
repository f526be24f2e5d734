"""Synapse tables: find and read them (Excel or CSV, per bbox or one combined file).

Schema (one row per synapse): ``Var1`` (id, unique within a bbox), ``central_coord_1..3``,
``side_1_coord_1..3``, ``side_2_coord_1..3`` — each triple is (x, y, z) voxel indices into the
bbox volume, which is indexed ``[z, y, x]``. A combined table also has ``bbox_name``. Extra
columns are carried through to every output.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from synapse_core.data.paths import confine

if TYPE_CHECKING:  # pandas is imported where a table is read: finding tables needs none
    import pandas as pd

POINTS = ("central", "side_1", "side_2")
COORD_COLUMNS = tuple(f"{p}_coord_{i}" for p in POINTS for i in (1, 2, 3))
REQUIRED_COLUMNS = ("Var1", *COORD_COLUMNS)
#: Where each row came from: file path and the row number a spreadsheet shows (header = row 1).
SOURCE_FILE, SOURCE_ROW = "_source_file", "_source_row"
TABLE_SUFFIXES = (".xlsx", ".xls", ".csv", ".parquet")
COMBINED_NAMES = ("synapse_info",)


class TableError(ValueError):
    """A synapse table that cannot be used at all; the message names the file."""


def point_columns(point: str) -> tuple[str, str, str]:
    """The (x, y, z) column names of ``point`` ("central", "side_1" or "side_2")."""
    return tuple(f"{point}_coord_{i}" for i in (1, 2, 3))


_ZIP_MAGIC, _OLE_MAGIC, _PARQUET_MAGIC = b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"PAR1"


def _sniff(path: Path) -> str:
    """``"xlsx"``, ``"xls"`` or ``"text"`` from the file's first bytes (the suffix may lie)."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(_ZIP_MAGIC):
        return "xlsx"
    if head.startswith(_OLE_MAGIC):
        return "xls"
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    return "text"


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV with ``,`` (or ``;``/tab, as some spreadsheet locales write) between fields, UTF-8 or Latin-1."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_bytes().decode("latin-1")  # every byte decodes; Excel on Windows writes cp1252/latin-1
    first = text.splitlines()[0] if text.strip() else ""
    sep = max((",", ";", "\t"), key=first.count) if first else ","
    import io

    import pandas as pd

    return pd.read_csv(io.StringIO(text), sep=sep, dtype={"Var1": str, "bbox_name": str})


def read_table(path: str | Path, roots=None) -> pd.DataFrame:
    """Read one synapse table (.xlsx/.xls via openpyxl, .csv or .parquet) with source-file/row columns added.

    ``Var1`` is read as text so ids like ``007`` keep their zeros. The format is taken from the
    file's content when its suffix lies (a CSV named ``.xlsx``); CSVs may use ``,``, ``;`` or tabs
    and be UTF-8 or Latin-1. With ``roots`` the file (symlinks followed) must lie inside them.
    Raises :class:`TableError` naming the file when it is unreadable, outside the roots or lacks
    required columns.
    """
    import pandas as pd

    path = Path(path)
    if roots is not None:
        confine(path, roots, what="synapse table", error=TableError)
    try:
        kind = _sniff(path)
        if kind == "text":
            df = _read_csv(path)  # also a CSV saved under a spreadsheet name
        elif kind == "parquet":  # Var1/bbox_name as text, as for CSV and Excel
            df = pd.read_parquet(path)
            df = df.astype({c: str for c in ("Var1", "bbox_name") if c in df.columns})
        else:
            if path.suffix.lower() == ".csv":
                raise ValueError(f"the file is a {kind} spreadsheet saved under a .csv name; rename it to .{kind}")
            df = pd.read_excel(path, dtype={"Var1": str, "bbox_name": str}, engine="openpyxl" if kind == "xlsx" else None)
    except Exception as exc:
        raise TableError(f"{path}: cannot read the synapse table ({exc.__class__.__name__}: {exc}); save it as "
                         ".xlsx or as a comma-separated .csv") from exc
    df.columns = [str(c).strip() for c in df.columns]
    repeated = [c for c in df.columns if re.fullmatch(r"(.+)\.\d+", c) and re.sub(r"\.\d+$", "", c) in df.columns]
    if repeated:  # pandas renamed the second "Var1" to "Var1.1"
        names = sorted({re.sub(r"\.\d+$", "", c) for c in repeated})
        raise TableError(f"{path}: column(s) {names} appear more than once; keep one of each")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing and kind == "text" and path.suffix.lower() in (".xlsx", ".xls"):
        raise TableError(f"{path}: not an Excel file, and not a CSV with the synapse-table columns; save it again "
                         "from the spreadsheet program as .xlsx")
    if missing:
        found = ", ".join(map(str, df.columns[:8])) + (" …" if len(df.columns) > 8 else "")
        raise TableError(
            f"{path}: missing column(s) {missing}; a synapse table needs {list(REQUIRED_COLUMNS)} "
            f"(coordinates as x, y, z voxel indices); columns found: {found or 'none'}"
        )
    df[SOURCE_FILE] = str(path)
    df[SOURCE_ROW] = df.index + 2
    return df


def find_tables(root: Path, bbox_names: list[str]) -> tuple[dict[str, Path], list[Path]]:
    """Locate synapse tables under ``root``.

    Returns ``(per_bbox, combined)``: ``{bbox: file}`` for ``excel/<bbox>.xlsx|.csv`` or
    ``<bbox>.xlsx|.csv`` next to the volumes, and the combined ``synapse_info.xlsx|.csv`` files
    (in ``root`` or ``root/excel``) whose ``bbox_name`` column says where each row belongs.
    The paths are not checked against the data roots here: :func:`read_table` with ``roots`` does.
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


def dataset_tables(root: Path, bbox_names: list[str], config) -> tuple[dict[str, Path], list[Path]]:
    """The synapse tables of a data root: :func:`find_tables`, then the per-bbox ``table`` paths of the
    dataset config (a :class:`~synapse_core.data.config.DatasetConfig`) in their place.

    Returns ``(per_bbox, combined)`` in the order their rows are read.
    """
    per_bbox, combined = find_tables(root, bbox_names)
    for name, bc in config.bboxes.items():
        if bc.table:
            per_bbox[name] = Path(bc.table)
    return per_bbox, combined
