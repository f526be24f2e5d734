"""Crop helpers that no longer use scipy.ndimage give exactly what scipy.ndimage gave (issue 16).

``closest_component`` labels with cc3d instead of ``scipy.ndimage.label`` and the smart-crop
centre of mass is computed with numpy; both must select the same voxels / the same numbers.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from synapse_core.crops.build import _center_of_mass
from synapse_core.crops.components import closest_component


def closest_component_by_ndimage(mask: np.ndarray, point_zyx) -> np.ndarray:
    """The previous implementation: scipy.ndimage.label on the whole window, nearest voxel's label."""
    labelled, n = ndimage.label(mask)
    out = np.zeros(mask.shape, bool)
    if n == 0:
        return out
    flat = np.flatnonzero(labelled)
    coords = np.unravel_index(flat, mask.shape)
    d2 = sum((c.astype(np.int64) - np.asarray(point_zyx, dtype=np.int64)[i]) ** 2 for i, c in enumerate(coords))
    return labelled == labelled.reshape(-1)[flat[int(np.argmin(d2))]]


def random_masks(n: int):
    for seed in range(n):
        rng = np.random.default_rng(seed)
        mask = rng.random(tuple(rng.integers(1, 30, 3))) < rng.uniform(0.05, 0.6)
        if seed % 3 == 0:
            mask = ndimage.binary_opening(mask)  # blobs, not only speckle
        yield mask, rng.integers(-5, 35, 3)


def test_closest_component_selects_the_voxels_ndimage_label_selected():
    for mask, point in random_masks(150):
        np.testing.assert_array_equal(closest_component(mask, point), closest_component_by_ndimage(mask, point))


def test_centre_of_mass_is_the_number_ndimage_gave():
    for mask, _ in random_masks(100):
        if mask.any():
            np.testing.assert_array_equal(_center_of_mass(mask), np.asarray(ndimage.center_of_mass(mask)))
