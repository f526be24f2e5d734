"""Dataset-config faults: every bad value is a ConfigError naming the file and the key, before any volume is read."""

from __future__ import annotations

import numpy as np
import pytest
from faultlib import small_volumes, write_h5, write_small_dataset

from synapse_core.data.config import ConfigError, load_dataset_config
from synapse_core.data.dataset import DatasetError, open_dataset


def _config(tmp_path, text: str | bytes):
    cfg = tmp_path / "synapse_dataset.toml"
    cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    return cfg


def test_a_latin1_config_is_named_with_the_fix(tmp_path):
    cfg = _config(tmp_path, '# Zellkörper\nvoxel_size_nm = [8, 8, 8]\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=f"{cfg}: the dataset config is not UTF-8 text .*save it as UTF-8"):
        load_dataset_config(tmp_path)


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path):
    cfg = _config(tmp_path, "voxel_size_nm = [8, 8, 8\n[labels]\n")
    with pytest.raises(ConfigError, match=f"{cfg}: cannot parse the dataset config: .*line"):
        load_dataset_config(tmp_path)


def test_bboxes_as_a_list_is_named(tmp_path):
    cfg = _config(tmp_path, "bboxes = [1, 2]\n")
    with pytest.raises(ConfigError, match=rf"{cfg}: bboxes must be tables, one per bbox, like \[bboxes.bbox1\]"):
        load_dataset_config(tmp_path)


def test_a_bbox_that_is_not_a_table_is_named(tmp_path):
    _config(tmp_path, "[bboxes]\nb1 = 5\n")
    with pytest.raises(ConfigError, match=r"\[bboxes.b1\] must be a table"):
        load_dataset_config(tmp_path)


@pytest.mark.parametrize("value, match", [
    ('{ path = "v.h5", key = 5 }', r"\[bboxes.b1\] raw key must be the dataset name in quotes, e.g. key = \"raw\", got 5"),
    ('{ path = 5, key = "raw" }', r"\[bboxes.b1\] raw path must be a file name in quotes"),
    ("5", r"\[bboxes.b1\] raw must be \{ path = \"file.h5\", key = \"raw\" \}"),
    ('":raw"', r"\[bboxes.b1\] raw names no file"),
    ('{ path = "v.h5", key = "raw", chunks = 3 }', r"unknown key\(s\) \['chunks'\] in \[bboxes.b1\] raw"),
])
def test_a_bad_volume_entry_is_named(tmp_path, value, match):
    write_h5(tmp_path / "v.h5", raw=np.zeros((4, 4, 4), np.uint8))
    _config(tmp_path, f'[bboxes.b1]\nraw = {value}\nseg = "v.h5:raw"\n')
    with pytest.raises(ConfigError, match=match):
        load_dataset_config(tmp_path)


def test_a_table_that_is_not_a_file_name_is_named(tmp_path):
    _config(tmp_path, "[bboxes.b1]\ntable = 5\n")
    with pytest.raises(ConfigError, match=r"\[bboxes.b1\] table must be a file name in quotes"):
        load_dataset_config(tmp_path)


@pytest.mark.parametrize("value", ["[nan, 8, 8]", "[8, inf, 8]", "[8, 8, 0]", "[-8, 8, 8]", "[8, 8]", '["a", 8, 8]'])
def test_a_bad_voxel_size_is_refused_naming_the_file(tmp_path, value):
    cfg = _config(tmp_path, f"voxel_size_nm = {value}\n")
    with pytest.raises(ConfigError, match=f"{cfg}: voxel_size_nm"):
        load_dataset_config(tmp_path)


@pytest.mark.parametrize("value", ["[inf, 0, 0]", "[true, 1, 2]", "[1.5e400, 0, 0]"])
def test_a_bad_offset_is_named_not_an_overflow(tmp_path, value):
    _config(tmp_path, f"[bboxes.b1]\noffset_xyz = {value}\n")
    with pytest.raises(ConfigError, match=r"\[bboxes.b1\] offset_xyz must be a list of 3 numbers"):
        load_dataset_config(tmp_path)


def test_labels_that_are_not_a_table_are_named(tmp_path):
    _config(tmp_path, "labels = 5\n")
    with pytest.raises(ConfigError, match=r"\[labels\] must be a table like"):
        load_dataset_config(tmp_path)


def test_a_yaml_config_that_is_a_list_is_named(tmp_path):
    cfg = tmp_path / "synapse_dataset.yaml"
    cfg.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=f"{cfg}: the dataset config must be a mapping"):
        load_dataset_config(tmp_path)


def test_an_hdf5_key_that_does_not_exist_lists_the_datasets_and_keeps_other_bboxes(tmp_path):
    raw, seg, _ = small_volumes()
    write_h5(tmp_path / "v.h5", raw=raw, seg=seg)
    write_small_dataset(tmp_path, bboxes=("bbox1",))
    _config(tmp_path, '[bboxes.b2]\nraw = "v.h5:raw"\nseg = "v.h5:labels"\n')
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert list(ds.bboxes) == ["bbox1"] and len(ds.synapses) == 3
    assert any("b2: " in m and "no dataset 'labels'; datasets here: ['raw', 'seg']" in m for m in ds.report.fatal)


def test_a_file_that_is_not_hdf5_is_named(tmp_path):
    (tmp_path / "v.h5").write_bytes(b"not an hdf5 file at all")
    _config(tmp_path, '[bboxes.b1]\nraw = "v.h5:raw"\nseg = "v.h5:seg"\n')
    with pytest.raises(DatasetError, match=r"v.h5"):
        open_dataset(tmp_path, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0, -10.0])
def test_a_bad_voxel_size_attribute_excludes_the_bbox_naming_the_file(tmp_path, bad):
    import h5py

    raw, seg, _ = small_volumes()
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["raw"], f["seg"] = raw, seg
        f["raw"].attrs["resolution_nm_zyx"] = [10.0, bad, 10.0]
        f["seg"].attrs["resolution_nm_zyx"] = [10.0, bad, 10.0]
    _config(tmp_path, '[bboxes.b1]\nraw = "v.h5:raw"\nseg = "v.h5:seg"\n')
    with pytest.raises(DatasetError) as err:
        open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert "v.h5" in str(err.value) and "voxel_size_nm = [<z>, <y>, <x>]" in str(err.value)
