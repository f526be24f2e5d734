"""Pictures of one synapse crop: an animated GIF through z and a PNG of the orthogonal centre slices.

Gray EM (the network input ``crop.blended`` by default, or ``crop.raw``) with optional colour
overlays of the crop's structures. Frames use one fixed palette (gray levels plus a few shades per
overlay colour), so a decoded pixel is coloured only where its structure mask is True and the same
crop always gives the same bytes.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from synapse_core.viz.colours import STRUCTURE_COLOURS

#: Gray images a picture can show: the network input (``crop.blended``) or the unmasked EM (``crop.raw``).
IMAGES = ("blended", "raw")
#: Opacity of an overlay colour over the gray EM.
OVERLAY_OPACITY = 0.45
_GRAY_LEVELS = 128
_SHADES = 24
_DRAW_ORDER = ("pre", "post", "mitochondria", "vesicle_cloud", "cleft")  # small structures drawn last, on top

#: Gallery and ``gif`` CLI defaults: the slices that hold the synapse, structures coloured, ≈128 px,
#: a 64-level gray palette (demo GIFs ≈ 50 KB instead of ≈ 130 KB; ``benchmarks/gifs.py``).
GIF_OVERLAYS = ("cleft", "vesicle_cloud", "mitochondria")
GIF_SIZE_PX = 128
GIF_GRAY_LEVELS = 64
GIF_MARGIN_SLICES = 1
#: Structures whose slices a "structure" GIF shows (the synapse itself, not the neurons around it).
SYNAPSE_STRUCTURES = ("cleft", "vesicle_cloud")


@functools.lru_cache(maxsize=8)
def _palette(gray_levels: int = _GRAY_LEVELS, shades: int = _SHADES) -> tuple[int, ...]:
    """Palette entries: ``gray_levels`` grays, then ``shades`` shades of each overlay colour."""
    pal = []
    for i in range(gray_levels):
        g = round(i * 255 / (gray_levels - 1))
        pal += [g, g, g]
    for color in STRUCTURE_COLOURS.values():
        for i in range(shades):
            g = i * 255 / (shades - 1)
            pal += [round((1 - OVERLAY_OPACITY) * g + OVERLAY_OPACITY * c) for c in color]
    return tuple(pal + [0, 0, 0] * (256 - len(pal) // 3))


_PALETTE = list(_palette())


def _shades_for(gray_levels: int) -> int:
    """Shades per overlay colour that go with ``gray_levels`` grays (the palette holds 256 entries)."""
    return max(2, min(_SHADES, (256 - gray_levels - 8) // len(STRUCTURE_COLOURS)))


def check_overlays(overlays: Sequence[str]) -> tuple[str, ...]:
    """Validate overlay names; ValueError lists the accepted names."""
    overlays = tuple(overlays)
    unknown = [o for o in overlays if o not in STRUCTURE_COLOURS]
    if unknown:
        raise ValueError(f"unknown overlay {unknown[0]!r}; choose from {', '.join(STRUCTURE_COLOURS)}")
    return overlays


def palette_indices(image: np.ndarray, structures: dict, overlays: Sequence[str],
                    gray_levels: int = _GRAY_LEVELS) -> np.ndarray:
    """uint8 palette indices for gray ``image`` in [0, 1] with the named structure overlays (any shape).

    Indices refer to ``_palette(gray_levels, _shades_for(gray_levels))``.
    """
    shades = _SHADES if gray_levels == _GRAY_LEVELS else _shades_for(gray_levels)
    gray = np.clip(image, 0, 1)
    out = np.rint(gray * (gray_levels - 1)).astype(np.uint8)
    names = list(STRUCTURE_COLOURS)
    shade = np.rint(gray * (shades - 1)).astype(np.uint8)
    for name in sorted(check_overlays(overlays), key=_DRAW_ORDER.index):
        m = structures[name]
        base = gray_levels + names.index(name) * shades
        out[m] = base + shade[m]
    return out


def _palette_for(gray_levels: int) -> list[int]:
    return list(_palette(gray_levels, _SHADES if gray_levels == _GRAY_LEVELS else _shades_for(gray_levels)))


def _image(indices: np.ndarray, scale: int, palette=None) -> Image.Image:
    if scale > 1:
        indices = np.repeat(np.repeat(indices, scale, axis=0), scale, axis=1)
    im = Image.fromarray(np.ascontiguousarray(indices), mode="P")
    im.putpalette(palette or _PALETTE)
    return im


def _keep_identical_frames(idx: np.ndarray, gray_levels: int = _GRAY_LEVELS) -> list[int]:
    """Make consecutive identical frames differ in palette index only (same colours), in place.

    GIF encoders merge a frame identical to the previous one, which would break "frame k = slice
    z=k". Voxel (0, 0) of such a frame is switched to a spare palette entry of the same colour.
    Returns the palette to use (the spare entries filled); after the spares run out frames merge.
    """
    palette = _palette_for(gray_levels)
    shades = _SHADES if gray_levels == _GRAY_LEVELS else _shades_for(gray_levels)
    spare = iter(range(gray_levels + shades * len(STRUCTURE_COLOURS), 256))
    dup: dict[int, int] = {}
    for z in range(1, idx.shape[0]):
        if np.array_equal(idx[z], idx[z - 1]):
            v = int(idx[z, 0, 0])
            if v not in dup:
                d = next(spare, None)
                if d is None:
                    continue
                dup[v] = d
                palette[3 * d:3 * d + 3] = palette[3 * v:3 * v + 3]
            idx[z, 0, 0] = dup[v]
    return palette


def _check_scale(scale) -> int:
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be an integer ≥ 1 (pixels per voxel), got {scale!r}")
    return int(scale)


def structure_slices(structures: dict, margin: int = GIF_MARGIN_SLICES,
                     names: Sequence[str] = SYNAPSE_STRUCTURES) -> np.ndarray:
    """z indices (ascending) of the slices within ``margin`` slices of one that holds a structure.

    Parameters
    ----------
    structures : dict of name → bool array (z, y, x)
        ``SynapseCrop.structures``.
    margin : int
        Slices kept before the first and after the last slice of each run of structure slices.
    names : sequence of str
        Structures that count (default: the cleft and the vesicle cloud). When none of them is in
        the crop, every slice is returned (nothing to centre on, so nothing is hidden).

    Examples
    --------
    >>> m = np.zeros((10, 2, 2), bool); m[4:6] = True
    >>> structure_slices({"cleft": m}, margin=1, names=("cleft",)).tolist()
    [3, 4, 5, 6]
    """
    if margin < 0:
        raise ValueError(f"margin must be ≥ 0 slices, got {margin}")
    present = [structures[n] for n in names if n in structures]
    if not present:
        raise ValueError(f"none of the structures {', '.join(names)} is in the crop; it has {', '.join(structures)}")
    nz = present[0].shape[0]
    has = np.zeros(nz, bool)
    for m in present:
        has |= m.reshape(nz, -1).any(axis=1)
    if not has.any():
        return np.arange(nz)
    keep = np.zeros(nz, bool)
    for z in np.flatnonzero(has):
        keep[max(0, z - margin): z + margin + 1] = True
    return np.flatnonzero(keep)


def structure_fraction(structures: dict, slices: Sequence[int], names: Sequence[str] = SYNAPSE_STRUCTURES) -> float:
    """Fraction of ``slices`` (z indices) that hold any of the ``names`` structures (NaN for no slices)."""
    slices = np.asarray(slices, int)
    if not len(slices):
        return float("nan")
    present = [structures[n] for n in names if n in structures]
    nz = present[0].shape[0]
    has = np.zeros(nz, bool)
    for m in present:
        has |= m.reshape(nz, -1).any(axis=1)
    return float(has[slices].mean())


def _frame_slices(crop, frames) -> np.ndarray:
    nz = crop.blended.shape[0]
    if isinstance(frames, str):
        if frames == "all":
            return np.arange(nz)
        if frames == "structure":
            return structure_slices(crop.structures)
        raise ValueError(f"frames must be 'all', 'structure' or a list of z indices, got {frames!r}")
    z = np.asarray(frames, int)
    if z.ndim != 1 or not len(z) or z.min() < 0 or z.max() >= nz:
        raise ValueError(f"frames must be z indices in [0, {nz}), got {frames!r}")
    return z


def crop_gif_bytes(crop, overlays: Sequence[str] = (), fps: float = 10.0, scale: int = 2,
                   image: str = "blended", first_slice: int | str | None = None, frames="all",
                   size: int | None = None, gray_levels: int = _GRAY_LEVELS) -> bytes:
    """Animated GIF sweeping through z (one frame per slice shown, ascending z), looping forever.

    Parameters
    ----------
    crop : SynapseCrop
    overlays : sequence of str
        Structures to colour, any of ``STRUCTURE_COLOURS`` ("pre", "post", "cleft", "vesicle_cloud",
        "mitochondria").
    fps : float
        Frames per second (the original used 8–10).
    scale : int
        Pixels per voxel (nearest neighbour); frames are ``(y * scale, x * scale)`` pixels.
    image : {"blended", "raw"}
        Gray image: the network input (default) or the unmasked normalised EM.
    first_slice : int, "center" or None
        z of the first frame (default: the first slice shown), one of the slices shown. ``"center"`` starts at the
        synapse's slice (the shown slice nearest the crop centre), so a still thumbnail or the
        first frame a viewer shows is the synapse; the loop order is unchanged.
    frames : "all", "structure" or sequence of int
        Slices shown: every slice, the slices holding the cleft or vesicle cloud ± ``GIF_MARGIN_SLICES``
        (:func:`structure_slices`), or these z indices.
    size : int, optional
        Longer side of a frame in pixels (nearest neighbour); replaces ``scale`` when given.
    gray_levels : int
        Gray levels of the palette (2–128); fewer levels give smaller files.

    Notes
    -----
    GIF stores frame durations in 1/100 s, so ``fps`` is rounded to a 10 ms multiple. Consecutive
    identical frames (e.g. a crop that is flat gray on several slices) are kept apart by a spare
    palette entry of the same colour.
    """
    if not (isinstance(fps, (int, float)) and 0 < fps <= 100):
        raise ValueError(f"fps must be a number in (0, 100], got {fps!r}")
    if not (isinstance(gray_levels, (int, np.integer)) and 2 <= gray_levels <= _GRAY_LEVELS):
        raise ValueError(f"gray_levels must be an integer in [2, {_GRAY_LEVELS}], got {gray_levels!r}")
    if size is not None and not (isinstance(size, (int, np.integer)) and 8 <= size <= 4096):
        raise ValueError(f"size must be an integer number of pixels in [8, 4096], got {size!r}")
    scale = _check_scale(scale)
    vol = _gray_volume(crop, image)
    z = _frame_slices(crop, frames)
    if first_slice is None:
        start = 0
    elif first_slice == "center":
        start = int(np.argmin(np.abs(z - vol.shape[0] // 2)))
    elif isinstance(first_slice, (int, np.integer)) and not isinstance(first_slice, bool) and first_slice in set(z):
        start = int(np.flatnonzero(z == first_slice)[0])
    else:
        raise ValueError(f"first_slice must be 'center' or an integer in [0, {vol.shape[0]}) among the "
                         f"{len(z)} slices shown, got {first_slice!r}")
    z = np.roll(z, -start)  # frames in the order shown; consecutive identical frames are kept apart in that order
    idx = palette_indices(vol[z], {k: v[z] for k, v in crop.structures.items()}, overlays, int(gray_levels))
    palette = _keep_identical_frames(idx, int(gray_levels))
    n = idx.shape[0]
    if size is not None:
        h, w = idx.shape[1:]
        f = size / max(h, w)
        shape = (max(1, round(w * f)), max(1, round(h * f)))
        images = [_image(idx[k], 1, palette).resize(shape, Image.NEAREST) for k in range(n)]
    else:
        images = [_image(idx[k], scale, palette) for k in range(n)]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                   loop=0, optimize=False, disposal=1)
    return buf.getvalue()


def thumbnail_png_bytes(crop, overlays: Sequence[str] = GIF_OVERLAYS, size: int = 96,
                        image: str = "blended") -> bytes:
    """Small PNG of the crop's centre z-slice with the ``overlays`` coloured (map hover pictures).

    ``size`` is the longer side in pixels (nearest neighbour).
    """
    vol = _gray_volume(crop, image)
    cz = vol.shape[0] // 2
    idx = palette_indices(vol[cz], {k: v[cz] for k, v in crop.structures.items()}, overlays)
    h, w = idx.shape
    f = size / max(h, w)
    im = _image(idx, 1).resize((max(1, round(w * f)), max(1, round(h * f))), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _gray_volume(crop, image: str) -> np.ndarray:
    if image not in IMAGES:
        raise ValueError(f"image must be one of {', '.join(IMAGES)}, got {image!r}")
    return crop.blended if image == "blended" else crop.raw


def orthogonal_slices(volume: np.ndarray) -> list[np.ndarray]:
    """The three centre slices of a (z, y, x) array: z-plane (y, x), y-plane (z, x), x-plane (z, y)."""
    cz, cy, cx = (n // 2 for n in volume.shape[:3])
    return [volume[cz], volume[:, cy], volume[:, :, cx]]


def orthogonal_png_bytes(crop, overlays: Sequence[str] = (), scale: int = 2, image: str = "blended",
                         gap: int = 4) -> bytes:
    """PNG of the three orthogonal centre slices side by side: (y, x) at z centre, (z, x), (z, y).

    Panels are separated by ``gap`` white pixels; ``scale`` pixels per voxel; overlays as in
    :func:`crop_gif_bytes`.
    """
    scale = _check_scale(scale)
    vol = _gray_volume(crop, image)
    panels = [
        palette_indices(sl, {k: orthogonal_slices(v)[i] for k, v in crop.structures.items()}, overlays)
        for i, sl in enumerate(orthogonal_slices(vol))
    ]
    panels = [np.repeat(np.repeat(p, scale, 0), scale, 1) for p in panels]
    h = max(p.shape[0] for p in panels)
    w = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    canvas = np.full((h, w), _GRAY_LEVELS - 1, np.uint8)  # white background
    x = 0
    for p in panels:
        canvas[: p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1] + gap
    im = _image(canvas, 1).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
