"""Galleries of synapses: GIFs and orthogonal slices cached on disk, ZIPs of many GIFs.

Pictures are keyed by the volume's fingerprint, the synapse key, the crop settings and the
rendering options, in a :class:`diskcache.Cache` under ``cache_dir/gallery`` that several
processes (users of one lab server) share safely.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import diskcache

from synapse_core.crops.build import Discarded, crop_synapse
from synapse_core.crops.settings import CropSettings
from synapse_core.data.hashing import content_hash
from synapse_core.data.synapse_keys import synapse_file_name
from synapse_core.viz.render import crop_gif_bytes, orthogonal_png_bytes

#: Bytes of cached pictures kept before the least recently used are evicted.
GALLERY_CACHE_BYTES = 2 * 1024**3
_CACHES: dict[str, diskcache.Cache] = {}


def gallery_cache(cache_dir: str | os.PathLike) -> diskcache.Cache:
    """The picture cache under ``cache_dir/gallery`` (one handle per process and folder)."""
    folder = str(Path(cache_dir) / "gallery")
    if folder not in _CACHES:
        _CACHES[folder] = diskcache.Cache(folder, size_limit=GALLERY_CACHE_BYTES)
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
                overlays: Sequence[str] = (), image: str = "blended", fps: float = 10.0, scale: int = 2) -> bytes | str:
    """Looping GIF through z of one synapse's crop (bytes), starting at the centre slice, or
    ``"discarded: <reason>"``."""
    return _picture(dataset, bbox_name, var1, settings, cache_dir, "gif", crop_gif_bytes,
                    overlays=tuple(overlays), image=image, fps=fps, scale=scale, first_slice="center")


def synapse_orthogonal_png(dataset, bbox_name: str, var1: str, settings: CropSettings, cache_dir,
                           overlays: Sequence[str] = (), image: str = "blended", scale: int = 3) -> bytes | str:
    """PNG of the crop's three orthogonal centre slices, or ``"discarded: <reason>"``."""
    return _picture(dataset, bbox_name, var1, settings, cache_dir, "ortho", orthogonal_png_bytes,
                    overlays=tuple(overlays), image=image, scale=scale)


def gif_zip(dataset, keys: Iterable[tuple[str, str]], settings: CropSettings, cache_dir,
            overlays: Sequence[str] = (), image: str = "blended") -> tuple[bytes, list[str]]:
    """ZIP of one GIF per ``(bbox_name, Var1)``, named like the CLI's (:func:`synapse_file_name`), and the
    list of discarded ones."""
    buf = io.BytesIO()
    discarded = []
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:  # GIFs are compressed already
        for bbox_name, var1 in keys:
            data = synapse_gif(dataset, bbox_name, var1, settings, cache_dir, overlays, image)
            if isinstance(data, str):
                discarded.append(f"{bbox_name}/{var1}: {data}")
                continue
            zf.writestr(synapse_file_name(bbox_name, var1), data)
    return buf.getvalue(), discarded
