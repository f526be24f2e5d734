"""Label ids of the semantic mask volume (vesicle cloud, cleft, mitochondria), per bbox."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelIds:
    """Ids of the semantic-mask classes in one bbox's mask volume.

    ``cleft2`` is the second "synaptic interface" label of the original data; it may equal
    ``cleft`` when a dataset has a single cleft label.
    """

    mito: int
    vesicle: int
    cleft: int
    cleft2: int


#: The original tool's per-bbox table (implementation notes §1.3); everything else uses DEFAULT.
ORIGINAL_LABELS: dict[str, LabelIds] = {
    "bbox2": LabelIds(mito=1, vesicle=3, cleft=2, cleft2=4),
    "bbox5": LabelIds(mito=1, vesicle=3, cleft=2, cleft2=4),
    "bbox7": LabelIds(mito=1, vesicle=2, cleft=4, cleft2=3),
    "bbox4": LabelIds(mito=3, vesicle=2, cleft=1, cleft2=4),
    "bbox3": LabelIds(mito=6, vesicle=7, cleft=9, cleft2=8),
}
DEFAULT_LABELS = LabelIds(mito=5, vesicle=6, cleft=7, cleft2=7)


def default_labels(bbox_name: str) -> LabelIds:
    """The original tool's label ids for ``bbox_name`` (bbox1/bbox6/unknown → mito 5, vesicle 6, cleft 7)."""
    return ORIGINAL_LABELS.get(bbox_name, DEFAULT_LABELS)
