"""Mask label checks: ids counted by block, ids that occur nowhere or belong to no class, the original
table only where the mask agrees, ``"none"`` labels, and segmentation types refused before any work."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import zarr
from conftest import small_volumes, synapse_rows

from synapse_core.cli.parser import main
from synapse_core.crops.availability import (
    SegmentationTypeUnavailable,
    available_types,
    check_segmentation_type_for_dataset,
    crop_warnings,
)
from synapse_core.crops.settings import CropSettings
from synapse_core.data import validate as validate_module
from synapse_core.data.dataset import open_dataset
from synapse_core.data.labels import NO_LABELS, LabelIds, count_blocks, count_label_ids
from synapse_core.data.validate import label_counts_near_points, mask_label_counts

# ---------------------------------------------------------------------------------------- counting


def test_counts_match_numpy_when_read_in_many_small_chunk_aligned_blocks(tmp_path):
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 0, 0, 1, 2, 9], np.uint8), size=(20, 33, 41))
    arr = zarr.open_array(str(tmp_path / "m.zarr"), mode="w", shape=mask.shape, chunks=(8, 16, 16), dtype=np.uint8)
    arr[:] = mask
    ids, n = np.unique(mask, return_counts=True)
    assert count_label_ids(arr, max_voxels=8 * 16 * 16) == dict(zip(ids.tolist(), n.tolist()))


def test_blocks_tile_the_volume_once_on_chunk_boundaries():
    blocks = list(count_blocks((20, 33, 41), (8, 16, 16), max_voxels=8 * 16 * 32))
    cover = np.zeros((20, 33, 41), np.int64)
    for b in blocks:
        cover[b] += 1
        assert all(s.start % c == 0 for s, c in zip(b, (8, 16, 16)))
        assert cover[b].size <= 8 * 16 * 32
    assert (cover == 1).all()


def test_large_ids_are_counted_without_a_histogram_of_the_id_range(tmp_path):
    mask = np.zeros((4, 5, 6), np.uint64)
    mask[1, 2, 3] = 2**40
    mask[0, 0, :2] = 7
    assert count_label_ids(mask) == {0: 117, 7: 2, 2**40: 1}


def test_contiguous_hdf5_is_counted_row_by_row(tmp_path):
    _, _, mask = small_volumes()
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("mask", data=mask)  # no chunks
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert count_label_ids(f["mask"], max_voxels=100) == {0: 8 * 24 * 24 - 8 * 16, 6: 8 * 16}


# ---------------------------------------------------------------------------------------- datasets


def _dataset(tmp_path, bboxes: dict, labels: str | None = None, top: str = "") -> None:
    """HDF5 bboxes ``{name: mask array or None}`` with the small raw/seg volumes and 3 synapse rows each.

    ``labels`` is a TOML inline table given to every bbox (None: no labels in the config).
    """
    raw, seg, _ = small_volumes()
    text = top
    for name, mask in bboxes.items():
        with h5py.File(tmp_path / f"{name}.h5", "w") as f:
            f.create_dataset("raw", data=raw)
            f.create_dataset("seg", data=seg)
            if mask is not None:
                f.create_dataset("mask", data=mask, chunks=(4, 12, 12))
        synapse_rows().to_csv(tmp_path / f"{name}.csv", index=False)
        text += (f"[bboxes.{name}]\nraw = \"{name}.h5:raw\"\nseg = \"{name}.h5:seg\"\ntable = \"{name}.csv\"\n"
                 "voxel_size_nm = [8, 8, 8]\n")
        if mask is not None:
            text += f"mask = \"{name}.h5:mask\"\n"
        if labels is not None:
            text += f"labels = {labels}\n"
    (tmp_path / "synapse_dataset.toml").write_text(text)


def _mask(*ids) -> np.ndarray:
    """A small mask holding each id in its own block (vesicle-like ids near the synapse centres)."""
    m = np.zeros((8, 24, 24), np.uint8)
    for k, i in enumerate(ids):
        m[:, 5 + 3 * k:7 + 3 * k, 5:19] = i
    return m


def _open(tmp_path):
    return open_dataset(tmp_path, cache_dir=tmp_path / "cache")


def test_a_configured_id_absent_from_the_mask_names_bbox_id_class_and_the_line(tmp_path):
    _dataset(tmp_path, {"b1": _mask(5, 6)}, labels="{ mito = 5, vesicle = 6, cleft = 7 }")
    ds = _open(tmp_path)
    (w,) = [w for w in ds.report.warnings if "occurs nowhere" in w]
    assert w.startswith("b1: cleft id 7 (cleft, from synapse_dataset.toml [bboxes.b1] labels) occurs nowhere in the "
                        "mask; ids in the mask: 5 (")
    assert w.endswith(f"add under [bboxes.b1] in {tmp_path / 'synapse_dataset.toml'}: "
                      'labels = { mito = 5, vesicle = 6, cleft = "none", cleft2 = "none" }')
    assert len(ds.synapses) == 3 and ds.bboxes["b1"].labels == LabelIds(5, 6, 7, 7)


def test_mask_ids_that_belong_to_no_class_are_named_with_their_voxel_counts(tmp_path):
    _dataset(tmp_path, {"b1": _mask(5, 6, 7, 12)}, labels="{ mito = 5, vesicle = 6, cleft = 7 }")
    (w,) = [w for w in _open(tmp_path).report.warnings if "belong to no class" in w]
    assert w.startswith("b1: mask ids 12 (224 voxels) belong to no class (mito 5, vesicle 6, cleft 7, cleft2 7")
    assert w.endswith("labels = { mito = 5, vesicle = 6, cleft = 7, cleft2 = 7 }")


def test_original_table_is_not_used_when_the_mask_disagrees_and_the_warning_says_so(tmp_path):
    _dataset(tmp_path, {"bbox2": _mask(10, 11, 12)})  # named like the original's bbox2 (ids 1-4)
    ds = _open(tmp_path)
    assert ds.bboxes["bbox2"].labels == NO_LABELS and len(ds.synapses) == 3
    (w,) = [w for w in ds.report.warnings if "does not match" in w]
    assert w.startswith("bbox2: the mask does not match the original tool's label table (bbox2) (mito 1, vesicle 3, "
                        "cleft 2, cleft2 4): ids 10, 11, 12 are not in it; ids in the mask: 10 (224 voxels)")
    assert "The table is not used" in w
    assert w.endswith('labels = { mito = "none", vesicle = "none", cleft = "none", cleft2 = "none" }')


def test_original_table_is_used_where_the_mask_agrees(tmp_path):
    _dataset(tmp_path, {"bbox2": _mask(1, 2, 3, 4)})
    ds = _open(tmp_path)
    assert ds.bboxes["bbox2"].labels == LabelIds(mito=1, vesicle=3, cleft=2, cleft2=4)
    assert ds.bboxes["bbox2"].labels_source == "the original tool's label table (bbox2)"
    assert not [w for w in ds.report.warnings if w.startswith("bbox2: ")]


def test_a_disagreeing_bbox_cannot_build_mask_types_but_its_neurons_still_crop(tmp_path, capsys):
    _dataset(tmp_path, {"bbox2": _mask(10, 11)})
    args = ["crop", "--data", str(tmp_path), "--cache-dir", str(tmp_path / "cache"), "--synapse", "bbox2/syn_1",
            "--size", "8"]
    assert main([*args, "--segmentation-type", "6", "--out", str(tmp_path / "six.npy")]) == 2
    err = capsys.readouterr().err
    assert "segmentation type 6 (Vesicle cloud) cannot be used for bbox bbox2: it has no vesicle (vesicle cloud) " \
           "label (none (the original tool's label table (bbox2) does not match the mask))" in err
    assert not (tmp_path / "six.npy").exists()
    assert main([*args, "--segmentation-type", "3", "--out", str(tmp_path / "three.npy")]) == 0
    assert np.load(tmp_path / "three.npy").shape == (8, 8, 8)


def test_none_labels_parse_from_toml_and_yaml(tmp_path):
    from synapse_core.data.config import load_dataset_config

    (tmp_path / "synapse_dataset.toml").write_text('[labels]\nmito = "none"\nvesicle = 6\ncleft = "None"\n')
    assert load_dataset_config(tmp_path).labels == LabelIds(mito=None, vesicle=6, cleft=None, cleft2=None)
    (tmp_path / "synapse_dataset.toml").unlink()
    (tmp_path / "synapse_dataset.yaml").write_text("labels: {mito: null, vesicle: none, cleft: 7}\n")
    assert load_dataset_config(tmp_path).labels == LabelIds(mito=None, vesicle=None, cleft=7, cleft2=7)


def test_a_label_that_is_neither_an_id_nor_none_is_refused_naming_the_key(tmp_path):
    from synapse_core.data.config import ConfigError, load_dataset_config

    (tmp_path / "synapse_dataset.toml").write_text('[labels]\nmito = "absent"\nvesicle = 6\ncleft = 7\n')
    with pytest.raises(ConfigError, match=r'\[labels\] mito must be an integer label id ≥ 0 or "none", got \'absent\''):
        load_dataset_config(tmp_path)


def test_vesicle_none_makes_vesicle_types_unavailable_with_the_line_to_add(tmp_path):
    _dataset(tmp_path, {"b1": _mask(5, 7)}, labels='{ mito = 5, vesicle = "none", cleft = 7 }')
    ds = _open(tmp_path)
    assert 'b1: no vesicle label (synapse_dataset.toml [bboxes.b1] labels: vesicle = "none"); segmentation types ' \
           "and measurements that need it are unavailable for this bbox" in ds.report.warnings
    assert available_types(ds.bboxes["b1"]) == [0, 3, 7, 8]
    with pytest.raises(SegmentationTypeUnavailable) as err:
        check_segmentation_type_for_dataset(ds, CropSettings(segmentation_type=6))
    msg = str(err.value)
    assert msg.startswith("segmentation type 6 (Vesicle cloud) cannot be used for bbox b1: it has no vesicle "
                          "(vesicle cloud) label (synapse_dataset.toml [bboxes.b1] labels).")
    assert "Types that work for bbox b1: 0 (Raw data), 3 (Both sides), 7 (Cleft), 8 (Mitochondrion)." in msg
    assert msg.endswith("labels = { mito = 5, vesicle = <id>, cleft = 7, cleft2 = 7 }")
    check_segmentation_type_for_dataset(ds, CropSettings(segmentation_type=8))  # mito types still work


def test_whole_mask_label_counts_are_cached_per_mask_and_reused(tmp_path):
    _dataset(tmp_path, {"b1": _mask(5, 6, 7)}, labels="{ mito = 5, vesicle = 6, cleft = 7 }")
    mask = _open(tmp_path).bboxes["b1"].mask
    assert mask_label_counts(mask, tmp_path / "cache") == {0: 8 * 24 * 24 - 3 * 224, 5: 224, 6: 224, 7: 224}
    cached = tmp_path / "cache" / "label_counts" / f"{mask.fingerprint}.json"
    cached.write_text(json.dumps({"0": 1, "5": 1, "99": 1}))  # the cache is what is read
    assert mask_label_counts(mask, tmp_path / "cache") == {0: 1, 5: 1, 99: 1}


def test_opening_a_dataset_counts_a_small_mask_once_and_keeps_the_counts(tmp_path):
    _dataset(tmp_path, {"b1": _mask(5, 6, 7)}, labels="{ mito = 5, vesicle = 6, cleft = 7 }")
    mask = _open(tmp_path).bboxes["b1"].mask  # small: counted whole, and the counts kept
    cached = tmp_path / "cache" / "label_counts" / f"{mask.fingerprint}.json"
    assert json.loads(cached.read_text()) == {"0": 8 * 24 * 24 - 3 * 224, "5": 224, "6": 224, "7": 224}
    cached.write_text(json.dumps({"0": 1, "5": 1, "6": 1}))  # the next open reads them: no 7 there
    assert any("cleft id 7" in w and "occurs nowhere" in w for w in _open(tmp_path).report.warnings)


class CountingVolume:
    """A numpy volume that counts the voxels read through it (what a chunked store would decode)."""

    def __init__(self, array):
        self.array, self.voxels_read = array, 0
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        out = self.array[key]
        self.voxels_read += out.size
        return out


@pytest.mark.parametrize("edge", [48, 96])
def test_ids_near_synapses_are_counted_at_a_cost_independent_of_the_volume_size(edge):
    mask = np.zeros((edge,) * 3, np.uint8)
    mask[20:24, 20:24, 20:24] = 6  # near the synapse
    mask[-3:, -3:, -3:] = 9  # far from it
    vol = CountingVolume(mask)
    counts, scope = label_counts_near_points(vol, [(22, 22, 22)], window=16, max_windows=4)
    assert counts == {0: 16**3 - 64, 6: 64}
    assert vol.voxels_read == 16**3
    assert scope.startswith("near the synapses (1 windows of 16³ voxels")


def test_a_volume_within_the_window_budget_is_counted_whole():
    mask = np.zeros((8, 8, 8), np.uint8)
    mask[-1, -1, -1] = 9
    assert label_counts_near_points(mask, [(1, 1, 1)], window=4, max_windows=8) == ({0: 511, 9: 1}, "in the mask")


def test_open_dataset_looks_near_the_synapses_and_validate_counts_the_whole_mask(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(validate_module, "LABEL_WINDOW", 4)
    monkeypatch.setattr(validate_module, "LABEL_MAX_WINDOWS", 2)  # 128 voxels: the 8×24×24 mask is "large"
    mask = _mask(6)  # vesicle id 6 at y 5..6: near no synapse (centres at y 10..12)
    mask[3:5, 9:13, 11:13] = 7  # cleft at the synapses
    _dataset(tmp_path, {"b1": mask}, labels="{ mito = 5, vesicle = 6, cleft = 7 }")
    ds = _open(tmp_path)
    near = [w for w in ds.report.warnings if "occurs nowhere" in w]
    assert [w.split(";")[0] for w in near] == [
        ("b1: mito id 5 (mitochondria, from synapse_dataset.toml [bboxes.b1] labels) occurs nowhere near the synapses "
        "(2 windows of 4³ voxels"),
        ("b1: vesicle id 6 (vesicle cloud, from synapse_dataset.toml [bboxes.b1] labels) occurs nowhere near the "
        "synapses (2 windows of 4³ voxels")]
    assert main(["validate", "--data", str(tmp_path), "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert ("b1: mito id 5 (mitochondria, from synapse_dataset.toml [bboxes.b1] labels) occurs nowhere in the whole "
            "mask; ids in the whole mask: 6 (224 voxels), 7 (16 voxels)") in out
    assert "vesicle id 6 (vesicle cloud, from synapse_dataset.toml [bboxes.b1] labels) occurs nowhere in the whole" not in out


# ---------------------------------------------------------------------------------------- mask-less bboxes


@pytest.fixture
def maskless(tmp_path):
    _dataset(tmp_path, {"nomask": None, "withmask": _mask(5, 6, 7)}, labels="{ mito = 5, vesicle = 6, cleft = 7 }")
    return tmp_path


def _cli(root, command, *extra):
    return main([command, "--data", str(root), "--cache-dir", str(root / "cache"), "--size", "8", *extra])


def _assert_names_bbox_type_and_mask_free_types(err: str, t: int = 10):
    assert f"segmentation type {t} (" in err and "cannot be used for bbox nomask: it has no semantic mask" in err
    assert "Types that work without a mask: 0 (Raw data), 3 (Both sides)." in err
    assert 'add under [bboxes.nomask] in' in err and 'mask = { path = "<mask .h5 or .zarr file>"' in err


def test_crop_of_a_maskless_bbox_with_a_mask_type_exits_nonzero_before_writing(maskless, capsys):
    out = maskless / "c.png"
    assert _cli(maskless, "crop", "--synapse", "nomask/syn_1", "--out", str(out)) == 2
    _assert_names_bbox_type_and_mask_free_types(capsys.readouterr().err)
    assert not out.exists()


def test_gif_of_a_maskless_bbox_with_a_mask_type_exits_nonzero_before_writing(maskless, capsys):
    assert _cli(maskless, "gif", "--out", str(maskless / "gifs"), "--segmentation-type", "11") == 2
    _assert_names_bbox_type_and_mask_free_types(capsys.readouterr().err, t=11)
    assert not (maskless / "gifs").exists()


def test_gif_of_only_the_masked_bbox_runs(maskless):
    assert _cli(maskless, "gif", "--out", str(maskless / "gifs"), "--bbox", "withmask") == 0
    assert len(list((maskless / "gifs").glob("*.gif"))) == 3


def test_extract_of_a_maskless_bbox_with_a_mask_type_exits_nonzero_before_any_row(maskless, capsys):
    out = maskless / "f.csv"
    assert _cli(maskless, "extract", "--out", str(out), "--features", "morphology", "--no-progress") == 2
    _assert_names_bbox_type_and_mask_free_types(capsys.readouterr().err)
    assert not out.exists()


def test_extract_of_a_maskless_bbox_with_type_0_gives_its_rows(maskless):
    out = maskless / "f.csv"
    assert _cli(maskless, "extract", "--out", str(out), "--features", "morphology", "--no-progress",
                "--segmentation-type", "0", "--workers", "0") == 0
    assert pd.read_csv(out)["bbox_name"].value_counts().to_dict() == {"nomask": 3, "withmask": 3}


def test_extraction_page_shows_the_message_for_a_maskless_bbox(maskless, monkeypatch):
    from app_helpers import configure, errors, open_page

    configure(monkeypatch, maskless, maskless / "cache")
    at = open_page("app_pages/extraction.py", state={"bboxes": ["nomask"]})
    (msg,) = [e for e in errors(at) if "cannot be used" in e]
    _assert_names_bbox_type_and_mask_free_types(msg)
    assert "x_run" not in [b.key for b in at.button]  # the page stops before any crop or run


# ---------------------------------------------------------------------------------------- crop extent


def test_a_stack_thinner_than_the_crop_is_a_warning_with_the_numbers(tmp_path):
    _dataset(tmp_path, {"b1": _mask(5, 6, 7)}, labels="{ mito = 5, vesicle = 6, cleft = 7 }")
    ds = _open(tmp_path)
    (w,) = crop_warnings(ds, CropSettings(size=16))
    assert w == ("b1: the stack is 64 nm (8 voxels × 8 nm) in z, thinner than a crop (128 nm (16 voxels)); "
                 "50% of every crop's z extent is padding outside the data")
    assert crop_warnings(ds, CropSettings(size=8)) == []


def test_anisotropic_voxels_are_a_warning_with_the_ratio_and_the_crop_in_nm(tmp_path):
    _dataset(tmp_path, {"b1": _mask(5, 6, 7)}, labels="{ mito = 5, vesicle = 6, cleft = 7 }")
    text = (tmp_path / "synapse_dataset.toml").read_text().replace("voxel_size_nm = [8, 8, 8]", "voxel_size_nm = [40, 4, 4]")
    (tmp_path / "synapse_dataset.toml").write_text(text)
    (w,) = crop_warnings(_open(tmp_path), CropSettings(size=8))
    assert w.startswith("b1: anisotropic voxels 40×4×4 nm (z, y, x), ratio 10; each 64 × 64 × 64 nm crop covers "
                        "1.6 × 16 × 16 native voxels and is resampled to isotropic voxels")


def test_extract_features_refuses_a_mask_type_on_a_maskless_bbox_before_any_row(maskless):
    from synapse_core.crops.availability import SegmentationTypeUnavailable
    from synapse_core.crops.settings import CropSettings
    from synapse_core.data.dataset import open_dataset
    from synapse_core.features.extract import extract_features
    from synapse_core.features.settings import ExtractSettings

    ds = open_dataset(maskless, cache_dir=maskless / "cache")
    settings = ExtractSettings(crop=CropSettings(size=8), features="morphology")
    with pytest.raises(SegmentationTypeUnavailable, match="cannot be used for bbox nomask: it has no semantic mask"):
        extract_features(ds, settings, cache_dir=maskless / "cache")
    assert not (maskless / "cache" / "features").exists()
