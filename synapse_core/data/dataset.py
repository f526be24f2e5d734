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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from synapse_core.data import voxel_size as vs
from synapse_core.data import whole_volume as wv
from synapse_core.data.atomic import atomic_file
from synapse_core.data.bboxes import (  # noqa: F401 (ORIGINAL_MASK_DIR: importable from here as before)
    ORIGINAL_MASK_DIR,
    BboxSource,
    config_file_of,
    discover_bboxes,
    table_bbox_names,
)
from synapse_core.data.cache_dir import resolve_cache_dir
from synapse_core.data.config import DatasetConfig, config_line, load_dataset_config
from synapse_core.data.labels import default_labels
from synapse_core.data.paths import allowed_roots, confine
from synapse_core.data.synapse_keys import synapse_row
from synapse_core.data.tables import (
    REQUIRED_COLUMNS,
    SOURCE_FILE,
    SOURCE_ROW,
    TableError,
    dataset_tables,
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
from synapse_core.data.volumes import VolumeError, natural_key


class DatasetError(ValueError):
    """Nothing usable at a data root; the message carries the validation report."""


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
    per_bbox, combined = dataset_tables(data_dir, bbox_names, config)
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
                 extra_roots=(), discovered=None) -> Dataset:
    """Open and validate the data root ``root`` (a folder, or a dataset config file).

    Bboxes with fatal problems are left out and reported; rows with problems are skipped and
    reported; everything valid is kept. Raises :class:`DatasetError` (with the report) only when
    no bbox is usable. TIFF stacks are converted into ``cache_dir/volumes`` on first use.

    Every file read lies inside the dataset folder, ``extra_roots`` or the operator's
    ``SYNAPSE_DATA_ROOTS`` (:func:`synapse_core.data.paths.allowed_roots`; symlinks are followed
    before the check): config paths outside them are a :class:`ConfigError`, symlinked slice
    folders or tables outside them a fatal problem of that bbox or table.

    ``discovered`` — ``(bboxes, fatal, warnings)`` that :func:`discover_bboxes` just gave for this
    root, cache and roots (:class:`synapse_core.data.quick_open.DatasetState`) — is used instead of
    finding the bboxes again.
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
    config_file = config_file_of(root, config)
    if discovered is None:
        bboxes = discover_bboxes(root, config, volumes_dir, report, roots)
    else:
        bboxes = dict(discovered[0])
        report.fatal.extend(discovered[1])
        report.warnings.extend(discovered[2])
    table = _load_tables(data_dir, table_bbox_names(data_dir, bboxes), config, report, roots, volumes_dir.parent)
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

