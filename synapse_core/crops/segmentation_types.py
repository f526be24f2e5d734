"""Segmentation types 0–13: which voxels of a crop stay raw EM (the rest is grayed by alpha).

Each type keeps the original tool's meaning (implementation notes §3). Masks are composed from
per-structure masks of one crop window (z, y, x):

* ``side1``/``side2``: neuron of the side-1/side-2 point; ``pre``/``post``: the same two neurons
  ordered by the presynaptic record;
* ``vesicle_cloud``, ``cleft``, ``cleft2``, ``mito_closest``: the 6-connected component of that
  mask label nearest to the annotated synapse centre, inside the crop window;
* ``mito_dilated``: every mitochondrion voxel, dilated twice with the 6-neighbour cross (computed
  on a window 2 voxels larger than the crop so mitochondria just outside still count).

Types 12 and 13 select a 25³ "vesicle box" (see :func:`vesicle_box_type12`,
:func:`vesicle_box_type13`); both place it **centred** in the output crop (the original put the
type-12 box in the corner, notes §14.1.12). A crop a type cannot build is discarded with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from synapse_core.crops.components import box_sums


@dataclass(frozen=True)
class SegmentationType:
    """Name and one-line description of a segmentation type (for the UI and ``--help``)."""

    name: str
    description: str
    parts: tuple[str, ...]
    vesicle_box: bool = False


SEGMENTATION_TYPES: dict[int, SegmentationType] = {
    0: SegmentationType("Raw data", "No masking: the whole crop is raw EM.", ()),
    1: SegmentationType("Presynapse", "Presynaptic neuron only.", ("pre",)),
    2: SegmentationType("Postsynapse", "Postsynaptic neuron only.", ("post",)),
    3: SegmentationType("Both sides", "Both neurons of the synapse (side 1 and side 2).", ("side1", "side2")),
    4: SegmentationType(
        "Vesicles + cleft (both cleft labels)",
        "Closest vesicle cloud and closest components of both cleft labels.",
        ("vesicle_cloud", "cleft", "cleft2"),
    ),
    5: SegmentationType(
        "Sides + vesicles + cleft",
        "Both neurons plus the closest vesicle cloud and closest cleft.",
        ("side1", "side2", "vesicle_cloud", "cleft"),
    ),
    6: SegmentationType("Vesicle cloud", "Closest vesicle cloud only.", ("vesicle_cloud",)),
    7: SegmentationType("Cleft", "Closest components of both cleft labels.", ("cleft", "cleft2")),
    8: SegmentationType("Mitochondrion", "Closest mitochondrion only.", ("mito_closest",)),
    9: SegmentationType(
        "Vesicle cloud + cleft", "Closest vesicle cloud and closest cleft.", ("vesicle_cloud", "cleft")
    ),
    10: SegmentationType("Cleft + presynapse", "Closest cleft and the presynaptic neuron.", ("cleft", "pre")),
    11: SegmentationType(
        "Cleft + presynapse without mitochondria",
        "Type 10 minus every mitochondrion (dilated by 2 voxels).",
        ("cleft", "pre", "mito_dilated"),
    ),
    12: SegmentationType(
        "Vesicle box",
        "A 25³ box filled by the vesicle cloud, centred in a gray crop; discarded if the cloud cannot fill one.",
        ("vesicle_cloud",),
        vesicle_box=True,
    ),
    13: SegmentationType(
        "Vesicle box + presynapse + cleft",
        "25³ box at the vesicle cloud of (vesicle cloud ∪ presynapse ∪ cleft) minus dilated mitochondria, "
        "centred in a gray crop; discarded if no box nearby is filled.",
        ("vesicle_cloud", "pre", "cleft", "mito_dilated"),
        vesicle_box=True,
    ),
}


def check_segmentation_type(segmentation_type) -> int:
    """Return ``segmentation_type`` as int or raise a ValueError naming the accepted values."""
    try:
        t = int(segmentation_type)
    except (TypeError, ValueError):
        t = None
    if t is None or t != segmentation_type or t not in SEGMENTATION_TYPES:
        raise ValueError(f"segmentation_type must be an integer 0–13, got {segmentation_type!r}; "
                         + "; ".join(f"{k}: {v.name}" for k, v in SEGMENTATION_TYPES.items()))
    return t


def compose_mask(segmentation_type: int, parts: Mapping[str, np.ndarray], shape) -> np.ndarray:
    """The bool mask (z, y, x) of types 0–11 from the structure masks in ``parts``.

    ``parts`` must hold every name in ``SEGMENTATION_TYPES[t].parts``; ``shape`` is the crop shape.
    Types 12 and 13 use the same union for the voxels inside their box (see ``vesicle_box_*``).
    """
    t = check_segmentation_type(segmentation_type)
    if t == 0:
        return np.ones(shape, bool)
    out = np.zeros(shape, bool)
    for name in SEGMENTATION_TYPES[t].parts:
        if name != "mito_dilated":
            out |= parts[name]
    if "mito_dilated" in SEGMENTATION_TYPES[t].parts:
        out &= ~parts["mito_dilated"]
    return out


def vesicle_box_type12(vesicle_cloud: np.ndarray, box: int = 25, fill: float = 1.0):
    """Position of a ``box``³ window filled by the vesicle cloud (type 12).

    Parameters
    ----------
    vesicle_cloud : bool ndarray (z, y, x)
        Closest vesicle-cloud component in the crop window.
    box : int
        Edge of the box in voxels.
    fill : float
        Required fraction (0–1] of box voxels inside the cloud.

    Returns
    -------
    (start_zyx, None) or (None, reason)
        ``start_zyx`` is the box's first voxel in window coordinates. Among all positions that
        reach ``fill`` (every position is tried, not a coarse grid), the one nearest to the
        cloud's centroid is taken.
    """
    n = int(np.count_nonzero(vesicle_cloud))
    if n == 0:
        return None, "no vesicle cloud in the crop"
    coords = np.nonzero(vesicle_cloud)
    extent = [int(c.max() - c.min() + 1) for c in coords]
    if n < box ** 3 or min(extent) < box:
        return None, (f"vesicle cloud too small for a {box}³ box ({n} voxels, extent z,y,x "
                      f"{extent[0]}x{extent[1]}x{extent[2]})")
    sums = box_sums(vesicle_cloud, box)
    need = int(np.ceil(fill * box ** 3 - 1e-9))
    ok = np.argwhere(sums >= need)
    if ok.size == 0:
        return None, (f"no {box}³ box inside the vesicle cloud reaches {fill:.0%} fill "
                      f"(best {sums.max() / box ** 3:.0%})")
    centroid = np.array([c.mean() for c in coords]) - (box - 1) / 2
    best = ok[np.argmin(((ok - centroid) ** 2).sum(axis=1))]
    return tuple(int(v) for v in best), None


def vesicle_box_type13(structure: np.ndarray, vesicle_cloud: np.ndarray, box: int = 25, fill: float = 1.0,
                       max_shift: int = 10):
    """Position of the type-13 box: centred on the vesicle cloud, moved ≤ ``max_shift`` to fill it.

    Parameters
    ----------
    structure : bool ndarray (z, y, x)
        ``(vesicle cloud ∪ presynapse ∪ cleft) ∧ ¬dilated mitochondria`` in the crop window.
    vesicle_cloud : bool ndarray (z, y, x)
        Closest vesicle-cloud component in the crop window.
    box, fill, max_shift : int, float, int
        Box edge (voxels), required fill fraction, largest shift per axis (voxels).

    Returns
    -------
    (start_zyx, None) or (None, reason)
        The box starts at the (truncated) cloud centroid minus ``box // 2``. If it is not filled,
        every shift up to ``max_shift`` per axis is tried (the original moved greedily away from
        the empty voxels) and the fullest box wins, ties to the smallest shift. The box is kept
        inside the crop window.
    """
    coords = np.nonzero(vesicle_cloud)
    if coords[0].size == 0:
        return None, "no vesicle cloud in the crop"
    shape = np.array(structure.shape)
    if np.any(shape < box):
        return None, f"crop smaller than the {box}³ vesicle box"
    centroid = np.array([int(c.mean()) for c in coords])
    start0 = np.clip(centroid - box // 2, 0, shape - box)
    lo = np.maximum(start0 - max_shift, 0)
    hi = np.minimum(start0 + max_shift, shape - box) + 1
    # Box sums only over the neighbourhood that the shifted boxes can cover.
    local = box_sums(structure[lo[0]:hi[0] + box - 1, lo[1]:hi[1] + box - 1, lo[2]:hi[2] + box - 1], box)
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1)
    shift2 = ((grid - start0) ** 2).sum(-1)
    # Fullest box first, then the smallest shift: one lexicographic key.
    key = local.astype(np.int64) * (3 * (2 * max_shift + 1) ** 2 + 1) - shift2
    best = np.unravel_index(int(np.argmax(key)), key.shape)
    got = int(local[best])
    if got < int(np.ceil(fill * box ** 3 - 1e-9)):
        return None, (f"vesicle box not filled: best {box}³ box within {max_shift} voxels of the vesicle cloud "
                      f"is {got / box ** 3:.0%} full (needs {fill:.0%})")
    return tuple(int(v) for v in grid[best]), None
