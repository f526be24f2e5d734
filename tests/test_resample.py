"""Windows read on a target grid in nm from data of any voxel size (synapse_core.crops.resample)."""

import numpy as np
import pytest

from synapse_core.crops.resample import read_labels, read_raw, target_extent, to_target_index


def _ball(shape_zyx, spacing_nm, center_nm, radius_nm) -> np.ndarray:
    """A solid ball (1 inside, 0 outside), voxel centres at (index + ½) * spacing (nm)."""
    grids = np.meshgrid(*[(np.arange(n) + 0.5) * s for n, s in zip(shape_zyx, spacing_nm)], indexing="ij")
    d2 = sum((g - c) ** 2 for g, c in zip(grids, center_nm))
    return (d2 <= radius_nm**2).astype(np.float32)


def test_equal_voxel_sizes_copy_the_window_and_zero_the_outside():
    vol = np.random.default_rng(0).random((30, 40, 50)).astype(np.float32)
    out = read_raw(vol, (-3, 5, 5), (20, 30, 40), (8, 8, 8), (8, 8, 8))
    assert out.shape == (23, 25, 35)
    assert np.array_equal(out[3:], vol[0:20, 5:30, 5:40])
    assert not out[:3].any()


def test_a_linear_field_is_reproduced_from_40x4x4_to_8nm():
    z, y, x = np.meshgrid((np.arange(20) + 0.5) * 40.0, (np.arange(200) + 0.5) * 4.0, (np.arange(200) + 0.5) * 4.0,
                          indexing="ij")
    field = (0.001 * z + 0.002 * y + 0.003 * x).astype(np.float32)
    out = read_raw(field, (10, 10, 10), (50, 50, 50), (40, 4, 4), (8, 8, 8))
    iz, iy, ix = np.meshgrid(*((np.arange(10, 50) + 0.5) * 8.0,) * 3, indexing="ij")
    assert np.abs(out - (0.001 * iz + 0.002 * iy + 0.003 * ix)).max() < 1e-4


def test_labels_are_nearest_neighbour_and_never_mixed():
    labels = np.random.default_rng(1).integers(0, 5, (20, 200, 200)).astype(np.uint16)
    out = read_labels(labels, (0, 0, 0), (80, 80, 80), (40, 4, 4), (8, 8, 8))
    assert out.dtype == np.uint16
    # target (5, 3, 7) is centred at (44, 28, 60) nm: in native (1, 7, 15) (ties of q = 2 go up)
    assert out[5, 3, 7] == labels[1, 7, 15]
    assert set(np.unique(out)) <= set(np.unique(labels))


def test_downsampling_suppresses_aliasing():
    stripes = np.zeros((8, 8, 64), np.float32)
    stripes[..., ::2] = 1.0  # period 8 nm at 4 nm: unresolvable at 8 nm
    out = read_raw(stripes, (2, 2, 4), (6, 6, 28), (8, 8, 4), (8, 8, 8))
    # point sampling would give all ones; the Gaussian prefilter gives the local mean
    assert abs(out.mean() - 0.5) < 0.1
    assert out.std() < 0.1


@pytest.mark.parametrize("native_nm", [(40, 4, 4), (8, 8, 8), (30, 6, 6)])
def test_the_same_ball_sampled_at_two_voxel_sizes_agrees_on_the_target_grid(native_nm):
    extent_nm = (800, 800, 800)
    center, radius = (400, 380, 420), 150
    native = _ball([int(e // s) for e, s in zip(extent_nm, native_nm)], native_nm, center, radius)
    reference = _ball((100, 100, 100), (8, 8, 8), center, radius)
    out = read_raw(native, (10, 10, 10), (90, 90, 90), native_nm, (8, 8, 8))
    r = np.corrcoef(out.ravel(), reference[10:90, 10:90, 10:90].ravel())[0, 1]
    assert r >= 0.9


def test_target_extent_covers_the_physical_extent_of_the_data():
    (z0, z1), (y0, y1), _ = target_extent((20, 100, 100), (40, 4, 4), (8, 8, 8))
    assert (z0, z1) == (0, 100)  # 20 sections of 40 nm = 800 nm = 100 voxels of 8 nm
    assert (y0, y1) == (0, 50)


def test_native_points_map_to_the_nearest_target_voxel():
    assert to_target_index((10, 100, 101), (40, 4, 4), (8, 8, 8)) == (52, 50, 50)  # centres 420, 402, 406 nm


def test_non_positive_voxel_sizes_are_refused():
    with pytest.raises(ValueError, match="positive finite"):
        read_raw(np.zeros((4, 4, 4), np.float32), (0, 0, 0), (2, 2, 2), (0, 4, 4), (8, 8, 8))


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_fib_sem_sectioned_5x_in_z_gives_the_crops_of_the_full_resolution_volume():
    """The medulla (10 nm isotropic) against itself as 50 nm sections (5 slices averaged per section)."""
    import h5py
    import pandas as pd

    from conftest import MEDULLA_H5, MEDULLA_SITES_CSV
    from synapse_core.crops.build import build_crop, read_context_arrays
    from synapse_core.crops.settings import CropSettings
    from synapse_core.data.labels import LabelIds

    with h5py.File(MEDULLA_H5, "r") as f:
        raw, seg = f["raw"][:], f["gt_bodies"][:]
    # Section k covers slices 5k..5k+4 (a 50 nm section imaged as their mean); labels from its centre slice.
    sections = raw.reshape(50, 5, 250, 250).mean(1).astype(np.uint8)
    labels = LabelIds(mito=5, vesicle=6, cleft=7, cleft2=7)
    # native: this compares the resampling alone (each volume's own cleft-normal estimate would rotate its crop)
    s = CropSettings(size=64, segmentation_type=0, smart_crop=False, min_coverage=0.0, orientation="native")
    corr, same_pre = [], []
    for row in pd.read_csv(MEDULLA_SITES_CSV).to_dict("records"):
        full = build_crop(read_context_arrays(raw, seg, None, labels, row, s, voxel_size_nm=(10, 10, 10)), s)
        thin_row = {**row, **{c: int(row[c]) // 5 for c in ("central_coord_3", "side_1_coord_3", "side_2_coord_3")}}
        thin = build_crop(read_context_arrays(sections, seg[2::5], None, labels, thin_row, s,
                                              voxel_size_nm=(50, 10, 10)), s)
        corr.append(np.corrcoef(full.raw.ravel(), thin.raw.ravel())[0, 1])
        same_pre.append((full.structures["pre"] == thin.structures["pre"]).mean())
    assert len(corr) == 60
    assert np.median(corr) >= 0.9 and np.min(corr) >= 0.7
    assert np.median(same_pre) >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_phantom_synapse_sampled_at_8nm_and_at_40x4x4_gives_the_same_crop(seed):
    """Same scene, two samplings, one crop grid. 40 nm sections cannot resolve its 36 nm vesicles in z,
    so the crops agree fully only at the resolution both share (16 nm Gaussian)."""
    from scipy import ndimage

    from synapse_core.crops.build import build_crop, read_context_arrays
    from synapse_core.crops.settings import CropSettings
    from synapse_core.data.phantoms import random_phantom, sample_phantom

    s = CropSettings(size=80, segmentation_type=0, smart_crop=False)
    phantom = random_phantom(seed=seed)
    iso, ani = sample_phantom(phantom, (8, 8, 8)), sample_phantom(phantom, (40, 4, 4))
    ctx = read_context_arrays(ani.raw, ani.seg, ani.mask, ani.labels, ani.row, s, voxel_size_nm=(40, 4, 4))
    sections = build_crop(ctx, s)
    z, y, x = ctx.center_zyx  # the same grid voxel in both samplings (x, y, z table columns)
    row = {**iso.row, "central_coord_1": x, "central_coord_2": y, "central_coord_3": z}
    full = build_crop(read_context_arrays(iso.raw, iso.seg, iso.mask, iso.labels, row, s, voxel_size_nm=(8, 8, 8)), s)
    assert np.corrcoef(sections.raw.ravel(), full.raw.ravel())[0, 1] >= 0.75
    smooth = [ndimage.gaussian_filter(c.raw, 2.0).ravel() for c in (sections, full)]
    assert np.corrcoef(*smooth)[0, 1] >= 0.95
