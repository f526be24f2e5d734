"""Voxel size (z, y, x) in nm read from the data files, for datasets whose config does not give it.

Plain functions; each returns a :class:`VoxelSize` (the size and where it was read) or None when the
file says nothing. The dataset config's ``voxel_size_nm`` always wins over the data
(:mod:`synapse_core.data.dataset`). Sizes that are NaN, infinite, zero or negative are refused with
a :class:`VoxelSizeError` naming the file and the attribute or tag.

Where each format keeps it, and in which axis order:

========================  ========================================================  ==============
attribute / tag           where it comes from                                        axis order
========================  ========================================================  ==============
``resolution_nm_zyx``     this project's and the FlyEM medulla files, in nm         (z, y, x)
``voxel_size``            funlib/daisy (``funlib.persistence``), in nm              (z, y, x) [1]_
``resolution``            CREMI HDF5 and funlib Zarr, in nm                         (z, y, x) [1]_
``pixelResolution``       N5 (BigDataViewer / n5-viewer):                           (x, y, z)
                          ``{"dimensions": [x, y, z], "unit": "nm"}`` or a list
``multiscales``           OME-Zarr (NGFF 0.4; 0.5 under ``ome``): the ``scale`` of   from ``axes``
                          the dataset's ``coordinateTransformations``, times the
                          multiscale-level scale, in each axis's ``unit``
XResolution/YResolution   TIFF tags: pixels per ResolutionUnit (inch/centimeter);   x, y
                          with ResolutionUnit "none", ImageJ's ``unit=``
ImageJ ``spacing``        ImageJ TIFF description: z step in ImageJ's ``unit``      z
========================  ========================================================  ==============

.. [1] An ``axis_order`` attribute next to it (``"zyx"`` or ``"xyz"``) overrides the assumed order,
   and a ``unit``/``units`` attribute overrides nm.

HDF5 and Zarr attributes are looked up on the dataset itself first, then on each parent group up
to the file's root (a group-level ``resolution`` applies to every dataset in it).

Example
-------
>>> v = from_attributes({"resolution": [40, 4, 4]}, "cremi.h5:volumes/raw")
>>> v.zyx_nm, v.describe()
((40.0, 4.0, 4.0), '40×4×4 nm (z, y, x) from cremi.h5:volumes/raw attribute resolution')
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class VoxelSizeError(ValueError):
    """A voxel size that cannot be used (NaN, inf, ≤ 0, malformed) or sizes that disagree; names the file."""


#: Length units accepted in attributes and TIFF descriptions, as nm per unit.
UNIT_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "nanometre": 1.0, "nanometres": 1.0,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3, "microns": 1e3, "micrometer": 1e3, "micrometers": 1e3,
    "micrometre": 1e3, "micrometres": 1e3,
    "mm": 1e6, "millimeter": 1e6, "millimeters": 1e6, "millimetre": 1e6,
    "cm": 1e7, "centimeter": 1e7, "centimetre": 1e7,
    "m": 1e9, "meter": 1e9, "metre": 1e9,
    "a": 0.1, "å": 0.1, "angstrom": 0.1, "angstroms": 0.1,
    "pm": 1e-3, "picometer": 1e-3,
}
#: ImageJ ``unit=`` values that mean "not calibrated".
NO_UNIT = {"", "pixel", "pixels", "none"}
#: TIFF ResolutionUnit → nm per unit (1 = "none": no physical unit).
TIFF_UNIT_NM = {2: 25.4e6, 3: 1e7, 4: 1e6, 5: 1e3}
#: A TIFF pixel larger than this (nm) is a screen/print default (72 dpi ≈ 353 µm), not an EM pixel size.
TIFF_MAX_PIXEL_NM = 10_000.0
#: Relative difference below which two voxel sizes are the same (rounding in stored attributes).
SAME_RTOL = 1e-3


@dataclass(frozen=True)
class VoxelSize:
    """A voxel size and where it was read.

    Attributes
    ----------
    zyx_nm : tuple of 3 floats, (z, y, x) in nm
        ``zyx_nm[0]`` is None when only the in-plane size is known (a TIFF slice without a z step).
    source : str
        File and attribute/tag, e.g. ``"training_sample2.h5:raw attribute resolution_nm_zyx"``.
    """

    zyx_nm: tuple
    source: str

    @property
    def complete(self) -> bool:
        """True when all three edges are known."""
        return all(v is not None for v in self.zyx_nm)

    def describe(self) -> str:
        """``"10×10×10 nm (z, y, x) from <source>"``."""
        return f"{format_voxel_size(self.zyx_nm)} from {self.source}"


def format_voxel_size(zyx_nm) -> str:
    """``(40, 4, 4)`` → ``"40×4×4 nm (z, y, x)"``; an unknown edge prints as ``?``."""
    return "×".join("?" if v is None else f"{float(v):g}" for v in zyx_nm) + " nm (z, y, x)"


def check_voxel_size(values, where: str) -> tuple[float, float, float]:
    """``values`` as three finite positive floats (z, y, x nm); VoxelSizeError naming ``where`` otherwise.

    ``where`` names the file and key, e.g. ``"synapse_dataset.toml voxel_size_nm"``.
    """
    try:
        out = tuple(float(v) for v in np.asarray(values, dtype=object).reshape(-1))
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3:
        raise VoxelSizeError(f"{where}: a voxel size needs 3 numbers (z, y, x nm), got {_show(values)}")
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise VoxelSizeError(f"{where}: voxel size {_show(values)} is not usable; every edge must be a finite "
                             "number > 0 nm (NaN, inf, 0 and negative sizes are refused)")
    return out


def _show(values) -> str:
    try:
        return "[" + ", ".join(f"{float(v):g}" for v in np.asarray(values, dtype=object).reshape(-1)) + "]"
    except (TypeError, ValueError):
        return repr(values)


def _unit_nm(unit, where: str) -> float:
    text = str(unit).strip().lower().replace("\\u00b5", "µ")
    if text not in UNIT_NM:
        raise VoxelSizeError(f"{where}: unknown length unit {unit!r}; accepted: nm, um/µm/micron, mm, angstrom")
    return UNIT_NM[text]


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)


def _reorder(values, order: str, where: str) -> list:
    order = order.strip().lower()
    if sorted(order) != ["x", "y", "z"]:
        raise VoxelSizeError(f"{where}: axis_order {order!r} must name z, y and x once each (e.g. 'zyx')")
    vals = list(np.asarray(values, dtype=object).reshape(-1))
    if len(vals) != 3:
        raise VoxelSizeError(f"{where}: a voxel size needs 3 numbers, got {_show(values)}")
    return [vals[order.index(a)] for a in "zyx"]


def from_attributes(attrs: Mapping, where: str, dataset_path: str | None = None) -> VoxelSize | None:
    """Voxel size from one attribute mapping (HDF5 ``.attrs``, Zarr ``.attrs``, or a plain dict).

    Parameters
    ----------
    attrs : mapping of attribute name to value
    where : str
        File (and key) the attributes belong to; used in the source text and in errors.
    dataset_path : str, optional
        Name of the array inside an OME-Zarr group, to pick its entry of ``multiscales.datasets``.

    Keys are tried in the order of the module table; the first one present decides.
    """
    attrs = dict(attrs)
    if "resolution_nm_zyx" in attrs:
        name = "resolution_nm_zyx"
        return VoxelSize(check_voxel_size(attrs[name], f"{where} attribute {name}"), f"{where} attribute {name}")
    for name in ("voxel_size", "resolution"):
        if name in attrs:
            label = f"{where} attribute {name}"
            values = attrs[name]
            if "axis_order" in attrs:
                values = _reorder(values, _text(attrs["axis_order"]), label)
            unit = attrs.get("unit", attrs.get("units"))
            scale = _unit_nm(_text(unit), label) if unit is not None else 1.0
            zyx = check_voxel_size(values, label)
            return VoxelSize(tuple(v * scale for v in zyx), label)
    if "pixelResolution" in attrs:
        return _n5_resolution(attrs["pixelResolution"], f"{where} attribute pixelResolution")
    ome = attrs.get("ome") if isinstance(attrs.get("ome"), Mapping) else attrs
    if "multiscales" in ome:
        return _ome_scale(ome["multiscales"], dataset_path, where)
    return None


def _n5_resolution(value, label: str) -> VoxelSize:
    """N5 ``pixelResolution``: ``{"dimensions": [x, y, z], "unit": "nm"}`` (or its JSON text) or a list [x, y, z] nm."""
    unit = "nm"
    if isinstance(value, (str, bytes)):  # HDF5 cannot store a mapping: some writers keep the JSON text
        try:
            value = json.loads(_text(value))
        except ValueError as exc:
            raise VoxelSizeError(f"{label}: not a list or JSON mapping ({exc})") from exc
    if isinstance(value, Mapping):
        unit = value.get("unit", "nm")
        value = value.get("dimensions")
    xyz = check_voxel_size(value, label)
    scale = _unit_nm(unit, label)
    return VoxelSize(tuple(v * scale for v in xyz[::-1]), label)


def _ome_scale(multiscales, dataset_path: str | None, where: str) -> VoxelSize | None:
    """OME-Zarr: per-axis ``scale`` of the dataset (times the multiscale-level scale), in (z, y, x) nm."""
    label = f"{where} attribute multiscales"
    if not isinstance(multiscales, (list, tuple)) or not multiscales or not isinstance(multiscales[0], Mapping):
        raise VoxelSizeError(f"{label}: expected a list of multiscale images (OME-Zarr)")
    ms = multiscales[0]
    axes = ms.get("axes") or []
    names = [a.get("name") if isinstance(a, Mapping) else str(a) for a in axes]
    units = [a.get("unit") if isinstance(a, Mapping) else None for a in axes]
    if not all(n in names for n in "zyx"):
        raise VoxelSizeError(f"{label}: axes {names} do not include z, y and x")
    datasets = ms.get("datasets") or []
    leaf = dataset_path.strip("/").split("/")[-1] if dataset_path else None
    entry = next((d for d in datasets if str(d.get("path")) == leaf), None) if leaf else None
    if entry is None:
        if not datasets:
            raise VoxelSizeError(f"{label}: no datasets listed")
        entry = datasets[0]  # the full-resolution level comes first (NGFF)
    scale = np.ones(len(names))
    found = False
    for transforms in (entry.get("coordinateTransformations") or [], ms.get("coordinateTransformations") or []):
        for t in transforms:
            if isinstance(t, Mapping) and t.get("type") == "scale":
                s = list(t.get("scale") or [])
                if len(s) != len(names):
                    raise VoxelSizeError(f"{label}: scale {s} has {len(s)} values for {len(names)} axes {names}")
                scale = scale * np.asarray(s, dtype=float)
                found = True
    if not found:
        return None
    source = f"{label} (dataset {entry.get('path')!r})"
    zyx = []
    for a in "zyx":
        i = names.index(a)
        zyx.append(scale[i] * (_unit_nm(units[i], source) if units[i] else 1.0))
    return VoxelSize(check_voxel_size(zyx, source), source)


def from_hdf5(path: str | Path, key: str | None) -> VoxelSize | None:
    """Voxel size from the attributes of HDF5 dataset ``key`` (then its parent groups) in ``path``."""
    import h5py

    name = Path(path).name
    with h5py.File(path, "r") as f:
        node = f[key] if key else f
        while True:
            where = f"{name}:{node.name.lstrip('/')}" if node.name != "/" else name
            found = from_attributes(node.attrs, where, dataset_path=key)
            if found is not None or node.name == "/":
                return found
            node = node.parent


def from_zarr(path: str | Path, key: str | None) -> VoxelSize | None:
    """Voxel size from the attributes of Zarr array ``key`` in store ``path`` (then its parent groups).

    ``path`` may also point inside an OME-Zarr image (``image.zarr/0``): the groups above it are read.
    """
    import zarr

    path = Path(path)
    parts = [p for p in (key or "").strip("/").split("/") if p]
    # Nodes from the array up to the store root, then folders above the store that are Zarr groups.
    chain = [("/".join(parts[:i]), i) for i in range(len(parts), -1, -1)]
    for sub, _ in chain:
        try:
            node = zarr.open(str(path), mode="r", path=sub) if sub else zarr.open(str(path), mode="r")
        except (KeyError, FileNotFoundError, ValueError):
            continue
        where = f"{path.name}:{sub}" if sub else path.name
        found = from_attributes(node.attrs, where, dataset_path=key if key else None)
        if found is not None:
            return found
    leaf = path.name
    for parent in path.parents:
        if not any((parent / m).exists() for m in (".zgroup", "zarr.json")):
            break
        try:
            node = zarr.open_group(str(parent), mode="r")
        except (KeyError, FileNotFoundError, ValueError):
            break
        found = from_attributes(node.attrs, parent.name, dataset_path=leaf)
        if found is not None:
            return found
        leaf = f"{parent.name}/{leaf}"
    return None


def from_tiff(path: str | Path) -> VoxelSize | None:
    """Voxel size from a TIFF's resolution tags (y, x) and ImageJ ``spacing`` (z).

    XResolution/YResolution are pixels per ResolutionUnit (inch or centimeter; tifffile's millimeter
    and micrometer too); with ResolutionUnit "none" the ImageJ description's ``unit=`` gives the
    unit, else the tags carry no physical size. Pixels larger than 10 µm are screen/print defaults
    (72 dpi) and ignored. Returns a :class:`VoxelSize` with ``zyx_nm[0] = None`` when there is no
    z step (the usual case for one-slice files), or None without a physical in-plane size.
    """
    import tifffile

    path = Path(path)
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        tags = page.tags
        ij = tf.imagej_metadata or {}
        if "XResolution" not in tags or "YResolution" not in tags:
            return None
        unit_tag = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
        xres, yres = (_rational(tags[t].value) for t in ("XResolution", "YResolution"))
    where = f"{path.name} TIFF tags XResolution/YResolution"
    if unit_tag in TIFF_UNIT_NM:
        per_unit, unit_text = TIFF_UNIT_NM[unit_tag], f"ResolutionUnit {unit_tag}"
    elif _text(ij.get("unit", "")).strip().lower() not in NO_UNIT:
        per_unit, unit_text = _unit_nm(_text(ij["unit"]), f"{path.name} ImageJ unit"), f"ImageJ unit {ij['unit']}"
    else:
        return None
    if not all(math.isfinite(r) and r > 0 for r in (xres, yres)):
        raise VoxelSizeError(f"{where}: resolution {xres:g}, {yres:g} pixels per unit is not usable; "
                             "it must be finite and > 0")
    yx = (per_unit / yres, per_unit / xres)
    if max(yx) > TIFF_MAX_PIXEL_NM:
        return None
    z = None
    source = f"{where} ({unit_text})"
    if ij.get("spacing") is not None and _text(ij.get("unit", "")).strip().lower() not in NO_UNIT:
        z = float(ij["spacing"]) * _unit_nm(_text(ij["unit"]), f"{path.name} ImageJ unit")
        source = f"{path.name} TIFF tags XResolution/YResolution and ImageJ spacing ({unit_text})"
        check_voxel_size((z, *yx), source)
    return VoxelSize((z, *yx), source)


def _rational(value) -> float:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        num, den = value
        return float(num) / float(den) if float(den) else math.nan
    return float(value)


def from_volume(kind: str, path: str | Path, key: str | None) -> VoxelSize | None:
    """Voxel size of an HDF5 (``kind="hdf5"``) or Zarr (``kind="zarr"``) volume; None if not stored."""
    if kind == "hdf5":
        return from_hdf5(path, key)
    if kind == "zarr":
        return from_zarr(path, key)
    raise ValueError(f"unknown volume kind {kind!r}; use 'hdf5' or 'zarr'")


def same_voxel_size(found: Mapping[str, VoxelSize | None], where: str) -> VoxelSize | None:
    """The one voxel size of several volumes of a bbox (e.g. raw, seg, mask), or None if none has one.

    Volumes without a voxel size do not vote. Raises VoxelSizeError naming every file when two
    known sizes differ by more than ``SAME_RTOL``. An unknown z edge (TIFF) is filled from a volume
    that knows it.
    """
    known = {k: v for k, v in found.items() if v is not None}
    if not known:
        return None
    items = list(known.items())
    first = items[0][1]
    for _, other in items[1:]:
        for a, b in zip(first.zyx_nm, other.zyx_nm):
            if a is not None and b is not None and not math.isclose(a, b, rel_tol=SAME_RTOL):
                listing = "; ".join(f"{k} {format_voxel_size(v.zyx_nm)} from {v.source}" for k, v in items)
                raise VoxelSizeError(f"{where}: the volumes disagree on the voxel size: {listing}; fix the files "
                                     "or set voxel_size_nm in the dataset config")
    complete = next((v for v in known.values() if v.complete), None)
    return complete or first
