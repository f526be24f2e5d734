"""The fused VGG3D path (oneDNN conv with a ReLU post-op, BN folded) gives the eager path's features."""

import copy

import numpy as np
import pytest
import torch
from conftest import randomise_batchnorm, tiny_vgg3d_config

from synapse_core.features.net import ConvReLU, FeatureNet, fused_conv_relu_works
from synapse_core.features.vgg3d import parse_layers, untrained_vgg3d

TINY = tiny_vgg3d_config()
needs_fused = pytest.mark.skipif(not fused_conv_relu_works(), reason="this torch build has no oneDNN fused conv")


def _crops(n=2, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 16, 16, 16), dtype=np.float32)


@needs_fused
def test_fused_path_fuses_every_conv_relu_pair_of_the_trunk():
    net = FeatureNet(untrained_vgg3d(TINY, seed=0), parse_layers("stage4", TINY))
    kinds = [type(m).__name__ for m, _ in net._steps]
    assert net.fused and "ReLU" not in kinds and "BatchNorm3d" not in kinds
    assert kinds.count("ConvReLU") == sum(TINY.n_convolutions)


@needs_fused
def test_fused_features_equal_eager_features_on_random_input():
    model = randomise_batchnorm(untrained_vgg3d(TINY, seed=3), seed=1)  # non-trivial BN statistics
    layers = parse_layers("stage2.conv1.relu,stage3,stage4", TINY)
    fast = FeatureNet(model, layers, "concat_avg_max", "cpu", "fp32")(_crops())
    eager = FeatureNet(model, layers, "concat_avg_max", "cpu", "fp32", fuse_relu=False)(_crops())
    np.testing.assert_allclose(fast, eager, rtol=1e-4, atol=1e-6)


@needs_fused
def test_a_requested_pre_relu_output_keeps_its_conv_unfused():
    model = untrained_vgg3d(TINY, seed=4)
    layers = parse_layers("stage1.conv2.bn,stage4", TINY)
    net = FeatureNet(model, layers)
    produced = {idx: type(m).__name__ for m, idx in net._steps}
    assert produced[layers[0].index] == "BatchNorm3d" and produced[layers[0].index + 1] == "ReLU"
    eager = FeatureNet(model, layers, fuse_relu=False)(_crops(1))
    np.testing.assert_allclose(net(_crops(1)), eager, rtol=1e-4, atol=1e-6)
    assert (net(_crops(1))[:, : layers[0].channels] < 0).any()  # the pre-ReLU values survive


def test_bf16_and_fuse_relu_false_run_the_eager_modules():
    model = untrained_vgg3d(TINY, seed=0)
    for net in (FeatureNet(model, parse_layers("stage4", TINY), fuse_relu=False),
                FeatureNet(model, parse_layers("stage4", TINY), precision="bf16")):
        assert not net.fused and not any(isinstance(m, ConvReLU) for m, _ in net._steps)


@needs_fused
def test_a_copied_fused_net_repacks_its_weights_and_gives_the_same_vectors():
    net = FeatureNet(untrained_vgg3d(TINY, seed=6), parse_layers("stage4", TINY))
    first = net(_crops(1))
    clone = copy.deepcopy(net)  # e.g. a model cache that copies; the packed oneDNN weights are not copied
    assert all(m._packed is None for m, _ in clone._steps if isinstance(m, ConvReLU))
    np.testing.assert_array_equal(clone(_crops(1)), first)


def test_conv_relu_module_equals_relu_of_conv_for_other_batch_sizes_than_it_was_packed_for():
    if not fused_conv_relu_works():
        pytest.skip("this torch build has no oneDNN fused conv")
    conv = torch.nn.Conv3d(4, 6, 3, padding=1).eval()
    fused = ConvReLU(conv)
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for batch in (1, 3):  # packed at the first call (batch 1), reused for batch 3
            x = torch.randn(batch, 4, 5, 6, 7, generator=gen).contiguous(memory_format=torch.channels_last_3d)
            torch.testing.assert_close(fused(x), torch.relu(conv(x)), rtol=1e-4, atol=1e-6)


def test_the_once_per_process_check_leaves_the_callers_random_stream_alone():
    from synapse_core.features import net as net_module

    net_module._FUSED_OK.clear()  # run the check again in this process
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    net_module.fused_conv_relu_works()
    assert torch.equal(torch.rand(3), expected)
