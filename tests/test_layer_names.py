"""Layer names for biologists: labels and help say what a layer is; the stored value stays the internal name."""

from __future__ import annotations

import pytest

from synapse_core.features.layer_names import (
    internal_name,
    layer_label,
    layer_option_label,
    layer_options,
    layers_help,
)
from synapse_core.features.vgg3d import Vgg3DConfig, layer_table, resolve_layer


def test_stage_outputs_are_named_by_depth_and_the_default_says_so():
    assert [layer_label(f"stage{s}") for s in (1, 2, 3, 4)] == [
        "stage 1 (edges and texture)", "stage 2 (small shapes)", "stage 3 (larger parts)", "stage 4 (deepest, default)",
    ]


def test_a_convolution_names_its_stage_and_position_and_the_original_layer_20():
    assert layer_label("stage4.conv1") == "stage 4, convolution 1 before BatchNorm"
    assert layer_label("stage2.conv2.relu") == "stage 2, convolution 2 after ReLU"
    assert layer_label("layer20") == "stage 3, convolution 1 before BatchNorm (the original's layer 20)"


def test_the_pool_name_is_told_apart_from_its_stage_alias():
    assert layer_label("stage4.pool") == "stage 4 after its max-pool (same as stage 4)"
    assert resolve_layer("stage4.pool").index == resolve_layer("stage4").index


def test_option_label_carries_the_checkpoint_module():
    assert internal_name("stage4.conv1") == "stage4.conv1 = features.27"
    assert layer_option_label("stage4") == "stage 4 (deepest, default) · stage4 = features.33"


def test_options_are_internal_names_that_resolve_stages_first():
    options = layer_options()
    assert options[:4] == ["stage1", "stage2", "stage3", "stage4"]
    assert options[4:] == [info.name for info in layer_table()]
    assert all(resolve_layer(o) for o in options)


def test_every_option_has_its_own_label():
    labels = [layer_option_label(o) for o in layer_options()]
    assert len(set(labels)) == len(labels)


def test_help_gives_channels_and_grid_of_each_stage():
    text = layers_help()
    assert "`stage1 = features.12`, 24 channels on a 40×40×40 (z×y×x) grid" in text
    assert "`stage4 = features.33`, 192 channels on a 5×5×5 (z×y×x) grid" in text


def test_a_smaller_network_is_described_from_its_own_shape():
    config = Vgg3DConfig(input_size=(16, 32, 32), fmaps=4, n_convolutions=(1, 1), downsample_factors=((1, 2, 2),) * 2)
    assert layer_label("stage2", config) == "stage 2 (deepest, default)"  # 'standard' is the deepest stage
    assert "4 channels on a 16×16×16 (z×y×x) grid" in layers_help(config)


def test_an_unknown_name_is_an_error_listing_the_accepted_ones():
    with pytest.raises(ValueError, match="unknown layer 'stage9'.*stage1..stage4"):
        layer_label("stage9")
