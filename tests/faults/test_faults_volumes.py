"""Volume faults: mixed slices, colour or negative labels, stray files, NaN EM, damaged converted volumes.

Each case names the slice or store and the fix; a damaged conversion is rebuilt and reads the
original voxels again (never zeros); valid bboxes and rows are intact.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from faultlib import small_volumes, synapse_rows, write_small_dataset, write_stack

from synapse_core.crops.build import Discarded, crop_synapse
from synapse_core.crops.settings import CropSettings
from synapse_core.data.dataset import DatasetError, open_dataset
from synapse_core.data.volumes import (
    MANIFEST,
    check_converted,
    convert_tiff_stack,
    list_slices,
)


def _replace_stack(folder, volume, names=None):
    shutil.rmtree(folder)
    write_stack(folder, volume, names)


def _fatal(tmp_path, root) -> str:
    with pytest.raises(DatasetError) as err:
        open_dataset(root, cache_dir=tmp_path / "cache")
    return str(err.value)


@pytest.mark.parametrize("stack", ["raw", "seg"])
def test_a_slice_of_another_dtype_is_named(tmp_path, stack):
    root = write_small_dataset(tmp_path / "DATA")
    raw, seg, _ = small_volumes()
    vol = (raw if stack == "raw" else seg).copy()
    write_stack(root / stack / "bbox1", (vol[:1].astype(np.uint32) + 300), names=["slice_5.tif"])
    msg = _fatal(tmp_path, root)
    assert f"{root / stack / 'bbox1' / 'slice_5.tif'}: pixel type uint32 differs from slice_0.tif" in msg
    assert "could wrap" in msg


def test_a_slice_with_other_channels_is_named(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    raw, _, _ = small_volumes()
    write_stack(root / "raw" / "bbox1", np.repeat(raw[:1, ..., None], 3, axis=-1), names=["slice_2.tif"])
    assert "slice_2.tif: 3 channels but slice_0.tif has 1 channel" in _fatal(tmp_path, root)


def test_a_colour_coded_segmentation_is_refused_naming_the_slice(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    _, seg, _ = small_volumes()
    rgb = np.stack([seg, seg * 2 % 7, seg * 3 % 5], axis=-1).astype(np.uint8)
    _replace_stack(root / "seg" / "bbox1", rgb)
    msg = _fatal(tmp_path, root)
    assert "slice_0.tif: an RGB label slice with different colour channels" in msg and "single-channel" in msg


def test_a_gray_segmentation_saved_as_rgb_is_read(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    _, seg, _ = small_volumes()
    _replace_stack(root / "seg" / "bbox1", np.repeat(seg[..., None].astype(np.uint8), 3, axis=-1))
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(ds.bboxes["bbox1"].seg.open()[:], seg)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32])
def test_a_negative_background_is_refused_with_the_fix(tmp_path, dtype):
    root = write_small_dataset(tmp_path / "DATA")
    _, seg, _ = small_volumes()
    signed = seg.astype(dtype)
    signed[signed == 0] = -1
    _replace_stack(root / "seg" / "bbox1", signed)
    msg = _fatal(tmp_path, root)
    assert "slice_0.tif:" in msg and "negative label ids (smallest -1)" in msg and "seg[seg < 0] = 0" in msg
    assert "65535" not in msg


def test_fractional_label_ids_are_refused(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    _, seg, _ = small_volumes()
    _replace_stack(root / "seg" / "bbox1", seg.astype(np.float32) + 0.5)
    assert "slice_0.tif: a label slice with non-integer or NaN values" in _fatal(tmp_path, root)


def test_an_extra_slice_and_stray_files_are_named_when_counts_differ(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    raw, _, _ = small_volumes()
    write_stack(root / "raw" / "bbox1", raw[:1], names=["slice_8.tif"])
    (root / "raw" / "bbox1" / "Thumbs.db").write_bytes(b"x")
    msg = _fatal(tmp_path, root)
    assert "slice counts differ: raw 9" in msg and "slices only in raw: slice_8.tif" in msg
    assert "that are not slice_*.tif (not read): Thumbs.db" in msg


def test_stray_non_slice_files_alone_are_ignored(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    (root / "raw" / "bbox1" / "notes.txt").write_text("acquired 2019")
    (root / "seg" / "bbox1" / ".DS_Store").write_bytes(b"\0")
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    assert ds.bboxes["bbox1"].shape_zyx == (8, 24, 24) and len(ds.synapses) == 3


def test_nan_raw_voxels_discard_the_crops_that_hold_them_with_the_reason(tmp_path):
    root = write_small_dataset(tmp_path / "DATA", rows=synapse_rows(3))
    raw, _, _ = small_volumes()
    rawf = raw.astype(np.float32)
    rawf[4, 9, 12] = np.nan  # inside syn_1's crop (y 8..11) only
    _replace_stack(root / "raw" / "bbox1", rawf)
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    # native: the window holds exactly the one NaN voxel (a rotated crop interpolates it into 8)
    settings = CropSettings(size=4, min_coverage=0, segmentation_type=0, smart_crop=False, orientation="native")
    first = crop_synapse(ds, "bbox1", "syn_1", settings)
    assert isinstance(first, Discarded) and "the raw EM has 1 NaN or infinite voxels inside this crop" in first.reason
    third = crop_synapse(ds, "bbox1", "syn_3", settings)
    assert not isinstance(third, Discarded) and np.isfinite(third.blended).all()


def _converted(tmp_path):
    raw, _, _ = small_volumes((70, 24, 24))
    files = write_stack(tmp_path / "slices", raw)
    src = convert_tiff_stack(files, tmp_path / "vols", is_raw=True)
    return raw, files, src


def _chunks(store):
    """The chunk files of a converted store (not its metadata, marker or manifest)."""
    store = Path(store)
    return sorted(p for p in store.rglob("*") if p.is_file() and p.parent != store)


@pytest.mark.parametrize("damage", ["delete", "truncate", "rewrite", "manifest"])
def test_a_damaged_converted_volume_is_rebuilt_with_a_warning(tmp_path, caplog, damage):
    raw, files, src = _converted(tmp_path)
    chunk = _chunks(src.path)[-1]
    if damage == "delete":
        chunk.unlink()
    elif damage == "truncate":
        chunk.write_bytes(chunk.read_bytes()[:5])
    elif damage == "rewrite":
        data = bytearray(chunk.read_bytes())
        data[-1] ^= 0xFF
        chunk.write_bytes(bytes(data))
        os.utime(chunk, ns=(chunk.stat().st_atime_ns, chunk.stat().st_mtime_ns + 10**9))
    else:
        (Path(src.path) / MANIFEST).unlink()
    assert check_converted(src.path)
    with caplog.at_level(logging.WARNING, logger="synapse_core.data.volumes"):
        again = convert_tiff_stack(files, tmp_path / "vols", is_raw=True)
    if damage != "manifest":
        assert any("is damaged" in r.message and "converting it again" in r.message for r in caplog.records)
    assert check_converted(again.path) == []
    np.testing.assert_array_equal(again.open()[:], raw)


def test_a_same_size_change_with_the_old_mtime_is_found_by_the_checksums(tmp_path):
    _, _, src = _converted(tmp_path)
    chunk = _chunks(src.path)[0]
    st = chunk.stat()
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 0xFF
    chunk.write_bytes(bytes(data))
    os.utime(chunk, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert check_converted(src.path) == []  # the cheap check on every open: sizes and times
    rel = chunk.relative_to(src.path).as_posix()
    assert check_converted(src.path, full=True) == [f"chunk {rel} does not match its checksum"]


def test_an_intact_conversion_is_reused_not_rebuilt(tmp_path):
    _, files, src = _converted(tmp_path)
    stamp = (Path(src.path) / ".complete").stat().st_mtime_ns
    again = convert_tiff_stack(files, tmp_path / "vols", is_raw=True)
    assert again.path == src.path and (Path(again.path) / ".complete").stat().st_mtime_ns == stamp


def test_an_unfinished_conversion_left_by_a_killed_run_is_ignored(tmp_path):
    raw, _, _ = small_volumes()
    files = write_stack(tmp_path / "slices", raw)
    src = convert_tiff_stack(files, tmp_path / "vols", is_raw=True)
    shutil.rmtree(src.path)
    (tmp_path / "vols" / (os.path.basename(src.path))).mkdir()  # a folder without marker: an interrupted run
    again = convert_tiff_stack(files, tmp_path / "vols", is_raw=True)
    np.testing.assert_array_equal(again.open()[:], raw)


def test_a_damaged_conversion_is_rebuilt_when_a_dataset_is_opened(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    raw, _, _ = small_volumes()
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    for chunk in _chunks(ds.bboxes["bbox1"].raw.path):
        chunk.unlink()
    ds2 = open_dataset(root, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(ds2.bboxes["bbox1"].raw.open()[:], raw)


def test_list_slices_refuses_a_folder_outside_the_roots(tmp_path):
    from synapse_core.data.volumes import VolumeError

    write_stack(tmp_path / "out", np.zeros((2, 4, 4), np.uint8))
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "out", target_is_directory=True)
    with pytest.raises(VolumeError, match="slice folder: .*link .*is outside the allowed data roots"):
        list_slices(tmp_path / "root" / "link", roots=[tmp_path / "root"])
