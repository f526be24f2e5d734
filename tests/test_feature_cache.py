"""The per-synapse feature cache: content-addressed keys and cross-process claims."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from synapse_core.crops.settings import CropSettings
from synapse_core.features.cache import (
    RESULT_MODULES,
    FeatureCache,
    code_fingerprint,
    hash_key,
    source_fingerprint,
)

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_equal_inputs_give_equal_keys():
    a = hash_key("crop", window=np.arange(27, dtype=np.uint8).reshape(3, 3, 3), crop=CropSettings(), voxel=(8.0, 8, 8))
    b = hash_key("crop", window=np.arange(27, dtype=np.uint8).reshape(3, 3, 3), crop=CropSettings(), voxel=(8.0, 8, 8))
    assert a == b and a.startswith("crop:")


def test_one_changed_voxel_changes_the_key():
    w = np.zeros((4, 4, 4), np.uint8)
    w2 = w.copy()
    w2[1, 2, 3] = 1
    assert hash_key("crop", window=w) != hash_key("crop", window=w2)


def test_a_changed_setting_or_dtype_changes_the_key():
    w = np.zeros((4, 4, 4), np.uint8)
    assert hash_key("crop", window=w, crop=CropSettings(alpha=1.0)) != hash_key("crop", window=w, crop=CropSettings(alpha=0.5))
    assert hash_key("crop", window=w) != hash_key("crop", window=w.astype(np.uint16))


def test_key_is_the_same_in_another_process():
    code = ("import numpy as np; from synapse_core.crops.settings import CropSettings; from synapse_core.features.cache import hash_key;"
            "print(hash_key('crop', window=np.arange(8, dtype=np.uint8), crop=CropSettings(size=32)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=ENV).stdout.strip()
    assert out == hash_key("crop", window=np.arange(8, dtype=np.uint8), crop=CropSettings(size=32))


def test_values_round_trip(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put("deep:1", np.arange(5, dtype=np.float32))
    assert np.array_equal(FeatureCache(tmp_path).get("deep:1"), np.arange(5, dtype=np.float32))
    assert cache.get("deep:2") is None


def test_a_claim_held_by_a_live_process_blocks_others(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", (f"import sys, time; from synapse_core.features.cache import FeatureCache;"
                               f"print(FeatureCache({str(tmp_path)!r}).claim('k'), flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "True"
        cache = FeatureCache(tmp_path)
        assert not cache.claim("k")
    finally:
        holder.kill()
        holder.wait()


def test_a_claim_of_a_dead_process_is_taken_over(tmp_path):
    code = f"from synapse_core.features.cache import FeatureCache; print(FeatureCache({str(tmp_path)!r}).claim('k'))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=ENV).stdout.strip() == "True"
    assert FeatureCache(tmp_path).claim("k")


def test_release_lets_another_process_claim(tmp_path):
    cache = FeatureCache(tmp_path)
    assert cache.claim("k") and cache.claim("k")  # re-claiming one's own key is fine
    cache.release("k")
    code = f"from synapse_core.features.cache import FeatureCache; print(FeatureCache({str(tmp_path)!r}).claim('k'))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=ENV).stdout.strip() == "True"


def test_code_fingerprint_covers_every_result_module():
    assert code_fingerprint() == source_fingerprint(RESULT_MODULES)
    assert source_fingerprint(RESULT_MODULES[:-1]) != code_fingerprint()


@pytest.mark.parametrize("name", ["synapse_core.crops.no_such_module", "synapse_core.no_such_package.module"])
def test_code_fingerprint_of_a_missing_module_is_an_error_naming_it(name):
    with pytest.raises(ModuleNotFoundError, match=f"module '{name}' has no source file"):
        source_fingerprint(("synapse_core.crops.build", name))


class _Planted:
    """Unpickling this creates the file named by ``marker``: the proof that a pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_planted_in_the_store_never_runs_and_the_synapse_is_recomputed(demo_dataset, tmp_path):
    import pickle
    import shutil

    from synapse_core.features.extract import extract_features
    from synapse_core.features.rerun import RUNS_FOLDER
    from synapse_core.features.settings import ExtractSettings

    settings = ExtractSettings(features="morphology", workers=0)
    first = extract_features(demo_dataset, settings, cache_dir=tmp_path, synapses=[("bbox1", "syn_001")])
    (entry,) = (tmp_path / "features" / "results").rglob("*.npz")
    marker = tmp_path / "PWNED"
    entry.write_bytes(pickle.dumps(_Planted(marker)))
    shutil.rmtree(tmp_path / RUNS_FOLDER)  # the stored run table would answer before the per-synapse store
    again = extract_features(demo_dataset, settings, cache_dir=tmp_path, synapses=[("bbox1", "syn_001")])
    assert not marker.exists()
    assert (again.n_computed, again.n_cached) == (1, 0)
    assert again.features.drop(columns="feature_code_version").equals(first.features.drop(columns="feature_code_version"))
    shutil.rmtree(tmp_path / RUNS_FOLDER)
    assert extract_features(demo_dataset, settings, cache_dir=tmp_path, synapses=[("bbox1", "syn_001")]).n_cached == 1


@pytest.mark.slow  # extracts a bbox
def test_cache_status_counts_what_a_run_stored(demo_dataset, tmp_path):
    from synapse_core.features.extract import cache_status, extract_features
    from synapse_core.features.settings import ExtractSettings

    settings = ExtractSettings(crop=CropSettings(size=32), features="vgg3d", fmaps=4, workers=0, device="cpu")
    assert cache_status(demo_dataset, settings, tmp_path, bboxes=["bbox1"]) == (0, 15)
    extract_features(demo_dataset, settings, cache_dir=tmp_path, synapses=[("bbox1", "syn_001"), ("bbox1", "syn_002")])
    assert cache_status(demo_dataset, settings, tmp_path, bboxes=["bbox1"]) == (2, 13)
