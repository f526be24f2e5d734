"""Global pooling methods and their output sizes."""

import pytest
import torch

from synapse_core.features.pooling import pool, pooled_size


@pytest.fixture
def fmap():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 5, 5, 5, generator=g)


def test_avg_is_spatial_mean(fmap):
    torch.testing.assert_close(pool(fmap, "avg"), fmap.mean(dim=(2, 3, 4)))


def test_max_is_spatial_max(fmap):
    assert torch.equal(pool(fmap, "max"), fmap.flatten(2).max(dim=2).values)


def test_concat_avg_max_puts_avg_first(fmap):
    out = pool(fmap, "concat_avg_max")
    assert out.shape == (2, 6)
    torch.testing.assert_close(out[:, :3], fmap.mean(dim=(2, 3, 4)))
    assert torch.equal(out[:, 3:], fmap.flatten(2).max(dim=2).values)


def test_spp_on_5_cubed_has_73_values_per_channel_with_global_mean_first(fmap):
    out = pool(fmap, "spp")
    assert out.shape == (2, 3 * 73) == (2, pooled_size(3, (5, 5, 5), "spp"))
    torch.testing.assert_close(out[:, :3], fmap.mean(dim=(2, 3, 4)))


def test_spp_drops_the_4_cubed_level_below_4_voxels():
    x = torch.ones(1, 2, 3, 3, 3)
    assert pool(x, "spp").shape == (1, 2 * 9) and pooled_size(2, (3, 3, 3), "spp") == 18


def test_original_dimension_table():
    assert [pooled_size(192, (5, 5, 5), m) for m in ("avg", "max", "concat_avg_max", "spp")] == [192, 192, 384, 14016]
    assert pooled_size(96, (20, 20, 20), "spp") == 7008


def test_bf16_input_is_pooled_in_float32():
    x = torch.rand(1, 4, 4, 4, 4).bfloat16()
    assert pool(x, "avg").dtype == torch.float32


def test_unknown_pooling_is_refused_with_choices(fmap):
    with pytest.raises(ValueError, match="unknown pooling 'median'.*concat_avg_max"):
        pool(fmap, "median")
