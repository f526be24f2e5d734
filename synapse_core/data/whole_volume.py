"""Whole-volume datasets: one big volume and a synapse table in absolute coordinates.

A ``synapse_dataset.toml`` with a ``[volume]`` and a ``[synapses]`` section describes one volume
(raw, optional seg, optional mask; any of OME-Zarr, N5, Neuroglancer precomputed, WebKnossos
zarr3, plain Zarr or HDF5) and a table (CSV, Excel or Parquet) of 10⁵–10⁸ synapses in absolute
voxel or nm coordinates::

    [volume]
    raw = { path = "em.ome.zarr" }                       # format detected from the metadata
    seg = { path = "em.ome.zarr", key = "labels/neurons" }
    mask = { path = "masks.n5", key = "s0", format = "n5" }   # optional
    target_voxel_size_nm = [16, 16, 16]                  # optional: picks the scale level (z, y, x)

    [labels]                          # mask label ids (as for bboxes)
    mito = 1
    vesicle = 2
    cleft = 3

    [synapses]
    path = "synapses.parquet"         # .parquet, .csv or .xlsx
    units = "nm"                      # "nm" or "voxel"
    axis_order = "xyz"                # order of each coordinate triple: "xyz" or "zyx"
    offset = [0, 0, 0]                # added to every coordinate (table units, axis_order)
    voxel_size_nm = [8, 8, 8]         # units = "voxel": the table's voxel size (z, y, x); default raw's finest level
    id = "synapse_id"                 # id column (default: the row number)
    group = "bbox"                    # optional grouping column; default one group named "volume"
    central = ["cx", "cy", "cz"]      # three columns each, in axis_order
    side_1 = ["pre_x", "pre_y", "pre_z"]
    side_2 = ["post_x", "post_y", "post_z"]

Every group becomes a :class:`~synapse_core.data.dataset.BboxSource` whose volumes are the whole
volume (so crops near a group's edge read the real neighbouring voxels), and the table's points
become ``central_coord_1..3`` etc.: (x, y, z) voxel indices of the level that was read. Crops,
extraction, clustering and the dashboard work on it unchanged. Opening reads the table columns
(pyarrow), converts and validates them with array operations, and reads only metadata from the
volumes: nothing scales with the volume size. Whether a side point lies on segmentation id 0 is
checked when that synapse is cropped (reading every side point would touch the whole volume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from synapse_core.data.paths import (
    OutsideRootsError,
    allowed_roots,
    check_remote_allowed,
    confine,
)
from synapse_core.data.voxel_size import check_voxel_size, format_voxel_size

SECTION_VOLUME, SECTION_SYNAPSES = "volume", "synapses"
_VOLUME_KEYS = {"raw", "seg", "mask", "target_voxel_size_nm"}
_SPEC_KEYS = {"path", "key", "format"}
_SYNAPSE_KEYS = {"path", "units", "axis_order", "offset", "voxel_size_nm", "id", "group", "central", "side_1",
                 "side_2", "sheet"}
POINT_NAMES = ("central", "side_1", "side_2")
DEFAULT_GROUP = "volume"
TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".xlsx", ".xls")


class WholeVolumeConfigError(ValueError):
    """A ``[volume]``/``[synapses]`` section that cannot be used; names the file and the key."""


@dataclass(frozen=True)
class ChunkedSpec:
    """One volume of a whole-volume dataset: ``path`` (folder, file or URL), ``key`` and ``format`` (None: detect)."""

    path: str
    key: str | None = None
    format: str | None = None


@dataclass(frozen=True)
class ColumnMapping:
    """How the synapse table's columns map to points (see the module docstring).

    ``points`` maps each of ``central``, ``side_1``, ``side_2`` to its 3 column names in
    ``axis_order``; ``units`` is ``"nm"`` or ``"voxel"``; ``offset`` is added in table units and
    ``axis_order``; ``voxel_size_nm`` (z, y, x) is the table's voxel size for ``units = "voxel"``.
    """

    points: tuple[tuple[str, tuple[str, str, str]], ...]
    units: str = "voxel"
    axis_order: str = "xyz"
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    voxel_size_nm: tuple[float, float, float] | None = None
    id_column: str | None = None
    group_column: str | None = None

    @property
    def columns(self) -> list[str]:
        """Every column the mapping reads."""
        cols = [c for _, triple in self.points for c in triple]
        return cols + [c for c in (self.id_column, self.group_column) if c]


@dataclass(frozen=True)
class WholeVolumeConfig:
    """The ``[volume]`` and ``[synapses]`` sections of a dataset config."""

    config_path: str
    raw: ChunkedSpec
    seg: ChunkedSpec | None
    mask: ChunkedSpec | None
    table: str
    mapping: ColumnMapping
    target_voxel_size_nm: tuple[float, float, float] | None = None
    sheet: str | None = None


def _err(path, where: str, text: str) -> WholeVolumeConfigError:
    return WholeVolumeConfigError(f"{path}: {where} {text}")


def _resolve(config: Path, where: str, value, roots) -> str:
    """A remote URL as given, or a local path resolved and refused outside the allowed data roots."""
    if not isinstance(value, str) or not value.strip():
        raise _err(config, where, f'must be a path in quotes, e.g. path = "em.ome.zarr", got {value!r}')
    text = value.strip()
    if text.startswith(("gs://", "s3://", "http://", "https://")):
        try:
            return check_remote_allowed(text, f"{config}: {where}")
        except OutsideRootsError as exc:
            raise WholeVolumeConfigError(str(exc)) from None
    text = text.removeprefix("file://")
    return str(confine(config.parent / text, allowed_roots(config) if roots is None else roots,
                       what=f"{config}: {where}", error=WholeVolumeConfigError))


def _spec(path: Path, where: str, value, roots) -> ChunkedSpec:
    if isinstance(value, str):
        return ChunkedSpec(_resolve(path, where, value, roots))
    if not isinstance(value, dict) or "path" not in value:
        raise _err(path, where, f'must be {{ path = "em.ome.zarr", key = "...", format = "..." }}, got {value!r}')
    unknown = sorted(set(value) - _SPEC_KEYS)
    if unknown:
        raise _err(path, where, f"has unknown key(s) {unknown}; accepted: {sorted(_SPEC_KEYS)}")
    fmt = value.get("format")
    from synapse_core.data.formats import FORMATS

    if fmt is not None and str(fmt).lower() not in (*FORMATS, "zarr", "hdf5"):
        raise _err(path, f"{where} format", f"is {fmt!r}; use one of {[*FORMATS, 'zarr', 'hdf5']} (or leave it out "
                                            f"to detect it)")
    key = value.get("key")
    if key is not None and not isinstance(key, str):
        raise _err(path, f"{where} key", f'must be text in quotes, e.g. key = "s0", got {key!r}')
    return ChunkedSpec(_resolve(path, where, value["path"], roots), key, str(fmt).lower() if fmt else None)


def _triple(path, where: str, value, kind=float) -> tuple:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise _err(path, where, f"must be a list of 3 values, got {value!r}")
    try:
        return tuple(kind(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise _err(path, where, f"must be a list of 3 values, got {value!r}") from exc


def _size(path, where: str, value) -> tuple[float, float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * 3
    try:
        return check_voxel_size(_triple(path, where, value), f"{path}: {where}")
    except ValueError as exc:
        raise WholeVolumeConfigError(str(exc)) from exc


def parse_whole_volume(path: str | Path, data: dict, roots=None) -> WholeVolumeConfig | None:
    """The whole-volume part of a parsed config mapping ``data`` (None when it has no ``[volume]``).

    Local paths must lie inside ``roots`` (default: :func:`~synapse_core.data.paths.allowed_roots`
    of the config file); remote URLs are passed on. Raises :class:`WholeVolumeConfigError` naming the file and the key for anything unusable.
    """
    path = Path(path)
    if SECTION_VOLUME not in data and SECTION_SYNAPSES not in data:
        return None
    vol, syn = data.get(SECTION_VOLUME), data.get(SECTION_SYNAPSES)
    if not isinstance(vol, dict) or not isinstance(syn, dict):
        raise _err(path, "", "a whole-volume dataset needs both a [volume] section (raw, seg, mask) and a [synapses] "
                             "section (path and column mapping)")
    if "bboxes" in data:
        raise _err(path, "[bboxes]", "cannot be combined with [volume]: a dataset is either bboxes or one volume")
    for where, section, allowed in (("[volume]", vol, _VOLUME_KEYS), ("[synapses]", syn, _SYNAPSE_KEYS)):
        unknown = sorted(set(section) - allowed)
        if unknown:
            raise _err(path, where, f"has unknown key(s) {unknown}; accepted: {sorted(allowed)}")
    if "raw" not in vol:
        raise _err(path, "[volume]", 'needs raw = { path = "..." }')
    if "path" not in syn:
        raise _err(path, "[synapses]", 'needs path = "synapses.parquet" (or .csv, .xlsx)')
    units = str(syn.get("units", "voxel")).lower()
    if units not in ("voxel", "nm"):
        raise _err(path, "[synapses] units", f'is {units!r}; use "voxel" or "nm"')
    order = str(syn.get("axis_order", "xyz")).lower()
    if order not in ("xyz", "zyx"):
        raise _err(path, "[synapses] axis_order", f'is {order!r}; use "xyz" or "zyx"')
    points = []
    for name in POINT_NAMES:
        default = tuple(f"{name}_coord_{i}" for i in (1, 2, 3))
        cols = syn.get(name, list(default) if order == "xyz" else list(default[::-1]))
        points.append((name, _triple(path, f"[synapses] {name}", cols, str)))
    mapping = ColumnMapping(
        points=tuple(points), units=units, axis_order=order,
        offset=_triple(path, "[synapses] offset", syn["offset"]) if "offset" in syn else (0.0, 0.0, 0.0),
        voxel_size_nm=_size(path, "[synapses] voxel_size_nm", syn["voxel_size_nm"]) if "voxel_size_nm" in syn else None,
        id_column=str(syn["id"]) if "id" in syn else None,
        group_column=str(syn["group"]) if "group" in syn else None)
    table = _resolve(path, "[synapses] path", syn["path"], roots)
    if not table.lower().endswith(TABLE_SUFFIXES):
        raise _err(path, "[synapses] path", f"is {syn['path']!r}; use a .parquet, .csv or .xlsx table")
    return WholeVolumeConfig(
        config_path=str(path), raw=_spec(path, "[volume] raw", vol["raw"], roots),
        seg=_spec(path, "[volume] seg", vol["seg"], roots) if "seg" in vol else None,
        mask=_spec(path, "[volume] mask", vol["mask"], roots) if "mask" in vol else None,
        table=table, mapping=mapping,
        target_voxel_size_nm=(_size(path, "[volume] target_voxel_size_nm", vol["target_voxel_size_nm"])
                              if "target_voxel_size_nm" in vol else None),
        sheet=syn.get("sheet"))


def read_config_mapping(config_file: str | Path) -> dict:
    """The parsed TOML/YAML mapping of a dataset config file."""
    path = Path(config_file)
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        return tomllib.loads(text)
    import yaml

    return yaml.safe_load(text) or {}


# ---------------------------------------------------------------------------------------------- tables


def read_columns(path: str | Path, columns: list[str], sheet: str | None = None) -> pd.DataFrame:
    """Read the named ``columns`` (and every other column) of a Parquet, CSV or Excel synapse table.

    Parquet and CSV go through pyarrow (multi-threaded, typed columns, no Python objects per cell
    for numbers); Excel through openpyxl. Raises ``ValueError`` naming the file and the missing
    columns, listing the ones it has.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ValueError(f"{path}: synapse table not found")
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            have = pq.read_schema(path).names
            _check_columns(path, have, columns)
            table = pq.read_table(path)
        elif suffix in (".csv", ".tsv"):
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ","))
            _check_columns(path, table.column_names, columns)
        else:
            df = pd.read_excel(path, sheet_name=sheet or 0)
            df.columns = [str(c).strip() for c in df.columns]
            _check_columns(path, list(df.columns), columns)
            return df
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: cannot read the synapse table ({exc.__class__.__name__}: {exc})") from exc
    return table.to_pandas(self_destruct=True, split_blocks=True)  # frees each Arrow column once converted


def _check_columns(path, have, needed) -> None:
    missing = [c for c in needed if c not in have]
    if missing:
        raise ValueError(f"{path}: column(s) {missing} not in the table; it has {list(have)[:30]}. Map the "
                         f"table's columns in [synapses] of the dataset config (central = [x, y, z column names], "
                         f"side_1, side_2, id, group)")


def _numbers(column: pd.Series) -> np.ndarray:
    """A column as float64; cells that are not numbers become NaN."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(np.float64, na_value=np.nan)
    return pd.to_numeric(column, errors="coerce").to_numpy(np.float64, na_value=np.nan)


def to_volume_voxels(table: pd.DataFrame, mapping: ColumnMapping, voxel_size_nm, offset_nm=(0.0, 0.0, 0.0),
                     default_table_voxel_nm=None) -> dict[str, np.ndarray]:
    """Each point of ``table`` as float (z, y, x) positions in voxels of the volume level that is read.

    Parameters
    ----------
    table : DataFrame with the mapping's columns
    mapping : ColumnMapping
    voxel_size_nm : 3 floats (z, y, x) or None
        The level's voxel size. None (unknown) needs ``units = "voxel"`` and keeps voxel units.
    offset_nm : 3 floats (z, y, x)
        Physical position of the level's voxel 0 corner.
    default_table_voxel_nm : 3 floats (z, y, x), optional
        The table's voxel size when the mapping gives none (``units = "voxel"``).

    Returns
    -------
    dict point name → (N, 3) float64 array, (z, y, x) voxel positions: a point at a voxel's centre
    in the table lands at the centre of the voxel containing it (voxel n spans [n s, (n+1) s) nm).
    Non-numeric cells become NaN.
    """
    out = {}
    offset = np.asarray(mapping.offset, float)
    flip = mapping.axis_order == "xyz"
    for name, cols in mapping.points:
        xyz = np.column_stack([_numbers(table[c]) for c in cols])
        xyz = xyz + offset
        zyx = xyz[:, ::-1] if flip else xyz
        if mapping.units == "voxel":
            table_nm = mapping.voxel_size_nm or default_table_voxel_nm
            if voxel_size_nm is None or table_nm is None:
                out[name] = zyx
                continue
            nm = (zyx + 0.5) * np.asarray(table_nm, float)  # voxel centres
        else:
            if voxel_size_nm is None:
                raise ValueError("the synapse table is in nm but the volume's voxel size is unknown; give "
                                 "voxel_size_nm = [z, y, x] at the top of the dataset config")
            nm = zyx
        out[name] = (nm - np.asarray(offset_nm, float)) / np.asarray(voxel_size_nm, float)
    return out


def synapse_frame(table: pd.DataFrame, mapping: ColumnMapping, points_zyx: dict[str, np.ndarray],
                  shape_zyx, table_path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The dataset's synapse rows and the per-row issues, checked with array operations.

    Rows with a missing/non-numeric coordinate, a point outside the volume, a missing id or a
    duplicate (group, id) are skipped and reported (bbox_name, Var1, spreadsheet row, column,
    problem). Valid rows get ``bbox_name``, ``Var1`` and ``<point>_coord_1..3`` (x, y, z voxel
    indices of the level read: ``floor`` of the position) in front of the table's own columns.
    """
    n = len(table)
    if mapping.group_column:
        group = table[mapping.group_column].astype("str").reset_index(drop=True)
        group_codes = pd.factorize(table[mapping.group_column])[0].astype(np.int64)
    else:
        group = pd.Series(pd.Categorical.from_codes(np.zeros(n, np.int8), [DEFAULT_GROUP])).astype("str")
        group_codes = np.zeros(n, np.int64)
    if mapping.id_column:
        ids = table[mapping.id_column].reset_index(drop=True)
        missing_id = ids.isna().to_numpy()
        var1 = ids.astype("str")
        id_codes = pd.factorize(ids)[0].astype(np.int64)
    else:
        missing_id = np.zeros(n, bool)
        var1 = pd.Series(np.arange(1, n + 1)).astype("str")
        id_codes = np.arange(n, dtype=np.int64)
    shape = np.asarray(shape_zyx, float)
    problems = []  # (row mask, column, problem text)
    bad = missing_id.copy()
    if missing_id.any():
        problems.append((missing_id, mapping.id_column, "missing synapse id"))
    out = {"bbox_name": group, "Var1": var1}
    for name, cols in mapping.points:
        p = points_zyx[name]
        nan = np.isnan(p).any(axis=1)
        if nan.any():
            problems.append((nan & ~bad, "/".join(cols), f"missing or non-numeric {name} coordinate"))
        bad |= nan
        idx = np.floor(np.nan_to_num(p, nan=-1.0) + 1e-6)
        outside = ~nan & ((idx < 0) | (idx >= shape)).any(axis=1)
        if outside.any():
            problems.append((outside & ~bad, "/".join(cols), (f"{name} point outside the volume (z, y, x shape "
                                                            f"{tuple(int(v) for v in shape)})")))
        bad |= outside
        zyx = idx.astype(np.int64)
        for i, axis in zip((1, 2, 3), (2, 1, 0)):  # _coord_1..3 = x, y, z
            out[f"{name}_coord_{i}"] = zyx[:, axis]
    key = group_codes * (int(id_codes.max(initial=0)) + 2) + id_codes  # one int per (group, id)
    dup = pd.Series(key).duplicated(keep="first").to_numpy() & ~bad
    if dup.any():
        problems.append((dup, mapping.id_column or "row", "duplicate (group, synapse id); the first row is kept"))
    bad |= dup
    table = table.reset_index(drop=True)
    out.update({c: table[c] for c in table.columns if c not in out})
    frame = pd.DataFrame(out, copy=False)
    valid = frame.loc[~bad].reset_index(drop=True) if bad.any() else frame
    issues = [pd.DataFrame({"bbox_name": group[m].to_numpy(), "Var1": var1[m].to_numpy(), "row": np.flatnonzero(m) + 2,
                            "column": col, "problem": text, "action": "skipped", "file": table_path})
              for m, col, text in problems if m.any()]
    columns = ["bbox_name", "Var1", "row", "column", "problem", "action", "file"]
    issue_frame = pd.concat(issues, ignore_index=True) if issues else pd.DataFrame(columns=columns)
    return valid, issue_frame


# --------------------------------------------------------------------------------------------- volumes


@dataclass(frozen=True)
class OpenedVolume:
    """One opened volume: ``source`` (``.open()`` → ``[z, y, x]`` array), its ``shape_zyx``, ``voxel_size_nm``
    (z, y, x or None), ``offset_nm`` (z, y, x of voxel 0's corner), the ``level`` read, every level's
    ``(key, voxel size)`` and a ``description`` for reports."""

    source: object
    shape_zyx: tuple[int, int, int]
    voxel_size_nm: tuple[float, float, float] | None
    offset_nm: tuple[float, float, float]
    description: str
    level: str = ""
    levels: tuple = ()

    @property
    def finest_voxel_size_nm(self) -> tuple[float, float, float] | None:
        """The finest level's voxel size (this one for a single-level volume)."""
        sizes = [s for _, s in self.levels if s is not None]
        return min(sizes, key=math.prod) if sizes else self.voxel_size_nm


def open_chunked(spec: ChunkedSpec, target_voxel_size_nm=None) -> OpenedVolume:
    """Open one volume of the dataset (metadata only).

    Multiscale formats go through :func:`synapse_core.data.formats.open_volume`; plain Zarr and
    HDF5 arrays through :mod:`synapse_core.data.volumes` (voxel size from their attributes).
    Raises :class:`~synapse_core.data.volumes.VolumeError` naming the path.
    """
    from synapse_core.data import formats
    from synapse_core.data import voxel_size as vs
    from synapse_core.data.volumes import VolumeError, source_from_spec

    fmt = spec.format or formats.detect_format(spec.path)
    if fmt in ("zarr", "hdf5"):
        src = source_from_spec(spec.path, spec.key)
        shape = tuple(int(n) for n in src.open().shape[:3])
        try:
            size = vs.from_volume(src.kind, spec.path, spec.key)
        except (vs.VoxelSizeError, OSError, KeyError, ValueError) as exc:
            raise VolumeError(f"{spec.path}: {exc}") from exc
        voxel = tuple(size.zyx_nm) if size is not None and size.complete else None
        desc = f"{fmt} {spec.path}{':' + spec.key if spec.key else ''}: {shape} voxels (z, y, x)" + (
            f", {size.describe()}" if size is not None else "")
        return OpenedVolume(src, shape, voxel, (0.0, 0.0, 0.0), desc)
    vol = formats.open_volume(spec.path, spec.key, fmt, target_voxel_size_nm)
    return OpenedVolume(vol.source, vol.shape_zyx, vol.voxel_size_nm, vol.offset_nm, vol.description, vol.level,
                        vol.levels)


def same_grid(volumes: dict[str, OpenedVolume], tolerance: float = 1e-3) -> str | None:
    """A message when raw/seg/mask differ in shape, voxel size or offset (None when they agree)."""
    ref_name, ref = next(iter(volumes.items()))
    for name, v in volumes.items():
        if v.shape_zyx != ref.shape_zyx:
            return (f"{name} has shape {v.shape_zyx} but {ref_name} has {ref.shape_zyx} (z, y, x voxels at the level "
                    f"read: {name} {v.level or 'single level'}, {ref_name} {ref.level or 'single level'})")
        a, b = v.voxel_size_nm, ref.voxel_size_nm
        if (a is None) != (b is None) or (a is not None and not all(
                math.isclose(x, y, rel_tol=tolerance) for x, y in zip(a, b))):
            return (f"{name} voxel size {format_voxel_size(a) if a else 'unknown'} differs from {ref_name} "
                    f"{format_voxel_size(b) if b else 'unknown'}; name the same level with key = ...")
        if any(abs(x - y) > 0.5 * s for x, y, s in zip(v.offset_nm, ref.offset_nm, b or (1, 1, 1))):
            return f"{name} starts at {v.offset_nm} nm but {ref_name} at {ref.offset_nm} nm (z, y, x)"
    return None
