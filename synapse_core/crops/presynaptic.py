"""Which side of a synapse is presynaptic, decided once per synapse and kept as a record.

The synapse table gives two points, one inside each neuron (``side_1_coord_*``, ``side_2_coord_*``)
but not which neuron is presynaptic. As in the original tool (implementation notes §2.2), the
presynaptic side is the neuron that overlaps the vesicle cloud: the vesicle-cloud component nearest
to the annotated synapse centre (not to a shifted crop centre, notes §14.1.8).

Decision rule, in order:

1. ``method="vesicle_cloud"``: the side whose neuron holds more voxels of that vesicle-cloud component.
2. ``method="vesicle_label"`` (fallback): the cloud overlaps neither side (or both equally); the side
   whose neuron holds more vesicle-labelled voxels anywhere in the window.
3. ``method="none"`` (fallback): no vesicle evidence that tells the sides apart (e.g. a dataset
   without vesicle labels); the configured fallback side is used and the record says so.

The record keeps the evidence (overlap counts, cloud size, seg ids) so it can be inspected and is
written as ``presynaptic_*`` columns next to every output row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from synapse_core.crops.components import closest_component


@dataclass(frozen=True)
class PresynapticRecord:
    """Presynaptic side of one synapse and the evidence behind it.

    Attributes
    ----------
    side : int
        1 or 2: which side point of the synapse table lies in the presynaptic neuron.
    overlap_side1, overlap_side2 : int
        Voxels of the decisive vesicle evidence inside the side-1 / side-2 neuron (the closest
        vesicle-cloud component for ``method="vesicle_cloud"``, all vesicle-labelled voxels of the
        window for ``method="vesicle_label"`` and ``method="none"``, where they are equal, usually 0).
    fallback : bool
        True when the closest vesicle cloud did not decide the side (methods other than "vesicle_cloud").
    pre_seg_id, post_seg_id : int
        Neuron ids (segmentation volume) of the presynaptic and postsynaptic side; 0 = background.
    method : str
        "vesicle_cloud", "vesicle_label" or "none".
    vesicle_cloud_voxels : int
        Size (voxels, inside the window) of the vesicle-cloud component nearest to the centre.
    window_voxels : int
        Edge length (voxels) of the cubic window the evidence was gathered in.
    """

    side: int
    overlap_side1: int
    overlap_side2: int
    fallback: bool
    pre_seg_id: int
    post_seg_id: int
    method: str = "vesicle_cloud"
    vesicle_cloud_voxels: int = 0
    window_voxels: int = 0

    @property
    def evidence(self) -> str:
        """One sentence a user can read in a table or tooltip."""
        if self.method == "vesicle_cloud":
            return (f"side {self.side}: closest vesicle cloud ({self.vesicle_cloud_voxels} voxels) overlaps "
                    f"side 1 by {self.overlap_side1} and side 2 by {self.overlap_side2} voxels")
        if self.method == "vesicle_label":
            return (f"side {self.side} (fallback): closest vesicle cloud overlaps neither side more; "
                    f"vesicle-labelled voxels in side 1 {self.overlap_side1}, side 2 {self.overlap_side2}")
        return (f"side {self.side} (fallback): no vesicle-cloud evidence within the {self.window_voxels}-voxel "
                f"window; side {self.side} assumed")

    def as_columns(self) -> dict:
        """The record as CSV columns ``presynaptic_<field>`` (plus ``presynaptic_evidence``)."""
        cols = {f"presynaptic_{k}": v for k, v in asdict(self).items()}
        cols["presynaptic_evidence"] = self.evidence
        return cols


def infer_presynaptic_side(
    seg: np.ndarray,
    labels: np.ndarray,
    vesicle_label: int,
    center_zyx,
    side1_seg_id: int,
    side2_seg_id: int,
    fallback_side: int = 1,
) -> PresynapticRecord:
    """Decide the presynaptic side from the vesicle cloud inside one window.

    Parameters
    ----------
    seg : integer ndarray (z, y, x)
        Neuron instance ids in the window.
    labels : integer ndarray (z, y, x)
        Semantic mask labels in the same window.
    vesicle_label : int
        Label id of the vesicle cloud in ``labels``.
    center_zyx : sequence of 3 ints
        Annotated synapse centre in window index coordinates.
    side1_seg_id, side2_seg_id : int
        Neuron ids at the two side points (read from the full volume; 0 = background).
    fallback_side : {1, 2}
        Side used when there is no vesicle evidence.

    Returns
    -------
    PresynapticRecord
    """
    if fallback_side not in (1, 2):
        raise ValueError(f"fallback_side must be 1 or 2, got {fallback_side!r}")
    vesicle = labels == vesicle_label
    cloud = closest_component(vesicle, center_zyx)
    on_cloud = seg[cloud]
    n_cloud = int(on_cloud.size)

    def overlaps(values):
        o1 = int(np.count_nonzero(values == side1_seg_id)) if side1_seg_id else 0
        o2 = int(np.count_nonzero(values == side2_seg_id)) if side2_seg_id else 0
        return o1, o2

    o1, o2 = overlaps(on_cloud)
    method = "vesicle_cloud"
    if o1 == o2:
        o1, o2 = overlaps(seg[vesicle])
        method = "vesicle_label"
        if o1 == o2:
            method = "none"
    side = fallback_side if method == "none" else (1 if o1 > o2 else 2)
    ids = (int(side1_seg_id), int(side2_seg_id))
    pre, post = (ids[0], ids[1]) if side == 1 else (ids[1], ids[0])
    return PresynapticRecord(
        side=side,
        overlap_side1=o1,
        overlap_side2=o2,
        fallback=method != "vesicle_cloud",
        pre_seg_id=pre,
        post_seg_id=post,
        method=method,
        vesicle_cloud_voxels=n_cloud,
        window_voxels=int(seg.shape[0]),
    )
