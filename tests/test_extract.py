"""Feature extraction end to end on the demo dataset: values, cache, resume, concurrency, CLI."""

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from synapse_core.features.checkpoints import save_checkpoint
from synapse_core.cli.parser import main
from synapse_core.crops.build import SynapseCrop, crop_synapse, iter_crops
from synapse_core.crops.settings import CropSettings
from synapse_core.features.extract import extract_features
from synapse_core.features.settings import ExtractSettings
from synapse_core.features.morphology import absence_indicators, morphology_features
from synapse_core.features.vgg3d import Vgg3DConfig, resolve_layer

from conftest import synapse_rows, trained_like_vgg3d, write_medulla_config, write_small_dataset
from vgg3d_reference import reference_trunk

ROOT = Path(__file__).resolve().parents[1]
CROP = CropSettings(size=32)
TINY = ExtractSettings(features="vgg3d", crop=CROP, fmaps=4, batch_size=4, workers=0, device="cpu")
TINY_NET = Vgg3DConfig(input_size=(32, 32, 32), fmaps=4, classifier_width=32)
#: Synapses of the seed-0 demo's bbox1 whose vesicle cloud fills an 8³ box (type 12); the rest are discarded.
KEPT_BY_TYPE_12_BOX_8 = 4


def feats(df):
    return df[[c for c in df.columns if c.startswith("feat_")]].to_numpy()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    model = trained_like_vgg3d(TINY_NET, output_classes=6, seed=7)  # BN statistics away from identity
    path = tmp_path_factory.mktemp("ckpt") / "tiny.checkpoint"
    return path, save_checkpoint(model, path), model.state_dict()


def test_checkpoint_features_match_an_independent_forward_pass(demo_dataset, tiny_checkpoint, tmp_path):
    path, sha, state = tiny_checkpoint
    settings = replace(TINY, checkpoint=str(path), layer="stage3.conv1,stage4")
    keys = [("bbox1", "syn_001"), ("bbox1", "syn_002"), ("bbox2", "syn_005")]
    result = extract_features(demo_dataset, settings, cache_dir=tmp_path, synapses=keys)
    assert result.features["checkpoint"].unique().tolist() == [f"sha256:{sha}"]
    got = feats(result.features)
    assert got.shape == (3, 16 + 32)  # stage3.conv1: 16 channels, stage4: 32
    for row, (b, v) in zip(got, keys):
        x = torch.from_numpy(crop_synapse(demo_dataset, b, v, CROP).blended)[None, None]
        want = [reference_trunk(state, x, TINY_NET, resolve_layer(n, TINY_NET).index).mean(dim=(2, 3, 4))[0]
                for n in ("stage3.conv1", "stage4")]
        np.testing.assert_allclose(row, torch.cat(want).numpy(), rtol=1e-4, atol=1e-5)


def test_rows_keep_their_key_and_table_order_with_settings_columns(demo_dataset, tmp_path):
    result = extract_features(demo_dataset, TINY, cache_dir=tmp_path, bboxes=["bbox2"])
    f = result.features
    expected = demo_dataset.synapses[demo_dataset.synapses.bbox_name == "bbox2"]
    assert f["Var1"].tolist() == expected["Var1"].tolist()
    assert list(f.columns[:2]) == ["bbox_name", "Var1"] and "annotator" in f.columns
    assert f.columns.get_loc("presynaptic_side") < f.columns.get_loc("morph_vesicle_cloud_volume_um3") < f.columns.get_loc("feat_1")
    assert f[["segmentation_type", "alpha", "layer", "pooling", "checkpoint"]].iloc[0].tolist() == [
        10, 1.0, "stage4.pool", "avg", "untrained (random weights, seed 0)"]
    assert feats(f).shape == (15, 32)


def test_morphology_columns_match_the_crop(demo_dataset, tmp_path):
    result = extract_features(demo_dataset, TINY, cache_dir=tmp_path, synapses=[("bbox3", "syn_007")])
    crop = crop_synapse(demo_dataset, "bbox3", "syn_007", CROP)
    want = morphology_features(crop.structures, crop.raw, demo_dataset.voxel_size_nm)
    row = result.features.iloc[0]
    for k, v in want.items():
        assert row[k] == pytest.approx(v, nan_ok=True)


def test_second_run_runs_no_forward_pass(demo_dataset, tmp_path):
    first = extract_features(demo_dataset, TINY, cache_dir=tmp_path, bboxes=["bbox1"])
    second = extract_features(demo_dataset, TINY, cache_dir=tmp_path, bboxes=["bbox1"])
    assert (first.n_computed, first.n_forward_passes) == (15, 4)
    assert (second.n_cached, second.n_computed, second.n_forward_passes) == (15, 0, 0)
    pd.testing.assert_frame_equal(first.features, second.features)


@pytest.mark.slow  # starts a crop worker process
def test_batch_size_device_and_workers_are_not_part_of_the_key(demo_dataset, tmp_path):
    extract_features(demo_dataset, TINY, cache_dir=tmp_path, bboxes=["bbox1"])
    other = replace(TINY, batch_size=7, workers=1, device="auto")
    again = extract_features(demo_dataset, other, cache_dir=tmp_path, bboxes=["bbox1"])
    assert again.n_forward_passes == 0 and again.n_cached == 15


@pytest.mark.slow
def test_changing_alpha_recomputes_every_synapse(demo_dataset, tmp_path):
    extract_features(demo_dataset, TINY, cache_dir=tmp_path, bboxes=["bbox1"])
    other = replace(TINY, crop=CropSettings(size=32, alpha=0.5))
    again = extract_features(demo_dataset, other, cache_dir=tmp_path, bboxes=["bbox1"])
    assert again.n_computed == 15 and again.n_cached == 0
    assert not np.allclose(feats(again.features), feats(extract_features(demo_dataset, TINY, cache_dir=tmp_path, bboxes=["bbox1"]).features))


@pytest.mark.slow
def test_interrupted_run_resumes_where_it_stopped(demo_dataset, tmp_path):
    calls = []

    def cancel_after_five():
        calls.append(1)
        return len(calls) > 5

    settings = replace(TINY, batch_size=2)
    first = extract_features(demo_dataset, settings, cache_dir=tmp_path / "a", bboxes=["bbox1"], cancel=cancel_after_five)
    assert first.cancelled and len(first.features) == 4  # two full batches were stored
    resumed = extract_features(demo_dataset, settings, cache_dir=tmp_path / "a", bboxes=["bbox1"])
    assert (resumed.n_cached, resumed.n_computed) == (4, 11)
    fresh = extract_features(demo_dataset, settings, cache_dir=tmp_path / "b", bboxes=["bbox1"])
    np.testing.assert_array_equal(feats(resumed.features), feats(fresh.features))


CONCURRENT = """
import json, pathlib, sys, time
from synapse_core.crops.settings import CropSettings
from synapse_core.data.dataset import open_dataset
from synapse_core.features.extract import extract_features
from synapse_core.features.settings import ExtractSettings
data, volumes, cache, go = sys.argv[1:5]
ds = open_dataset(data, cache_dir=volumes)
pathlib.Path(go + f".ready{pathlib.os.getpid()}").touch()
while not pathlib.Path(go).exists():
    time.sleep(0.005)
s = ExtractSettings(features="vgg3d", crop=CropSettings(size=32), fmaps=8, batch_size=1, workers=0, device="cpu")
r = extract_features(ds, s, cache_dir=cache, synapses=[("bbox1", f"syn_{i:03d}") for i in range(1, 9)])
feats = r.features[[c for c in r.features.columns if c.startswith("feat_")]].to_numpy().tolist()
print(json.dumps({"computed": r.n_computed, "cached": r.n_cached, "passes": r.n_forward_passes, "feats": feats}))
"""


@pytest.mark.slow
def test_two_processes_compute_each_synapse_once(demo_root, demo_cache, demo_dataset, tmp_path):
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(demo_root), str(demo_cache), str(tmp_path / "cache"),
                               str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
             for _ in range(2)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.ready*"))) < 2 and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.02)  # both have imported torch and opened the dataset
    go.touch()
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        outs.append(json.loads(stdout))
    print("computed per process:", [o["computed"] for o in outs])
    assert sum(o["computed"] for o in outs) == 8
    assert sum(o["passes"] for o in outs) == 8
    assert all(o["computed"] + o["cached"] == 8 for o in outs)
    np.testing.assert_array_equal(np.array(outs[0]["feats"]), np.array(outs[1]["feats"]))


def test_morphology_only_runs_no_network(demo_dataset, tmp_path):
    settings = replace(TINY, features="morphology")
    result = extract_features(demo_dataset, settings, cache_dir=tmp_path, bboxes=["bbox4"])
    assert result.n_forward_passes == 0 and len(result.features) == 15
    assert not any(c.startswith("feat_") for c in result.features.columns)
    assert result.features["feature_set"].iloc[0] == "morphology"
    assert result.features["morph_vesicle_cloud_volume_um3"].gt(0).all()


def test_both_feature_sets_share_the_cache_with_vgg3d(demo_dataset, tmp_path):
    keys = [("bbox4", "syn_001"), ("bbox4", "syn_002")]
    vgg = extract_features(demo_dataset, TINY, cache_dir=tmp_path, synapses=keys)
    both = extract_features(demo_dataset, replace(TINY, features="both"), cache_dir=tmp_path, synapses=keys)
    assert both.n_forward_passes == 0 and both.features["feature_set"].unique().tolist() == ["both"]
    np.testing.assert_array_equal(feats(both.features), feats(vgg.features))
    morph = both.features.filter(like="morph_")
    for col in morph:  # every morphology value is there; a NaN only where its structure is absent
        absent = morph[list(absence_indicators(col))].eq(0).any(axis=1)
        assert (morph[col].notna() | absent).all(), col


def test_discarded_synapses_are_listed_and_never_shift_rows(demo_dataset, tmp_path):
    crop = CropSettings(size=32, segmentation_type=12, vesicle_box=8)
    settings = replace(TINY, crop=crop, features="morphology")
    result = extract_features(demo_dataset, settings, cache_dir=tmp_path, bboxes=["bbox1"])
    kept, skipped = result.features, result.skipped
    rows = demo_dataset.synapses[demo_dataset.synapses["bbox_name"] == "bbox1"]
    by_crop_stage = {v: isinstance(r, SynapseCrop) for _, v, r in iter_crops(demo_dataset, crop, rows)}
    assert kept["Var1"].tolist() == [v for v, ok in by_crop_stage.items() if ok]
    assert skipped["Var1"].tolist() == [v for v, ok in by_crop_stage.items() if not ok]
    assert (len(kept), len(skipped)) == (KEPT_BY_TYPE_12_BOX_8, 15 - KEPT_BY_TYPE_12_BOX_8)
    assert skipped["reason"].str.contains("vesicle").all()
    var1 = kept["Var1"].iloc[-1]
    c = crop_synapse(demo_dataset, "bbox1", var1, crop)
    assert kept["morph_vesicle_cloud_volume_um3"].iloc[-1] == pytest.approx(
        morphology_features(c.structures, c.raw, demo_dataset.voxel_size_nm)["morph_vesicle_cloud_volume_um3"])


@pytest.mark.slow
def test_bf16_features_are_close_to_fp32_and_cached_separately(demo_dataset, tmp_path):
    fp32 = extract_features(demo_dataset, TINY, cache_dir=tmp_path, bboxes=["bbox1"])
    bf16 = extract_features(demo_dataset, replace(TINY, precision="bf16"), cache_dir=tmp_path,
                            bboxes=["bbox1"])
    assert bf16.n_computed == 15
    a, b = feats(fp32.features), feats(bf16.features)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99 and not np.array_equal(a, b)


@pytest.mark.slow
def test_original_network_gives_192_features_with_crops_built_in_a_worker(demo_dataset, tmp_path):
    settings = ExtractSettings(features="vgg3d", batch_size=2, workers=1, device="cpu")  # 80³, fmaps 24, stage4, avg
    result = extract_features(demo_dataset, settings, cache_dir=tmp_path, synapses=[("bbox1", "syn_001"), ("bbox2", "syn_003")])
    f = feats(result.features)
    assert f.shape == (2, 192) and np.isfinite(f).all() and not np.allclose(f[0], f[1])
    assert result.n_forward_passes == 1


def test_unknown_bbox_is_named(demo_dataset, tmp_path):
    with pytest.raises(ValueError, match="bbox bbox9 not in the dataset"):
        extract_features(demo_dataset, TINY, cache_dir=tmp_path, bboxes=["bbox9"])


@pytest.fixture
def small_root(tmp_path):
    rows = synapse_rows(3, overrides={(1, "central_coord_1"): 999})
    return write_small_dataset(tmp_path / "DATA", rows=rows)


def test_cli_writes_features_and_skipped_csv(small_root, tmp_path, capsys):
    out = tmp_path / "features.csv"
    code = main(["extract", "--data", str(small_root), "--out", str(out), "--size", "16", "--fmaps", "2",
                 "--workers", "0", "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--segmentation_type", "0",
                 "--features", "vgg3d"])
    assert code == 0
    f = pd.read_csv(out)
    assert f["Var1"].tolist() == ["syn_1", "syn_3"] and f["note"].tolist() == ["row 1", "row 3"]
    assert [c for c in f.columns if c.startswith("feat_")] == [f"feat_{i}" for i in range(1, 17)]
    assert f["checkpoint"].iloc[0] == "untrained (random weights, seed 0)" and f["segmentation_type"].iloc[0] == 0
    skipped = pd.read_csv(tmp_path / "features.skipped.csv")
    assert skipped["Var1"].tolist() == ["syn_2"] and "central_coord_1" in skipped["reason"].iloc[0]
    assert "syn_2" in capsys.readouterr().err


def test_without_a_checkpoint_the_default_feature_set_is_the_measured_best_without_a_download():
    from synapse_core.features.settings import NO_CHECKPOINT_FEATURES

    assert NO_CHECKPOINT_FEATURES == "morphology"
    assert ExtractSettings().feature_set == "morphology" and not ExtractSettings().deep
    assert ExtractSettings(checkpoint="model.pt").feature_set == "vgg3d"


def test_cli_says_which_feature_set_it_uses_without_a_checkpoint(small_root, tmp_path, capsys):
    out = tmp_path / "features.csv"
    assert main(["extract", "--data", str(small_root), "--out", str(out), "--size", "16", "--workers", "0",
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    assert ("no checkpoint: using morphology features, measured best without a download; see docs/training.md"
            in capsys.readouterr().err)
    f = pd.read_csv(out)
    assert set(f["feature_set"]) == {"morphology"} and not any(c.startswith("feat_") for c in f.columns)


def test_cli_refuses_a_download_error_page_as_checkpoint(small_root, tmp_path, capsys):
    bad = tmp_path / "hemibrain_production.checkpoint"
    bad.write_text("<html>403 Forbidden</html>")
    code = main(["extract", "--data", str(small_root), "--out", str(tmp_path / "f.csv"), "--size", "16",
                 "--checkpoint", str(bad), "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    assert "hemibrain_production.checkpoint is corrupt or not a PyTorch file" in capsys.readouterr().err
    assert not (tmp_path / "f.csv").exists()


@pytest.mark.shared_data
@pytest.mark.slow  # starts a crop worker process
def test_real_fib_sem_hdf5_extracts_the_same_in_a_worker_as_in_process(tmp_path):
    from synapse_core.data.dataset import open_dataset

    write_medulla_config(tmp_path)
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    keys = [("medulla", v) for v in ds.synapses["Var1"].iloc[:4]]
    settings = replace(TINY, crop=CropSettings(size=32, segmentation_type=0))
    crop_synapse(ds, *keys[0], settings.crop)  # the parent now holds the HDF5 file open
    in_process = extract_features(ds, settings, cache_dir=tmp_path / "a", synapses=keys)
    in_worker = extract_features(ds, replace(settings, workers=1), cache_dir=tmp_path / "b", synapses=keys)
    np.testing.assert_array_equal(feats(in_worker.features), feats(in_process.features))
    assert in_worker.features["morph_vesicle_cloud_volume_um3"].eq(0).all()  # no mask labels in this volume
    assert in_worker.features["morph_pre_volume_um3"].gt(0).all()


def test_a_feature_model_is_reused_across_runs_and_counts_only_each_runs_passes(demo_dataset, tmp_path):
    from synapse_core.features.extract import FeatureModel

    settings = ExtractSettings(features="vgg3d", crop=CropSettings(size=16), fmaps=4, batch_size=8, workers=0)
    model = FeatureModel(settings)
    first = extract_features(demo_dataset, settings, tmp_path / "a", bboxes=["bbox1"], model=model)
    second = extract_features(demo_dataset, settings, tmp_path / "b", bboxes=["bbox1"], model=model)
    assert first.n_forward_passes == second.n_forward_passes == 2  # 15 crops in batches of 8
    assert model.forward_passes == 4
    pd.testing.assert_frame_equal(first.features, second.features)


def test_a_feature_model_for_other_settings_is_refused(demo_dataset, tmp_path):
    from synapse_core.features.extract import FeatureModel

    settings = ExtractSettings(features="vgg3d", crop=CropSettings(size=16), fmaps=4, workers=0)
    other = FeatureModel(ExtractSettings(features="vgg3d", crop=CropSettings(size=16), fmaps=4, workers=0, pooling="max"))
    with pytest.raises(ValueError, match="model= was built for other model settings"):
        extract_features(demo_dataset, settings, tmp_path, bboxes=["bbox1"], model=other)


@pytest.mark.slow  # default settings: a crop worker process
def test_rows_say_the_crop_grid_and_coverage(demo_dataset, tmp_path):
    from synapse_core.features.extract import extract_features
    from synapse_core.features.settings import ExtractSettings

    # native: axis-aligned crops of central synapses lie wholly inside the bbox (coverage 1); canonical
    # (rotated) crops of the same synapses reach outside it (coverage 0.80-0.99)
    settings = ExtractSettings(features="morphology", crop=CropSettings(orientation="native"))
    res = extract_features(demo_dataset, settings, cache_dir=tmp_path, bboxes=["bbox1"])
    f = res.features
    assert (f["voxel_size_nm"] == 8.0).all() and (f["crop_nm"] == 640.0).all()
    assert f["coverage"].between(0.5, 1.0).all() and (f["coverage"] == 1.0).any()
