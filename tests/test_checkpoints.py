"""Checkpoint loading: synister formats load strictly; every bad file fails loudly."""

import pytest
import torch
from conftest import tiny_vgg3d_config, trained_like_vgg3d

from synapse_core.features.checkpoints import (
    METADATA_FORMAT,
    METADATA_KEY,
    CheckpointError,
    crop_mismatch,
    file_sha256,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from synapse_core.features.vgg3d import Vgg3D, Vgg3DConfig

TINY = tiny_vgg3d_config()


def test_synister_format_loads_weights_and_class_count(tmp_path):
    src = trained_like_vgg3d(output_classes=6)
    path = tmp_path / "tiny.checkpoint"
    sha = save_checkpoint(src, path)
    loaded = load_checkpoint(path, TINY)
    assert loaded.n_classes == 6 and loaded.identity == f"sha256:{sha}" and not loaded.untrained
    assert torch.equal(loaded.model.features[0].weight, src.features[0].weight)
    assert torch.equal(loaded.model.features[1].running_mean, src.features[1].running_mean)
    assert not loaded.model.training


def test_bare_state_dict_loads_with_seven_classes(tmp_path):
    src = trained_like_vgg3d(output_classes=7)
    torch.save(src.state_dict(), tmp_path / "bare.pt")
    loaded = load_checkpoint(tmp_path / "bare.pt", TINY)
    assert loaded.n_classes == 7
    assert torch.equal(loaded.model.classifier[6].bias, src.classifier[6].bias)


def test_extra_training_entries_are_ignored(tmp_path):
    src = trained_like_vgg3d()
    torch.save({"model_state_dict": src.state_dict(), "optimizer_state_dict": {"lr": 1e-4}, "epoch": 12},
               tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt", TINY).n_classes == 6


def test_architecture_mismatch_names_the_file_and_feature_maps(tmp_path):
    save_checkpoint(trained_like_vgg3d(), tmp_path / "tiny.pt")
    with pytest.raises(CheckpointError, match=r"tiny.pt does not match the VGG3D architecture.*fmaps 24.*has 2 feature maps"):
        load_checkpoint(tmp_path / "tiny.pt", Vgg3DConfig(input_size=(16, 16, 16)))


def test_missing_key_is_reported(tmp_path):
    state = trained_like_vgg3d().state_dict()
    del state["features.3.bias"]
    torch.save({"model_state_dict": state}, tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match=r"missing keys \['features.3.bias'\]"):
        load_checkpoint(tmp_path / "cut.pt", TINY)


def test_corrupt_file_gives_clear_error(tmp_path):
    save_checkpoint(trained_like_vgg3d(), tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"trunc.pt is corrupt or not a PyTorch file"):
        load_checkpoint(tmp_path / "trunc.pt", TINY)


def test_html_download_page_is_not_a_checkpoint(tmp_path):
    (tmp_path / "dl.checkpoint").write_text("<html><body>Dropbox - file not found</body></html>")
    with pytest.raises(CheckpointError, match=r"dl.checkpoint is corrupt or not a PyTorch file"):
        load_checkpoint(tmp_path / "dl.checkpoint", TINY)


def test_wrong_format_object_is_refused(tmp_path):
    torch.save({"weights": [1, 2, 3]}, tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list.pt is not a VGG3D state dict"):
        load_checkpoint(tmp_path / "list.pt", TINY)


def test_pickled_module_is_refused_under_weights_only(tmp_path):
    torch.save(trained_like_vgg3d(), tmp_path / "module.pt")  # whole nn.Module, needs arbitrary unpickling
    with pytest.raises(CheckpointError, match=r"module.pt cannot be read safely: it contains the Python object synapse_core.features.vgg3d.Vgg3D.*weights_only=True"):
        load_checkpoint(tmp_path / "module.pt", TINY)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt", TINY)


def test_nan_weights_are_refused(tmp_path):
    model = trained_like_vgg3d()
    with torch.no_grad():
        model.features[0].weight[0, 0, 0, 0, 0] = float("nan")
    save_checkpoint(model, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"NaN/inf values in \['features.0.weight'\]"):
        load_checkpoint(tmp_path / "nan.pt", TINY)


def test_no_checkpoint_means_explicitly_untrained_with_seed():
    loaded = load_model(None, TINY, seed=11)
    assert loaded.untrained and loaded.identity == "untrained (random weights, seed 11)"


def test_dataparallel_prefix_is_accepted(tmp_path):
    src = trained_like_vgg3d()
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "dp.pt")
    loaded = load_checkpoint(tmp_path / "dp.pt", TINY)
    assert torch.equal(loaded.model.features[0].weight, src.features[0].weight)
    assert loaded.identity == "sha256:" + file_sha256(tmp_path / "dp.pt")


def test_crop_size_and_head_width_are_read_from_the_classifier(tmp_path):
    import dataclasses

    trained_at_32 = dataclasses.replace(TINY, input_size=(32, 32, 32), classifier_width=16)
    torch.manual_seed(0)
    save_checkpoint(Vgg3D(trained_at_32, output_classes=7), tmp_path / "c32.pt")
    loaded = load_checkpoint(tmp_path / "c32.pt", TINY)  # the trunk matches; the head says 32³ and 16 units
    assert loaded.model.config.input_size == (32, 32, 32) and loaded.model.config.classifier_width == 16


class _NotAWeight:
    pass


def test_plain_pickle_is_refused_without_advising_unsafe_loading(tmp_path):
    import pickle

    path = tmp_path / "upload.pt"
    path.write_bytes(pickle.dumps(_NotAWeight()))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, Vgg3DConfig())
    assert "cannot be read safely: it holds pickled Python objects, not only tensors" in str(err.value)
    assert "weights_only` set to `False`" not in str(err.value)


def _with_metadata(tmp_path, config, **overrides):
    """A checkpoint of ``config`` carrying ``synapse_cluster_em`` metadata that describes it (plus ``overrides``)."""
    torch.manual_seed(0)
    model = Vgg3D(config, output_classes=1)
    network = {"input_size": list(config.input_size), "fmaps": config.fmaps,
               "n_convolutions": list(config.n_convolutions),
               "downsample_factors": [list(f) for f in config.downsample_factors], "fmap_inc": list(config.fmap_inc),
               "input_fmaps": config.input_fmaps, "classifier_width": config.classifier_width}
    meta = {"format": METADATA_FORMAT, "network": network, "crop": {"size": 64, "alpha": 1.0}, **overrides}
    path = tmp_path / "trained.pt"
    torch.save({"model_state_dict": model.state_dict(), METADATA_KEY: meta}, path)
    return model, path


def test_trained_metadata_sets_the_network_width_and_input_size(tmp_path):
    config = Vgg3DConfig(input_size=(32, 32, 32), fmaps=3, classifier_width=1)
    model, path = _with_metadata(tmp_path, config)
    loaded = load_checkpoint(path, Vgg3DConfig())  # the caller's fmaps 24 / 80³ give way to the file's
    assert loaded.model.config == config and loaded.self_supervised
    assert torch.equal(loaded.model.features[0].weight, model.features[0].weight)
    assert loaded.metadata["crop"]["size"] == 64


def test_malformed_metadata_is_refused_naming_the_entry(tmp_path):
    _, path = _with_metadata(tmp_path, TINY, network={"fmaps": "eight"})
    with pytest.raises(CheckpointError, match=r"trained.pt has unusable synapse_cluster_em metadata: "
                                              r"network.input_size = None is not a list of positive integers"):
        load_checkpoint(path, TINY)


def test_newer_metadata_format_is_refused(tmp_path):
    _, path = _with_metadata(tmp_path, TINY, format=METADATA_FORMAT + 1)
    with pytest.raises(CheckpointError, match=rf"format {METADATA_FORMAT + 1} \(this version reads format "
                                              rf"{METADATA_FORMAT}\)"):
        load_checkpoint(path, TINY)


def test_metadata_that_contradicts_the_weights_is_a_mismatch(tmp_path):
    _, path = _with_metadata(tmp_path, TINY)
    state = torch.load(path, weights_only=True)
    state[METADATA_KEY]["network"]["fmaps"] = 5
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"does not match the VGG3D architecture .*fmaps 5.*has 2 feature maps"):
        load_checkpoint(path, TINY)


def test_crop_mismatch_names_each_differing_field():
    from synapse_core.crops.settings import CropSettings

    # metadata without orientation: trained on native crops
    now = CropSettings(size=80, alpha=1.0, orientation="native")
    problems = crop_mismatch({"crop": {"size": 64, "alpha": 1.0}}, now)
    assert problems == [("trained on crops with size=64, extracting with size=80; features of other crops are less "
                         "meaningful")]
    assert crop_mismatch(None, CropSettings()) == []


def test_a_checkpoint_from_before_orientation_counts_as_trained_on_native_crops():
    from synapse_core.crops.settings import CropSettings

    problems = crop_mismatch({"crop": {"size": 80}}, CropSettings(size=80, orientation="canonical"))
    assert problems == [("trained on crops with orientation='native', extracting with orientation='canonical'; "
                         "features of other crops are less meaningful")]


def test_extract_takes_native_orientation_from_a_checkpoint_without_it(tmp_path):
    from synapse_core.cli.extract import checkpoint_crop_settings
    from synapse_core.cli.parser import build_parser

    _, path = _with_metadata(tmp_path, TINY)  # crop metadata {"size": 64, "alpha": 1.0}: no orientation
    args = build_parser("extract").parse_args(["extract", "--data", "d", "--out", "f.csv", "--checkpoint", str(path)])
    crop, from_checkpoint = checkpoint_crop_settings(args)
    assert (crop.size, crop.orientation, from_checkpoint) == (64, "native", ["size", "orientation"])


def test_trunk_only_load_builds_no_classifier_and_the_same_trunk(tmp_path):
    src = trained_like_vgg3d(output_classes=6)
    save_checkpoint(src, tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt", TINY, classifier=False)
    assert loaded.model.classifier is None and loaded.n_classes == 6
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.features.state_dict().values(),
                                                 src.features.state_dict().values()))


def test_nan_in_the_unread_classifier_does_not_stop_a_trunk_load(tmp_path):
    model = trained_like_vgg3d()
    with torch.no_grad():
        model.classifier[0].weight[0, 0] = float("nan")
    save_checkpoint(model, tmp_path / "head_nan.pt")
    assert load_checkpoint(tmp_path / "head_nan.pt", TINY, classifier=False).model.classifier is None
    with pytest.raises(CheckpointError, match=r"NaN/inf values in \['classifier.0.weight'\]"):
        load_checkpoint(tmp_path / "head_nan.pt", TINY)


def test_inspect_names_and_checks_a_file_without_loading_it(tmp_path):
    from synapse_core.features.checkpoints import inspect_checkpoint

    sha = save_checkpoint(trained_like_vgg3d(output_classes=6), tmp_path / "c.pt")
    info = inspect_checkpoint(tmp_path / "c.pt", TINY, cache_dir=tmp_path / "cache")
    assert (info.identity, info.n_classes, info.config.fmaps) == (f"sha256:{sha}", 6, TINY.fmaps)
    with pytest.raises(CheckpointError, match="does not match the VGG3D architecture"):
        inspect_checkpoint(tmp_path / "c.pt", Vgg3DConfig(input_size=(16, 16, 16)), cache_dir=tmp_path / "cache")


def test_sha256_memo_is_kept_on_disk_by_path_size_and_mtime(tmp_path):
    import json
    import os

    from synapse_core.features.checkpoints import SHA_MEMO_FILE, file_identity

    path = tmp_path / "c.pt"
    sha = save_checkpoint(trained_like_vgg3d(), path)
    assert file_identity(path, tmp_path / "cache") == f"sha256:{sha}"
    memo = json.loads((tmp_path / "cache" / SHA_MEMO_FILE).read_text())
    assert memo[os.path.realpath(path)]["sha256"] == sha


def test_a_rewritten_checkpoint_is_hashed_again(tmp_path):
    import os

    from synapse_core.features.checkpoints import file_identity

    path = tmp_path / "c.pt"
    save_checkpoint(trained_like_vgg3d(output_classes=6), path)
    first = file_identity(path, tmp_path / "cache")
    sha = save_checkpoint(trained_like_vgg3d(output_classes=7), path)
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    assert file_identity(path, tmp_path / "cache") == f"sha256:{sha}" != first


def test_extraction_model_reads_weights_only_at_the_first_forward_pass(tmp_path):
    import numpy as np

    from synapse_core.crops.settings import CropSettings
    from synapse_core.features.extract import FeatureModel
    from synapse_core.features.settings import ExtractSettings

    save_checkpoint(trained_like_vgg3d(Vgg3DConfig(input_size=(16, 16, 16), fmaps=2, classifier_width=4)),
                    tmp_path / "c.pt")
    settings = ExtractSettings(checkpoint=str(tmp_path / "c.pt"), fmaps=2, layer="stage1", workers=0,
                               crop=CropSettings(size=16))
    model = FeatureModel(settings)
    assert model._net is None and model.identity.startswith("sha256:")
    crops = np.random.default_rng(0).normal(size=(2, 16, 16, 16)).astype(np.float32)
    out = model(crops)
    assert model._net is not None and out.shape[0] == 2
