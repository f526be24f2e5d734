"""Label ids of the semantic mask volume (vesicle cloud, cleft, mitochondria), per bbox.

A bbox's label ids come from the dataset config (``[bboxes.<bbox>] labels`` or the top-level
``[labels]``), else from the original tool's per-bbox table (:data:`ORIGINAL_LABELS`), but that
table only where the mask agrees with it (:func:`synapse_core.data.validate.check_labels`). A class
the dataset does not have is ``None`` (``vesicle = "none"`` in the config); segmentation types that
need it are unavailable. :func:`count_label_ids` counts the ids a mask holds, block by block.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

#: The classes of the semantic mask, in the order the config lists them.
LABEL_CLASSES = ("mito", "vesicle", "cleft", "cleft2")
#: What each class is called in messages.
CLASS_NAMES = {"mito": "mitochondria", "vesicle": "vesicle cloud", "cleft": "cleft", "cleft2": "second cleft label"}


@dataclass(frozen=True)
class LabelIds:
    """Ids of the semantic-mask classes in one bbox's mask volume; None = the dataset has no such label.

    ``cleft2`` is the second "synaptic interface" label of the original data; it may equal
    ``cleft`` when a dataset has a single cleft label.
    """

    mito: int | None
    vesicle: int | None
    cleft: int | None
    cleft2: int | None

    def as_dict(self) -> dict[str, int | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def absent(self) -> tuple[str, ...]:
        """Classes this bbox has no label for (None), in :data:`LABEL_CLASSES` order."""
        return tuple(k for k, v in self.as_dict().items() if v is None)

    def describe(self) -> str:
        """``"mito 5, vesicle 6, cleft 7, cleft2 7"`` (``none`` for an absent class)."""
        return ", ".join(f"{k} {'none' if v is None else v}" for k, v in self.as_dict().items())


#: The original tool's per-bbox table (implementation notes §1.3); everything else uses DEFAULT.
ORIGINAL_LABELS: dict[str, LabelIds] = {
    "bbox2": LabelIds(mito=1, vesicle=3, cleft=2, cleft2=4),
    "bbox5": LabelIds(mito=1, vesicle=3, cleft=2, cleft2=4),
    "bbox7": LabelIds(mito=1, vesicle=2, cleft=4, cleft2=3),
    "bbox4": LabelIds(mito=3, vesicle=2, cleft=1, cleft2=4),
    "bbox3": LabelIds(mito=6, vesicle=7, cleft=9, cleft2=8),
}
DEFAULT_LABELS = LabelIds(mito=5, vesicle=6, cleft=7, cleft2=7)
NO_LABELS = LabelIds(mito=None, vesicle=None, cleft=None, cleft2=None)


def default_labels(bbox_name: str) -> LabelIds:
    """The original tool's label ids for ``bbox_name`` (bbox1/bbox6/unknown → mito 5, vesicle 6, cleft 7)."""
    return ORIGINAL_LABELS.get(bbox_name, DEFAULT_LABELS)


# ---------------------------------------------------------------------------------------- counting

#: Voxels read per block when counting ids (16 Mi voxels: 64 MB for uint32 labels).
COUNT_BLOCK_VOXELS = 1 << 24
#: Voxels per histogram call inside a block (fastest around 1 Mi on a 2-core machine; an 8 MB copy).
_PIECE = 1 << 20


def count_blocks(shape_zyx, chunks_zyx=None, max_voxels: int = COUNT_BLOCK_VOXELS):
    """Yield slices (z, y, x) tiling a volume in blocks aligned to its storage chunks.

    Blocks are whole multiples of ``chunks_zyx`` (each stored chunk is decoded once), grown along
    x, then y, then z while they hold at most ``max_voxels`` (at least one chunk). Without chunks
    (contiguous HDF5) the unit is one row of x.
    """
    shape = [int(s) for s in shape_zyx[:3]]
    unit = [int(c) for c in chunks_zyx[:3]] if chunks_zyx else [1, 1, shape[2]]
    unit = [max(1, min(u, s)) for u, s in zip(unit, shape)]
    block = list(unit)
    for axis in (2, 1, 0):
        others = int(np.prod([block[a] for a in range(3) if a != axis]))
        fit = max(1, max_voxels // max(1, others) // unit[axis])
        block[axis] = min(shape[axis], unit[axis] * fit)
    for z in range(0, shape[0], block[0]):
        for y in range(0, shape[1], block[1]):
            for x in range(0, shape[2], block[2]):
                yield (slice(z, min(z + block[0], shape[0])), slice(y, min(y + block[1], shape[1])),
                       slice(x, min(x + block[2], shape[2])))


def _count_block(block: np.ndarray, totals: dict[int, int]) -> None:
    flat = block.reshape(-1)
    if not flat.size:
        return
    if flat.dtype.kind in "ub" or (flat.dtype.kind == "i" and flat.min() >= 0):
        top = int(flat.max())
        if top < (1 << 20):  # small ids (semantic masks): a direct histogram, no sort
            hist = np.zeros(top + 1, np.int64)
            for i in range(0, flat.size, _PIECE):  # bincount copies to intp: pieces keep that copy small
                hist += np.bincount(flat[i:i + _PIECE], minlength=top + 1)
            for i in np.flatnonzero(hist):
                totals[int(i)] = totals.get(int(i), 0) + int(hist[i])
            return
    # Large or negative ids: hash counting instead of a sort of the whole block.
    import pandas as pd  # here only: importing this module (crop settings, --help) needs no pandas

    for value, n in pd.Series(flat).value_counts(sort=False).items():
        totals[int(value)] = totals.get(int(value), 0) + int(n)


def count_label_ids(volume, max_voxels: int = COUNT_BLOCK_VOXELS) -> dict[int, int]:
    """Voxels per label id in a mask volume (array-like indexed [z, y, x]), read block by block.

    Memory stays at one block of ``max_voxels`` voxels (see :func:`count_blocks`) whatever the
    volume size. Returns ``{id: voxel count}`` for every id that occurs, 0 (background) included,
    sorted by id.

    >>> count_label_ids(np.array([[[0, 6, 6], [7, 0, 0]]], np.uint8))
    {0: 3, 6: 2, 7: 1}
    """
    totals: dict[int, int] = {}
    chunks = getattr(volume, "chunks", None)
    for box in count_blocks(volume.shape, chunks, max_voxels):
        _count_block(np.asarray(volume[box]), totals)
    return dict(sorted(totals.items()))
