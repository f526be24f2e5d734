"""Open a data root: find bboxes and synapse tables, convert TIFF stacks once, validate.

Layouts accepted at a data root ``DATA`` (volumes indexed ``[z, y, x]``, z = slice number):

* ``DATA/raw/<bbox>/slice_*.tif``, ``DATA/seg/<bbox>/slice_*.tif``, ``DATA/mask/<bbox>/slice_*.tif``;
  the original tool's mask folder ``vesicle_cloud__syn_interface__mitochondria_annotation/bbox_<N>``
  is accepted too, inside ``DATA`` or next to it. Slices are sorted naturally.
* HDF5 or Zarr volumes named per bbox in ``DATA/synapse_dataset.toml`` (see
  :mod:`synapse_core.data.config`).
* Synapse tables ``DATA/excel/<bbox>.xlsx|.csv``, ``DATA/<bbox>.xlsx|.csv``, or one
  ``synapse_info.xlsx|.csv`` with a ``bbox_name`` column.

TIFF stacks are converted once into chunked Zarr arrays in the cache and read by window after
that, so memory does not grow with the number or size of boxes.

Each bbox also gets its voxel size (config, else the files' attributes or TIFF tags, see
:mod:`synapse_core.data.voxel_size`; the source is reported) and its mask label ids, checked
against the ids its mask holds (counted once per mask and cached, see
:func:`synapse_core.data.validate.check_labels`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from synapse_core.data import voxel_size as vs
from synapse_core.data import whole_volume as wv
from synapse_core.data.atomic import atomic_file
from synapse_core.data.cache_dir import resolve_cache_dir
from synapse_core.data.config import (
    DatasetConfig,
    VolumeSpec,
    config_line,
    load_dataset_config,
)
from synapse_core.data.labels import LabelIds, default_labels
from synapse_core.data.paths import allowed_roots, confine, describe_roots, is_inside
from synapse_core.data.synapse_keys import synapse_row
from synapse_core.data.tables import (
    REQUIRED_COLUMNS,
    SOURCE_FILE,
    SOURCE_ROW,
    TableError,
    find_tables,
    read_table,
)
from synapse_core.data.validate import (
    ValidationReport,
    anisotropy,
    check_labels,
    label_counts_near_points,
    mask_label_counts,  # noqa: F401 (moved to validate; kept importable from here)
    synapse_points_zyx,
    validate_rows,
)
from synapse_core.data.volumes import (
    VolumeError,
    VolumeSource,
    convert_tiff_stack,
    list_slices,
    natural_key,
    source_from_spec,
    stray_files,
    tiff_header_shape,
    unmatched_slices,
)

ORIGINAL_MASK_DIR = "vesicle_cloud__syn_interface__mitochondria_annotation"


class DatasetError(ValueError):
    """Nothing usable at a data root; the message carries the validation report."""


@dataclass(frozen=True)
class BboxSource:
    """One bounding box: where its volumes are and how to read its mask labels.

    ``raw``/``seg``/``mask`` are picklable :class:`VolumeSource` s; ``.open()`` gives an array-like
    indexed ``[z, y, x]``. ``mask`` is None when the bbox has no semantic mask. ``labels`` has None
    for a class the bbox has no label for. ``voxel_size_nm`` is (z, y, x) in nm or None when unknown;
    ``voxel_size_source`` and ``labels_source`` say where they came from. ``mask_ids`` are the
    non-zero ids that occur in the mask (empty without a mask).
    """

    name: str
    raw: VolumeSource
    seg: VolumeSource
    mask: VolumeSource | None
    labels: LabelIds
    shape_zyx: tuple[int, int, int]
    offset_xyz: tuple[int, int, int] = (0, 0, 0)
    source: str = ""
    voxel_size_nm: tuple[float, float, float] | None = None
    voxel_size_source: str = ""
    labels_source: str = ""
    mask_ids: tuple[int, ...] = ()


@dataclass
class Dataset:
    """A validated data root: usable bboxes, valid synapse rows and the validation report."""

    root: str
    bboxes: dict[str, BboxSource]
    synapses: pd.DataFrame
    report: ValidationReport
    config: DatasetConfig = field(default_factory=DatasetConfig)
    #: For a whole-volume dataset (``[volume]`` in the config): where its volumes are and the grid read.
    whole_volume: WholeVolumeInfo | None = None

    @property
    def voxel_size_nm(self) -> tuple[float, float, float] | None:
        """(z, y, x) voxel size in nm shared by every bbox, or None when unknown or when bboxes differ.

        Per-bbox sizes and where they were read: ``dataset.bboxes[name].voxel_size_nm`` / ``.voxel_size_source``.
        """
        sizes = {b.voxel_size_nm for b in self.bboxes.values()}
        if len(sizes) == 1:
            return next(iter(sizes))
        return self.config.voxel_size_nm if not self.bboxes else None

    @property
    def config_file(self) -> str:
        """The dataset config file, or where one would go (``<root>/synapse_dataset.toml``)."""
        return config_file_of(self.root, self.config)

    def link_url(self, bbox_name: str, x: int, y: int, z: int) -> str | None:
        """A WebKnossos/Neuroglancer link to voxel (x, y, z) of ``bbox_name``, or None without a template."""
        template = self.config.link_template
        if not template:
            return None
        if self.whole_volume is not None:  # link-outs in voxels of the finest level
            x, y, z = self.whole_volume.link_voxel_xyz((x, y, z))
            return template.format(x=x, y=y, z=z, bbox=bbox_name)
        ox, oy, oz = self.config.offset_for(bbox_name)
        return template.format(x=int(x) + ox, y=int(y) + oy, z=int(z) + oz, bbox=bbox_name)

    def synapse(self, bbox_name: str, var1: str) -> pd.Series:
        """The valid row of synapse ``bbox_name/var1``; :class:`UnknownSynapseError` names it when absent."""
        return synapse_row(self.synapses, bbox_name, var1, where=f"the valid rows of the synapse table in {self.root}")


@dataclass(frozen=True)
class WholeVolumeInfo:
    """Where a whole-volume dataset's volumes are and the grid the synapse table was mapped to.

    ``specs`` maps ``raw``/``seg``/``mask`` to :class:`~synapse_core.data.whole_volume.ChunkedSpec`;
    ``level`` is the scale level read, ``voxel_size_nm`` its (z, y, x) size, ``offset_nm`` the
    (z, y, x) position of its voxel 0 corner, ``finest_voxel_size_nm`` the finest level's size
    (link-outs and exports use its voxels), ``levels`` every level's key and size.
    """

    specs: dict
    level: str
    shape_zyx: tuple[int, int, int]
    voxel_size_nm: tuple[float, float, float] | None
    offset_nm: tuple[float, float, float]
    finest_voxel_size_nm: tuple[float, float, float] | None
    levels: tuple = ()
    table: str = ""

    def nm_zyx(self, index_zyx) -> np.ndarray:
        """Physical positions (nm, z, y, x) of voxel centres ``index_zyx`` ((N, 3) voxels of the level read)."""
        idx = np.asarray(index_zyx, float)
        if self.voxel_size_nm is None:
            return idx
        return (idx + 0.5) * np.asarray(self.voxel_size_nm) + np.asarray(self.offset_nm)

    def link_voxel_xyz(self, xyz) -> tuple[int, int, int]:
        """(x, y, z) voxel of the finest level holding the centre of level voxel ``xyz`` (x, y, z)."""
        nm = self.nm_zyx(np.asarray(xyz, float)[::-1])
        if self.finest_voxel_size_nm is None:
            return tuple(int(v) for v in xyz)
        zyx = np.floor(nm / np.asarray(self.finest_voxel_size_nm))
        return int(zyx[2]), int(zyx[1]), int(zyx[0])


def _mask_dir(data_dir: Path, bbox: str, roots=None, report: ValidationReport | None = None) -> Path | None:
    m = re.fullmatch(r"bbox_?(\d+)", bbox)
    names = [bbox] + ([f"bbox_{m.group(1)}"] if m else [])
    candidates = [data_dir / "mask" / n for n in names]
    for base in (data_dir / ORIGINAL_MASK_DIR, data_dir.parent / ORIGINAL_MASK_DIR):
        candidates += [base / n for n in names]
    for c in candidates:
        if not c.is_dir():
            continue
        if roots is None or is_inside(c, roots):
            return c
        if report is not None:  # e.g. the original mask folder next to DATA, outside the allowed roots
            report.warnings.append(
                f"{bbox}: mask folder {c} is outside the allowed data roots ({describe_roots(roots)}) and is not "
                f"read; to use it, add its folder to SYNAPSE_DATA_ROOTS (export SYNAPSE_DATA_ROOTS={c.parent.parent})")
    return None


def _tiff_bbox(name: str, data_dir: Path, volumes_dir: Path, config: DatasetConfig, report: ValidationReport,
               roots=None):
    raw_dir, seg_dir = data_dir / "raw" / name, data_dir / "seg" / name
    if not seg_dir.is_dir():
        report.fatal.append(f"{name}: segmentation folder {seg_dir} is missing (expected next to {raw_dir})")
        return None
    mask_dir = _mask_dir(data_dir, name, roots, report)
    try:
        stacks = {"raw": list_slices(raw_dir, roots), "seg": list_slices(seg_dir, roots)}
        if mask_dir is not None:
            stacks["mask"] = list_slices(mask_dir, roots)
    except VolumeError as exc:
        report.fatal.append(f"{name}: {exc}")
        return None
    if mask_dir is None:
        report.warnings.append(
            f"{name}: no semantic mask folder (mask/{name} or {ORIGINAL_MASK_DIR}/bbox_N); segmentation types "
            "that need vesicle cloud, cleft or mitochondria labels are unavailable for it")
    folders = {"raw": raw_dir, "seg": seg_dir, "mask": mask_dir}
    empty = [k for k, files in stacks.items() if not files]
    if empty:
        report.fatal.append(f"{name}: no slice_*.tif files in " + ", ".join(str(folders[k]) for k in empty))
        return None
    counts = {k: len(v) for k, v in stacks.items()}
    if len(set(counts.values())) > 1:
        unmatched = unmatched_slices(stacks)
        extra = "".join(f"; slices only in {k}: {', '.join(v[:5])}{' …' if len(v) > 5 else ''}"
                        for k, v in unmatched.items())
        stray = {k: stray_files(folders[k]) for k in stacks}
        extra += "".join(f"; files in {folders[k]} that are not slice_*.tif (not read): {', '.join(v[:5])}"
                         for k, v in stray.items() if v)
        report.fatal.append(f"{name}: slice counts differ: " + ", ".join(f"{k} {n} ({folders[k]})" for k, n in counts.items())
                            + extra + "; every stack needs one slice per z: remove or rename the extra files")
        return None
    try:
        shapes = {k: tiff_header_shape(files[0]) for k, files in stacks.items()}
        if len(set(shapes.values())) > 1:
            report.fatal.append(f"{name}: slice shapes (rows, columns) differ: "
                                + ", ".join(f"{k} {s} ({stacks[k][0]})" for k, s in shapes.items()))
            return None
        sources = {k: convert_tiff_stack(files, volumes_dir / f"{name}-{k}", is_raw=(k == "raw"))
                   for k, files in stacks.items()}
    except VolumeError as exc:
        report.fatal.append(f"{name}: {exc}")
        return None
    shape = tuple(int(s) for s in sources["raw"].open().shape)
    readers = {k: (lambda f=files[0]: vs.from_tiff(f)) for k, files in stacks.items()}
    return BboxSource(name, sources["raw"], sources["seg"], sources.get("mask"), config.labels_for(name), shape,
                      config.offset_for(name), source=f"TIFF slices in {raw_dir.parent.parent}"), readers


def _config_bbox(name: str, config: DatasetConfig, report: ValidationReport):
    bc = config.bboxes[name]
    if bc.seg is None:
        report.fatal.append(f"{name}: {config.path} gives raw but no seg volume for [bboxes.{name}]")
        return None
    try:
        specs: dict[str, VolumeSpec] = {"raw": bc.raw, "seg": bc.seg}
        if bc.mask is not None:
            specs["mask"] = bc.mask
        opened = {k: _bbox_volume(s) for k, s in specs.items()}
        sources = {k: src for k, (src, _) in opened.items()}
        shapes = {k: tuple(int(v) for v in src.open().shape) for k, src in sources.items()}
    except VolumeError as exc:
        report.fatal.append(f"{name}: {exc}")
        return None
    if len(set(shapes.values())) > 1:
        report.fatal.append(f"{name}: volume shapes (z, y, x) differ: " + ", ".join(f"{k} {s}" for k, s in shapes.items()))
        return None
    if bc.mask is None:
        report.warnings.append(
            f"{name}: no semantic mask volume; segmentation types that need vesicle cloud, cleft or mitochondria "
            "labels are unavailable for it; to add one, "
            + config_line(config.path or "synapse_dataset.toml", "mask", {"path": "<mask .h5 or .zarr file>", "key": "<dataset name>"},
                          name))
    kinds = sorted({src.kind.upper() for src in sources.values()})
    readers = {k: read for k, (_, read) in opened.items()}
    return BboxSource(name, sources["raw"], sources["seg"], sources.get("mask"), config.labels_for(name),
                      shapes["raw"], bc.offset_xyz, source=f"{'/'.join(kinds)} {Path(bc.raw.path).name}"), readers


def _bbox_volume(spec: VolumeSpec):
    """``(source, voxel-size reader)`` of a bbox volume named in the config.

    HDF5 files and plain Zarr arrays open through :mod:`synapse_core.data.volumes`; OME-Zarr, N5,
    precomputed and WebKnossos volumes through :mod:`synapse_core.data.formats` at their finest
    level (or the level ``key`` names), indexed from the volume's first voxel.
    """
    from synapse_core.data import formats

    path = Path(spec.path)
    fmt = "hdf5" if path.suffix.lower() in (".h5", ".hdf5", ".hdf") or not path.exists() else formats.detect_format(spec.path)
    if fmt in ("hdf5", "zarr"):
        src = source_from_spec(spec.path, spec.key)
        return src, (lambda: vs.from_volume(src.kind, spec.path, spec.key))
    vol = formats.open_volume(spec.path, spec.key, fmt)
    return vol.source, (lambda: vs.VoxelSize(vol.voxel_size_nm, vol.description) if vol.voxel_size_nm else None)


#: Bump when the stored form of parsed tables changes (part of every table cache key).
_TABLE_CACHE_VERSION = 1


def _table_cache_key(path: Path) -> str | None:
    """Key of a parsed synapse table: the file's path, size, mtime and inode, and the parsing code and pandas version."""
    from synapse_core.data.hashing import content_hash, source_fingerprint

    try:
        st = os.stat(path)
        code = source_fingerprint(("synapse_core.data.tables",))
    except (OSError, ModuleNotFoundError):
        return None
    return content_hash({"v": _TABLE_CACHE_VERSION, "path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                         "ino": st.st_ino, "code": code, "pandas": pd.__version__})


def read_table_cached(path: str | os.PathLike, roots=None, cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """:func:`~synapse_core.data.tables.read_table`, with the parsed table kept in ``cache_dir/tables``.

    Parsing a spreadsheet costs about 1 ms per row (openpyxl); the parsed table is stored as Parquet
    (never pickle) under a key of the file's path, size, modification time and inode and of the
    parsing code, so an unchanged table is read back instead of parsed again; any change to the
    file is a miss. A table is stored only when it reads back exactly equal (values, dtypes,
    columns, index); otherwise (e.g. a column mixing text and numbers) it is parsed every time.
    The roots check runs on every call, hit or miss.
    """
    path = Path(path)
    if cache_dir is None:
        return read_table(path, roots)
    if roots is not None:
        confine(path, roots, what="synapse table", error=TableError)
    key = _table_cache_key(path)
    if key is None:
        return read_table(path)  # confined above
    store = Path(cache_dir) / "tables" / f"{key}.parquet"
    if store.is_file():
        try:
            return pd.read_parquet(store)
        except Exception:  # noqa: BLE001, S110 (a damaged entry: parse again and replace it)
            pass
    df = read_table(path)  # confined above
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(store) as tmp:
            df.to_parquet(tmp)
            pd.testing.assert_frame_equal(pd.read_parquet(tmp), df, check_exact=True, check_column_type=True,
                                          check_index_type=True)
    except Exception:  # not representable exactly (or the cache is not writable): keep parsing  # noqa: BLE001, S110
        pass
    return df


def _load_tables(data_dir: Path, bbox_names: list[str], config: DatasetConfig, report: ValidationReport,
                 roots=None, cache_dir: Path | None = None) -> pd.DataFrame:
    per_bbox, combined = find_tables(data_dir, bbox_names)
    for name, bc in config.bboxes.items():
        if bc.table:
            per_bbox[name] = Path(bc.table)
    frames = []
    for name, path in per_bbox.items():
        try:
            frames.append(read_table_cached(path, roots, cache_dir).assign(bbox_name=name))
        except TableError as exc:
            report.fatal.append(str(exc))
    for path in combined:
        try:
            df = read_table_cached(path, roots, cache_dir)
        except TableError as exc:
            report.fatal.append(str(exc))
            continue
        if "bbox_name" not in df.columns:
            report.fatal.append(f"{path}: a combined synapse table needs a bbox_name column")
            continue
        frames.append(df)
    found = {f["bbox_name"].iloc[0] for f in frames if len(f)} | {b for f in frames for b in f["bbox_name"].dropna()}
    for name in bbox_names:
        if name not in found:
            report.warnings.append(f"{name}: no synapse table found (excel/{name}.xlsx, {name}.csv or synapse_info.xlsx)")
    if not frames:
        return pd.DataFrame(columns=["bbox_name", *REQUIRED_COLUMNS, SOURCE_FILE, SOURCE_ROW])
    table = pd.concat(frames, ignore_index=True)
    table["bbox_name"] = table["bbox_name"].astype(str)
    # bbox_name and Var1 first, then the table's columns in their order.
    front = ["bbox_name", "Var1"]
    return table[front + [c for c in table.columns if c not in front]]


def config_file_of(root: str | os.PathLike, config: DatasetConfig) -> str:
    """The config file of a data root, or where one would be created."""
    if config.path:
        return config.path
    root = Path(root)
    return str((root if root.is_dir() else root.parent) / "synapse_dataset.toml")


def _with_voxel_size(b: BboxSource, readers: dict, config: DatasetConfig, config_file: str,
                     report: ValidationReport) -> BboxSource | None:
    """``b`` with its voxel size: the config's, else the files'; None (a fatal problem) when the files'
    sizes are unusable or disagree and the config does not give one."""
    name = b.name
    given, where = config.voxel_size_for(name)
    problems, found = [], {}
    for kind, read in readers.items():
        try:
            found[kind] = read()
        except vs.VoxelSizeError as exc:
            problems.append(str(exc))
        except (OSError, KeyError, ValueError) as exc:  # unreadable metadata: the volume itself opened fine
            report.warnings.append(f"{name}: cannot read the voxel size of the {kind} volume ({exc})")
    try:
        data = vs.same_voxel_size(found, name)
    except vs.VoxelSizeError as exc:
        data = None
        problems.append(str(exc).removeprefix(f"{name}: "))
    if given is not None:
        for p in problems:
            report.warnings.append(f"{name}: {p} (not used: {where} gives the voxel size)")
        if data is not None and any(d is not None and not math.isclose(d, g, rel_tol=vs.SAME_RTOL)
                                    for d, g in zip(data.zyx_nm, given)):
            report.warnings.append(f"{name}: {where} = {vs.format_voxel_size(given)} overrides "
                                   f"{data.describe()}")
        return replace(b, voxel_size_nm=tuple(given), voxel_size_source=where)
    if problems:
        report.fatal.append(f"{name}: {'; '.join(problems)}. Fix the file, or give the voxel size: "
                            + config_line(config_file, "voxel_size_nm", ["<z>", "<y>", "<x>"], name))
        return None
    if data is None:
        report.warnings.append(
            f"{name}: voxel size unknown (no voxel_size_nm in the config, no resolution attribute or TIFF "
            "resolution tags in the files): measurements are in voxels and crops are not checked against "
            "physical sizes; " + config_line(config_file, "voxel_size_nm", ["<z>", "<y>", "<x>"], name))
        return b
    if not data.complete:
        report.warnings.append(
            f"{name}: {data.describe()}: no z step (section thickness), so the voxel size is unknown; "
            + config_line(config_file, "voxel_size_nm", ["<z>", *data.zyx_nm[1:]], name))
        return b
    return replace(b, voxel_size_nm=tuple(float(v) for v in data.zyx_nm), voxel_size_source=data.source)


def _with_labels(b: BboxSource, config: DatasetConfig, config_file: str, report: ValidationReport,
                 points_zyx=(), cache_dir: Path | None = None) -> BboxSource:
    """``b`` with the label ids it will use, checked against the ids its mask holds near ``points_zyx``.

    Ids are counted in windows around the synapse centres (:func:`label_counts_near_points`), so the
    cost does not grow with the volume; ``validate`` also counts the whole mask. A mask small enough
    to be counted whole is counted once and its counts kept in ``cache_dir/label_counts``.
    """
    configured, where = config.configured_labels(b.name)
    counts, scope = (label_counts_near_points(b.mask, points_zyx, cache_dir=cache_dir) if b.mask is not None
                     else (None, ""))
    check = check_labels(b.name, counts, configured, config_file, where, scope=scope or "in the mask")
    report.warnings.extend(check.warnings)
    if configured is not None and b.mask is not None:
        declared = [k for k in ("mito", "vesicle", "cleft") if getattr(configured, k) is None]
        if declared:
            report.warnings.append(
                f"{b.name}: no {', '.join(declared)} label ({where}: " + ", ".join(f'{k} = "none"' for k in declared)
                + "); segmentation types and measurements that need it are unavailable for this bbox")
    ids = tuple(sorted(i for i, n in (counts or {}).items() if i != 0 and n))
    return replace(b, labels=check.labels, labels_source=check.source, mask_ids=ids)


def open_dataset(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                 extra_roots=()) -> Dataset:
    """Open and validate the data root ``root`` (a folder, or a dataset config file).

    Bboxes with fatal problems are left out and reported; rows with problems are skipped and
    reported; everything valid is kept. Raises :class:`DatasetError` (with the report) only when
    no bbox is usable. TIFF stacks are converted into ``cache_dir/volumes`` on first use.

    Every file read lies inside the dataset folder, ``extra_roots`` or the operator's
    ``SYNAPSE_DATA_ROOTS`` (:func:`synapse_core.data.paths.allowed_roots`; symlinks are followed
    before the check): config paths outside them are a :class:`ConfigError`, symlinked slice
    folders or tables outside them a fatal problem of that bbox or table.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: data folder not found; pass the folder that holds raw/, seg/ and excel/")
    roots = allowed_roots(root, extra_roots)
    config = load_dataset_config(root, roots)
    whole = _whole_volume_config(config, roots)
    if whole is not None:
        return open_whole_volume(root, config, whole)
    data_dir = root if root.is_dir() else root.parent
    report = ValidationReport(root=str(root))
    volumes_dir = resolve_cache_dir(cache_dir) / "volumes"
    bboxes: dict[str, BboxSource] = {}
    config_file = config_file_of(root, config)
    found: dict[str, tuple[BboxSource, dict]] = {}
    for name, bc in config.bboxes.items():
        if bc.raw is not None:
            found[name] = _config_bbox(name, config, report)
    raw_root = data_dir / "raw"
    if raw_root.is_dir():
        for d in sorted((p for p in raw_root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
            if d.name not in config.bboxes or config.bboxes[d.name].raw is None:
                found[d.name] = _tiff_bbox(d.name, data_dir, volumes_dir, config, report, roots)
        if not any(p.is_dir() for p in raw_root.iterdir()):
            report.fatal.append(f"{raw_root}: no bbox folders inside (expected raw/<bbox>/slice_*.tif)")
    elif not any(bc.raw for bc in config.bboxes.values()):
        report.fatal.append(f"{data_dir}: no raw/ folder and no volumes in a synapse_dataset.toml; expected "
                            "raw/<bbox>/slice_*.tif, seg/<bbox>/slice_*.tif, mask/<bbox>/slice_*.tif and excel/<bbox>.xlsx")
    for name, got in found.items():
        if got is None:
            continue
        b = _with_voxel_size(got[0], got[1], config, config_file, report)
        if b is not None:
            bboxes[name] = b
    raw_dirs = {p.name for p in raw_root.iterdir() if p.is_dir()} if raw_root.is_dir() else set()
    all_names = sorted(set(bboxes) | raw_dirs, key=natural_key)
    table = _load_tables(data_dir, all_names, config, report, roots, volumes_dir.parent)
    for name, b in bboxes.items():  # mask ids near the synapses: a cost that does not grow with the volume
        bboxes[name] = _with_labels(b, config, config_file, report, synapse_points_zyx(table, name, b.shape_zyx),
                                    volumes_dir.parent)
    seg_volumes = {n: b.seg.open() for n, b in bboxes.items()}
    valid, issues = validate_rows(table, {n: b.shape_zyx for n, b in bboxes.items()}, seg_volumes)
    report.row_issues = issues
    valid = valid.drop(columns=[SOURCE_FILE, SOURCE_ROW])
    report.n_rows_total, report.n_rows_valid = len(table), len(valid)
    report.bboxes = pd.DataFrame([
        {"bbox_name": n, "shape_zyx": b.shape_zyx, "n_synapses": int((valid["bbox_name"] == n).sum()),
         "mask": "yes" if b.mask is not None else "none", "source": b.source,
         "voxel_size_nm": b.voxel_size_nm, "voxel_size_source": b.voxel_size_source,
         "anisotropy": anisotropy(b.voxel_size_nm),
         "labels": b.labels.describe() if b.mask is not None else "", "labels_source": b.labels_source,
         "mask_ids": b.mask_ids}
        for n, b in bboxes.items()
    ])
    sizes = {n: b.voxel_size_nm for n, b in bboxes.items() if b.voxel_size_nm is not None}
    if len(set(sizes.values())) > 1:
        report.warnings.append(
            "bboxes have different voxel sizes (" + "; ".join(f"{n} {vs.format_voxel_size(v)}" for n, v in sizes.items())
            + "): dataset-wide measurements use voxel units; use each bbox's own voxel_size_nm")
    if not bboxes:
        raise DatasetError("no usable bounding box.\n" + report.text())
    return Dataset(str(root), bboxes, valid, report, config)


# ------------------------------------------------------------------------------------- whole volume


def _whole_volume_config(config: DatasetConfig, roots):
    """The config's ``[volume]``/``[synapses]`` sections (local paths confined to ``roots``), or None."""
    if not config.path:
        return None
    data = wv.read_config_mapping(config.path)
    try:
        return wv.parse_whole_volume(config.path, data, roots)
    except wv.WholeVolumeConfigError as exc:
        raise DatasetError(str(exc)) from exc


def open_whole_volume(root: str | os.PathLike, config: DatasetConfig, whole) -> Dataset:
    """Open a whole-volume dataset (see :mod:`synapse_core.data.whole_volume`).

    Reads the volumes' metadata (never their voxels) and the synapse table's columns; each group
    of the table becomes a :class:`BboxSource` over the whole volume. Raises :class:`DatasetError`
    naming the file when a volume cannot be opened or the grids of raw/seg/mask differ.
    """
    report = ValidationReport(root=str(root))
    config_file = config_file_of(root, config)
    if whole.seg is None:
        raise DatasetError(f"{config_file}: [volume] needs seg = {{ path = ... }} (the neuron segmentation): crops "
                           f"locate the two partner neurons in it")
    specs = {"raw": whole.raw, "seg": whole.seg}
    if whole.mask is not None:
        specs["mask"] = whole.mask
    opened = {}
    for kind, spec in specs.items():
        try:
            opened[kind] = wv.open_chunked(spec, whole.target_voxel_size_nm)
        except VolumeError as exc:
            raise DatasetError(f"{config_file} [volume] {kind}: {exc}") from exc
    mismatch = wv.same_grid(opened)
    if mismatch:
        raise DatasetError(f"{config_file} [volume]: {mismatch}")
    raw = opened["raw"]
    shape, voxel, offset_nm, voxel_source = raw.shape_zyx, raw.voxel_size_nm, raw.offset_nm, raw.description
    if config.voxel_size_nm is not None:
        if voxel is not None and any(not math.isclose(a, b, rel_tol=vs.SAME_RTOL) for a, b in zip(voxel, config.voxel_size_nm)):
            report.warnings.append(f"{config_file} voxel_size_nm = {vs.format_voxel_size(config.voxel_size_nm)} "
                                   f"overrides the volume's {vs.format_voxel_size(voxel)}")
        voxel, voxel_source = tuple(config.voxel_size_nm), f"{Path(config_file).name} voxel_size_nm"
    if voxel is None:
        report.warnings.append(f"{whole.raw.path}: voxel size unknown (no metadata); measurements are in voxels; "
                               + config_line(config_file, "voxel_size_nm", ["<z>", "<y>", "<x>"]))
    finest = raw.finest_voxel_size_nm if config.voxel_size_nm is None else voxel
    mapping = whole.mapping
    try:
        table = wv.read_columns(whole.table, mapping.columns, whole.sheet)
        points = wv.to_volume_voxels(table, mapping, voxel, offset_nm, default_table_voxel_nm=finest)
    except ValueError as exc:
        raise DatasetError(f"{whole.table}: {exc}".replace(f"{whole.table}: {whole.table}", whole.table)) from exc
    valid, issues = wv.synapse_frame(table, mapping, points, shape, whole.table)
    del table, points
    report.row_issues = issues
    report.n_rows_total, report.n_rows_valid = len(valid) + len(issues), len(valid)
    if mapping.units == "voxel" and mapping.voxel_size_nm is None and finest is not None:
        report.warnings.append(f"{whole.table}: coordinates read as voxels of {vs.format_voxel_size(finest)} "
                               f"(the finest level of {whole.raw.path}); if they are another grid, give "
                               f"voxel_size_nm = [z, y, x] under [synapses] in {config_file}")
    configured, where = config.configured_labels(wv.DEFAULT_GROUP)
    if whole.mask is not None and configured is None:
        report.warnings.append(
            f"{whole.mask.path}: no mask label ids in the config; the original tool's default (mito 5, vesicle 6, "
            f"cleft 7) is assumed and not checked against the mask (a whole volume is not scanned); "
            + config_line(config_file, "labels", {"mito": "<id>", "vesicle": "<id>", "cleft": "<id>"}))
    labels = configured or default_labels(wv.DEFAULT_GROUP)
    groups = valid["bbox_name"].value_counts(sort=False) if len(valid) else pd.Series(dtype=int)
    names = sorted(groups.index, key=natural_key) or [wv.DEFAULT_GROUP]
    kinds = "/".join(sorted({o.source.kind for o in opened.values()}))
    bboxes = {
        name: BboxSource(name, raw.source, opened["seg"].source, opened["mask"].source if "mask" in opened else None,
                         labels, shape, (0, 0, 0), source=f"{kinds} {whole.raw.path} (whole volume)",
                         voxel_size_nm=voxel, voxel_size_source=voxel_source,
                         labels_source=where or "the original tool's default ids")
        for name in names}
    report.bboxes = pd.DataFrame([
        {"bbox_name": n, "shape_zyx": shape, "n_synapses": int(groups.get(n, 0)),
         "mask": "yes" if whole.mask is not None else "none", "source": b.source, "voxel_size_nm": voxel,
         "voxel_size_source": voxel_source, "anisotropy": anisotropy(voxel),
         "labels": labels.describe() if whole.mask is not None else "", "labels_source": b.labels_source,
         "mask_ids": None}
        for n, b in bboxes.items()])
    report.warnings.append(f"{whole.table}: side points on segmentation id 0 are checked when each synapse is "
                           f"cropped (opening a whole volume reads no voxels)")
    if whole.mask is None:
        report.warnings.append("no semantic mask volume: segmentation types that need vesicle cloud, cleft or "
                               "mitochondria labels are unavailable")
    info = WholeVolumeInfo(specs=specs, level=raw.level, levels=raw.levels, shape_zyx=shape, voxel_size_nm=voxel, offset_nm=tuple(offset_nm),
                           finest_voxel_size_nm=finest, table=whole.table)
    return Dataset(str(root), bboxes, valid, report, config, whole_volume=info)

