"""Find a data root's bounding boxes and their volumes, without reading its synapse tables.

:func:`discover_bboxes` is the first half of :func:`synapse_core.data.dataset.open_dataset`: the
bboxes of a folder of TIFF stacks (``raw/<bbox>``, ``seg/<bbox>``, ``mask/<bbox>``, converted once
into the cache) and of a dataset config (HDF5, Zarr, OME-Zarr, N5, ...), each with its voxel size.
Mask labels and the synapse rows are added by ``open_dataset``. Imports no pandas: a one-synapse
``crop`` with a remembered dataset (:mod:`synapse_core.data.quick_open`) uses it alone.

Problems are appended to ``report.fatal`` (the bbox is left out) and ``report.warnings``; ``report``
is any object with those two lists (``open_dataset`` passes its
:class:`~synapse_core.data.validate.ValidationReport`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from synapse_core.data import voxel_size as vs
from synapse_core.data.config import DatasetConfig, VolumeSpec, config_line
from synapse_core.data.labels import LabelIds
from synapse_core.data.paths import describe_roots, is_inside
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


def config_file_of(root: str | os.PathLike, config: DatasetConfig) -> str:
    """The config file of a data root, or where one would be created."""
    if config.path:
        return config.path
    root = Path(root)
    return str((root if root.is_dir() else root.parent) / "synapse_dataset.toml")


def _mask_dir(data_dir: Path, bbox: str, roots=None, report=None) -> Path | None:
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


def _tiff_bbox(name: str, data_dir: Path, volumes_dir: Path, config: DatasetConfig, report,
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


def _config_bbox(name: str, config: DatasetConfig, report):
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


def _with_voxel_size(b: BboxSource, readers: dict, config: DatasetConfig, config_file: str,
                     report) -> BboxSource | None:
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


def table_bbox_names(data_dir: Path, bboxes) -> list[str]:
    """Bboxes whose synapse tables are looked for: those in ``bboxes`` and every folder of
    ``data_dir/raw`` (a bbox left out for a problem still has its rows read and reported), natural order."""
    raw_root = data_dir / "raw"
    raw_dirs = {p.name for p in raw_root.iterdir() if p.is_dir()} if raw_root.is_dir() else set()
    return sorted(set(bboxes) | raw_dirs, key=natural_key)


def discover_bboxes(root: Path, config: DatasetConfig, volumes_dir: Path, report, roots=None) -> dict[str, BboxSource]:
    """The usable bboxes of the data root ``root`` (a folder, or a config file), each with its voxel size.

    Bboxes named in the config with a raw volume come first (config order), then the folders of
    ``raw/`` (natural order) that the config does not give volumes for. TIFF stacks are converted
    into ``volumes_dir`` on first use. Labels are the config's (not yet checked against the mask).
    Problems go to ``report.fatal``/``report.warnings``; a bbox with a fatal problem is left out.
    """
    data_dir = root if root.is_dir() else root.parent
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
    return bboxes
