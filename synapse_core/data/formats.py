"""Chunked multiscale volumes through TensorStore: OME-Zarr, N5, Neuroglancer precomputed, WebKnossos.

:func:`open_volume` detects the format of a path or URL from its metadata file, picks a scale
level and returns a :class:`ChunkedVolume`: a picklable :class:`ChunkedSource` (a
:class:`~synapse_core.data.volumes.VolumeSource` whose ``.open()`` gives a :class:`WindowedArray`
indexed ``[z, y, x]`` from 0), the level's voxel size (z, y, x) in nm and the physical position
(nm) of voxel 0's corner. Only the windows a caller asks for are read, so nothing scales with
the size of the volume.

=========================  ==========================================  ==========================
format (``format =``)      metadata read                               axes of the stored array
=========================  ==========================================  ==========================
``ome-zarr``               ``.zattrs`` (NGFF 0.4) or ``zarr.json``      from ``axes`` (t, c fixed
                           ``ome`` (0.5): ``multiscales`` datasets,     at index 0)
                           ``coordinateTransformations`` scale and
                           translation, axis units
``n5``                     ``attributes.json``: ``resolution`` or      x, y, z (N5 convention;
                           ``pixelResolution`` (x, y, z) times          an ``axes`` attribute
                           ``downsamplingFactors``; groups with         overrides)
                           ``s0``, ``s1``, ... levels
``precomputed``            ``info``: ``scales`` with ``resolution``     x, y, z, channel
                           (x, y, z nm), ``voxel_offset``, ``size``
``webknossos``             ``datasource-properties.json``: ``scale``   c, x, y, z (zarr3 mags)
                           (x, y, z nm), layer ``mags``,
                           ``boundingBox.topLeft``; zarr3 layers
=========================  ==========================================  ==========================

Scale level: with a target voxel size, the coarsest level that is nowhere coarser than the target
(every axis ≤ target × 1.01), else the finest level; without a target, the finest level. A config
``key`` names a level explicitly (OME-Zarr dataset path, N5 ``s1``, precomputed scale key,
WebKnossos ``layer/mag``).

Remote URLs (``gs://``, ``s3://``, ``http(s)://``) are passed to TensorStore; when they cannot be
reached the :class:`~synapse_core.data.volumes.VolumeError` says so (offline, credentials).
WebKnossos ``wkw`` layers are refused with the conversion to do (TensorStore reads zarr3 only).

Example
-------
>>> vol = open_volume("em.ome.zarr", target_voxel_size_nm=(16, 16, 16))   # doctest: +SKIP
>>> vol.voxel_size_nm, vol.level                                           # doctest: +SKIP
((16.0, 16.0, 16.0), 's1')
>>> read_box(vol.source, (0, 0, 0), (8, 8, 8)).shape                         # doctest: +SKIP
(8, 8, 8)
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synapse_core.data.hashing import content_hash
from synapse_core.data.volumes import VolumeError, VolumeSource, WindowedArray
from synapse_core.data.voxel_size import UNIT_NM, check_voxel_size, format_voxel_size
from synapse_core.data.windows import tensorstore_context

FORMATS = ("ome-zarr", "n5", "precomputed", "webknossos")
REMOTE_SCHEMES = ("gs://", "s3://", "http://", "https://")
#: Seconds to wait for a remote metadata file before saying the URL cannot be reached.
REMOTE_TIMEOUT_S = 20.0


# ------------------------------------------------------------------------------------------ arrays


@functools.lru_cache(maxsize=64)
def _open_store(pid: int, spec_json: str, axes: str, fingerprint: str):
    """The TensorStore of ``spec_json`` transposed to (z, y, x) and translated to start at 0."""
    import tensorstore as ts

    try:
        store = ts.open(json.loads(spec_json), read=True, context=tensorstore_context()).result(
            timeout=REMOTE_TIMEOUT_S)
    except Exception as exc:  # TensorStore raises ValueError/TimeoutError/OSError
        raise VolumeError(_open_error(json.loads(spec_json), exc)) from exc
    names = axes.split(",")
    order = [names.index(a) for a in "zyx"] + [i for i, a in enumerate(names) if a not in "zyx"]
    view = store[ts.d[order].transpose[:]]
    if len(names) > 3:  # channel/time axes: the first entry
        view = view[(slice(None),) * 3 + (0,) * (len(names) - 3)]
    return view[ts.d[:].translate_to[0]]


def _open_error(spec, exc) -> str:
    url = spec.get("kvstore", "") if isinstance(spec, dict) else ""
    text = url if isinstance(url, str) else json.dumps(url)
    return f"{text}: TensorStore cannot open this volume ({exc.__class__.__name__}: {exc})"


@dataclass(frozen=True)
class ChunkedSource(VolumeSource):
    """A volume TensorStore opens: ``spec`` (TensorStore JSON spec, as text) and its ``axes`` order.

    ``kind`` is the format (``"ome-zarr"``, ``"n5"``, ``"precomputed"``, ``"webknossos"``), ``path``
    the dataset's path or URL and ``key`` the level or layer. Picklable plain data.
    """

    spec: str = "{}"
    axes: str = "z,y,x"

    def open(self) -> WindowedArray:
        """The volume as a :class:`WindowedArray` ``[z, y, x]`` (opened once per process)."""
        return WindowedArray(_open_store(os.getpid(), self.spec, self.axes, self.fingerprint))


@dataclass(frozen=True)
class ScaleLevel:
    """One resolution level: its ``key``, voxel size (z, y, x) nm, voxel-0 corner (z, y, x) nm, TensorStore spec."""

    key: str
    voxel_size_nm: tuple[float, float, float] | None
    offset_nm: tuple[float, float, float]
    spec: dict
    axes: tuple[str, ...]


@dataclass(frozen=True)
class ChunkedVolume:
    """An opened multiscale volume at one level.

    ``source`` opens the level (``[z, y, x]`` from 0); ``shape_zyx`` in voxels; ``voxel_size_nm``
    (z, y, x) or None when the metadata has none; ``offset_nm`` (z, y, x) is the physical position
    of voxel 0's corner; ``levels`` lists every level's key and voxel size; ``description`` says
    what was read (for reports).
    """

    source: ChunkedSource
    format: str
    level: str
    shape_zyx: tuple[int, int, int]
    voxel_size_nm: tuple[float, float, float] | None
    offset_nm: tuple[float, float, float]
    levels: tuple[tuple[str, tuple[float, float, float] | None], ...]
    description: str

    @property
    def offset_voxels_zyx(self) -> tuple[float, float, float]:
        """``offset_nm`` in voxels of this level (0 when the voxel size is unknown)."""
        if self.voxel_size_nm is None:
            return (0.0, 0.0, 0.0)
        return tuple(o / s for o, s in zip(self.offset_nm, self.voxel_size_nm))


# -------------------------------------------------------------------------------------- metadata


def is_remote(path: str) -> bool:
    """True for ``gs://``, ``s3://``, ``http(s)://`` URLs."""
    return str(path).startswith(REMOTE_SCHEMES)


def _base_url(path: str) -> str:
    path = str(path)
    for prefix in ("precomputed://", "n5://", "zarr://", "zarr3://", "zarr2://", "wk://"):
        path = path.removeprefix(prefix)
    if is_remote(path) or path.startswith("file://"):
        return path.rstrip("/") + "/"
    return "file://" + os.path.abspath(os.path.expanduser(path)).rstrip("/") + "/"


def _kvstore(url: str):
    import tensorstore as ts

    try:
        return ts.KvStore.open(url).result(timeout=REMOTE_TIMEOUT_S)
    except Exception as exc:
        raise VolumeError(_unreachable(url, exc)) from exc


def _unreachable(url: str, exc) -> str:
    if is_remote(url):
        return (f"{url}: cannot reach this remote volume ({exc.__class__.__name__}: {exc}). Remote volumes need "
                f"network access from this machine (and credentials for private gs:// or s3:// buckets); "
                f"copy the volume to a local folder to work offline")
    return f"{url}: cannot read ({exc.__class__.__name__}: {exc})"


def _read_json(url: str, name: str) -> dict | None:
    """The JSON file ``name`` under ``url``, or None when it is absent."""
    store = _kvstore(url)
    try:
        got = store.read(name).result(timeout=REMOTE_TIMEOUT_S)
    except Exception as exc:
        raise VolumeError(_unreachable(url + name, exc)) from exc
    if got.state != "value":
        return None
    try:
        return json.loads(bytes(got.value))
    except ValueError as exc:
        raise VolumeError(f"{url}{name}: not valid JSON ({exc})") from exc


def detect_format(path: str) -> str:
    """The format of the volume at ``path`` (a folder or URL), from the metadata file it holds.

    Returns one of :data:`FORMATS`, or ``"zarr"``/``"hdf5"`` for a plain array (read by
    :mod:`synapse_core.data.volumes`). Raises :class:`VolumeError` naming the path when none fits.
    """
    text = str(path)
    if text.startswith("precomputed://"):
        return "precomputed"
    if text.startswith("n5://"):
        return "n5"
    if not is_remote(text) and not text.startswith("file://"):
        p = Path(text).expanduser()
        if p.suffix.lower() in (".h5", ".hdf5", ".hdf"):
            return "hdf5"
        if not p.exists():
            raise VolumeError(f"{path}: file or folder not found")
    url = _base_url(text)
    if _read_json(url, "datasource-properties.json") is not None:
        return "webknossos"
    info = _read_json(url, "info")
    if info is not None and "scales" in info:
        return "precomputed"
    attrs = _read_json(url, "attributes.json")
    if attrs is not None:
        return "n5"
    for name in ("zarr.json", ".zattrs"):
        meta = _read_json(url, name)
        if meta is not None and _multiscales(meta) is not None:
            return "ome-zarr"
    if _read_json(url, "zarr.json") is not None or _read_json(url, ".zarray") is not None \
            or _read_json(url, ".zgroup") is not None:
        return "zarr"
    raise VolumeError(f"{path}: no volume metadata found (datasource-properties.json, info, attributes.json, "
                      f"zarr.json, .zattrs or .zarray); give the OME-Zarr, N5, precomputed or WebKnossos "
                      f"dataset folder, or format = ... in the config")


def _multiscales(meta: dict):
    attrs = meta.get("attributes", meta)  # zarr.json (v3) keeps them under "attributes"
    attrs = attrs.get("ome", attrs)  # NGFF 0.5 nests under "ome"
    ms = attrs.get("multiscales")
    return ms if isinstance(ms, list) and ms else None


def _unit_nm(unit, where: str) -> float:
    if unit in (None, ""):
        return 1.0
    factor = UNIT_NM.get(str(unit).strip().lower())
    if factor is None:
        raise VolumeError(f"{where}: unknown length unit {unit!r}; use nanometer or micrometer")
    return factor


def _ome_levels(url: str, key: str | None) -> tuple[list[ScaleLevel], str | None]:
    """OME-Zarr levels of the image at ``url`` (``key``: a sub-image such as ``labels/cells`` or a level path)."""
    image_url, level_key = url, None
    if key:
        sub = url + key.strip("/") + "/"
        if _read_json(sub, "zarr.json") is not None and _multiscales(_read_json(sub, "zarr.json") or {}) \
                or _multiscales(_read_json(sub, ".zattrs") or {}):
            image_url = sub
        else:
            level_key = key.strip("/")
    meta3 = _read_json(image_url, "zarr.json")
    meta = meta3 if meta3 is not None and _multiscales(meta3) else _read_json(image_url, ".zattrs") or {}
    ms = _multiscales(meta)
    if ms is None:
        raise VolumeError(f"{image_url}: no OME-Zarr 'multiscales' metadata; name the image with key = ...")
    ms = ms[0]
    driver = "zarr3" if meta is meta3 else "zarr"
    axes = ms.get("axes") or [{"name": a} for a in "tczyx"[-len(ms["datasets"][0]["coordinateTransformations"][0]["scale"]):]]
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    if not set("zyx") <= set(names):
        raise VolumeError(f"{image_url}: OME-Zarr axes {names} lack z, y or x; a 3-D volume is needed")
    units = [_unit_nm(a.get("unit") if isinstance(a, dict) else None, f"{image_url} axes") for a in axes]
    global_scale, global_shift = _ome_transform(ms.get("coordinateTransformations"), len(names))
    levels = []
    for d in ms["datasets"]:
        scale, shift = _ome_transform(d.get("coordinateTransformations"), len(names))
        pick = [names.index(a) for a in "zyx"]
        size = tuple(float(scale[i] * global_scale[i] * units[i]) for i in pick)
        offset = tuple(float((shift[i] * global_scale[i] + global_shift[i]) * units[i]) for i in pick)
        spec = {"driver": driver, "kvstore": image_url + d["path"].strip("/") + "/"}
        levels.append(ScaleLevel(str(d["path"]), size, offset, spec, tuple(names)))
    return levels, level_key


def _ome_transform(transforms, n: int) -> tuple[list[float], list[float]]:
    scale, shift = [1.0] * n, [0.0] * n
    for t in transforms or []:
        if t.get("type") == "scale" and "scale" in t:
            scale = [float(v) for v in t["scale"]]
        elif t.get("type") == "translation" and "translation" in t:
            shift = [float(v) for v in t["translation"]]
    return scale, shift


def _n5_resolution(attrs: dict, where: str) -> list[float] | None:
    """(x, y, z) nm from ``resolution`` or ``pixelResolution``, or None."""
    if "pixelResolution" in attrs:
        pr = attrs["pixelResolution"]
        if isinstance(pr, dict):
            return [float(v) * _unit_nm(pr.get("unit"), where) for v in pr["dimensions"]]
        return [float(v) for v in pr]
    if "resolution" in attrs:
        unit = attrs.get("units", ["nm"])
        factor = _unit_nm(unit[0] if isinstance(unit, list) else unit, where)
        return [float(v) * factor for v in attrs["resolution"]]
    return None


def _n5_levels(url: str, key: str | None) -> tuple[list[ScaleLevel], str | None]:
    group_url, level_key = url, None
    if key:
        sub = url + key.strip("/") + "/"
        sub_attrs = _read_json(sub, "attributes.json") or {}
        if "dimensions" in sub_attrs:  # key names one array (a level)
            level_key = key.strip("/")
        else:
            group_url = sub
    attrs = _read_json(group_url, "attributes.json") or {}
    arrays = []
    if "dimensions" in attrs:
        arrays = [("", attrs)]
    else:
        i = 0
        while (a := _read_json(group_url, f"s{i}/attributes.json")) is not None and "dimensions" in a:
            arrays.append((f"s{i}", a))
            i += 1
    if not arrays:
        raise VolumeError(f"{group_url}: an N5 group without an array or s0, s1, ... levels; name the array "
                          f"with key = ...")
    base_res = _n5_resolution(attrs, group_url)
    levels = []
    for name, a in arrays:
        axes = [str(v).lower() for v in a.get("axes", attrs.get("axes", ["x", "y", "z"]))]
        res = _n5_resolution(a, group_url + name)
        factors = a.get("downsamplingFactors") or [1.0] * len(axes)
        if res is None and base_res is not None:
            res = [r * float(f) for r, f in zip(base_res, factors)]
        size = tuple(float(res[axes.index(c)]) for c in "zyx") if res is not None else None
        spec = {"driver": "n5", "kvstore": group_url + (name + "/" if name else "")}
        levels.append(ScaleLevel(name or "array", size, (0.0, 0.0, 0.0), spec, tuple(axes)))
    return levels, level_key


def _precomputed_levels(url: str, key: str | None) -> tuple[list[ScaleLevel], str | None]:
    info = _read_json(url, "info")
    if info is None:
        raise VolumeError(f"{url}: no precomputed 'info' file")
    levels = []
    for i, sc in enumerate(info["scales"]):
        res = [float(v) for v in sc["resolution"]]  # x, y, z nm
        off = [float(v) for v in sc.get("voxel_offset", [0, 0, 0])]
        spec = {"driver": "neuroglancer_precomputed", "kvstore": url, "scale_index": i}
        levels.append(ScaleLevel(str(sc["key"]), (res[2], res[1], res[0]),
                                 (off[2] * res[2], off[1] * res[1], off[0] * res[0]), spec,
                                 ("x", "y", "z", "channel")))
    return levels, key


def _webknossos_levels(url: str, key: str | None) -> tuple[list[ScaleLevel], str | None]:
    props = _read_json(url, "datasource-properties.json") or {}
    layers = props.get("dataLayers", [])
    layer_name, _, mag_key = (key or "").partition("/")
    names = [la.get("name") for la in layers]
    if not layer_name:
        if len(layers) != 1:
            raise VolumeError(f"{url}: a WebKnossos dataset with layers {names}; name one with key = \"<layer>\"")
        layer_name = names[0]
    if layer_name not in names:
        raise VolumeError(f"{url}: no layer {layer_name!r} in datasource-properties.json; layers: {names}")
    layer = layers[names.index(layer_name)]
    fmt = layer.get("dataFormat", "wkw")
    if fmt != "zarr3":
        raise VolumeError(f"{url}: layer {layer_name!r} is stored as {fmt!r}; TensorStore reads WebKnossos zarr3 "
                          f"layers only. Convert it (WebKnossos: download as Zarr, or the webknossos Python "
                          f"package: Dataset.open(...).copy_dataset(..., data_format='zarr3'))")
    scale = props.get("scale", [1, 1, 1])
    if isinstance(scale, dict):
        factor = [float(v) * _unit_nm(scale.get("unit", "nanometer"), url) for v in scale["factor"]]
    else:
        factor = [float(v) for v in scale]
    top_left = layer.get("boundingBox", {}).get("topLeft", [0, 0, 0])
    levels = []
    for m in layer.get("mags", []):
        mag = m["mag"] if isinstance(m["mag"], list) else [int(v) for v in str(m["mag"]).split("-")]
        mag_name = "-".join(str(int(v)) for v in mag) if len(set(mag)) > 1 else str(int(mag[0]))
        path = str(m.get("path") or f"./{layer_name}/{mag_name}").removeprefix("./")
        kv = path if "://" in path else url + path.strip("/") + "/"
        axis = m.get("axisOrder") or layer.get("axisOrder") or {"c": 0, "x": 1, "y": 2, "z": 3}
        axes = tuple(sorted(axis, key=axis.get))
        size = (factor[2] * mag[2], factor[1] * mag[1], factor[0] * mag[0])
        offset = (top_left[2] * factor[2], top_left[1] * factor[1], top_left[0] * factor[0])
        levels.append(ScaleLevel(mag_name, size, offset, {"driver": "zarr3", "kvstore": kv}, axes))
    if not levels:
        raise VolumeError(f"{url}: layer {layer_name!r} lists no mags")
    return levels, (mag_key or None)


_LEVEL_READERS = {"ome-zarr": _ome_levels, "n5": _n5_levels, "precomputed": _precomputed_levels,
                  "webknossos": _webknossos_levels}


def choose_level(levels, target_voxel_size_nm=None) -> int:
    """Index of the level to read: the coarsest nowhere coarser than the target (≤ 1.01 × target per axis),
    else the finest; without a target (or without voxel sizes) the finest.

    Parameters
    ----------
    levels : sequence of ScaleLevel (or of (z, y, x) nm voxel sizes)
    target_voxel_size_nm : float or 3 floats (z, y, x), optional

    >>> choose_level([(8, 8, 8), (16, 16, 16), (32, 32, 32)], 20)
    1
    >>> choose_level([(8, 8, 8), (16, 16, 16)], 4)
    0
    """
    sizes = [getattr(lv, "voxel_size_nm", lv) for lv in levels]
    finest = min(range(len(sizes)), key=lambda i: math.prod(sizes[i]) if sizes[i] else math.inf)
    if target_voxel_size_nm is None or any(s is None for s in sizes):
        return finest
    target = np.broadcast_to(np.asarray(target_voxel_size_nm, float), (3,))
    fits = [i for i, s in enumerate(sizes) if np.all(np.asarray(s) <= target * 1.01)]
    if not fits:
        return finest
    return max(fits, key=lambda i: math.prod(sizes[i]))


def _fingerprint(url: str, fmt: str, level: ScaleLevel) -> str:
    """Changes when the level's metadata file changes (local) or names the URL (remote)."""
    if url.startswith("file://"):
        kv = level.spec["kvstore"]
        folder = Path(kv.removeprefix("file://"))
        meta = [folder / n for n in ("zarr.json", ".zarray", "attributes.json", "info")]
        stats = [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in meta if p.exists()]
        return content_hash({"format": fmt, "spec": level.spec, "stat": stats})
    return content_hash({"format": fmt, "spec": level.spec})


def open_volume(path: str, key: str | None = None, format: str | None = None,
                target_voxel_size_nm=None) -> ChunkedVolume:
    """Open the OME-Zarr, N5, precomputed or WebKnossos volume at ``path`` at one scale level.

    Parameters
    ----------
    path : str
        A local folder, a ``file://`` URL or a remote ``gs://``, ``s3://``, ``http(s)://`` URL.
    key : str, optional
        Which image/level/layer: OME-Zarr sub-image (``labels/cells``) or dataset path (``1``); N5
        array or group (``s1``, ``raw``); precomputed scale key (``8_8_8``); WebKnossos layer
        (``color`` or ``color/2``).
    format : str, optional
        One of :data:`FORMATS`; detected from the metadata when not given.
    target_voxel_size_nm : float or 3 floats (z, y, x), optional
        Picks the level (:func:`choose_level`) unless ``key`` names one.

    Raises
    ------
    VolumeError
        Naming the path: no metadata, an unknown key, a level that cannot be read, a remote URL
        that cannot be reached.
    """
    fmt = (format or detect_format(path)).lower()
    if fmt not in _LEVEL_READERS:
        raise VolumeError(f"{path}: format {fmt!r} is not a multiscale format; use one of {list(FORMATS)}")
    url = _base_url(path)
    levels, level_key = _LEVEL_READERS[fmt](url, key)
    keys = [lv.key for lv in levels]
    if level_key is not None:
        if level_key not in keys:
            raise VolumeError(f"{path}: no scale level {level_key!r}; levels: {keys}")
        index = keys.index(level_key)
    else:
        index = choose_level(levels, target_voxel_size_nm)
    level = levels[index]
    size = level.voxel_size_nm
    if size is not None:
        try:
            size = check_voxel_size(size, f"{path} level {level.key}")
        except ValueError as exc:
            raise VolumeError(str(exc)) from exc
    source = ChunkedSource(kind=fmt, path=str(path), key=level.key, fingerprint=_fingerprint(url, fmt, level),
                           spec=json.dumps(level.spec, sort_keys=True), axes=",".join(level.axes))
    shape = tuple(int(n) for n in source.open().shape)
    where = f"{fmt} {path} level {level.key}"
    desc = (f"{where}: {shape} voxels (z, y, x)"
            + (f", {format_voxel_size(size)}" if size else ", voxel size not in the metadata"))
    return ChunkedVolume(source, fmt, level.key, shape, size, tuple(level.offset_nm),
                         tuple((lv.key, lv.voxel_size_nm) for lv in levels), desc)
