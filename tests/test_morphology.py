"""Morphology measurements on constructed structures with known sizes."""

import math

import numpy as np
import pytest

from synapse_core.features.morphology import (
    absence_indicators,
    morphology_columns,
    morphology_features,
    sheet_area,
    valid_mask_from_box,
)

SHAPE = (64, 64, 64)


def blank():
    return np.zeros(SHAPE, dtype=bool)


def structures():
    ves = blank(); ves[10:20, 10:20, 10:20] = True          # 1000 voxels
    cleft = blank(); cleft[30, 20:40, 20:40] = True          # flat sheet 20×20, one voxel thick (z plane)
    mito = blank(); mito[40:46, 25:30, 25:30] = True         # starts 10 voxels above the cleft in z
    pre = blank(); pre[:30] = True
    post = blank(); post[31:] = True
    return {"pre": pre, "post": post, "cleft": cleft, "vesicle_cloud": ves, "mitochondria": mito}


def raw_with(values):
    raw = np.full(SHAPE, 0.5, dtype=np.float32)
    for mask, v in values:
        raw[mask] = v
    return raw


def test_volumes_are_voxel_counts_times_voxel_volume_in_um3():
    s = structures()
    f = morphology_features(s, raw_with([]), voxel_size_nm=(16.0, 8.0, 8.0))
    assert f["morph_vesicle_cloud_volume_um3"] == pytest.approx(1000 * 16 * 8 * 8 / 1e9)
    assert f["morph_pre_volume_um3"] == pytest.approx(30 * 64 * 64 * 1024 / 1e9)
    assert f["morph_mito_volume_um3"] == pytest.approx(150 * 1024 / 1e9)


def test_flat_cleft_area_and_thickness_in_physical_units():
    f = morphology_features(structures(), raw_with([]), voxel_size_nm=(16.0, 8.0, 8.0))
    assert f["morph_cleft_area_um2"] == pytest.approx(20 * 20 * 8 * 8 / 1e6, rel=0.05)
    assert f["morph_cleft_thickness_nm"] == pytest.approx(16.0, rel=0.05)


def test_tilted_cleft_area_is_measured_in_its_own_plane():
    cleft = blank()
    for i in range(20):
        cleft[20 + i, 20 + i, 20:40] = True  # plane z = y, 45° tilt
    assert sheet_area(cleft, (1, 1, 1)) == pytest.approx(20 * 20 * math.sqrt(2), rel=0.05)


def test_mito_to_cleft_distance_is_the_gap_along_z_in_nm():
    f = morphology_features(structures(), raw_with([]), voxel_size_nm=(16.0, 8.0, 8.0))
    assert f["morph_mito_to_cleft_distance_nm"] == pytest.approx(10 * 16.0)


def test_vesicle_cloud_centroid_distance_to_cleft():
    f = morphology_features(structures(), raw_with([]), voxel_size_nm=(1.0, 1.0, 1.0))
    # centroid (14.5, 14.5, 14.5) → nearest cleft voxel (30, 20, 20)
    assert f["morph_vesicle_cloud_to_cleft_distance_nm"] == pytest.approx(math.sqrt(15.5**2 + 5.5**2 + 5.5**2))


def test_intensity_means_per_structure():
    s = structures()
    f = morphology_features(s, raw_with([(s["vesicle_cloud"], 0.2), (s["cleft"], 0.9)]), voxel_size_nm=(8, 8, 8))
    assert f["morph_vesicle_cloud_intensity_mean"] == pytest.approx(0.2)
    assert f["morph_cleft_intensity_mean"] == pytest.approx(0.9)
    assert f["morph_mito_intensity_mean"] == pytest.approx(0.5)


def test_absent_structures_give_zero_size_nan_distances_and_intensities_and_has_0():
    s = structures()
    raw = raw_with([(s["pre"], 0.25)])
    f = morphology_features({"pre": s["pre"], "cleft": s["cleft"]}, raw, voxel_size_nm=(8, 8, 8))
    assert f["morph_mito_volume_um3"] == 0.0 and f["morph_has_mito"] == 0.0 and f["morph_has_pre"] == 1.0
    assert math.isnan(f["morph_mito_to_cleft_distance_nm"])  # not the crop diagonal
    assert math.isnan(f["morph_mito_intensity_mean"])  # not the whole-crop mean
    none = morphology_features({}, raw, voxel_size_nm=(8, 8, 8))
    assert none["morph_cleft_area_um2"] == 0.0 and math.isnan(none["morph_cleft_thickness_nm"])
    assert [none[c] for c in morphology_columns() if c.startswith("morph_has_")] == [0.0] * 5


def test_absence_indicators_name_the_structures_a_column_needs():
    assert absence_indicators("morph_mito_to_cleft_distance_nm") == ("morph_has_mito", "morph_has_cleft")
    assert absence_indicators("morph_vesicle_cloud_intensity_mean") == ("morph_has_vesicle_cloud",)
    assert absence_indicators("morph_cleft_thickness_vox") == ("morph_has_cleft",)
    assert absence_indicators("morph_mito_volume_um3") == ()  # 0 when absent, never NaN
    assert absence_indicators("feat_3") == ()


def test_valid_mask_from_box_marks_the_part_inside_the_volume():
    valid = valid_mask_from_box((4, 5, 6), ((1, 4), (0, 5), (2, 6)))
    assert valid.sum() == 3 * 5 * 4 and not valid[0].any() and not valid[:, :, :2].any()
    assert valid_mask_from_box((2, 2, 2), ()).all()


def test_unknown_voxel_size_uses_voxel_units_in_names():
    f = morphology_features(structures(), raw_with([]), voxel_size_nm=None)
    assert list(f) == morphology_columns(voxel_size_known=False)
    assert f["morph_vesicle_cloud_volume_vox3"] == 1000.0


def test_structure_shape_mismatch_is_named():
    with pytest.raises(ValueError, match="structure 'cleft' has shape"):
        morphology_features({"cleft": np.zeros((4, 4, 4), bool)}, raw_with([]), voxel_size_nm=(8, 8, 8))
