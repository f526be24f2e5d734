"""One EM slice with its semantic-mask labels blended in colour, for viewers.

Input slices are 2D ``(y, x)``; output is an RGB ``uint8`` image ``(y, x, 3)``.
"""

from __future__ import annotations

import numpy as np

from synapse_core.data.labels import LabelIds
from synapse_core.viz.colours import NEURON_BOUNDARY_COLOUR, STRUCTURE_COLOURS

#: Structures of the semantic mask drawn by :func:`overlay_slice` (a subset of ``STRUCTURE_COLOURS``).
MASK_STRUCTURES = ("vesicle_cloud", "cleft", "mitochondria")


def gray_to_uint8(slice_yx: np.ndarray) -> np.ndarray:
    """``slice_yx`` as uint8: kept as is when already uint8, else min-max stretched."""
    if slice_yx.dtype == np.uint8:
        return slice_yx
    a = slice_yx.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return ((a - lo) * scale).astype(np.uint8)


def structure_masks(mask_yx: np.ndarray, labels: LabelIds) -> dict[str, np.ndarray]:
    """Boolean (y, x) masks of vesicle cloud, cleft (both cleft labels) and mitochondria."""
    return {
        "vesicle_cloud": mask_yx == labels.vesicle,
        "cleft": (mask_yx == labels.cleft) | (mask_yx == labels.cleft2),
        "mitochondria": mask_yx == labels.mito,
    }


def overlay_slice(
    raw_yx: np.ndarray,
    mask_yx: np.ndarray | None,
    labels: LabelIds,
    opacity: float = 0.45,
    seg_yx: np.ndarray | None = None,
) -> np.ndarray:
    """Gray EM slice with mask structures tinted in :data:`synapse_core.viz.colours.STRUCTURE_COLOURS`.

    Parameters
    ----------
    raw_yx : (y, x) array
        EM intensities.
    mask_yx : (y, x) int array or None
        Semantic-mask labels; None draws no tint.
    labels : LabelIds
        Label ids of this bbox's mask volume.
    opacity : float
        Tint strength in [0, 1].
    seg_yx : (y, x) int array or None
        Neuron segmentation; when given, boundaries between neurons are drawn in yellow.

    Returns
    -------
    (y, x, 3) uint8 RGB image.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    gray = gray_to_uint8(np.asarray(raw_yx)).astype(np.float32)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    if mask_yx is not None:
        for name, where in structure_masks(np.asarray(mask_yx), labels).items():
            colour = np.array(STRUCTURE_COLOURS[name], np.float32)
            rgb[where] = (1.0 - opacity) * rgb[where] + opacity * colour
    if seg_yx is not None:
        seg = np.asarray(seg_yx)
        edge = np.zeros(seg.shape, bool)
        edge[:-1, :] |= seg[:-1, :] != seg[1:, :]
        edge[:, :-1] |= seg[:, :-1] != seg[:, 1:]
        rgb[edge] = 0.5 * rgb[edge] + 0.5 * np.array(NEURON_BOUNDARY_COLOUR, np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)
