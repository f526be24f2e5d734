"""Self-supervised training: augmentations, losses, a tiny run whose loss falls, resume, and the checkpoint it writes."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from synapse_core.crops.settings import CropSettings
from synapse_core.features import augment
from synapse_core.features.checkpoints import METADATA_KEY, file_sha256, load_checkpoint
from synapse_core.features.train import (
    TrainingData,
    nt_xent_loss,
    partial_path,
    prepare_training_data,
    train,
    vicreg_loss,
)
from synapse_core.features.train_settings import (
    TrainSettings,
    preset_settings,
    resolve_geometry,
)
from synapse_core.features.vgg3d import Vgg3D, Vgg3DConfig
from synapse_core.settings_base import SettingsError

#: fmaps 4, 32³ crops averaged to 16³, 2 steps of 8 per epoch on the 15 synapses of one demo bbox.
TINY = TrainSettings(crop=CropSettings(size=32), fmaps=4, input_size=16, epochs=3, batch_size=8, warmup_epochs=1,
                     projector_dims=(32, 32), learning_rate=3e-3)
#: Flips only (no shift, blur, noise, intensity or cutout): views a tiny network can learn to match.
FLIPS_ONLY = dataclasses.replace(TINY, translate=0.0, brightness=0.0, contrast=0.0, gamma=0.0, blur_probability=0.0,
                                 noise_std=0.0, cutout_probability=0.0, learning_rate=1e-2, warmup_epochs=0)

#: TINY with the morphology target added to VICReg.
WITH_MORPHOLOGY = dataclasses.replace(TINY, morphology_weight=1.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def one_bbox(tmp_path_factory):
    """A one-bbox demo dataset (15 synapses of 4 planted types), opened."""
    from synapse_core.data.dataset import open_dataset
    from synapse_core.data.demo import write_demo_dataset

    root = write_demo_dataset(tmp_path_factory.mktemp("train-demo") / "DATA", seed=0, n_bboxes=1)
    return open_dataset(root, cache_dir=tmp_path_factory.mktemp("train-cache"))


@pytest.fixture(scope="module")
def tiny_data(one_bbox):
    return prepare_training_data(one_bbox, TINY)


@pytest.fixture(scope="module")
def morphology_data(one_bbox):
    return prepare_training_data(one_bbox, WITH_MORPHOLOGY)


@pytest.fixture(scope="module")
def morphology_model(morphology_data, tmp_path_factory):
    """A finished WITH_MORPHOLOGY run: (result, checkpoint path)."""
    out = tmp_path_factory.mktemp("morphology-model") / "model.pt"
    return train(morphology_data, WITH_MORPHOLOGY, out), out


@pytest.fixture(scope="module")
def tiny_model(tiny_data, tmp_path_factory):
    """A finished TINY run: (result, checkpoint path)."""
    out = tmp_path_factory.mktemp("tiny-model") / "model.pt"
    return train(tiny_data, TINY, out), out


# ------------------------------------------------------------------------------------ augmentations


def _asymmetric(b=2, edge=8) -> torch.Tensor:
    """A batch whose voxels all differ, so a permutation of voxels can be recognised."""
    return torch.randperm(b * edge**3, generator=torch.Generator().manual_seed(3)).float().view(b, 1, edge, edge, edge)


AUGMENTATIONS = [
    (augment.random_symmetry, {"group": "plane"}),
    (augment.random_symmetry, {"group": "cube"}),
    (augment.random_symmetry, {"group": "canonical"}),
    (augment.random_translate, {"fraction": 0.25}),
    (augment.random_intensity, {}),
    (augment.random_blur, {"probability": 1.0}),
    (augment.random_noise, {}),
    (augment.random_cutout, {"probability": 1.0}),
    (augment.section_jitter, {"max_shift": 2}),
    (augment.section_drop, {"probability": 0.5}),
    (augment.random_rotation, {"probability": 1.0}),
    (augment.random_rotation, {"probability": 1.0, "plane": True}),
]


@pytest.mark.parametrize("fn,kwargs", AUGMENTATIONS, ids=lambda v: getattr(v, "__name__", ""))
def test_augmentation_keeps_shape_and_dtype_and_changes_the_crop(fn, kwargs):
    x = torch.rand(3, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    y = fn(x, torch.Generator().manual_seed(1), **kwargs)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not torch.equal(y, x)


@pytest.mark.parametrize("fn,kwargs", AUGMENTATIONS, ids=lambda v: getattr(v, "__name__", ""))
def test_augmentation_is_deterministic_per_seed(fn, kwargs):
    x = torch.rand(4, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    a = fn(x, torch.Generator().manual_seed(7), **kwargs)
    b = fn(x, torch.Generator().manual_seed(7), **kwargs)
    c = fn(x, torch.Generator().manual_seed(8), **kwargs)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augmentation_leaves_its_input_unchanged():
    x = torch.rand(2, 1, 8, 8, 8)
    before = x.clone()
    augment.random_view(x, torch.Generator().manual_seed(0), TrainSettings(), "anisotropic")
    assert torch.equal(x, before)


def test_free_rotation_keeps_a_centred_ball_and_moves_an_off_centre_blob():
    grid = torch.stack(torch.meshgrid(*[torch.arange(16.0) - 7.5] * 3, indexing="ij"))
    ball = torch.exp(-(grid**2).sum(0) / (2 * 3.0**2))[None, None].expand(4, 1, 16, 16, 16)
    blob = torch.exp(-((grid - torch.tensor([4.0, 0, 0]).view(3, 1, 1, 1)) ** 2).sum(0) / 2)[None, None]
    rotated = augment.random_rotation(ball, torch.Generator().manual_seed(0))
    assert float((rotated - ball).abs().max()) < 0.06  # trilinear resampling only (peak 1)
    moved = augment.random_rotation(blob.expand(4, 1, 16, 16, 16).contiguous(), torch.Generator().manual_seed(0))
    assert all(float((m - blob[0]).abs().max()) > 0.3 for m in moved)  # the peak left its place


def test_free_rotation_draws_nothing_when_off():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 8, 8, 8)
    assert torch.equal(augment.random_rotation(x, g, probability=0.0), x)
    assert torch.equal(torch.rand(1, generator=g), torch.rand(1, generator=torch.Generator().manual_seed(0)))


def _cube_group(v: torch.Tensor) -> list[torch.Tensor]:
    """The 48 images of a (1, z, y, x) volume under axis permutations and flips."""
    out = []
    for order in itertools.permutations((1, 2, 3)):
        for flips in itertools.product((False, True), repeat=3):
            w = v.permute(0, *order)
            dims = [d for d, f in zip((1, 2, 3), flips) if f]
            out.append(w.flip(dims) if dims else w)
    return out


def test_cube_symmetry_is_one_of_the_48_voxel_permutations_and_reaches_all():
    x = _asymmetric(b=1).expand(600, 1, 8, 8, 8)
    y = augment.random_symmetry(x, torch.Generator().manual_seed(0), group="cube")
    group = _cube_group(x[0])
    hits = [next(i for i, g in enumerate(group) if torch.equal(y[j], g)) for j in range(len(y))]
    assert len(set(hits)) == 48


def test_plane_symmetry_keeps_z_as_the_section_axis():
    x = _asymmetric(b=1).expand(200, 1, 8, 8, 8)
    y = augment.random_symmetry(x, torch.Generator().manual_seed(0), group="plane")
    group = _cube_group(x[0])
    plane = [g for g, order in zip(group, [o for o in itertools.permutations((1, 2, 3)) for _ in range(8)])
             if order[0] == 1]  # z stays first: 16 elements
    hits = {next(i for i, g in enumerate(plane) if torch.equal(y[j], g)) for j in range(len(y))}
    assert len(hits) == 16


def test_canonical_symmetry_never_flips_z_and_reaches_the_8_square_symmetries():
    x = _asymmetric(b=1).expand(200, 1, 8, 8, 8)
    y = augment.random_symmetry(x, torch.Generator().manual_seed(0), group="canonical")
    group = _cube_group(x[0])
    orders = [o for o in itertools.permutations((1, 2, 3)) for _ in range(8)]
    z_flips = [f[0] for _ in range(6) for f in itertools.product((False, True), repeat=3)]
    square = [g for g, order, zf in zip(group, orders, z_flips) if order[0] == 1 and not zf]
    hits = {next(i for i, g in enumerate(square) if torch.equal(y[j], g)) for j in range(len(y))}
    assert len(square) == 8 and hits == set(range(8))


def test_cube_symmetry_refuses_a_non_cubic_crop():
    with pytest.raises(ValueError, match=r"group 'cube' needs equal edges .*\(4, 8, 8\)"):
        augment.random_symmetry(torch.zeros(1, 1, 4, 8, 8), torch.Generator(), group="cube")


def test_section_jitter_shifts_each_section_rigidly_within_the_limit():
    x = _asymmetric(b=2, edge=10)
    y = augment.section_jitter(x, torch.Generator().manual_seed(0), max_shift=2)
    for b, z in itertools.product(range(2), range(10)):
        section, inner = x[b, 0, z], y[b, 0, z, 2:8, 2:8]
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(inner, section[2 - dy:8 - dy, 2 - dx:8 - dx])]
        assert len(found) == 1


def test_resize_averages_blocks_when_coarser():
    x = torch.rand(2, 1, 32, 32, 32)
    expected = x.view(2, 1, 16, 2, 16, 2, 16, 2).mean(dim=(3, 5, 7))
    assert torch.allclose(augment.resize(x, 16), expected, atol=1e-6)


def test_blur_is_anisotropic_in_voxels_for_thick_sections():
    x = torch.zeros(1, 1, 9, 9, 9)
    x[0, 0, 4, 4, 4] = 1
    y = augment.random_blur(x, torch.Generator().manual_seed(0), probability=1.0, sigma_max=1.5,
                            spacing_zyx=(40.0, 8.0, 8.0))
    spread_z = y[0, 0, :, 4, 4]
    spread_x = y[0, 0, 4, 4, :]
    assert spread_x[5] > 0.1 * spread_x[4] and spread_z[5] < 1e-3 * spread_z[4]


# --------------------------------------------------------------------------------------- losses


def test_vicreg_of_identical_spread_views_is_only_the_covariance_term():
    z = torch.eye(8).repeat(2, 1) * 4.0  # 16 samples, 8 uncorrelated-ish dimensions with std > 1
    loss = vicreg_loss(z, z, 25, 25, 0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_vicreg_of_collapsed_views_pays_the_full_variance_hinge():
    z = torch.ones(16, 8)
    assert vicreg_loss(z, z, 25, 25, 1).item() == pytest.approx(25 * (1 - 1e-2), rel=1e-4)


def test_nt_xent_is_lower_when_each_view_finds_its_partner():
    a = torch.eye(8)  # 8 orthogonal samples: each view's partner scores 1/T = 5, the 14 others 0
    aligned = nt_xent_loss(a, a, 0.2).item()
    shuffled = nt_xent_loss(a, a[torch.roll(torch.arange(8), 1)], 0.2).item()  # partner 0, one stranger 5
    assert aligned == pytest.approx(np.log(1 + 14 * np.exp(-5)), rel=1e-5)
    assert shuffled == pytest.approx(np.log(np.exp(5) + 14), rel=1e-5)


# ------------------------------------------------------------------------------------- settings


def test_presets_set_the_network_and_flags_override_them():
    s = preset_settings("full", epochs=3)
    assert (s.fmaps, s.input_size, s.epochs) == (24, 80, 3)


def test_auto_geometry_follows_the_voxel_size_for_native_crops():
    s = TrainSettings(crop=CropSettings(orientation="native"))
    assert [resolve_geometry(s, v) for v in [(8, 8, 8), (40, 8, 8), None]] == ["isotropic", "anisotropic",
                                                                                "anisotropic"]


def test_auto_geometry_of_canonical_crops_keeps_the_cleft_normal():
    s = TrainSettings(crop=CropSettings(orientation="canonical"))
    assert [resolve_geometry(s, v) for v in [(8, 8, 8), (40, 8, 8), None]] == ["canonical"] * 3


# ------------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_training_data_holds_every_synapse_at_the_input_size(tiny_data):
    assert tuple(tiny_data.crops.shape) == (15, 16, 16, 16) and tiny_data.crops.dtype == torch.float32
    assert tiny_data.voxel_size_nm == (16.0, 16.0, 16.0) and tiny_data.keys[0] == ("bbox1", "syn_001")


@pytest.mark.slow
def test_loss_falls_on_a_tiny_network(tiny_data, tmp_path):
    s = dataclasses.replace(FLIPS_ONLY, epochs=6, batch_size=16)
    curve = train(tiny_data, s, tmp_path / "m.pt").loss_curve
    assert len(curve) == 6 and np.mean(curve[-2:]) < np.mean(curve[:2]) - 2


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(tiny_data, tiny_model, tmp_path):
    uninterrupted, _ = tiny_model
    out = tmp_path / "m.pt"
    first = train(tiny_data, TINY, out, until_epoch=1)
    assert not first.finished and partial_path(out).is_file() and not out.exists()
    second = train(tiny_data, TINY, out)
    assert second.finished and second.resumed_from == 1 and not partial_path(out).exists()
    a = torch.load(uninterrupted.path, weights_only=True)["model_state_dict"]
    b = torch.load(out, weights_only=True)["model_state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert second.loss_curve == uninterrupted.loss_curve


@pytest.mark.slow
def test_unfinished_run_with_other_settings_is_refused(tiny_data, tmp_path):
    out = tmp_path / "m.pt"
    train(tiny_data, TINY, out, until_epoch=1)
    with pytest.raises(ValueError, match=r"m.pt.partial holds an unfinished run with other settings"):
        train(tiny_data, dataclasses.replace(TINY, seed=1), out)


@pytest.mark.slow
def test_checkpoint_loads_through_the_normal_path_with_its_own_width(tiny_model):
    result, out = tiny_model
    loaded = load_checkpoint(out)  # the default (fmaps 24, 80³) is overridden by the file's metadata
    assert loaded.model.config.fmaps == 4 and loaded.model.config.input_size == (16, 16, 16)
    assert loaded.identity == f"sha256:{file_sha256(out)}" == result.identity
    meta = torch.load(out, weights_only=True)[METADATA_KEY]
    assert meta["method"] == "vicreg" and len(meta["loss_curve"]) == 3 and meta["crop"]["size"] == 32
    assert meta["data"]["n_synapses"] == 15 and len(meta["data"]["fingerprint"]) == 40


@pytest.mark.slow
def test_extracted_features_carry_the_identity_and_differ_from_untrained(one_bbox, tiny_model):
    from synapse_core.features.extract import extract_features
    from synapse_core.features.settings import ExtractSettings

    result, out = tiny_model
    trained = extract_features(one_bbox, ExtractSettings(crop=TINY.crop, checkpoint=str(out), workers=0),
                               use_cache=False).features
    untrained = extract_features(one_bbox, ExtractSettings(features="vgg3d", crop=CropSettings(size=16), fmaps=4,
                                                              workers=0),
                                 use_cache=False).features  # the same network shape, untrained (seed 0)
    a, b = trained.filter(like="feat_").to_numpy(), untrained.filter(like="feat_").to_numpy()
    assert a.shape == b.shape == (15, 32)
    assert set(trained["checkpoint"]) == {result.identity}
    assert not np.allclose(a, b, rtol=0.05, atol=1e-3)


@pytest.mark.slow
def test_cli_trains_and_extract_needs_only_the_checkpoint(one_bbox, tmp_path, capsys):
    import pandas as pd

    from synapse_core.cli.parser import main

    root, model = str(one_bbox.root), tmp_path / "model.pt"
    assert main(["train", "--data", root, "--out", str(model), "--size", "32", "--input-size", "16", "--fmaps", "4",
                 "--epochs", "1", "--batch-size", "8", "--projector-dims", "16-16", "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["extract", "--data", root, "--out", str(tmp_path / "f.csv"), "--size", "32", "--checkpoint",
                 str(model), "--workers", "0", "--no-progress", "--no-cache"]) == 0
    features = pd.read_csv(tmp_path / "f.csv")
    assert features.filter(like="feat_").shape == (15, 32)
    assert features["checkpoint"].iloc[0] == f"sha256:{file_sha256(model)}"


def test_extract_refuses_a_crop_flag_that_contradicts_the_checkpoint(one_bbox, tiny_model, tmp_path, capsys):
    from synapse_core.cli.parser import main

    _, model = tiny_model
    assert main(["extract", "--data", str(one_bbox.root), "--out", str(tmp_path / "f.csv"), "--size", "16",
                 "--checkpoint", str(model), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--size 16 but {model} was trained on crops with size=32" in err
    assert "Leave out --size to use the checkpoint's value, or add --allow-crop-mismatch" in err
    assert not (tmp_path / "f.csv").exists()


def test_extract_takes_the_crop_flags_not_given_from_the_checkpoint(tiny_model):
    from synapse_core.cli.extract import checkpoint_crop_settings
    from synapse_core.cli.parser import build_parser

    _, model = tiny_model
    args = build_parser("extract").parse_args(["extract", "--data", "d", "--out", "f.csv", "--checkpoint", str(model),
                                               "--alpha", "1.0"])
    crop, from_checkpoint = checkpoint_crop_settings(args)
    assert (crop.size, crop.alpha, from_checkpoint) == (32, 1.0, ["size"])


def test_cli_refuses_to_overwrite_a_finished_checkpoint(tmp_path, capsys):
    from synapse_core.cli.parser import main

    (tmp_path / "model.pt").write_bytes(b"x")
    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "model.pt"), "--no-progress"])
    assert code == 2 and "model.pt exists; give another file name, or --overwrite" in capsys.readouterr().err


def test_init_with_another_width_is_refused_naming_fmaps(tmp_path):
    from synapse_core.features.checkpoints import CheckpointError, save_checkpoint

    tiny_data = TrainingData(torch.rand(4, 16, 16, 16), [("b", str(i)) for i in range(4)])
    torch.manual_seed(0)
    save_checkpoint(Vgg3D(Vgg3DConfig(input_size=(16, 16, 16), fmaps=2, classifier_width=8)), tmp_path / "init.pt")
    with pytest.raises(CheckpointError, match=r"init.pt.*first conv has 2 feature maps"):
        train(tiny_data, TINY, tmp_path / "m.pt", init=str(tmp_path / "init.pt"))


@pytest.mark.slow
def test_init_checkpoint_is_the_starting_point_and_is_recorded(tiny_data, tmp_path):
    from synapse_core.features.checkpoints import save_checkpoint

    torch.manual_seed(5)
    start = Vgg3D(Vgg3DConfig(input_size=(16, 16, 16), fmaps=4, classifier_width=8))
    sha = save_checkpoint(start, tmp_path / "init.pt")
    s = dataclasses.replace(TINY, epochs=1, learning_rate=1e-9, warmup_epochs=0)  # weights barely move
    result = train(tiny_data, s, tmp_path / "m.pt", init=str(tmp_path / "init.pt"))
    trained = load_checkpoint(result.path).model
    assert result.metadata["init"] == f"sha256:{sha}"
    assert torch.allclose(trained.features[0].weight, start.features[0].weight, atol=1e-6)


@pytest.mark.slow
def test_killed_cli_run_continues_to_the_weights_of_an_uninterrupted_run(one_bbox, tmp_path):
    import subprocess
    import sys
    import time

    from conftest import REPO

    def command(out):
        return [sys.executable, "-m", "synapse_core", "train", "--data", str(one_bbox.root), "--cache-dir",
                str(tmp_path / "cache"), "--out", str(out), "--size", "32", "--input-size", "16", "--fmaps", "4",
                "--epochs", "12", "--batch-size", "8", "--projector-dims", "16-16", "--threads", "1", "--no-progress"]

    subprocess.run(command(tmp_path / "full.pt"), cwd=REPO, check=True, capture_output=True)
    killed = tmp_path / "killed.pt"
    proc = subprocess.Popen(command(killed), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not partial_path(killed).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait()
    assert partial_path(killed).exists() and not killed.exists()
    again = subprocess.run(command(killed), cwd=REPO, check=True, capture_output=True, text=True)
    assert "resumed after epoch" in again.stdout
    a = torch.load(tmp_path / "full.pt", weights_only=True)["model_state_dict"]
    b = torch.load(killed, weights_only=True)["model_state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_cli_init_takes_width_and_input_size_from_the_file(one_bbox, tmp_path):
    from synapse_core.cli.parser import main
    from synapse_core.features.checkpoints import save_checkpoint

    torch.manual_seed(0)
    sha = save_checkpoint(Vgg3D(Vgg3DConfig(input_size=(16, 16, 16), fmaps=4, classifier_width=8)),
                          tmp_path / "synister.checkpoint")  # a bare synister file: size read from its head
    model = tmp_path / "tuned.pt"
    assert main(["train", "--data", str(one_bbox.root), "--out", str(model), "--init", str(tmp_path / "synister.checkpoint"),
                 "--size", "32", "--epochs", "1", "--batch-size", "8", "--projector-dims", "16-16",
                 "--no-progress"]) == 0
    meta = torch.load(model, weights_only=True)[METADATA_KEY]
    assert (meta["network"]["fmaps"], meta["network"]["input_size"], meta["init"]) == (4, [16, 16, 16], f"sha256:{sha}")


def test_both_loss_weights_zero_is_refused():
    with pytest.raises(SettingsError, match="nothing to train"):
        TrainSettings(ssl_weight=0, morphology_weight=0)


@pytest.mark.slow
def test_training_data_measures_each_crops_morphology_only_when_asked(morphology_data, tiny_data):
    assert tiny_data.targets is None
    assert tuple(morphology_data.targets.shape) == (15, len(morphology_data.target_columns))
    assert "morph_pre_volume_um3" in morphology_data.target_columns
    assert torch.equal(morphology_data.crops, tiny_data.crops) and morphology_data.digest != tiny_data.digest


@pytest.mark.slow
def test_morphology_target_alone_is_learned(morphology_data, tmp_path):
    s = dataclasses.replace(FLIPS_ONLY, ssl_weight=0, morphology_weight=1.0, epochs=12, learning_rate=3e-3)
    curve = train(morphology_data, s, tmp_path / "m.pt").loss_curve  # masked MSE of standardised targets
    assert curve[0] > 0.8 and np.mean(curve[-2:]) < 0.6 * np.mean(curve[:2])


@pytest.mark.slow
def test_morphology_run_resumes_to_the_same_weights(morphology_data, morphology_model, tmp_path):
    uninterrupted, _ = morphology_model
    out = tmp_path / "m.pt"
    train(morphology_data, WITH_MORPHOLOGY, out, until_epoch=2)
    second = train(morphology_data, WITH_MORPHOLOGY, out)
    assert second.resumed_from == 2 and second.loss_curve == uninterrupted.loss_curve
    a = torch.load(uninterrupted.path, weights_only=True)["model_state_dict"]
    b = torch.load(out, weights_only=True)["model_state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_morphology_checkpoint_names_its_targets_and_keeps_the_synister_keys(morphology_model, morphology_data):
    _, out = morphology_model
    saved = torch.load(out, weights_only=True)
    assert saved[METADATA_KEY]["morphology_targets"] == morphology_data.target_columns
    assert saved[METADATA_KEY]["training"]["morphology_weight"] == 1.0
    assert all(k.startswith(("features.", "classifier.")) for k in saved["model_state_dict"])


@pytest.mark.slow
def test_morphology_weight_without_measured_targets_is_refused(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="prepare the data with the same settings"):
        train(tiny_data, WITH_MORPHOLOGY, tmp_path / "m.pt")


def test_help_shows_the_small_presets_value_of_each_flag_it_sets(capsys):
    from synapse_core.cli.parser import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(small preset: 32; otherwise 16)" in text and "(small preset: 10.0; otherwise 0.0)" in text
