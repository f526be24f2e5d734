"""Invariance: vectors averaged over the crop's flips/rotations do not change when the crop is flipped or rotated."""

import numpy as np
import pytest

from synapse_core.crops.settings import CropSettings
from synapse_core.features.extract import FeatureModel
from synapse_core.features.invariance import GROUPS, apply_element, symmetry_group
from synapse_core.features.settings import INVARIANCES, ExtractSettings


def _asymmetric_crop() -> np.ndarray:
    """A bright box in one corner on a ramp along x: no flip or rotation maps it onto itself."""
    crop = np.broadcast_to(np.linspace(0.0, 0.5, 16, dtype=np.float32), (16, 16, 16)).copy()
    crop[:5, :7, :3] = 1.0
    return crop[None]


CROP = _asymmetric_crop()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A VGG3D with He-initialised convolutions: its features follow the crop (an untrained one's barely do)."""
    import torch

    from synapse_core.features.checkpoints import save_checkpoint
    from synapse_core.features.vgg3d import Vgg3DConfig, untrained_vgg3d

    model = untrained_vgg3d(Vgg3DConfig(input_size=(16, 16, 16), fmaps=4, classifier_width=32), seed=3)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.features.modules():
            if isinstance(m, torch.nn.Conv3d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                m.bias.zero_()
    path = tmp_path_factory.mktemp("invariance") / "net.pth"
    save_checkpoint(model, path)
    return str(path)


@pytest.fixture(scope="module")
def net(checkpoint):
    models = {}

    def build(invariance: str) -> FeatureModel:
        if invariance not in models:
            models[invariance] = FeatureModel(ExtractSettings(features="vgg3d", crop=CropSettings(size=16), fmaps=4,
                                                              checkpoint=checkpoint, workers=0, device="cpu",
                                                              invariance=invariance))
        return models[invariance]

    return build


def test_the_declared_choices_are_the_implemented_groups():
    assert INVARIANCES == GROUPS


@pytest.mark.parametrize("name, size", [("none", 1), ("flips", 8), ("flips_rot90", 16), ("cube", 48)])
def test_each_group_has_its_number_of_distinct_voxel_permutations(name, size):
    images = {apply_element(CROP, e).tobytes() for e in symmetry_group(name)}
    assert len(symmetry_group(name)) == len(images) == size


def test_deep_features_of_a_mirrored_crop_are_equal_with_flips_and_differ_without(net):
    mirrored = np.ascontiguousarray(CROP[:, ::-1, :, ::-1])
    with_flips, without = net("flips"), net("none")
    assert np.allclose(with_flips(mirrored), with_flips(CROP), rtol=1e-5, atol=1e-7)
    assert not np.allclose(without(mirrored), without(CROP), rtol=1e-2, atol=1e-4)


def test_deep_features_of_a_crop_rotated_in_the_section_plane_are_equal_with_flips_rot90(net):
    rotated = np.ascontiguousarray(np.rot90(CROP, k=1, axes=(2, 3)))
    model = net("flips_rot90")
    assert np.allclose(model(rotated), model(CROP), rtol=1e-5, atol=1e-7)
    assert not np.allclose(net("flips")(rotated), net("flips")(CROP), rtol=1e-2, atol=1e-4)


@pytest.mark.slow  # 2 × 48 forward passes
def test_deep_features_of_a_crop_with_z_and_y_swapped_are_equal_with_cube(net):
    swapped = np.ascontiguousarray(CROP.transpose(0, 2, 1, 3))
    model = net("cube")
    assert np.allclose(model(swapped), model(CROP), rtol=1e-5, atol=1e-7)


def test_invariance_is_part_of_the_cache_key_and_the_model_key(net):
    assert net("flips").spec != net("none").spec
    assert FeatureModel.key(net("flips").settings) != FeatureModel.key(net("none").settings)


def test_flips_rot90_refuses_a_crop_that_is_not_square_in_the_section_plane(net):
    with pytest.raises(ValueError, match="needs y = x"):
        net("flips_rot90")(np.zeros((1, 16, 16, 32), np.float32))
