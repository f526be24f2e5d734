"""Segmentation types 0–13 on a constructed volume where every expected mask is known voxel for voxel.

Volume 40³, annotated centre (z, y, x) = (20, 20, 20), crop size 20 without smart crop, native
orientation (axis-aligned), so the crop window is [10, 30)³ and crop index = volume index - 10.
Label ids of "bbox2": mito 1, vesicle 3, cleft 2, cleft2 4.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from synapse_core.crops.build import Discarded, SynapseCrop, build_crop, read_context_arrays
from synapse_core.crops.settings import CropSettings
from synapse_core.data.labels import default_labels
from synapse_core.crops.segmentation_types import SEGMENTATION_TYPES, check_segmentation_type

from conftest import synapse_row, two_neuron_volumes

LABELS = default_labels("bbox2")
SHAPE = (40, 40, 40)
CROP = (slice(10, 30),) * 3


def box(z, y, x):
    """Bool volume of SHAPE, True on the given (start, stop) ranges."""
    out = np.zeros(SHAPE, bool)
    out[z[0]:z[1], y[0]:y[1], x[0]:x[1]] = True
    return out


# Neurons: 1 (x < 20), 2 (x >= 20), 3 (y < 14 overrides both).
SIDE1 = box((0, 40), (14, 40), (0, 20))
SIDE2 = box((0, 40), (14, 40), (20, 40))
VESICLE_NEAR = box((17, 23), (17, 23), (14, 18))
VESICLE_FAR = box((12, 15), (25, 28), (12, 15))
CLEFT_NEAR = box((16, 24), (16, 24), (19, 21))
CLEFT_FAR = box((26, 29), (26, 29), (26, 29))
CLEFT2_NEAR = box((17, 23), (17, 23), (21, 23))
CLEFT2_FAR = box((11, 13), (26, 28), (24, 26))
MITO_NEAR = box((22, 26), (22, 26), (11, 14))
MITO_FAR = box((11, 13), (15, 17), (26, 28))
MITO_OUTSIDE = box((15, 17), (15, 17), (8, 10))  # just outside the crop: its dilation reaches in


def make_volumes():
    rng = np.random.default_rng(1)
    raw = rng.integers(20, 230, SHAPE, dtype=np.uint8)
    seg = np.zeros(SHAPE, np.uint32)
    seg[SIDE1] = 1
    seg[SIDE2] = 2
    seg[:, :14, :] = 3
    mask = np.zeros(SHAPE, np.uint8)
    for m, label in ((VESICLE_NEAR, LABELS.vesicle), (VESICLE_FAR, LABELS.vesicle), (CLEFT2_NEAR, LABELS.cleft2),
                     (CLEFT2_FAR, LABELS.cleft2), (CLEFT_NEAR, LABELS.cleft), (CLEFT_FAR, LABELS.cleft),
                     (MITO_NEAR, LABELS.mito), (MITO_FAR, LABELS.mito), (MITO_OUTSIDE, LABELS.mito)):
        mask[m] = label
    return raw, seg, mask


ROW = synapse_row((20, 20, 20), (20, 20, 15), (20, 20, 25), bbox_name="bbox2", var1="syn_a")

def crop_for(t, **kw):
    raw, seg, mask = make_volumes()
    s = CropSettings(orientation="native", size=20, segmentation_type=t, smart_crop=False, **kw)
    return build_crop(read_context_arrays(raw, seg, mask, LABELS, ROW, s), s)


def expected(*parts, minus=None):
    out = np.zeros(SHAPE, bool)
    for p in parts:
        out |= p
    if minus is not None:
        out &= ~minus
    return out[CROP]


def dilated_mito():
    """Reference: the original's full-volume dilation of every mitochondrion, 2 iterations."""
    _, _, mask = make_volumes()
    return ndimage.binary_dilation(mask == LABELS.mito, iterations=2)


@pytest.mark.parametrize(
    "t, parts",
    [
        (1, (SIDE1,)),
        (2, (SIDE2,)),
        (3, (SIDE1, SIDE2)),
        (4, (VESICLE_NEAR, CLEFT_NEAR, CLEFT2_NEAR)),
        (5, (SIDE1, SIDE2, VESICLE_NEAR, CLEFT_NEAR)),
        (6, (VESICLE_NEAR,)),
        (7, (CLEFT_NEAR, CLEFT2_NEAR)),
        (8, (MITO_NEAR,)),
        (9, (VESICLE_NEAR, CLEFT_NEAR)),
        (10, (CLEFT_NEAR, SIDE1)),
    ],
)
def test_type_mask_is_the_union_of_its_structures_voxel_for_voxel(t, parts):
    out = crop_for(t)
    assert isinstance(out, SynapseCrop)
    np.testing.assert_array_equal(out.mask, expected(*parts))


def test_type0_mask_is_the_whole_crop():
    out = crop_for(0)
    assert out.mask.all() and out.mask.shape == (20, 20, 20)


def test_type11_is_type10_minus_every_mitochondrion_dilated_twice_including_ones_outside_the_crop():
    out = crop_for(11)
    np.testing.assert_array_equal(out.mask, expected(CLEFT_NEAR, SIDE1, minus=dilated_mito()))
    # The mitochondrion 1 voxel outside the crop removes crop voxels at x = 10, 11.
    assert not out.mask[6, 6, 0] and not out.mask[6, 6, 1]
    assert out.mask[6, 6, 2]


def test_type1_follows_the_presynaptic_side_when_the_vesicle_cloud_is_on_side_2():
    raw, seg, mask = make_volumes()
    swapped = dict(ROW, side_1_coord_1=25, side_2_coord_1=15)  # side 1 is now the postsynaptic neuron
    s = CropSettings(orientation="native", size=20, segmentation_type=1, smart_crop=False)
    out = build_crop(read_context_arrays(raw, seg, mask, LABELS, swapped, s), s)
    assert out.presynaptic.side == 2
    np.testing.assert_array_equal(out.mask, expected(SIDE1))


def test_structures_hold_closest_cleft_vesicle_and_all_mitochondria():
    out = crop_for(0)
    np.testing.assert_array_equal(out.structures["vesicle_cloud"], expected(VESICLE_NEAR))
    np.testing.assert_array_equal(out.structures["cleft"], expected(CLEFT_NEAR, CLEFT2_NEAR))
    np.testing.assert_array_equal(out.structures["mitochondria"], expected(MITO_NEAR, MITO_FAR))
    np.testing.assert_array_equal(out.structures["pre"], expected(SIDE1))
    np.testing.assert_array_equal(out.structures["post"], expected(SIDE2))


# ---- types 12 and 13: a vesicle box centred in the crop


def cube_volumes(cloud_edge=10, pre_gap=False):
    """30³ volume: neuron 1 (x < 15) holds a vesicle cloud cube of ``cloud_edge`` starting at (10, 10, 4)."""
    raw, seg, mask = two_neuron_volumes((30, 30, 30), split_x=15, seed=2)
    mask[10:10 + cloud_edge, 10:10 + cloud_edge, 4:4 + cloud_edge] = LABELS.vesicle
    mask[12:18, 12:18, 14:16] = LABELS.cleft
    row = synapse_row((15, 15, 15), (15, 15, 8), (15, 15, 22), bbox_name="bbox2", var1="syn_box")
    return raw, seg, mask, row


def box_crop(t, cloud_edge=10, **kw):
    raw, seg, mask, row = cube_volumes(cloud_edge)
    s = CropSettings(orientation="native", size=20, segmentation_type=t, smart_crop=False, vesicle_box=6, **kw)
    return build_crop(read_context_arrays(raw, seg, mask, LABELS, row, s), s), raw


def test_type12_box_is_filled_by_the_cloud_and_centred_in_the_crop():
    out, raw = box_crop(12)
    assert isinstance(out, SynapseCrop)
    inner = (slice(7, 13),) * 3  # (20 - 6) // 2 = 7
    assert out.mask[inner].all() and out.mask.sum() == 6 ** 3
    # The box nearest the cloud centroid: cloud [10, 20) x [10, 20) x [4, 14) → box start (12, 12, 6).
    assert tuple(np.array(out.origin_zyx) + 7) == (12, 12, 6)
    patch = raw[12:18, 12:18, 6:12].astype(np.float32)
    np.testing.assert_allclose(out.raw[inner], (patch - patch.min()) / (patch.max() - patch.min()), rtol=1e-6)
    assert np.all(out.raw[~out.mask] == 0)


def test_type12_discards_a_cloud_smaller_than_the_box_with_its_reason():
    out, _ = box_crop(12, cloud_edge=5)
    assert isinstance(out, Discarded)
    assert "too small for a 6³ box" in out.reason and out.var1 == "syn_box" and out.segmentation_type == 12


def test_type12_default_box_is_25_voxels():
    raw, seg, mask, row = cube_volumes(10)
    s = CropSettings(orientation="native", size=40, segmentation_type=12, smart_crop=False,
                     min_coverage=0.0)  # a small volume
    res = build_crop(read_context_arrays(raw, seg, mask, LABELS, row, s), s)
    assert isinstance(res, Discarded) and "25³" in res.reason


def test_type13_box_is_centred_on_the_cloud_and_masks_cloud_pre_and_cleft():
    out, raw = box_crop(13)
    assert isinstance(out, SynapseCrop)
    # The crop window [5, 25)³ cuts the cloud to x in [5, 14): centroid (14.5, 14.5, 9.0) truncates to
    # (14, 14, 9); box start = centroid - 3 = (11, 11, 6), inside neuron 1 and the cloud: full, not shifted.
    assert tuple(np.array(out.origin_zyx) + 7) == (11, 11, 6)
    inner = (slice(7, 13),) * 3
    assert out.mask[inner].all() and out.mask.sum() == 6 ** 3


def test_type13_discards_when_no_nearby_box_is_filled():
    raw, seg, mask, row = cube_volumes(10)
    mask[:, :, :] = np.where(mask == LABELS.vesicle, 0, mask)
    mask[14, 14, 20] = LABELS.vesicle  # a one-voxel cloud in neuron 2, far from any filled box
    seg[:, :, :] = 0
    seg[14, 14, 20] = 2
    s = CropSettings(orientation="native", size=20, segmentation_type=13, smart_crop=False, vesicle_box=6)
    res = build_crop(read_context_arrays(raw, seg, mask, LABELS, row, s), s)
    assert isinstance(res, Discarded) and "not filled" in res.reason


def test_type13_discards_without_a_vesicle_cloud():
    raw, seg, mask, row = cube_volumes(10)
    mask[mask == LABELS.vesicle] = 0
    s = CropSettings(orientation="native", size=20, segmentation_type=13, smart_crop=False, vesicle_box=6)
    res = build_crop(read_context_arrays(raw, seg, mask, LABELS, row, s), s)
    assert isinstance(res, Discarded) and res.reason == "no vesicle cloud in the crop"


def test_every_type_has_a_name_and_description():
    assert sorted(SEGMENTATION_TYPES) == list(range(14))
    assert all(t.name and t.description for t in SEGMENTATION_TYPES.values())


def test_unknown_segmentation_type_is_rejected_with_the_accepted_values():
    with pytest.raises(ValueError, match="segmentation_type must be an integer 0–13, got 14; 0: Raw data"):
        check_segmentation_type(14)
    with pytest.raises(ValueError, match="segmentation_type=-1 must be 0, 1, 2"):
        CropSettings(segmentation_type=-1)


def test_type13_moves_the_box_the_least_distance_that_fills_it():
    raw, seg, mask, row = cube_volumes(10)
    mask[11, 11, 6] = LABELS.mito  # its 2-voxel dilation empties the low corner of the centred box (11, 11, 6)
    s = CropSettings(orientation="native", size=20, segmentation_type=13, smart_crop=False, vesicle_box=6)
    out = build_crop(read_context_arrays(raw, seg, mask, LABELS, row, s), s)
    # Smallest shift whose box stays 3 (L1) voxels from the mitochondrion: (+1, +1, +1).
    assert tuple(np.array(out.origin_zyx) + 7) == (12, 12, 7)
    assert out.mask.sum() == 6 ** 3
