"""GIF and orthogonal-slice PNG of a crop: decoded and checked pixel by pixel."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageSequence

from synapse_core.crops.build import build_crop, read_context_arrays
from synapse_core.crops.settings import CropSettings
from synapse_core.data.labels import LabelIds
from synapse_core.viz.colours import STRUCTURE_COLOURS
from synapse_core.viz.render import OVERLAY_OPACITY, crop_gif_bytes, orthogonal_png_bytes

from conftest import synapse_row, two_neuron_volumes

LABELS = LabelIds(mito=5, vesicle=6, cleft=7, cleft2=7)


@pytest.fixture(scope="module")
def crop():
    raw, seg, mask = two_neuron_volumes((40, 40, 40), split_x=20)
    mask[16:24, 16:24, 14:19] = LABELS.vesicle
    mask[15:25, 15:25, 19:21] = LABELS.cleft
    mask[10:13, 26:30, 10:14] = LABELS.mito
    row = synapse_row((20, 20, 20), (20, 20, 12), (20, 20, 28))
    s = CropSettings(size=24, segmentation_type=0, smart_crop=False)
    return build_crop(read_context_arrays(raw, seg, mask, LABELS, row, s), s)


def frames(data: bytes) -> list[np.ndarray]:
    im = Image.open(io.BytesIO(data))
    return [np.asarray(f.convert("RGB")).astype(int) for f in ImageSequence.Iterator(im)]


def upscale(a, s):
    return np.repeat(np.repeat(a, s, 0), s, 1)


def is_colour(rgb):
    return (rgb[..., 0] != rgb[..., 1]) | (rgb[..., 1] != rgb[..., 2])


def test_gif_has_one_frame_per_slice_of_the_scaled_size_and_loops(crop):
    data = crop_gif_bytes(crop, fps=5, scale=3)
    im = Image.open(io.BytesIO(data))
    assert im.n_frames == 24 and im.size == (72, 72)
    assert im.info["loop"] == 0 and im.info["duration"] == 200


def test_gif_without_overlays_is_gray_and_follows_the_crop(crop):
    fr = frames(crop_gif_bytes(crop, scale=1))
    assert not any(is_colour(f).any() for f in fr)
    # Gray level = the crop quantised to 128 levels.
    expected = np.rint(np.rint(crop.blended[5] * 127) * 255 / 127)
    np.testing.assert_array_equal(fr[5][..., 0], expected)


def test_gif_overlay_colours_appear_exactly_where_the_masks_are(crop):
    overlays = ("cleft", "vesicle_cloud", "mitochondria")
    fr = frames(crop_gif_bytes(crop, overlays=overlays, scale=2))
    union = crop.structures["cleft"] | crop.structures["vesicle_cloud"] | crop.structures["mitochondria"]
    assert union.any()
    for z, f in enumerate(fr):
        np.testing.assert_array_equal(is_colour(f), upscale(union[z], 2))


def test_gif_overlay_pixels_carry_their_structure_colour(crop):
    fr = frames(crop_gif_bytes(crop, overlays=("cleft",), scale=1))
    z, y, x = np.argwhere(crop.structures["cleft"])[0]
    gray = crop.blended[z, y, x]
    expected = (1 - OVERLAY_OPACITY) * gray * 255 + OVERLAY_OPACITY * np.array(STRUCTURE_COLOURS["cleft"])
    np.testing.assert_allclose(fr[z][y, x], expected, atol=8)  # palette holds 24 shades per colour


def test_unknown_overlay_is_rejected_with_the_accepted_names(crop):
    with pytest.raises(ValueError, match="vesicle_cloud"):
        crop_gif_bytes(crop, overlays=("nucleus",))


def test_equal_crops_give_the_same_gif_bytes_and_other_overlays_other_bytes(crop):
    import pickle

    same = pickle.loads(pickle.dumps(crop))  # an equal crop in other arrays (as read back from a cache)
    data = crop_gif_bytes(crop, overlays=("pre",))
    assert crop_gif_bytes(same, overlays=("pre",)) == data
    assert crop_gif_bytes(crop, overlays=("post",)) != data


def test_orthogonal_png_shows_the_three_centre_slices_side_by_side(crop):
    im = np.asarray(Image.open(io.BytesIO(orthogonal_png_bytes(crop, scale=1, gap=4))).convert("RGB")).astype(int)
    assert im.shape == (24, 24 * 3 + 8, 3)
    q = lambda a: np.rint(np.rint(a * 127) * 255 / 127)  # noqa: E731
    np.testing.assert_array_equal(im[:, :24, 0], q(crop.blended[12]))
    np.testing.assert_array_equal(im[:, 28:52, 0], q(crop.blended[:, 12]))
    np.testing.assert_array_equal(im[:, 56:80, 0], q(crop.blended[:, :, 12]))


def test_flat_slices_still_give_one_frame_each(crop):
    flat = type(crop)(**{**crop.__dict__, "blended": np.full(crop.blended.shape, 0.6, np.float32)})
    fr = frames(crop_gif_bytes(flat, scale=1))
    assert len(fr) == 24
    assert all((f == round(np.rint(0.6 * 127) * 255 / 127)).all() for f in fr)


def test_gif_can_start_at_the_centre_slice_and_keep_the_loop_order(crop):
    plain = frames(crop_gif_bytes(crop, scale=1))
    centred = frames(crop_gif_bytes(crop, scale=1, first_slice="center"))
    assert len(centred) == 24
    np.testing.assert_array_equal(centred[0], plain[12])
    np.testing.assert_array_equal(centred[12], plain[0])


def test_gif_first_slice_outside_the_crop_is_rejected(crop):
    with pytest.raises(ValueError, match=r"first_slice must be 'center' or an integer in \[0, 24\) among the 24 slices shown, got 30"):
        crop_gif_bytes(crop, first_slice=30)


def test_structure_gif_shows_only_the_slices_holding_the_synapse_plus_the_margin(crop):
    from synapse_core.viz.render import GIF_MARGIN_SLICES, structure_slices

    has = (crop.structures["cleft"] | crop.structures["vesicle_cloud"]).any(axis=(1, 2))
    z = structure_slices(crop.structures)
    first, last = np.flatnonzero(has)[[0, -1]]
    assert z.tolist() == list(range(max(0, first - GIF_MARGIN_SLICES), min(24, last + GIF_MARGIN_SLICES + 1)))
    assert len(frames(crop_gif_bytes(crop, frames="structure", scale=1))) == len(z)


def test_structure_fraction_counts_the_frames_that_hold_the_structure():
    from synapse_core.viz.render import structure_fraction, structure_slices

    cleft = np.zeros((20, 4, 4), bool)
    cleft[8:16, 1, 1] = True  # 8 slices with the cleft, margin 2 either side: 8 of 12 frames
    structures = {"cleft": cleft, "vesicle_cloud": np.zeros_like(cleft)}
    z = structure_slices(structures, margin=2)
    assert z.tolist() == list(range(6, 18))
    assert structure_fraction(structures, z) == pytest.approx(8 / 12)


def test_a_crop_without_cleft_or_vesicles_shows_every_slice():
    from synapse_core.viz.render import structure_slices

    empty = np.zeros((7, 3, 3), bool)
    assert structure_slices({"cleft": empty, "vesicle_cloud": empty}).tolist() == list(range(7))


def test_size_sets_the_longer_side_in_pixels_and_gray_levels_shrink_the_file(crop):
    im = Image.open(io.BytesIO(crop_gif_bytes(crop, size=128)))
    assert im.size == (128, 128)
    assert len(crop_gif_bytes(crop, size=128, gray_levels=16)) < len(crop_gif_bytes(crop, size=128))


def test_thumbnail_is_the_centre_slice_at_the_asked_size_with_colours(crop):
    from synapse_core.viz.render import thumbnail_png_bytes

    im = np.asarray(Image.open(io.BytesIO(thumbnail_png_bytes(crop, overlays=("cleft",), size=48))).convert("RGB"))
    assert im.shape == (48, 48, 3)
    assert is_colour(im.astype(int)).any() == crop.structures["cleft"][12].any()
