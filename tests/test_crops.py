"""Crops: window, smart-crop shift, border padding, min-max, alpha blending, discards and row alignment."""

from __future__ import annotations

import dataclasses
import pickle
import re

import numpy as np
import pytest

from synapse_core.crops.settings import CropSettings
from synapse_core.crops.build import (
    Discarded,
    SynapseCrop,
    blend,
    build_crop,
    crop_synapse,
    iter_crops,
    read_context_arrays,
)
from synapse_core.data.hashing import canonical, content_hash
from synapse_core.data.labels import LabelIds
from synapse_core.data.synapse_keys import UnknownSynapseError

from conftest import synapse_row, two_neuron_volumes

LABELS = LabelIds(mito=5, vesicle=6, cleft=7, cleft2=7)


def make(raw, seg, mask, row, **kw):
    """A crop of ``row``; native orientation unless ``kw`` says otherwise (these tests check axis-aligned geometry)."""
    s = CropSettings(**{"size": 20, "segmentation_type": 0, "orientation": "native", **kw})
    return build_crop(read_context_arrays(raw, seg, mask, LABELS, row, s), s)


def test_crop_is_float32_of_the_configured_size_centred_on_the_synapse():
    raw, seg, mask = two_neuron_volumes()
    out = make(raw, seg, mask, synapse_row((30, 31, 32)), smart_crop=False)
    assert out.raw.shape == out.blended.shape == out.mask.shape == (20, 20, 20)
    assert out.raw.dtype == out.blended.dtype == np.float32
    assert out.origin_zyx == (20, 21, 22) and out.crop_center_zyx == (30, 31, 32)


def test_raw_is_min_max_normalised_per_crop():
    raw, seg, mask = two_neuron_volumes()
    out = make(raw, seg, mask, synapse_row((30, 30, 30)), smart_crop=False)
    window = raw[20:40, 20:40, 20:40].astype(np.float32)
    expected = (window - window.min()) / (window.max() - window.min())
    np.testing.assert_allclose(out.raw, expected, rtol=1e-6)
    assert out.raw.min() == 0 and out.raw.max() == 1


def test_smart_crop_moves_70_percent_towards_the_presynaptic_centre_of_mass():
    raw, seg, mask = two_neuron_volumes(split_x=30)
    mask[28:33, 28:33, 26:30] = LABELS.vesicle  # vesicle cloud in neuron 1 → presynaptic side 1
    out = make(raw, seg, mask, synapse_row((30, 30, 30), (30, 30, 25), (30, 30, 35)))
    # Evidence window [20, 40)³: neuron 1 occupies x in [20, 30), centre of mass (29.5, 29.5, 24.5).
    # new = floor(0.3 * 30 + 0.7 * com) = (29, 29, 26).
    assert out.presynaptic.side == 1
    assert out.crop_center_zyx == (29, 29, 26)
    assert out.origin_zyx == (19, 19, 16)


def test_smart_crop_weight_zero_keeps_the_annotated_centre():
    raw, seg, mask = two_neuron_volumes()
    mask[28:33, 28:33, 26:30] = LABELS.vesicle
    out = make(raw, seg, mask, synapse_row((30, 30, 30)), presynapse_weight=0.0)
    assert out.crop_center_zyx == (30, 30, 30)


def test_border_crop_is_padded_on_both_sides_so_the_synapse_stays_centred():
    raw, seg, mask = two_neuron_volumes()
    out = make(raw, seg, mask, synapse_row((3, 30, 57)), smart_crop=False, min_coverage=0.0)
    assert out.origin_zyx == (-7, 20, 47)
    assert out.valid_box_zyx == ((7, 20), (0, 20), (0, 13))
    # The synapse voxel is at the crop centre (10, 10, 10).
    window = raw[0:13, 20:40, 47:60].astype(np.float32)
    norm = (window - window.min()) / (window.max() - window.min())
    assert out.raw[10, 10, 10] == pytest.approx(norm[3, 10, 10])


def test_padding_voxels_are_zero_and_take_no_part_in_the_min_max():
    raw, seg, mask = two_neuron_volumes()
    raw[:] = 150
    raw[0:13, 20:40, 47:60] = np.random.default_rng(3).integers(100, 201, (13, 20, 13))
    raw[0, 20, 47], raw[1, 21, 48] = 100, 200
    out = make(raw, seg, mask, synapse_row((3, 30, 57)), smart_crop=False, min_coverage=0.0)
    inside = out.raw[7:20, :, :13]
    assert inside.min() == 0 and inside.max() == 1  # min 100 and max 200 come from real voxels only
    np.testing.assert_allclose(inside, (raw[0:13, 20:40, 47:60].astype(np.float32) - 100) / 100, rtol=1e-6)
    assert np.all(out.raw[:7] == 0) and np.all(out.raw[:, :, 13:] == 0)


def test_padding_is_outside_every_mask_so_it_gets_the_gray_curtain():
    raw, seg, mask = two_neuron_volumes()
    out = make(raw, seg, mask, synapse_row((3, 30, 57)), smart_crop=False, min_coverage=0.0, segmentation_type=0, alpha=1.0)
    assert out.mask[7:, :, :13].all() and not out.mask[:7].any() and not out.mask[:, :, 13:].any()
    assert np.all(out.blended[:7] == np.float32(0.6))


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_alpha_keeps_raw_inside_the_mask_and_veils_gray_outside(alpha):
    raw, seg, mask = two_neuron_volumes()
    out = make(raw, seg, mask, synapse_row((30, 30, 30)), segmentation_type=1, alpha=alpha, gray=0.6, smart_crop=False)
    m = out.mask
    assert 0 < m.mean() < 1
    np.testing.assert_array_equal(out.blended[m], out.raw[m])
    np.testing.assert_allclose(out.blended[~m], alpha * 0.6 + (1 - alpha) * out.raw[~m], rtol=1e-6, atol=1e-7)


def test_alpha_one_is_flat_gray_and_alpha_zero_is_raw():
    r = np.linspace(0, 1, 8, dtype=np.float32).reshape(2, 2, 2)
    m = np.zeros(r.shape, bool)
    m[0, 0, 0] = True
    assert np.all(blend(r, m, 1.0, 0.6)[~m] == np.float32(0.6))
    np.testing.assert_array_equal(blend(r, m, 0.0, 0.6), r)
    assert blend(r, m, 0.5, 0.6).dtype == np.float32


def test_mask_less_bbox_crops_with_empty_label_structures():
    raw, seg, _ = two_neuron_volumes()
    s = CropSettings(size=20, segmentation_type=6, smart_crop=False)
    out = build_crop(read_context_arrays(raw, seg, None, LABELS, synapse_row((30, 30, 30)), s), s)
    assert not out.mask.any() and not out.structures["vesicle_cloud"].any()
    assert out.presynaptic.fallback


def test_centre_outside_the_volume_is_discarded_with_its_reason():
    raw, seg, mask = two_neuron_volumes()
    out = make(raw, seg, mask, synapse_row((70, 30, 30)))
    assert isinstance(out, Discarded) and "outside the volume" in out.reason and out.var1 == "s"


def test_missing_coordinate_column_names_the_column():
    raw, seg, mask = two_neuron_volumes()
    row = synapse_row((30, 30, 30))
    del row["side_2_coord_3"]
    with pytest.raises(ValueError, match="side_2_coord_3"):
        read_context_arrays(raw, seg, mask, LABELS, row, CropSettings())


def test_context_read_with_other_location_settings_is_refused():
    raw, seg, mask = two_neuron_volumes()
    ctx = read_context_arrays(raw, seg, mask, LABELS, synapse_row((30, 30, 30)), CropSettings(size=20))
    with pytest.raises(ValueError, match="crop-location settings"):
        build_crop(ctx, CropSettings(size=24))


def test_a_context_built_for_one_type_serves_every_type_and_alpha():
    raw, seg, mask = two_neuron_volumes()
    ctx = read_context_arrays(raw, seg, mask, LABELS, synapse_row((30, 30, 30)), CropSettings(size=20))
    a = build_crop(ctx, CropSettings(size=20, segmentation_type=2, alpha=0.5))
    b = build_crop(pickle.loads(pickle.dumps(ctx)), CropSettings(size=20, segmentation_type=2, alpha=0.5))
    np.testing.assert_array_equal(a.blended, b.blended)


def test_settings_are_frozen_hashable_and_equal_settings_give_equal_cache_keys():
    a, b = CropSettings(segmentation_type=11, alpha=0.3), CropSettings(segmentation_type=11, alpha=0.3)
    assert a == b and hash(a) == hash(b) and content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash(CropSettings(segmentation_type=11, alpha=0.4))
    assert canonical(a)["alpha"] == 0.3 and canonical(a)["__type__"] == "CropSettings"
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'alpha'"):
        a.alpha = 0.5


def test_settings_from_numpy_scalars_equal_plain_settings():
    a = CropSettings(size=np.int64(80), segmentation_type=np.int64(10), alpha=np.float32(0.5))
    b = CropSettings(size=80, segmentation_type=10, alpha=0.5)
    assert a == b and content_hash(a) == content_hash(b)
    assert type(a.size) is int and type(a.alpha) is float


@pytest.mark.parametrize("field, value", [("alpha", 1.5), ("gray", -0.1), ("size", 0), ("fallback_side", 3)])
def test_bad_settings_name_the_parameter(field, value):
    with pytest.raises(ValueError, match=re.escape(f"{field}={value!r} must be")):
        CropSettings(**{field: value})


def test_discarded_synapses_keep_their_key_and_never_shift_other_rows(demo_dataset):
    rows = demo_dataset.synapses[demo_dataset.synapses["bbox_name"] == "bbox1"]
    s = CropSettings(segmentation_type=12, vesicle_box=12)
    results = list(iter_crops(demo_dataset, s, rows))
    assert [(b, v) for b, v, _ in results] == list(zip(rows["bbox_name"], rows["Var1"]))
    kinds = {type(r) for _, _, r in results}
    assert kinds == {SynapseCrop, Discarded}
    for (_, row), (b, v, r) in zip(rows.iterrows(), results):
        assert (r.bbox_name, r.var1) == (b, v)
        if isinstance(r, SynapseCrop):
            assert r.center_zyx == (row["central_coord_3"], row["central_coord_2"], row["central_coord_1"])
        else:
            assert "12³" in r.reason


def test_crop_synapse_by_key_equals_the_iterated_crop(demo_dataset):
    s = CropSettings(segmentation_type=10)
    row = demo_dataset.synapses.iloc[7]
    one = crop_synapse(demo_dataset, row["bbox_name"], row["Var1"], s)
    many = {(b, v): r for b, v, r in iter_crops(demo_dataset, s, demo_dataset.synapses.iloc[5:9])}
    np.testing.assert_array_equal(one.blended, many[(row["bbox_name"], row["Var1"])].blended)
    with pytest.raises(UnknownSynapseError, match="synapse bbox1/no_such_synapse is not in the valid rows of the synapse table"):
        crop_synapse(demo_dataset, "bbox1", "no_such_synapse", s)


def test_a_crop_below_min_coverage_is_discarded_with_the_numbers():
    raw, seg, mask = two_neuron_volumes()
    out = make(raw, seg, mask, synapse_row((3, 30, 57)), smart_crop=False, min_coverage=0.5)
    assert isinstance(out, Discarded)
    assert "42% of the 20-voxel crop lies inside the data (min_coverage 50%)" in out.reason


def test_coverage_is_the_fraction_of_the_crop_inside_the_data():
    raw, seg, mask = two_neuron_volumes()
    out = make(raw, seg, mask, synapse_row((3, 30, 57)), smart_crop=False, min_coverage=0.0)
    assert out.coverage == pytest.approx((13 / 20) * 1.0 * (13 / 20))
    assert make(raw, seg, mask, synapse_row((30, 30, 30)), smart_crop=False).coverage == 1.0


def test_data_at_the_crop_voxel_size_gives_the_crop_of_a_plain_read():
    raw, seg, mask = two_neuron_volumes()
    row = synapse_row((30, 30, 30))
    s = CropSettings(size=20, segmentation_type=1, voxel_size_nm=8.0)
    plain = build_crop(read_context_arrays(raw, seg, mask, LABELS, row, s), s)
    physical = build_crop(read_context_arrays(raw, seg, mask, LABELS, row, s, voxel_size_nm=(8, 8, 8)), s)
    np.testing.assert_array_equal(plain.blended, physical.blended)
    assert physical.voxel_size_nm == (8.0, 8.0, 8.0) and physical.crop_nm == (160.0, 160.0, 160.0)
    assert plain.voxel_size_nm is None


def test_anisotropic_sections_are_resampled_to_the_crop_grid():
    from scipy import ndimage

    _, seg, mask = two_neuron_volumes()
    smooth = ndimage.gaussian_filter(np.random.default_rng(5).random(seg.shape), 3)
    raw = np.round(255 * (smooth - smooth.min()) / np.ptp(smooth)).astype(np.uint8)
    # Every 5th slice from slice 2: the same tissue as 40 nm sections of 8 nm pixels (section k is centred
    # on slice 5k + 2); slice 30 lies in section 6.
    s = CropSettings(size=20, segmentation_type=0, smart_crop=False, voxel_size_nm=8.0)
    # A point in section 6 is known to ±20 nm: the section's centre, slice 32, is where its crop is centred.
    iso = build_crop(read_context_arrays(raw, seg, mask, LABELS, synapse_row((32, 30, 30)), s,
                                         voxel_size_nm=(8, 8, 8)), s)
    ani = build_crop(read_context_arrays(raw[2::5], seg[2::5], mask[2::5], LABELS, synapse_row((6, 30, 30)), s,
                                         voxel_size_nm=(40, 8, 8)), s)
    assert ani.raw.shape == (20, 20, 20) and ani.coverage == 1.0
    assert ani.presynaptic.pre_seg_id == iso.presynaptic.pre_seg_id
    np.testing.assert_array_equal(ani.structures["pre"], iso.structures["pre"])  # seg is constant along z
    assert np.corrcoef(ani.raw.ravel(), iso.raw.ravel())[0, 1] >= 0.9


def test_side_point_ids_are_read_at_their_native_voxels():
    raw, seg, mask = two_neuron_volumes()
    s = CropSettings(size=20, segmentation_type=0, smart_crop=False)
    ctx = read_context_arrays(raw[2::5], seg[2::5], mask[2::5], LABELS,
                              synapse_row((6, 30, 30), (6, 30, 25), (6, 30, 35)), s, voxel_size_nm=(40, 8, 8))
    assert (ctx.side1_seg_id, ctx.side2_seg_id) == (1, 2)
    assert ctx.center_zyx == (32, 30, 30)  # section 6 is centred at 260 nm: grid voxel 32 of 8 nm
