"""An unchanged extraction rerun returns its stored table without reading any volume (issue 16)."""

import shutil
from dataclasses import replace

import pandas as pd
import pytest

from synapse_core.crops.settings import CropSettings
from synapse_core.data.dataset import open_dataset
from synapse_core.features.extract import extract_features
from synapse_core.features.rerun import run_key
from synapse_core.features.settings import ExtractSettings

TINY = ExtractSettings(crop=CropSettings(size=32), features="vgg3d", fmaps=4, batch_size=8, workers=0, device="cpu")


@pytest.fixture
def own_dataset(demo_root, tmp_path):
    """The demo dataset with its converted volumes in this test's own cache (the test removes them)."""
    return open_dataset(demo_root, cache_dir=tmp_path / "cache"), tmp_path / "cache"


@pytest.mark.slow  # its own volume cache (converted once)
def test_an_unchanged_rerun_returns_the_same_table_without_reading_volumes(own_dataset):
    ds, cache = own_dataset
    first = extract_features(ds, TINY, cache_dir=cache, bboxes=["bbox1"])
    shutil.rmtree(cache / "volumes")  # any window read now fails
    again = extract_features(ds, TINY, cache_dir=cache, bboxes=["bbox1"])
    pd.testing.assert_frame_equal(again.features, first.features)
    pd.testing.assert_frame_equal(again.skipped, first.skipped, check_dtype=False)
    assert (again.n_computed, again.n_forward_passes, again.n_cached) == (0, 0, first.n_cached + first.n_computed)


def test_a_changed_table_row_changes_the_run_key(demo_dataset):
    table = demo_dataset.synapses.copy()
    table.loc[table.index[0], "central_coord_1"] += 1
    assert run_key(replace(demo_dataset, synapses=table), TINY) != run_key(demo_dataset, TINY)


@pytest.mark.slow  # opens a copy of the dataset
def test_a_rewritten_volume_file_changes_the_run_key(demo_root, tmp_path):
    import os

    copy = shutil.copytree(demo_root, tmp_path / "DATA")
    before = run_key(open_dataset(copy, cache_dir=tmp_path / "cache"), TINY)
    raw = next((copy / "raw").rglob("*.tif"))
    os.utime(raw, ns=(1, 1))
    assert run_key(open_dataset(copy, cache_dir=tmp_path / "cache"), TINY) != before


def test_how_fast_a_run_goes_is_not_part_of_the_key(demo_dataset):
    assert run_key(demo_dataset, replace(TINY, workers=3, batch_size=2)) == run_key(demo_dataset, TINY)


def test_a_result_setting_is_part_of_the_key(demo_dataset):
    assert run_key(demo_dataset, replace(TINY, pooling="max")) != run_key(demo_dataset, TINY)
