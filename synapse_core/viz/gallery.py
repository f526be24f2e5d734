"""Galleries of synapses: GIFs and orthogonal slices cached on disk, ZIPs of many GIFs.

Pictures are keyed by the volume's fingerprint, the synapse key, the crop settings and the
rendering options, in a :class:`~synapse_core.features.store.FileCache` under ``cache_dir/gallery``
(files, never unpickled) that several processes (users of one lab server) share safely.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from synapse_core.crops.build import Discarded, crop_synapse
from synapse_core.crops.settings import CropSettings
from synapse_core.data.hashing import content_hash
from synapse_core.data.synapse_keys import synapse_file_name
from synapse_core.features.store import FileCache
from synapse_core.viz.render import (
    GIF_GRAY_LEVELS,
    GIF_OVERLAYS,
    GIF_SIZE_PX,
    crop_gif_bytes,
    orthogonal_png_bytes,
    thumbnail_png_bytes,
)

_CACHES: dict[str, FileCache] = {}


def gallery_cache(cache_dir: str | os.PathLike) -> FileCache:
    """The picture cache under ``cache_dir/gallery`` (one handle per process and folder)."""
    folder = str(Path(cache_dir) / "gallery")
    if folder not in _CACHES:
        _CACHES[folder] = FileCache(folder)
    return _CACHES[folder]


def picture_key(dataset, bbox_name: str, var1: str, settings: CropSettings, kind: str, **options) -> str:
    """Cache key of one picture: data fingerprints, synapse, crop settings and options."""
    bbox = dataset.bboxes[str(bbox_name)]
    return content_hash({
        "kind": kind,
        "data": [bbox.raw.fingerprint, bbox.seg.fingerprint, bbox.mask.fingerprint if bbox.mask else None],
        "row": dataset.synapse(str(bbox_name), str(var1)).astype(str).to_dict(),
        "crop": settings,
        "options": options,
    })


def _picture(dataset, bbox_name, var1, settings, cache_dir, kind, render, **options) -> bytes | str:
    cache = gallery_cache(cache_dir)
    key = picture_key(dataset, bbox_name, var1, settings, kind, **options)
    hit = cache.get(key)
    if hit is not None:
        return hit
    crop = crop_synapse(dataset, str(bbox_name), str(var1), settings)
    if isinstance(crop, Discarded):
        return f"discarded: {crop.reason}"  # not cached: cheap to find again, and the reason may change
    data = render(crop, **options)
    cache.set(key, data)
    return data


def synapse_gif(dataset, bbox_name: str, var1: str, settings: CropSettings, cache_dir,
                overlays: Sequence[str] = GIF_OVERLAYS, image: str = "blended", fps: float = 10.0,
                scale: int | None = None, size: int | None = GIF_SIZE_PX, frames="structure",
                gray_levels: int = GIF_GRAY_LEVELS) -> bytes | str:
    """Looping GIF through z of one synapse's crop (bytes), starting at the centre slice, or
    ``"discarded: <reason>"``.

    Defaults (the ``gif`` CLI's too): only the slices that hold the cleft or vesicle cloud ± 1,
    cleft/vesicle cloud/mitochondria coloured, 128 px, 64 gray levels. ``scale`` (pixels per voxel)
    replaces ``size`` when given.
    """
    return _picture(dataset, bbox_name, var1, settings, cache_dir, "gif", crop_gif_bytes, **gif_options(
        overlays=overlays, image=image, fps=fps, scale=scale, size=size, frames=frames, gray_levels=gray_levels))


def gif_options(overlays: Sequence[str] = GIF_OVERLAYS, image: str = "blended", fps: float = 10.0,
                scale: int | None = None, size: int | None = GIF_SIZE_PX, frames="structure",
                gray_levels: int = GIF_GRAY_LEVELS) -> dict:
    """Keyword arguments of :func:`~synapse_core.viz.render.crop_gif_bytes` for a gallery GIF."""
    return {"overlays": tuple(overlays), "image": image, "fps": fps, "scale": scale or 1,
            "size": None if scale else size, "frames": frames if isinstance(frames, str) else tuple(frames),
            "gray_levels": gray_levels, "first_slice": "center"}


def synapse_thumbnail(dataset, bbox_name: str, var1: str, settings: CropSettings, cache_dir,
                      overlays: Sequence[str] = GIF_OVERLAYS, size: int = 96, image: str = "blended") -> bytes | str:
    """Small PNG of the crop's centre slice with structure overlays (map hover), or ``"discarded: <reason>"``."""
    return _picture(dataset, bbox_name, var1, settings, cache_dir, "thumbnail", thumbnail_png_bytes,
                    overlays=tuple(overlays), size=size, image=image)


def synapse_orthogonal_png(dataset, bbox_name: str, var1: str, settings: CropSettings, cache_dir,
                           overlays: Sequence[str] = GIF_OVERLAYS, image: str = "blended",
                           scale: int = 3) -> bytes | str:
    """PNG of the crop's three orthogonal centre slices, or ``"discarded: <reason>"``."""
    return _picture(dataset, bbox_name, var1, settings, cache_dir, "ortho", orthogonal_png_bytes,
                    overlays=tuple(overlays), image=image, scale=scale)


#: Columns of a gallery ZIP's ``manifest.csv`` (one row per synapse asked for).
MANIFEST_COLUMNS = ("file", "bbox_name", "Var1", "cluster", "annotation", "status")


def gif_zip(dataset, keys: Iterable[tuple[str, str]], settings: CropSettings, cache_dir,
            overlays: Sequence[str] = GIF_OVERLAYS, image: str = "blended",
            table: pd.DataFrame | None = None) -> tuple[bytes, list[str]]:
    """ZIP of one GIF per ``(bbox_name, Var1)`` plus ``manifest.csv``, and the list of discarded ones.

    GIFs are named like the CLI's (:func:`synapse_file_name`). The manifest has one row per key:
    :data:`MANIFEST_COLUMNS` (``file`` empty and ``status`` ``"discarded: ..."`` for a discarded
    synapse), ``cluster`` and ``annotation`` read from ``table`` (rows with ``bbox_name``/``Var1``)
    when it has them, plus any other columns of ``table`` named ``selection_*``.
    """
    keys = [(str(b), str(v)) for b, v in keys]
    extra = pd.DataFrame(index=pd.MultiIndex.from_tuples(keys, names=["bbox_name", "Var1"]) if keys else None)
    if table is not None and len(keys):
        cols = [c for c in table.columns if c in ("cluster", "annotation") or str(c).startswith("selection_")]
        indexed = table.assign(bbox_name=table["bbox_name"].astype(str), Var1=table["Var1"].astype(str))
        indexed = indexed.drop_duplicates(["bbox_name", "Var1"]).set_index(["bbox_name", "Var1"])[cols]
        extra = indexed.reindex(extra.index)
    buf = io.BytesIO()
    discarded, rows = [], []
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:  # GIFs are compressed already
        for bbox_name, var1 in keys:
            data = synapse_gif(dataset, bbox_name, var1, settings, cache_dir, overlays, image)
            row = {"file": "", "bbox_name": bbox_name, "Var1": var1, "cluster": None, "annotation": None}
            if len(extra.columns):
                row.update(extra.loc[(bbox_name, var1)].to_dict())
            if isinstance(data, str):
                discarded.append(f"{bbox_name}/{var1}: {data}")
                row["status"] = data
            else:
                row["file"] = synapse_file_name(bbox_name, var1)
                row["status"] = "written"
                zf.writestr(row["file"], data)
            rows.append(row)
        manifest = pd.DataFrame(rows)
        order = [c for c in MANIFEST_COLUMNS if c in manifest.columns]
        manifest = manifest[order + [c for c in manifest.columns if c not in order]]
        zf.writestr("manifest.csv", manifest.to_csv(index=False))
    return buf.getvalue(), discarded
