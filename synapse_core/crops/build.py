"""Synapse crops: a small cube of EM around each synapse, its structure masks and the network input.

Pipeline stage "crops" (implementation notes §2–4, with the bugs of §14.1 fixed):

1. :func:`read_context` reads small windows around a synapse, never the whole volume (the cost
   does not depend on the bbox size): seg + mask around the annotated centre decide the
   presynaptic side (:mod:`synapse_core.crops.presynaptic`) and the smart-crop centre
   (:func:`locate_crop`); then raw + seg + mask of the crop window are read.
2. :func:`build_crop` is a pure function of that plain data: structure masks, segmentation-type
   mask (:mod:`synapse_core.crops.segmentation_types`), per-crop min-max normalisation, alpha blending.

What changed from the original (notes §14.1): "closest component" is measured from the annotated
centre, not the shifted one; border crops are padded on both sides so the synapse stays where the
smart crop put it, and padding takes no part in the min-max; types 12 and 13 both centre their box;
a discarded synapse comes back as :class:`Discarded` with its key and reason; float32 throughout.

Axis order is (z, y, x) everywhere; synapse tables give points as (x, y, z) in
``central_coord_1..3`` / ``side_1_coord_1..3`` / ``side_2_coord_1..3``.

Example
-------
>>> s = CropSettings(size=80, segmentation_type=10, alpha=1.0)
>>> ctx = read_context(dataset.bboxes["bbox1"], dataset.synapses.iloc[0], s)    # doctest: +SKIP
>>> out = build_crop(ctx, s)                                                    # doctest: +SKIP
>>> out.blended.shape, out.blended.dtype                                        # doctest: +SKIP
((80, 80, 80), dtype('float32'))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from synapse_core.crops.components import closest_component, dilate_cross
from synapse_core.crops.orient import (
    canonical_rotation,
    cleft_normal,
    inplane_axis,
    mask_points_nm,
    rotated_coordinates,
    sample_window,
)
from synapse_core.crops.presynaptic import PresynapticRecord, infer_presynaptic_side
from synapse_core.crops.resample import (
    read_labels,
    read_raw,
    target_extent,
    to_target_index,
)
from synapse_core.crops.segmentation_types import (
    SEGMENTATION_TYPES,
    compose_mask,
    vesicle_box_type12,
    vesicle_box_type13,
)
from synapse_core.crops.settings import CropSettings
from synapse_core.data.labels import LabelIds
from synapse_core.data.windows import read_box

CENTER_COLUMNS = ("central_coord_1", "central_coord_2", "central_coord_3")
SIDE1_COLUMNS = ("side_1_coord_1", "side_1_coord_2", "side_1_coord_3")
SIDE2_COLUMNS = ("side_2_coord_1", "side_2_coord_2", "side_2_coord_3")


@dataclass(frozen=True, eq=False)
class SynapseContext:
    """Plain data around one synapse: everything :func:`build_crop` needs (picklable).

    ``raw``, ``seg``, ``labels`` are windows (z, y, x) on the crop's grid (voxels of
    ``voxel_size_nm``; the native grid resampled when the data's voxel size differs, see
    :mod:`synapse_core.crops.resample`) covering the crop window plus a margin of ``mito_dilation``
    voxels; voxel ``[0, 0, 0]`` is the grid voxel ``origin_zyx`` and voxels outside the data are 0.
    Points are (z, y, x) indices on that grid; ``volume_box_zyx`` gives, per axis, the (start, stop)
    grid indices inside the data. The presynaptic side and the smart-crop centre are decided while
    reading (they choose which window to read) and travel here as plain values; ``locate_token``
    records the settings they were decided with.

    With ``orientation="canonical"`` the windows are rotated about the crop centre
    (:mod:`synapse_core.crops.orient`): voxel ``[m + size // 2] * 3`` (``m = mito_dilation``) sits on
    ``crop_center_zyx``, the window's axes are the canonical z (cleft normal, pre → post), y, x given
    by the rows of ``rotation_zyx`` (grid (z, y, x) coordinates), and ``valid`` marks the window
    voxels inside the data (not a box after a rotation). ``cleft_normal_zyx`` (unit, data (z, y, x)
    frame, pre → post; NaN when unknown) and ``normal_source`` ("cleft", "side_points", "none") are
    estimated in both orientations.
    """

    bbox_name: str
    var1: str
    origin_zyx: tuple[int, int, int]
    raw: np.ndarray
    seg: np.ndarray
    labels: np.ndarray
    volume_shape_zyx: tuple[int, int, int]
    center_zyx: tuple[int, int, int]
    side1_zyx: tuple[int, int, int]
    side2_zyx: tuple[int, int, int]
    side1_seg_id: int
    side2_seg_id: int
    label_ids: LabelIds
    presynaptic: PresynapticRecord
    crop_center_zyx: tuple[int, int, int]
    locate_token: str
    has_semantic_mask: bool = True
    volume_box_zyx: tuple = ()
    voxel_size_nm: tuple | None = None
    native_voxel_size_nm: tuple | None = None
    orientation: str = "native"
    valid: np.ndarray | None = None
    rotation_zyx: tuple | None = None
    cleft_normal_zyx: tuple = (math.nan, math.nan, math.nan)
    normal_source: str = ""

    def data_box(self) -> tuple[tuple[int, int], ...]:
        """Per axis (start, stop) grid indices inside the data."""
        return self.volume_box_zyx or tuple((0, int(n)) for n in self.volume_shape_zyx)


@dataclass(frozen=True, eq=False)
class SynapseCrop:
    """One synapse crop (all arrays (z, y, x), ``size``³).

    Attributes
    ----------
    raw : float32
        EM intensities, min-max normalised to [0, 1] over the voxels inside the volume; voxels
        outside the volume (border padding) are 0. Not masked.
    blended : float32
        Network input: ``raw`` inside ``mask``, ``alpha * gray + (1 - alpha) * raw`` outside.
    mask : bool
        Voxels of the segmentation type (shown raw); always False on border padding.
    structures : dict[str, bool ndarray]
        "pre", "post", "cleft" (closest components of both cleft labels), "vesicle_cloud"
        (closest component), "mitochondria" (all mitochondrion voxels).
    presynaptic : PresynapticRecord
    origin_zyx : tuple
        Global voxel index of ``raw[0, 0, 0]``.
    center_zyx, crop_center_zyx : tuple
        Annotated synapse centre and the crop centre after the smart-crop shift (global z, y, x).
    valid_box_zyx : tuple of (start, stop)
        Per axis, the part of the crop that lies inside the volume (crop coordinates).
    coverage : float
        Fraction of the crop's volume inside the data (1.0: no padding).
    voxel_size_nm : tuple or None
        (z, y, x) voxel size of the crop in nm (isotropic ``settings.voxel_size_nm`` when the data's
        voxel size is known), None when the dataset's voxel size is unknown (crop in native voxels).
    orientation : str
        "native" (the data's axes) or "canonical" (rotated: crop z is the cleft normal, presynaptic
        side at low z; see :mod:`synapse_core.crops.orient`).
    valid : bool ndarray or None
        Per-voxel mask of the crop's part inside the data for a rotated crop (not a box); None when
        ``valid_box_zyx`` says it exactly (:meth:`valid_mask` gives the mask in both cases).
    cleft_normal_zyx : tuple
        Unit cleft normal in the data's (z, y, x) frame (nm), presynaptic → postsynaptic; NaN when
        unknown. In a canonical crop it is the crop's z axis.
    normal_source : str
        What decided the normal: "cleft" (principal axes of the cleft), "side_points" (pre → post
        side points of the table) or "none".
    rotation_zyx : tuple or None
        Canonical crops: the rotation (3 rows: crop z, y, x axes in the data's (z, y, x) frame) about
        the crop centre; None for native crops.
    """

    bbox_name: str
    var1: str
    raw: np.ndarray
    blended: np.ndarray
    mask: np.ndarray
    structures: dict
    presynaptic: PresynapticRecord
    origin_zyx: tuple[int, int, int]
    center_zyx: tuple[int, int, int]
    crop_center_zyx: tuple[int, int, int]
    segmentation_type: int
    valid_box_zyx: tuple = ()
    coverage: float = 1.0
    voxel_size_nm: tuple | None = None
    orientation: str = "native"
    valid: np.ndarray | None = None
    cleft_normal_zyx: tuple = (math.nan, math.nan, math.nan)
    normal_source: str = ""
    rotation_zyx: tuple | None = None

    def valid_mask(self) -> np.ndarray:
        """Bool (z, y, x) mask of the crop voxels inside the data (padding False)."""
        if self.valid is not None:
            return self.valid
        out = np.zeros(self.raw.shape, bool)
        if not self.valid_box_zyx:
            out[...] = True
        else:
            out[tuple(slice(int(a), int(b)) for a, b in self.valid_box_zyx)] = True
        return out

    @property
    def crop_nm(self) -> tuple | None:
        """(z, y, x) physical extent of the crop in nm, None when the voxel size is unknown."""
        if self.voxel_size_nm is None:
            return None
        return tuple(float(n) * float(v) for n, v in zip(self.raw.shape, self.voxel_size_nm))


@dataclass(frozen=True)
class Discarded:
    """A synapse the segmentation type cannot crop; keep it with its key, never drop the row silently."""

    reason: str
    bbox_name: str = ""
    var1: str = ""
    segmentation_type: int | None = None
    presynaptic: PresynapticRecord | None = field(default=None, compare=False)


# ---------------------------------------------------------------------------------------- reading


def _point(row: Mapping, columns, what: str) -> tuple[int, int, int]:
    """(z, y, x) ints from the row's (x, y, z) columns; ValueError naming the row and column."""
    key = f"{row.get('bbox_name', '?')}/{row.get('Var1', '?')}" if hasattr(row, "get") else "?"
    vals = []
    for col in columns:
        try:
            v = row[col]
        except (KeyError, IndexError):
            raise ValueError(f"synapse {key}: column {col!r} ({what}) is missing from the synapse table") from None
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = math.nan
        if not math.isfinite(f) or f != int(f):
            raise ValueError(f"synapse {key}: column {col!r} ({what}) must be an integer voxel index, got {v!r}")
        vals.append(int(f))
    x, y, z = vals
    return (z, y, x)


def _read(volume, start, stop) -> np.ndarray:
    """A fresh array of ``volume[start:stop]`` (z, y, x); parts outside the volume are 0."""
    return read_box(volume, start, stop)


def locate_crop(seg: np.ndarray, labels: np.ndarray, vesicle_label: int, center_zyx, side1_seg_id: int,
                side2_seg_id: int, settings: CropSettings):
    """Presynaptic side and smart-crop centre from the evidence window around the annotated centre.

    Parameters
    ----------
    seg, labels : ndarray (z, y, x)
        Neuron ids and semantic labels of the window ``center - radius .. center + radius``
        (``settings.radius``), zero outside the volume.
    center_zyx : sequence of 3 ints
        Annotated centre, in the window's coordinates (normally ``(radius,) * 3``).

    Returns
    -------
    (PresynapticRecord, crop_center_zyx)
        The crop centre, in the window's coordinates, is ``(1 - w) * centre + w * com`` (truncated)
        where ``com`` is the presynaptic neuron's centre of mass in the window and
        ``w = settings.presynapse_weight``; the centre itself without smart crop or without a
        presynaptic neuron.
    """
    record = infer_presynaptic_side(seg, labels, vesicle_label, center_zyx, side1_seg_id, side2_seg_id,
                                    fallback_side=settings.fallback_side)
    center = np.asarray(center_zyx, dtype=np.int64)
    if settings.smart_crop and record.pre_seg_id:
        pre = seg == record.pre_seg_id
        if pre.any():
            com = _center_of_mass(pre)  # (z, y, x), window voxels
            w = settings.presynapse_weight
            return record, np.floor((1 - w) * center + w * com).astype(np.int64)
    return record, center


def _center_of_mass(mask: np.ndarray) -> np.ndarray:
    """Centre of mass (z, y, x voxels) of a non-empty boolean mask.

    The same operations as ``scipy.ndimage.center_of_mass`` (sum of mask × index grid over the
    voxel count, per axis), so the same numbers, without importing scipy.ndimage (≈ 0.4 s of a
    one-synapse ``crop``).
    """
    n = mask.sum()
    grids = np.ogrid[tuple(slice(0, i) for i in mask.shape)]
    return np.array([(mask * g.astype(float)).sum() / n for g in grids])


def read_context_arrays(raw, seg, mask, label_ids: LabelIds, row: Mapping, settings: CropSettings,
                        bbox_name: str | None = None, voxel_size_nm=None) -> SynapseContext:
    """Read the context of one synapse from array-likes indexed [z, y, x].

    Two small reads, never the whole volume: the evidence window (``settings.radius`` around the
    annotated centre: seg and mask) decides the presynaptic side and the crop centre; then the
    crop window plus a ``mito_dilation`` margin is read (raw, seg, mask).

    With ``voxel_size_nm`` (the data's (z, y, x) voxel size in nm) every window is read over its
    physical extent and resampled to the crop grid of ``settings.voxel_size_nm`` (isotropic):
    raw by area averaging / linear interpolation, seg and mask by nearest neighbour
    (:mod:`synapse_core.crops.resample`); data already at that voxel size is read as it is. The
    side points' neuron ids are read at their native voxels. Without ``voxel_size_nm`` the crop
    is in native voxels.

    The cleft normal is estimated from the evidence window (:func:`synapse_core.crops.orient.cleft_normal`).
    With ``settings.orientation == "canonical"`` the crop window is then sampled rotated about
    the crop centre, in one interpolation from the native grid, with a per-voxel ``valid`` mask.

    Parameters
    ----------
    raw, seg : array-like (z, y, x)
        EM intensities and neuron instance ids (numpy, zarr or h5py).
    mask : array-like (z, y, x) or None
        Semantic labels (vesicle cloud, cleft, mitochondria); None when the bbox has no mask.
    label_ids : LabelIds
        Label ids of ``mask``.
    row : Mapping
        A synapse-table row with ``central_coord_*``, ``side_1_coord_*``, ``side_2_coord_*`` (x, y, z).
    settings : CropSettings
    voxel_size_nm : (z, y, x) nm or None
        The data's voxel size.
    """
    native_center = _point(row, CENTER_COLUMNS, "synapse centre")
    native_side1 = _point(row, SIDE1_COLUMNS, "side-1 point")
    native_side2 = _point(row, SIDE2_COLUMNS, "side-2 point")
    s = settings
    native_nm = None if voxel_size_nm is None else tuple(float(v) for v in voxel_size_nm)
    grid_nm = None if native_nm is None else (float(s.voxel_size_nm),) * 3
    shape = tuple(int(v) for v in seg.shape[:3])
    if native_nm is None or native_nm == grid_nm:
        def grid(p):
            return tuple(int(v) for v in p)
        read_raw_w = read_lab_w = _read
        box = tuple((0, n) for n in shape)
    else:
        def grid(p):
            return to_target_index(p, native_nm, grid_nm)

        def read_raw_w(volume, a, b):
            return read_raw(volume, a, b, native_nm, grid_nm)

        def read_lab_w(volume, a, b):
            return read_labels(volume, a, b, native_nm, grid_nm)
        box = target_extent(shape, native_nm, grid_nm)
    center, side1, side2 = grid(native_center), grid(native_side1), grid(native_side2)
    r = s.radius
    ev_start = [c - r for c in center]
    ev_stop = [c + r for c in center]
    seg_e = read_lab_w(seg, ev_start, ev_stop)
    lab_e = read_lab_w(mask, ev_start, ev_stop) if mask is not None else np.zeros(seg_e.shape, np.uint8)

    def seg_id(p):  # at the native voxel of the table's point: exact whatever the crop grid
        return int(_read(seg, p, [v + 1 for v in p]).reshape(-1)[0])

    id1, id2 = seg_id(native_side1), seg_id(native_side2)
    record, crop_center = locate_crop(seg_e, lab_e, label_ids.vesicle, (r, r, r), id1, id2, s)
    crop_center = crop_center + np.array(ev_start)
    m = s.mito_dilation
    start = [int(c) - s.size // 2 - m for c in crop_center]
    stop = [a + s.size + 2 * m for a in start]

    # Cleft normal (pre -> post) in nm, from the cleft next to the annotated centre.
    phys = native_nm if native_nm is not None else (1.0, 1.0, 1.0)  # unknown voxel size: voxel units
    g = grid_nm if grid_nm is not None else phys
    pre_pt, post_pt = (native_side1, native_side2) if record.side == 1 else (native_side2, native_side1)
    pre_nm, post_nm = ((np.asarray(p, float) + 0.5) * np.asarray(phys) for p in (pre_pt, post_pt))
    cleft_e = _cleft_component(lab_e, label_ids, (r, r, r)) if mask is not None else None
    ev_origin_nm = np.asarray(ev_start, float) * np.asarray(g)
    normal, normal_source = cleft_normal(cleft_e, g, pre_nm, post_nm, ev_origin_nm)
    rotation = valid = None
    if s.orientation == "canonical":
        points = mask_points_nm(cleft_e, g, ev_origin_nm) if normal_source == "cleft" else None
        rot = canonical_rotation(normal, inplane_axis(normal, points))
        half = s.size // 2
        coords = rotated_coordinates((s.size + 2 * m,) * 3, (m + half,) * 3,
                                     (np.asarray(crop_center, float) + 0.5) * np.asarray(g), rot, g, phys)
        raw_w, seg_w, lab_w, valid = sample_window(raw, seg, mask, coords, phys, g)
        rotation = tuple(tuple(float(v) for v in row_) for row_ in rot)
    else:
        seg_w = read_lab_w(seg, start, stop)
        raw_w = read_raw_w(raw, start, stop)
        lab_w = read_lab_w(mask, start, stop) if mask is not None else np.zeros(seg_w.shape, np.uint8)
    return SynapseContext(
        bbox_name=str(bbox_name if bbox_name is not None else row.get("bbox_name", "")),
        var1=str(row.get("Var1", "")),
        origin_zyx=tuple(start),
        raw=raw_w,
        seg=seg_w,
        labels=lab_w,
        volume_shape_zyx=tuple(hi - lo for lo, hi in box),
        center_zyx=center,
        side1_zyx=side1,
        side2_zyx=side2,
        side1_seg_id=id1,
        side2_seg_id=id2,
        label_ids=label_ids,
        presynaptic=record,
        crop_center_zyx=tuple(int(v) for v in crop_center),
        locate_token=s.locate_token(),
        has_semantic_mask=mask is not None,
        volume_box_zyx=tuple(box),
        voxel_size_nm=grid_nm,
        native_voxel_size_nm=native_nm,
        orientation=s.orientation,
        valid=valid,
        rotation_zyx=rotation,
        cleft_normal_zyx=tuple(float(v) for v in normal),
        normal_source=normal_source,
    )


def _cleft_component(labels: np.ndarray, label_ids: LabelIds, point_zyx) -> np.ndarray | None:
    """The cleft of the synapse at ``point_zyx``: closest components of both cleft labels (None: no cleft label)."""
    ids = {i for i in (label_ids.cleft, label_ids.cleft2) if i is not None}
    if not ids:
        return None
    out = np.zeros(labels.shape, bool)
    for i in ids:
        out |= closest_component(labels == i, point_zyx)
    return out


def read_context(bbox, row: Mapping, settings: CropSettings) -> SynapseContext:
    """Read the context window of synapse ``row`` from a dataset bbox (``dataset.BboxSource``).

    ``VolumeSource.open`` caches opened stores per process; only the windows are read.
    """
    raw = bbox.raw.open()
    seg = bbox.seg.open()
    mask = bbox.mask.open() if getattr(bbox, "mask", None) is not None else None
    return read_context_arrays(raw, seg, mask, bbox.labels, row, settings, bbox_name=bbox.name,
                               voxel_size_nm=getattr(bbox, "voxel_size_nm", None))


# ---------------------------------------------------------------------------------------- building


def _normalise(raw: np.ndarray, valid: tuple[slice, ...]) -> np.ndarray:
    """float32 min-max to [0, 1] over ``raw[valid]``; voxels outside ``valid`` are 0."""
    out = np.zeros(raw.shape, np.float32)
    part = raw[valid]
    if part.size:
        lo, hi = part.min(), part.max()  # on the stored dtype: no float copy needed for the extremes
        if hi > lo:
            view = out[valid]
            np.subtract(part, lo, out=view, dtype=np.float32, casting="unsafe")
            view /= np.float32(float(hi) - float(lo))  # division keeps the maximum exactly 1
    return out


def _normalise_masked(raw: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """float32 min-max to [0, 1] over the voxels where ``valid`` (bool, same shape) is True; others 0."""
    out = np.zeros(raw.shape, np.float32)
    part = raw[valid]
    if part.size:
        lo, hi = part.min(), part.max()
        if hi > lo:
            out[valid] = (part.astype(np.float32) - np.float32(lo)) / np.float32(float(hi) - float(lo))
    return out


def _bounding_box(valid: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Per axis (start, stop) of the True voxels of ``valid`` ((0, 0) on every axis when none)."""
    if not valid.any():
        return ((0, 0),) * valid.ndim
    out = []
    for axis in range(valid.ndim):
        hit = np.flatnonzero(valid.any(axis=tuple(a for a in range(valid.ndim) if a != axis)))
        out.append((int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)


def blend(raw: np.ndarray, mask: np.ndarray, alpha: float, gray: float) -> np.ndarray:
    """Alpha blending of the original tool (notes §4), float32.

    Inside ``mask`` the voxel stays ``raw``; outside it becomes ``alpha * gray + (1 - alpha) * raw``.
    So ``alpha=1`` is flat ``gray`` outside the mask and ``alpha=0`` is raw everywhere.
    """
    a = np.float32(alpha)
    raw = raw.astype(np.float32, copy=False)
    mask = np.asarray(mask, dtype=bool)
    # Multiplying by 0/1 is exact, and branch-free (np.where is slow on ragged masks).
    curtain = np.float32(gray) * a if a == 1 else raw * (np.float32(1) - a) + a * np.float32(gray)
    out = raw * mask
    out += curtain * ~mask
    return out


def _valid_slices(origin, size, data_box) -> tuple[slice, ...]:
    """Per axis, the part of a ``size`` window at ``origin`` inside ``data_box`` ((start, stop) per axis)."""
    out = []
    for o, (lo, hi) in zip(origin, data_box):
        a = min(size, max(0, int(lo) - int(o)))
        out.append(slice(a, max(a, min(size, int(hi) - int(o)))))
    return tuple(out)


def coverage_of(valid: tuple[slice, ...], size: int) -> float:
    """Fraction of a ``size``³ crop covered by the ``valid`` slices."""
    return float(np.prod([sl.stop - sl.start for sl in valid])) / float(size) ** 3


def build_crop(ctx: SynapseContext, settings: CropSettings) -> SynapseCrop | Discarded:
    """Build the crop of one synapse from its context (pure function of plain data).

    The presynaptic side and the smart-crop centre come with the context (:func:`locate_crop`).
    Steps here: structure masks inside the crop window; the mask of
    ``settings.segmentation_type``; per-crop min-max; alpha blend. Returns :class:`Discarded`
    with a reason when the centre lies outside the volume or a type 12/13 box cannot be filled.
    """
    s = settings
    t = s.segmentation_type
    key = {"bbox_name": ctx.bbox_name, "var1": ctx.var1, "segmentation_type": t}
    shape = ctx.data_box()
    center = np.array(ctx.center_zyx)
    if any(not lo <= c < hi for c, (lo, hi) in zip(center, shape)):
        return Discarded(f"synapse centre (z, y, x) {tuple(int(v) for v in center)} lies outside the volume "
                         f"of shape {tuple(int(hi - lo) for lo, hi in shape)}", **key)
    if ctx.locate_token != s.locate_token() or ctx.orientation != s.orientation:
        raise ValueError(f"context of {ctx.bbox_name}/{ctx.var1} was read with other crop-location settings "
                         f"({ctx.locate_token}, orientation {ctx.orientation!r}); read it with "
                         "read_context(..., settings) using these settings")
    origin = np.array(ctx.origin_zyx)
    lids = ctx.label_ids
    record = ctx.presynaptic
    crop_center = np.array(ctx.crop_center_zyx)
    half = s.size // 2
    m = s.mito_dilation
    rotated = ctx.valid is not None
    if rotated:  # the window is rotated about the crop centre: its voxels [m, m + size) are the crop
        valid_c = ctx.valid[(slice(m, m + s.size),) * 3]
        coverage = float(np.count_nonzero(valid_c)) / float(s.size) ** 3
    else:
        coverage = coverage_of(_valid_slices(crop_center - half, s.size, shape), s.size)
    if coverage < s.min_coverage:
        extent = f"{s.size * s.voxel_size_nm:.0f} nm" if ctx.voxel_size_nm is not None else f"{s.size}-voxel"
        return Discarded(f"only {coverage:.0%} of the {extent} crop lies inside the data (min_coverage "
                         f"{s.min_coverage:.0%}): the synapse is too close to the border or the stack is too thin; "
                         "lower min_coverage to keep it", presynaptic=record, **key)

    # Structures inside the crop window (and a margin for the mitochondria dilation).
    crop_origin = crop_center - half
    cw = crop_origin - origin  # crop window start in context coordinates
    crop = tuple(slice(int(a), int(a) + s.size) for a in cw)
    if ctx.raw.dtype.kind == "f":  # NaN/inf EM would give a blank crop whose features still look like numbers
        n_bad = int(np.count_nonzero(~np.isfinite(ctx.raw[crop])))
        if n_bad:
            return Discarded(f"the raw EM has {n_bad} NaN or infinite voxels inside this crop; fill or mask them in "
                             "the raw volume (e.g. with the volume's median) to use this synapse",
                             presynaptic=record, **key)
    seg_c = ctx.seg[crop]
    lab_c = ctx.labels[crop]
    if rotated:  # the annotated centre in the rotated crop (grid voxels are isotropic)
        rot = np.asarray(ctx.rotation_zyx, dtype=np.float64)
        c_local = tuple(int(v) for v in np.rint(rot @ (center - crop_center) + half))
    else:
        c_local = tuple(int(v) for v in center - crop_origin)
    orient = {"orientation": ctx.orientation, "cleft_normal_zyx": tuple(ctx.cleft_normal_zyx),
                  "normal_source": ctx.normal_source, "rotation_zyx": ctx.rotation_zyx}
    parts: dict[str, np.ndarray] = {}
    empty = np.zeros(seg_c.shape, bool)
    parts["side1"] = (seg_c == ctx.side1_seg_id) if ctx.side1_seg_id else empty
    parts["side2"] = (seg_c == ctx.side2_seg_id) if ctx.side2_seg_id else empty
    parts["pre"], parts["post"] = (
        (parts["side1"], parts["side2"]) if record.side == 1 else (parts["side2"], parts["side1"])
    )
    parts["vesicle_cloud"] = closest_component(lab_c == lids.vesicle, c_local)
    parts["cleft"] = closest_component(lab_c == lids.cleft, c_local)
    parts["cleft2"] = parts["cleft"] if lids.cleft2 == lids.cleft else closest_component(lab_c == lids.cleft2, c_local)
    mito = lab_c == lids.mito
    needs = SEGMENTATION_TYPES[t].parts
    if "mito_closest" in needs:
        parts["mito_closest"] = closest_component(mito, c_local)
    if "mito_dilated" in needs:
        wide = tuple(slice(int(a) - m, int(a) + s.size + m) for a in cw)
        mito_wide = ctx.labels[wide] == lids.mito
        inner = (slice(m, m + s.size),) * 3
        parts["mito_dilated"] = dilate_cross(mito_wide, m)[inner] if mito_wide.any() else mito
    structures = {
        "pre": parts["pre"],
        "post": parts["post"],
        "cleft": parts["cleft"] | parts["cleft2"],
        "vesicle_cloud": parts["vesicle_cloud"],
        "mitochondria": mito,
    }

    if not SEGMENTATION_TYPES[t].vesicle_box:
        mask = compose_mask(t, parts, seg_c.shape)
        if rotated:
            mask &= valid_c  # outside the data: never shown as raw, it gets the gray curtain
            raw = _normalise_masked(ctx.raw[crop], valid_c)
            valid_box = _bounding_box(valid_c)
        else:
            valid = _valid_slices(crop_origin, s.size, shape)
            if any(sl.stop - sl.start < s.size for sl in valid):
                inside = np.zeros(mask.shape, bool)
                inside[valid] = True
                mask &= inside  # padding has no EM: never shown as raw, it gets the gray curtain
            raw = _normalise(ctx.raw[crop], valid)
            valid_box = tuple((sl.start, sl.stop) for sl in valid)
        return SynapseCrop(
            bbox_name=ctx.bbox_name, var1=ctx.var1, raw=raw, blended=blend(raw, mask, s.alpha, s.gray),
            mask=mask, structures=structures, presynaptic=record,
            origin_zyx=tuple(int(v) for v in crop_origin), center_zyx=tuple(int(v) for v in center),
            crop_center_zyx=tuple(int(v) for v in crop_center), segmentation_type=t,
            valid_box_zyx=valid_box, coverage=coverage,
            voxel_size_nm=ctx.voxel_size_nm, valid=valid_c if rotated else None, **orient,
        )

    # Types 12/13: a vesicle box, centred in the output crop; the rest of the crop has no EM.
    b = s.vesicle_box
    if t == 12:
        structure = parts["vesicle_cloud"]
        start, reason = vesicle_box_type12(structure, b, s.vesicle_box_fill)
    else:
        structure = compose_mask(13, parts, seg_c.shape)
        start, reason = vesicle_box_type13(structure, parts["vesicle_cloud"], b, s.vesicle_box_fill,
                                           s.vesicle_box_max_shift)
    if start is None:
        return Discarded(reason, presynaptic=record, **key)
    box = tuple(slice(a, a + b) for a in start)
    offset = (s.size - b) // 2
    inner = (slice(offset, offset + b),) * 3
    box_origin = crop_origin + np.array(start)
    out_origin = box_origin - offset

    def place(a, dtype=bool):
        out = np.zeros((s.size,) * 3, dtype)
        out[inner] = a[box]
        return out

    raw = np.zeros((s.size,) * 3, np.float32)
    if rotated:
        valid_out = place(valid_c)
        raw[inner] = _normalise_masked(ctx.raw[crop][box], valid_c[box])
        out_valid_box = _bounding_box(valid_out)
        mask = place(structure) & valid_out
    else:
        valid_box = _valid_slices(box_origin, b, shape)
        raw[inner] = _normalise(ctx.raw[crop][box], valid_box)
        out_valid_box = tuple((sl.start + offset, sl.stop + offset) for sl in valid_box)
        mask = place(structure)
    return SynapseCrop(
        bbox_name=ctx.bbox_name, var1=ctx.var1, raw=raw, blended=blend(raw, mask, s.alpha, s.gray),
        mask=mask, structures={k: place(v) for k, v in structures.items()}, presynaptic=record,
        origin_zyx=tuple(int(v) for v in out_origin), center_zyx=tuple(int(v) for v in center),
        crop_center_zyx=tuple(int(v) for v in box_origin + b // 2), segmentation_type=t,
        valid_box_zyx=out_valid_box, coverage=coverage,
        voxel_size_nm=ctx.voxel_size_nm, valid=valid_out if rotated else None, **orient,
    )


# ---------------------------------------------------------------------------------------- convenience


def crop_synapse(dataset, bbox_name: str, var1: str, settings: CropSettings) -> SynapseCrop | Discarded:
    """Crop one synapse of an opened dataset (``synapse_core.data.dataset.open_dataset``)."""
    row = dataset.synapse(bbox_name, var1)  # UnknownSynapseError naming the synapse
    return build_crop(read_context(dataset.bboxes[str(bbox_name)], row, settings), settings)


def iter_crops(dataset, settings: CropSettings, rows=None):
    """Yield ``(bbox_name, Var1, SynapseCrop | Discarded)`` for every row of ``rows`` (default: all synapses).

    The key travels with every result, so a discarded synapse never shifts the rows after it.
    """
    table = dataset.synapses if rows is None else rows
    for _, row in table.iterrows():
        bbox_name, var1 = str(row["bbox_name"]), str(row["Var1"])
        ctx = read_context(dataset.bboxes[bbox_name], row, settings)
        yield bbox_name, var1, build_crop(ctx, settings)
