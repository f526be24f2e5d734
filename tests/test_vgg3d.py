"""VGG3D: the original architecture, named layers, and several layers from one forward pass."""

import pytest
import torch

from synapse_core.features.net import FeatureNet
from synapse_core.features.pooling import pool
from synapse_core.features.vgg3d import (Vgg3D, Vgg3DConfig, layer_table, parse_layers, resolve_layer,
                                untrained_vgg3d)

from conftest import randomise_batchnorm, tiny_vgg3d_config
from vgg3d_reference import reference_trunk

TINY = tiny_vgg3d_config()


def test_original_architecture_has_34_feature_modules_and_24000_input_classifier():
    model = Vgg3D()
    assert len(model.features) == 34
    convs = [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.Conv3d)]
    assert convs == [0, 3, 6, 9, 13, 16, 20, 23, 27, 30]
    assert [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.MaxPool3d)] == [12, 19, 26, 33]
    assert model.features[20].in_channels == 48 and model.features[20].out_channels == 96
    assert [m.in_features for m in model.classifier if isinstance(m, torch.nn.Linear)] == [24000, 4096, 4096]
    assert model.classifier[6].out_features == 7


def test_layer_names_map_to_original_indices():
    assert resolve_layer("layer20").name == "stage3.conv1"
    assert resolve_layer("20").name == "stage3.conv1"  # the original's --layer_num 20
    assert resolve_layer("stage3.conv1").index == 20
    assert resolve_layer("stage3.conv1.relu").index == 22
    assert resolve_layer("stage4").index == 33
    assert resolve_layer("standard").index == 33
    assert resolve_layer("features.26").name == "stage3.pool"
    assert len(layer_table()) == 34


def test_unknown_layer_names_the_accepted_forms():
    with pytest.raises(ValueError, match="unknown layer 'stage9'.*stage3.conv1"):
        resolve_layer("stage9")
    with pytest.raises(ValueError, match="same layer twice"):
        parse_layers("stage4,layer33")


def test_untrained_network_is_reproducible_from_its_seed():
    a, b, c = untrained_vgg3d(TINY, seed=3), untrained_vgg3d(TINY, seed=3), untrained_vgg3d(TINY, seed=4)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)


def test_untrained_trunk_does_not_depend_on_the_head_width():
    import dataclasses

    full = untrained_vgg3d(dataclasses.replace(TINY, classifier_width=4096), seed=9).features.state_dict()
    small = untrained_vgg3d(dataclasses.replace(TINY, classifier_width=1), seed=9).features.state_dict()
    assert all(torch.equal(full[k], small[k]) for k in full)


@pytest.mark.parametrize("fast", [True, False], ids=["folded-channels-last", "plain"])
def test_feature_net_matches_functional_reference_for_every_kind_of_layer(fast):
    model = randomise_batchnorm(untrained_vgg3d(TINY, seed=1), seed=0)  # non-trivial BN statistics
    state = model.state_dict()
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16, 16)
    names = ["stage1.conv2", "stage1.conv2.bn", "stage2.conv1.relu", "stage4"]
    layers = parse_layers(",".join(names), TINY)
    # spp keeps a 4³ grid of each map: a value check of the layer outputs, not just their means
    got = FeatureNet(model, layers, "spp", "cpu", "fp32", fold_batchnorm=fast, channels_last=fast)(x[:, 0].numpy())
    with torch.no_grad():
        want = torch.cat([pool(reference_trunk(state, x, TINY, layer.index), "spp") for layer in layers], dim=1)
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-5)


def test_bn_output_is_kept_before_the_inplace_relu_overwrites_it():
    model = untrained_vgg3d(TINY, seed=2)
    x = torch.rand(1, 1, 16, 16, 16) - 0.5
    bn, relu = resolve_layer("stage1.conv1.bn", TINY), resolve_layer("stage1.conv1.relu", TINY)
    got = FeatureNet(model, [bn, relu], "avg", "cpu", "fp32")(x[:, 0].numpy())
    assert (got[:, : bn.channels] < 0).any()  # pre-ReLU values survive
    assert (got[:, bn.channels :] >= 0).all()


def test_full_size_network_gives_192_standard_and_96_layer20_features_in_one_pass():
    model = untrained_vgg3d(Vgg3DConfig(classifier_width=8), seed=0)  # original trunk; the head is unused
    layers = [layer for layer in layer_table(model.config) if layer.index in (20, 33)]
    out = FeatureNet(model, layers, "avg", "cpu", "fp32")(torch.rand(1, 80, 80, 80).numpy())
    assert [layer.name for layer in layers] == ["stage3.conv1", "stage4.pool"] and out.shape == (1, 96 + 192)
    assert (out[:, :96] < 0).any()  # layer 20 is a raw conv output (before BN/ReLU)


def test_feature_net_folding_and_channels_last_keep_the_features():
    from synapse_core.features.net import FeatureNet

    model = randomise_batchnorm(untrained_vgg3d(TINY, seed=5), seed=0)
    torch.manual_seed(0)
    layers = parse_layers("stage2.conv1.relu,stage4", TINY)
    crops = torch.rand(3, 16, 16, 16).numpy()
    fast = FeatureNet(model, layers, "concat_avg_max", "cpu", "fp32")(crops)
    plain = FeatureNet(model, layers, "concat_avg_max", "cpu", "fp32", fold_batchnorm=False, channels_last=False)(crops)
    assert fast.shape == (3, 2 * 4 + 2 * 16) and fast.dtype == "float32"
    torch.testing.assert_close(torch.from_numpy(fast), torch.from_numpy(plain), rtol=1e-4, atol=1e-5)


def test_feature_net_output_size_matches_its_vectors():
    from synapse_core.features.net import FeatureNet

    net = FeatureNet(untrained_vgg3d(TINY, seed=0), parse_layers("stage3.conv1,stage4", TINY), "spp")
    out = net(torch.rand(1, 16, 16, 16).numpy())
    assert out.shape[1] == net.output_size((16, 16, 16)) == 8 * (1 + 8 + 64) + 16 * (1 + 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_features_match_cpu():
    from synapse_core.features.net import FeatureNet

    model = untrained_vgg3d(TINY, seed=0)
    crops = torch.rand(2, 16, 16, 16).numpy()
    cpu = FeatureNet(model, parse_layers("stage4", TINY), "avg", "cpu")(crops)
    gpu = FeatureNet(untrained_vgg3d(TINY, seed=0), parse_layers("stage4", TINY), "avg", "cuda")(crops)
    torch.testing.assert_close(torch.from_numpy(gpu), torch.from_numpy(cpu), rtol=1e-3, atol=1e-4)


def test_cuda_device_without_gpu_is_a_clear_error():
    from synapse_core.features.net import resolve_device

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(ValueError, match="no CUDA GPU is available.*--device cpu"):
        resolve_device("cuda")


def test_bf16_speed_is_measured_once_and_remembered(tmp_path):
    import json

    from synapse_core.features.net import BF16_MEMO_FILE, bf16_speedup

    first = bf16_speedup(tmp_path, size=8, repeats=1)
    memo_path = tmp_path / BF16_MEMO_FILE
    memo = json.loads(memo_path.read_text())
    assert first > 0 and len(memo) == 1
    memo_path.write_text(json.dumps({key: 0.5 for key in memo}))  # what this machine measured before
    assert bf16_speedup(tmp_path, size=8, repeats=1) == 0.5
