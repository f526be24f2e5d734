"""The raw-pixel baseline feature set: the blended crop, block-averaged to a small grid.

``features="pixels"`` gives each synapse ``pixel_grid``³ values (10³ = 1000 by default): the mean
intensity of the network's input (the blended crop: same size, segmentation type and alpha) over
each block of a ``pixel_grid``³ grid. They are stored like deep feature vectors (``feat_1..feat_N``,
cached per synapse, z-major then y then x) and reduced by clustering's preprocessing (scaling,
optional PCA) like any other set. It is the trivial baseline every learned feature set must beat.

The block average is an exact area average (each crop voxel contributes its overlap with a block),
so it commutes with flips and 90° rotations of the crop for any crop size; with
``invariance`` the grid is averaged over the symmetry group (:mod:`synapse_core.features.invariance`).

Imports numpy only: pixel extraction never loads torch.

Example
-------
>>> crop = np.zeros((8, 8, 8), np.float32); crop[:4] = 1.0
>>> block_average(crop[None], 2)[0].tolist()
[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

import functools

import numpy as np

from synapse_core.features.invariance import group_average
from synapse_core.features.jobs import DeepSpec


@functools.lru_cache(maxsize=16)
def _area_weights(n: int, grid: int) -> np.ndarray:
    """(grid, n) weights: row i averages voxels [i n / grid, (i + 1) n / grid) by their overlap."""
    edges = np.arange(grid + 1) * (n / grid)
    lo, hi = edges[:-1, None], edges[1:, None]
    voxels = np.arange(n)[None, :]
    overlap = np.clip(np.minimum(hi, voxels + 1) - np.maximum(lo, voxels), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def block_average(crops: np.ndarray, grid: int) -> np.ndarray:
    """Area-average crops (B, z, y, x) to ``grid``³ blocks; returns (B, grid³) float32, z-major.

    A crop smaller than ``grid`` along an axis is spread over the blocks (each block the overlapping voxels' mean).
    """
    crops = np.asarray(crops, dtype=np.float64)
    if crops.ndim != 4:
        raise ValueError(f"crops must be (B, z, y, x), got shape {crops.shape}")
    if grid < 1:
        raise ValueError(f"pixel_grid={grid} must be at least 1")
    wz, wy, wx = (_area_weights(int(n), int(grid)) for n in crops.shape[1:])
    out = np.einsum("bzyx,ix->bzyi", crops, wx)
    out = np.einsum("bzyi,jy->bzji", out, wy)
    out = np.einsum("bzji,kz->bkji", out, wz)
    return out.reshape(len(crops), -1).astype(np.float32)


def pixel_features(crops: np.ndarray, grid: int = 10, invariance: str = "none") -> np.ndarray:
    """The pixel baseline of crops (B, z, y, x): block averages (B, grid³), averaged over ``invariance``'s group.

    The group acts on the small grid (exact: the block average commutes with the group), so
    invariance costs nothing noticeable here.
    """
    blocks = block_average(crops, grid).reshape(len(crops), grid, grid, grid)
    return group_average(lambda b: b.reshape(len(b), -1), blocks, invariance)


class PixelModel:
    """The pixel baseline in the shape of a feature model for :func:`~synapse_core.features.extract.extract_features`:
    ``spec`` (its part of the per-synapse cache key), ``identity`` (the ``checkpoint`` column) and
    ``model(crops) → vectors``."""

    def __init__(self, settings):
        self.settings = settings
        self.grid = settings.pixel_grid
        self.invariance = settings.invariance
        self.identity = "not used (pixels)"
        g = self.grid
        group = "" if self.invariance == "none" else f"mean over {self.invariance}"
        self.spec = DeepSpec("pixels", f"block average to {g}x{g}x{g}", "", group, "")
        self.forward_passes = 0

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        self.forward_passes += 1
        return pixel_features(crops, self.grid, self.invariance)
