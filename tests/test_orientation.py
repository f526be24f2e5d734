"""Canonical crop orientation (issue 10): cleft normal on the crop's z axis, presynaptic side first.

Phantom synapses (``synapse_core.data.phantoms``) of known cleft normal at random orientations are
cropped with ``orientation="canonical"``; the cleft seen in the crop, the pre/post layout and the
crop's coverage near a volume edge are checked against the geometry. ``orientation="native"`` must
give the crops of the code before the option existed, byte for byte.
"""

from __future__ import annotations

import numpy as np
import pytest

from synapse_core.cli.parser import build_parser
from synapse_core.crops.build import Discarded, build_crop, read_context_arrays
from synapse_core.crops.orient import (
    canonical_rotation,
    cleft_normal,
    inplane_axis,
    principal_axes,
    rotated_coordinates,
    sample_window,
)
from synapse_core.crops.settings import CropSettings
from synapse_core.data.hashing import array_digest, content_hash
from synapse_core.data.phantoms import PhantomSpec, random_phantom, sample_phantom

ISO = (8.0, 8.0, 8.0)
ANISO = (40.0, 4.0, 4.0)
SPEC = PhantomSpec(extent_nm=(720.0, 720.0, 720.0))  # smaller scenes than the default: fast tests


def volumes(seed, vs=ISO, **kw):
    """A phantom sampled without rendered raw (fast): raw is a gray level per structure."""
    ph = random_phantom(seed, SPEC, with_mito=False, **kw)
    v = sample_phantom(ph, vs, raw=False)
    raw = (60 * v.seg + 20 * v.mask + 10).astype(np.uint8)
    return ph, v, raw


def canonical_crop(v, raw, row=None, vs=ISO, **kw):
    s = CropSettings(**{"size": 48, "segmentation_type": 0, "orientation": "canonical", **kw})
    ctx = read_context_arrays(raw, v.seg, v.mask, v.labels, row or v.row, s, bbox_name="p", voxel_size_nm=vs)
    return build_crop(ctx, s)


def angle_deg(a, b) -> float:
    return float(np.degrees(np.arccos(np.clip(abs(np.dot(a, b)), 0, 1))))


@pytest.fixture(scope="module")
def crops():
    """(phantom, canonical crop) for four random orientations at 8 nm and one at 40×4×4 nm."""
    out = []
    for seed, vs in ((0, ISO), (1, ISO), (2, ISO), (3, ISO), (4, ANISO)):
        ph, v, raw = volumes(seed, vs)
        out.append((ph, canonical_crop(v, raw, vs=vs)))
    return out


def test_canonical_crops_put_the_cleft_normal_on_the_crop_z_axis(crops):
    for ph, crop in crops:
        _, axes = principal_axes(np.argwhere(crop.structures["cleft"]).astype(float))
        assert angle_deg(axes[0], (1, 0, 0)) < 10, ph.seed


def test_canonical_crops_put_the_presynaptic_neuron_at_low_z(crops):
    for ph, crop in crops:
        pre_z = np.argwhere(crop.structures["pre"])[:, 0].mean()
        post_z = np.argwhere(crop.structures["post"])[:, 0].mean()
        assert pre_z < 24 < post_z, ph.seed


def test_the_recorded_cleft_normal_is_the_true_one_pointing_pre_to_post(crops):
    for ph, crop in crops:
        n = np.asarray(crop.cleft_normal_zyx)
        assert crop.normal_source == "cleft" and crop.orientation == "canonical"
        assert np.dot(n, ph.normal_zyx) > np.cos(np.radians(5)), ph.seed


def test_table_side_order_does_not_change_the_canonical_crop():
    _, a, raw = volumes(6, presynaptic_side=1)
    _, b, _ = volumes(6, presynaptic_side=2)
    ca, cb = canonical_crop(a, raw), canonical_crop(b, raw)
    assert (ca.presynaptic.side, cb.presynaptic.side) == (1, 2)
    np.testing.assert_array_equal(ca.blended, cb.blended)


def test_a_synapse_facing_the_other_way_gives_the_same_canonical_layout():
    normal = np.array([0.3, -0.5, 0.8])
    crops = {}
    for sign in (1, -1):
        _, v, raw = volumes(7, normal_zyx=sign * normal)
        crops[sign] = canonical_crop(v, raw)
    pre = [crops[s].structures["pre"] for s in (1, -1)]
    overlap = np.count_nonzero(pre[0] & pre[1]) / np.count_nonzero(pre[0] | pre[1])
    assert overlap > 0.9  # the bouton is in the same place in both crops


def test_measurements_on_a_canonical_crop_of_40x4x4_data_are_within_2_percent_of_the_truth():
    from synapse_core.features.morphology import morphology_features

    ph, v, raw = volumes(9, ANISO)
    crop = canonical_crop(v, raw, vs=ANISO, size=64)
    f = morphology_features(crop.structures, crop.raw, ISO, valid=crop.valid_mask())
    for column in ("morph_cleft_area_um2", "morph_cleft_thickness_nm", "morph_vesicle_cloud_volume_um3",
                   "morph_vesicle_cloud_to_cleft_distance_nm"):
        assert f[column] == pytest.approx(ph.truth[column], rel=0.02), column


def test_without_a_cleft_the_side_points_give_the_normal():
    n, source = cleft_normal(None, ISO, pre_nm=(0, 0, 0), post_nm=(0, 30, 40))
    assert source == "side_points"
    np.testing.assert_allclose(n, (0, 0.6, 0.8))


def test_without_cleft_or_distinct_side_points_the_crop_is_not_rotated():
    n, source = cleft_normal(None, ISO, pre_nm=(5, 5, 5), post_nm=(5, 5, 5))
    assert source == "none" and np.isnan(n).all()
    np.testing.assert_array_equal(canonical_rotation(n, inplane_axis(n)), np.eye(3))


def test_the_canonical_rotation_is_proper_and_maps_the_normal_to_z():
    n = np.array([0.2, -0.9, 0.4]) / np.linalg.norm([0.2, -0.9, 0.4])
    R = canonical_rotation(n, inplane_axis(n))
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(R @ n, (1, 0, 0), atol=1e-12)


def test_coverage_of_a_rotated_crop_near_the_volume_edge_is_the_fraction_of_voxel_centres_inside():
    _, v, raw = volumes(8)
    row = dict(v.row)
    row["central_coord_1"] = 6  # x index 6 of 90: the crop sticks out of the volume in x
    crop = canonical_crop(v, raw, row=row, min_coverage=0.0, smart_crop=False)
    # Independently: crop voxel j lies at centre + R.T @ ((j - 24) * 8 nm); inside iff 0 <= p < extent.
    R = np.asarray(crop.rotation_zyx)
    np.testing.assert_allclose(R[0], crop.cleft_normal_zyx)
    center_nm = (np.asarray(crop.crop_center_zyx) + 0.5) * 8
    j = np.stack(np.meshgrid(*[np.arange(48)] * 3, indexing="ij"), -1).reshape(-1, 3)
    p = center_nm + ((j - 24) * 8.0) @ R
    inside = np.all((p >= 0) & (p < np.asarray(v.seg.shape) * 8.0), axis=1).reshape((48,) * 3)
    assert 0.3 < crop.coverage < 0.9
    assert crop.coverage == pytest.approx(inside.mean(), abs=0.01)
    assert np.mean(crop.valid_mask() == inside) > 0.99
    assert not crop.raw[~crop.valid_mask()].any() and not crop.mask[~crop.valid_mask()].any()


def test_a_rotated_crop_mostly_outside_the_data_is_discarded_with_its_coverage():
    _, v, raw = volumes(8)
    row = dict(v.row)
    row["central_coord_1"] = 0
    out = canonical_crop(v, raw, row=row, smart_crop=False, min_coverage=0.8)
    assert isinstance(out, Discarded) and "lies inside the data (min_coverage 80%)" in out.reason


def test_rotated_sampling_of_an_unrotated_window_is_a_plain_read():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 255, (20, 20, 20), dtype=np.uint8)
    seg = rng.integers(0, 5, (20, 20, 20)).astype(np.uint32)
    coords = rotated_coordinates((8, 8, 8), (4, 4, 4), (10.5 * 8.0,) * 3, np.eye(3), 8.0, ISO)  # centre of voxel 10
    r, s, lab, valid = sample_window(raw, seg, None, coords, ISO, 8.0)
    np.testing.assert_array_equal(r, raw[6:14, 6:14, 6:14].astype(np.float32))
    np.testing.assert_array_equal(s, seg[6:14, 6:14, 6:14])
    assert valid.all() and not lab.any()


# Crops of the code before the orientation option (commit ee5e9ce), digests of blended and raw: a phantom
# (seed 5, with mitochondrion, random uint8 raw) at 8 and 40×4×4 nm, seg types 10, 12 and 5, centred and at the x border.
NATIVE_DIGESTS = {
    (ISO, 10, False): ("3092e3785305952e", "98e2af9d4fd513f2"),
    (ISO, 10, True): ("d300ec64215f7854", "4093e00e2191e78e"),
    (ISO, 12, False): ("6296b97f8ffbcdbb", "1a4c19ab59e2de3e"),
    (ISO, 5, True): ("deb3a00f1782c107", "4093e00e2191e78e"),
    (ANISO, 10, False): ("ba151a9bfafd4206", "7c3d3c3303bcba45"),
    (ANISO, 10, True): ("825c0f35256b887c", "2d96ab7435ec8f02"),
    (ANISO, 12, False): ("99db937b373e3add", "6c199ee1276607fa"),
    (ANISO, 5, True): ("b353b54a7068aa13", "2d96ab7435ec8f02"),
}


@pytest.mark.parametrize("vs", (ISO, ANISO), ids=["8x8x8", "40x4x4"])
def test_native_orientation_gives_the_crops_of_before_byte_for_byte(vs):
    v = sample_phantom(random_phantom(5, SPEC, with_mito=True), vs, raw=False)
    raw = np.random.default_rng(0).integers(0, 256, v.seg.shape, dtype=np.uint8)
    for (t, border), digests in ((k[1:], d) for k, d in NATIVE_DIGESTS.items() if k[0] == vs):
        row = dict(v.row)
        if border:
            row["central_coord_1"] = 2
        s = CropSettings(size=48, segmentation_type=t, vesicle_box=16, min_coverage=0.0, orientation="native")
        crop = build_crop(read_context_arrays(raw, v.seg, v.mask, v.labels, row, s, voxel_size_nm=vs), s)
        assert (array_digest(crop.blended)[:16], array_digest(crop.raw)[:16]) == digests, (t, border)
        assert crop.orientation == "native" and crop.valid is None and crop.rotation_zyx is None


def test_orientation_is_a_crop_flag_and_part_of_the_crop_key():
    sub = next(a for a in build_parser("extract")._actions if a.dest == "command").choices["extract"]
    flag = next(a for a in sub._actions if a.dest == "orientation")
    assert flag.metavar == "{native,canonical}"
    assert content_hash(CropSettings(orientation="native")) != content_hash(CropSettings(orientation="canonical"))


@pytest.mark.usefixtures("demo_app")
def test_the_extraction_page_offers_the_declared_orientations_and_crops_with_the_choice():
    from app_helpers import errors, open_page

    at = open_page("app_pages/extraction.py", state={"bboxes": ["bbox1"]})
    box = at.selectbox(key="w_x_orientation")
    assert list(box.options) == ["native", "canonical"] and box.value == "canonical"  # the declared default
    box.set_value("native").run()
    assert at.session_state["crop_settings"].orientation == "native"
    assert not errors(at) and not at.exception
