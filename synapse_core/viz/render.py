"""Pictures of one synapse crop: an animated GIF through z and a PNG of the orthogonal centre slices.

Gray EM (the network input ``crop.blended`` by default, or ``crop.raw``) with optional colour
overlays of the crop's structures. Frames use one fixed palette (gray levels plus a few shades per
overlay colour), so a decoded pixel is coloured only where its structure mask is True and the same
crop always gives the same bytes.
"""

from __future__ import annotations

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


def _palette() -> list[int]:
    """Palette entries: ``_GRAY_LEVELS`` grays, then ``_SHADES`` shades of each overlay colour."""
    pal = []
    for i in range(_GRAY_LEVELS):
        g = round(i * 255 / (_GRAY_LEVELS - 1))
        pal += [g, g, g]
    for color in STRUCTURE_COLOURS.values():
        for i in range(_SHADES):
            g = i * 255 / (_SHADES - 1)
            pal += [round((1 - OVERLAY_OPACITY) * g + OVERLAY_OPACITY * c) for c in color]
    return pal + [0, 0, 0] * (256 - len(pal) // 3)


_PALETTE = _palette()


def check_overlays(overlays: Sequence[str]) -> tuple[str, ...]:
    """Validate overlay names; ValueError lists the accepted names."""
    overlays = tuple(overlays)
    unknown = [o for o in overlays if o not in STRUCTURE_COLOURS]
    if unknown:
        raise ValueError(f"unknown overlay {unknown[0]!r}; choose from {', '.join(STRUCTURE_COLOURS)}")
    return overlays


def palette_indices(image: np.ndarray, structures: dict, overlays: Sequence[str]) -> np.ndarray:
    """uint8 palette indices for gray ``image`` in [0, 1] with the named structure overlays (any shape)."""
    gray = np.clip(image, 0, 1)
    out = np.rint(gray * (_GRAY_LEVELS - 1)).astype(np.uint8)
    names = list(STRUCTURE_COLOURS)
    shade = np.rint(gray * (_SHADES - 1)).astype(np.uint8)
    for name in sorted(check_overlays(overlays), key=_DRAW_ORDER.index):
        m = structures[name]
        base = _GRAY_LEVELS + names.index(name) * _SHADES
        out[m] = base + shade[m]
    return out


def _image(indices: np.ndarray, scale: int, palette=None) -> Image.Image:
    if scale > 1:
        indices = np.repeat(np.repeat(indices, scale, axis=0), scale, axis=1)
    im = Image.fromarray(np.ascontiguousarray(indices), mode="P")
    im.putpalette(palette or _PALETTE)
    return im


def _keep_identical_frames(idx: np.ndarray) -> list[int]:
    """Make consecutive identical frames differ in palette index only (same colours), in place.

    GIF encoders merge a frame identical to the previous one, which would break "frame k = slice
    z=k". Voxel (0, 0) of such a frame is switched to a spare palette entry of the same colour.
    Returns the palette to use (the spare entries filled); after 8 distinct duplicates frames merge.
    """
    palette = list(_PALETTE)
    spare = iter(range(_GRAY_LEVELS + _SHADES * len(STRUCTURE_COLOURS), 256))
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


def crop_gif_bytes(crop, overlays: Sequence[str] = (), fps: float = 10.0, scale: int = 2,
                   image: str = "blended", first_slice: int | str = 0) -> bytes:
    """Animated GIF sweeping through z (one frame per slice, ascending z), looping forever.

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
    first_slice : int or "center"
        z of the first frame (default 0). ``"center"`` starts at the synapse's slice, so a still
        thumbnail or the first frame a viewer shows is the synapse; the loop order is unchanged
        (frames ``first_slice .. z_max, 0 .. first_slice - 1``), as is the one jump from the last to
        the first slice.

    Notes
    -----
    GIF stores frame durations in 1/100 s, so ``fps`` is rounded to a 10 ms multiple. Consecutive
    identical frames (e.g. a crop that is flat gray on several slices) are merged by the encoder.
    """
    if not (isinstance(fps, (int, float)) and 0 < fps <= 100):
        raise ValueError(f"fps must be a number in (0, 100], got {fps!r}")
    scale = _check_scale(scale)
    vol = _gray_volume(crop, image)
    idx = palette_indices(vol, crop.structures, overlays)
    palette = _keep_identical_frames(idx)
    n = idx.shape[0]
    start = n // 2 if first_slice == "center" else first_slice
    if not isinstance(start, (int, np.integer)) or isinstance(start, bool) or not 0 <= start < n:
        raise ValueError(f"first_slice must be 'center' or an integer in [0, {n}), got {first_slice!r}")
    frames = [_image(idx[(start + k) % n], scale, palette) for k in range(n)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=round(1000 / fps),
                   loop=0, optimize=False, disposal=1)
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
