"""The raw-pixel baseline: block averages of the blended crop, cached like deep features, without torch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_small_dataset

from synapse_core.crops.settings import CropSettings
from synapse_core.features.pixels import block_average, pixel_features
from synapse_core.features.settings import ExtractSettings

ROOT = Path(__file__).resolve().parents[1]
PIXELS = ExtractSettings(features="pixels", crop=CropSettings(size=16), pixel_grid=4, workers=0)


def test_block_average_is_the_mean_of_each_block():
    crop = np.arange(4 * 4 * 4, dtype=np.float32).reshape(1, 4, 4, 4)
    out = block_average(crop, 2)
    assert out.shape == (1, 8)
    assert out[0, 0] == pytest.approx(crop[0, :2, :2, :2].mean())
    assert out[0, 7] == pytest.approx(crop[0, 2:, 2:, 2:].mean())


def test_block_average_of_an_uneven_grid_weights_voxels_by_overlap():
    crop = np.array([0, 0, 0, 3], np.float32).reshape(1, 4, 1, 1) * np.ones((1, 4, 3, 3), np.float32)
    # 4 voxels into 3 blocks of 4/3 voxels: the last block is 2/3 of voxel 2 (0) and all of voxel 3 (3)
    out = block_average(crop, 3).reshape(3, 3, 3)
    assert out[:, 0, 0].tolist() == pytest.approx([0.0, 0.0, 3 * 1 / (4 / 3)])


def test_pixel_features_with_invariance_are_equal_for_a_mirrored_crop():
    crop = np.random.default_rng(0).random((1, 12, 12, 12)).astype(np.float32)
    mirrored = crop[:, ::-1, :, ::-1]
    assert np.allclose(pixel_features(mirrored, 3, "flips"), pixel_features(crop, 3, "flips"), atol=1e-6)
    assert not np.allclose(pixel_features(mirrored, 3), pixel_features(crop, 3), atol=1e-3)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    return write_small_dataset(tmp_path_factory.mktemp("pixels"))


def test_pixel_extraction_gives_grid_cubed_columns_from_the_cache_the_second_time(small_root, tmp_path):
    from synapse_core.data.dataset import open_dataset
    from synapse_core.features.extract import extract_features

    ds = open_dataset(small_root, cache_dir=tmp_path)
    first = extract_features(ds, PIXELS, cache_dir=tmp_path)
    again = extract_features(ds, PIXELS, cache_dir=tmp_path)
    a, b = first.features.filter(like="feat_").to_numpy(), again.features.filter(like="feat_").to_numpy()
    assert a.shape == (3, 64) and np.array_equal(a, b)
    assert (first.n_computed, again.n_cached, again.n_forward_passes) == (3, 3, 0)
    assert set(first.features["feature_set"]) == {"pixels"}
    assert set(first.features["checkpoint"]) == {"not used (pixels)"}


@pytest.mark.slow  # a fresh interpreter imports the pipeline (~5 s idle)
def test_pixel_extraction_does_not_import_torch(small_root, tmp_path):
    code = (
        "import json, sys\n"
        "from synapse_core.crops.settings import CropSettings\n"
        "from synapse_core.data.dataset import open_dataset\n"
        "from synapse_core.features.extract import extract_features\n"
        "from synapse_core.features.settings import ExtractSettings\n"
        f"ds = open_dataset({str(small_root)!r}, cache_dir={str(tmp_path)!r})\n"
        "s = ExtractSettings(features='pixels', crop=CropSettings(size=16), pixel_grid=4, workers=0)\n"
        f"r = extract_features(ds, s, cache_dir={str(tmp_path)!r})\n"
        "print(json.dumps([r.features.filter(like='feat_').shape[1], 'torch' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [64, False]
