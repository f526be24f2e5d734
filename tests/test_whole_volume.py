"""Whole-volume datasets: one (huge, sparse) volume and a synapse table in absolute coordinates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorstore as ts

from synapse_core.data.dataset import DatasetError, open_dataset
from synapse_core.data.windows import read_box

#: A whole-brain-sized grid (z, y, x voxels at 8 nm): only metadata exists, no chunk is written.
BIG_SHAPE = (20000, 40000, 40000)
VOXEL = 8.0


def write_big_ome_zarr(folder: Path, dtype="uint8", block=None) -> None:
    """A zarr3 OME-Zarr (NGFF 0.5) of :data:`BIG_SHAPE`; ``block`` = ((z, y, x) start, array) is written."""
    store = ts.open({"driver": "zarr3", "kvstore": f"file://{folder}/0/",
                     "metadata": {"shape": list(BIG_SHAPE), "data_type": dtype,
                                  "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [64, 64, 64]}}}},
                    create=True).result()
    if block is not None:
        (z, y, x), data = block
        store[z:z + data.shape[0], y:y + data.shape[1], x:x + data.shape[2]].write(data).result()
    (folder / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {"ome": {
        "version": "0.5", "multiscales": [{"axes": [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"],
                                           "datasets": [{"path": "0", "coordinateTransformations": [
                                               {"type": "scale", "scale": [VOXEL] * 3}]}]}]}}}))


def synthetic_table(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` synapses in absolute nm (x, y, z columns), spread over the big volume, with a region column."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(1000, np.array(BIG_SHAPE[::-1]) * VOXEL - 1000, (n, 3))
    offset = np.array([40.0, 0.0, 0.0])
    df = pd.DataFrame({"synapse_id": np.arange(n, dtype=np.int64) + 10_000_000,
                       "region": np.where(np.arange(n) % 2, "medulla", "lobula")})
    for name, pts in {"c": centre, "pre": centre - offset, "post": centre + offset}.items():
        for i, axis in enumerate("xyz"):
            df[f"{name}_{axis}"] = pts[:, i]
    df["score"] = rng.uniform(0, 1, n)
    return df


def write_config(root: Path, table: str, extra_synapses: str = "", extra_volume: str = "") -> Path:
    cfg = root / "synapse_dataset.toml"
    cfg.write_text('[labels]\nmito = 1\nvesicle = 2\ncleft = 3\n'
                   '[volume]\nraw = { path = "raw.ome.zarr" }\nseg = { path = "seg.ome.zarr" }\n' + extra_volume
                   + f'[synapses]\npath = "{table}"\nunits = "nm"\nid = "synapse_id"\n'
                   'central = ["c_x", "c_y", "c_z"]\nside_1 = ["pre_x", "pre_y", "pre_z"]\n'
                   'side_2 = ["post_x", "post_y", "post_z"]\n' + extra_synapses)
    return cfg


@pytest.fixture(scope="module")
def big_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("whole")
    block = np.arange(16 * 16 * 16, dtype=np.uint32).reshape(16, 16, 16) % 251
    write_big_ome_zarr(root / "raw.ome.zarr", "uint8", ((1000, 2000, 3000), block.astype(np.uint8)))
    write_big_ome_zarr(root / "seg.ome.zarr", "uint32")
    return root


@pytest.mark.slow
def test_a_table_of_100k_synapses_in_nm_validates_and_opens(big_root, tmp_path):
    n = 100_000
    df = synthetic_table(n)
    df.loc[5, "c_x"] = np.nan                      # missing coordinate
    df.loc[6, "pre_z"] = 1e12                      # outside the volume
    df.loc[7, "synapse_id"] = df.loc[8, "synapse_id"]  # duplicate id
    df.to_parquet(big_root / "synapses.parquet")
    ds = open_dataset(write_config(big_root, "synapses.parquet"), cache_dir=tmp_path)
    assert (ds.report.n_rows_total, ds.report.n_rows_valid) == (n, n - 3)
    issues = ds.report.row_issues.set_index("row")
    assert issues.loc[7, "problem"].startswith("missing or non-numeric central")
    assert issues.loc[8, "problem"].startswith("side_1 point outside the volume")
    assert issues.loc[10, "problem"].startswith("duplicate")
    assert list(ds.bboxes) == ["volume"] and ds.bboxes["volume"].shape_zyx == BIG_SHAPE


def test_nm_coordinates_become_voxel_indices_of_the_volume(big_root, tmp_path):
    df = synthetic_table(5)
    df.to_parquet(big_root / "five.parquet")
    ds = open_dataset(write_config(big_root, "five.parquet"), cache_dir=tmp_path)
    want = np.floor(df[["c_x", "c_y", "c_z"]].to_numpy() / VOXEL).astype(int)
    got = ds.synapses[["central_coord_1", "central_coord_2", "central_coord_3"]].to_numpy()
    np.testing.assert_array_equal(got, want)
    assert list(ds.synapses["Var1"]) == [str(v) for v in df["synapse_id"]]
    assert list(ds.synapses["score"]) == list(df["score"])  # extra columns are carried through


def test_group_column_makes_one_bbox_per_group_over_the_same_volume(big_root, tmp_path):
    synthetic_table(10).to_parquet(big_root / "ten.parquet")
    ds = open_dataset(write_config(big_root, "ten.parquet", 'group = "region"\n'), cache_dir=tmp_path)
    assert sorted(ds.bboxes) == ["lobula", "medulla"]
    assert ds.bboxes["lobula"].raw == ds.bboxes["medulla"].raw
    assert ds.report.bboxes.set_index("bbox_name")["n_synapses"].to_dict() == {"lobula": 5, "medulla": 5}


def test_voxel_table_in_zyx_order_with_an_offset_is_mapped_to_the_volume(big_root, tmp_path):
    rows = pd.DataFrame({"z": [1005], "y": [2006], "x": [3007], "z1": [1005], "y1": [2006], "x1": [3000],
                         "z2": [1005], "y2": [2006], "x2": [3014]})
    rows.to_csv(big_root / "zyx.csv", index=False)
    cfg = big_root / "synapse_dataset.toml"
    cfg.write_text('[volume]\nraw = { path = "raw.ome.zarr" }\nseg = { path = "seg.ome.zarr" }\n'
                   '[synapses]\npath = "zyx.csv"\nunits = "voxel"\naxis_order = "zyx"\noffset = [-5, -6, -7]\n'
                   'voxel_size_nm = [4, 4, 4]\n'
                   'central = ["z", "y", "x"]\nside_1 = ["z1", "y1", "x1"]\nside_2 = ["z2", "y2", "x2"]\n')
    ds = open_dataset(cfg, cache_dir=tmp_path)
    # (1000, 2000, 3000) voxels of 4 nm, centre at +0.5, in 8 nm voxels: (500, 1000, 1500)
    row = ds.synapses.iloc[0]
    assert (row["central_coord_3"], row["central_coord_2"], row["central_coord_1"]) == (500, 1000, 1500)
    assert ds.synapses.iloc[0]["Var1"] == "1"  # no id column: the row number


def test_a_crop_window_of_the_whole_volume_reads_the_written_block(big_root, tmp_path):
    synthetic_table(3).to_parquet(big_root / "three.parquet")
    ds = open_dataset(write_config(big_root, "three.parquet"), cache_dir=tmp_path)
    window = read_box(ds.bboxes["volume"].raw, (1000, 2000, 3000), (1016, 2016, 3016))
    expected = (np.arange(16 ** 3).reshape(16, 16, 16) % 251).astype(np.uint8)
    np.testing.assert_array_equal(window, expected)


def test_link_out_uses_the_finest_level_voxel_of_the_synapse(big_root, tmp_path):
    synthetic_table(3).to_parquet(big_root / "three.parquet")
    cfg = write_config(big_root, "three.parquet")
    cfg.write_text('link_template = "https://wk.example.org/d#{x},{y},{z},0,1"\n' + cfg.read_text())
    ds = open_dataset(cfg, cache_dir=tmp_path)
    assert ds.link_url("volume", 10, 20, 30) == "https://wk.example.org/d#10,20,30,0,1"


def test_a_missing_mapped_column_is_named_with_the_columns_the_table_has(big_root, tmp_path):
    synthetic_table(3).drop(columns=["pre_y"]).to_parquet(big_root / "bad.parquet")
    with pytest.raises(DatasetError, match=r"\['pre_y'\] not in the table; it has"):
        open_dataset(write_config(big_root, "bad.parquet"), cache_dir=tmp_path)


def test_volume_and_bboxes_in_one_config_are_refused(big_root, tmp_path):
    cfg = write_config(big_root, "three.parquet")
    cfg.write_text(cfg.read_text() + '[bboxes.b1]\noffset_xyz = [0, 0, 0]\n')
    with pytest.raises(DatasetError, match=r"\[bboxes\] cannot be combined with \[volume\]"):
        open_dataset(cfg, cache_dir=tmp_path)


def test_a_volume_outside_the_data_roots_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    write_big_ome_zarr(outside / "raw.ome.zarr")
    root = tmp_path / "DATA"
    root.mkdir()
    synthetic_table(3).to_parquet(root / "three.parquet")
    cfg = write_config(root, "three.parquet")
    cfg.write_text(cfg.read_text().replace('path = "raw.ome.zarr"', 'path = "../elsewhere/raw.ome.zarr"'))
    with pytest.raises(DatasetError, match=r"\[volume\] raw: .* outside the allowed data roots"):
        open_dataset(cfg, cache_dir=tmp_path / "cache")


def test_a_remote_volume_is_refused_on_a_server_with_data_roots_unless_allowed(tmp_path, monkeypatch):
    root = tmp_path / "DATA"
    root.mkdir()
    synthetic_table(3).to_parquet(root / "three.parquet")
    cfg = write_config(root, "three.parquet")
    cfg.write_text(cfg.read_text().replace('path = "raw.ome.zarr"', 'path = "https://169.254.169.254/raw"'))
    monkeypatch.setenv("SYNAPSE_DATA_ROOTS", str(tmp_path))
    monkeypatch.delenv("SYNAPSE_ALLOW_REMOTE_DATA", raising=False)
    with pytest.raises(DatasetError, match=r"\[volume\] raw: https://169.254.169.254/raw is a remote URL.*"
                                           r"SYNAPSE_ALLOW_REMOTE_DATA=1"):
        open_dataset(cfg, cache_dir=tmp_path / "cache")


def test_the_slice_viewer_reads_a_bounded_window_around_the_synapse(big_root):
    from synapse_core.data.formats import open_volume
    from synapse_core.data.windows import read_slice, view_window

    window = view_window(BIG_SHAPE, center_yx=(2008, 3008), max_yx=(64, 64))
    assert window == (1976, 2040, 2976, 3040)
    image = read_slice(open_volume(str(big_root / "raw.ome.zarr")).source, 1005, window)
    expected = (np.arange(16 ** 3).reshape(16, 16, 16) % 251).astype(np.uint8)[5]
    assert image.shape == (64, 64)
    np.testing.assert_array_equal(image[24:40, 24:40], expected)
    assert image[:24].max() == 0 and image[40:].max() == 0


@pytest.mark.slow
def test_data_page_opens_a_whole_volume_dataset_and_shows_a_window_around_a_synapse(big_root, tmp_path,
                                                                                     monkeypatch):
    from app_helpers import configure, metrics, open_page

    synthetic_table(50).to_parquet(big_root / "fifty.parquet")
    write_config(big_root, "fifty.parquet")
    configure(monkeypatch, big_root, tmp_path / "cache")
    at = open_page()
    assert metrics(at)["Valid synapses"] == "50"
    first = synthetic_table(50).iloc[0]
    at.selectbox(key="view_jump").set_value(str(first["synapse_id"])).run()
    assert not at.exception, at.exception
    assert at.slider(key="w_view_z").value == int(first["c_z"] // VOXEL)
    assert any(c.value.startswith(f"volume, z = {int(first['c_z'] // VOXEL)}") and "1 synapse centres" in c.value
               for c in at.caption)


@pytest.mark.slow
def test_data_page_lists_at_most_10000_rows_of_a_large_table_and_jumps_by_typed_id(big_root, tmp_path, monkeypatch):
    from app_helpers import configure, open_page

    df = synthetic_table(20_000)
    df.to_parquet(big_root / "twenty_k.parquet")
    write_config(big_root, "twenty_k.parquet")
    configure(monkeypatch, big_root, tmp_path / "cache")
    at = open_page()
    assert len(at.dataframe[-1].value) == 10_000
    assert any("The first 10,000 of 20,000 rows" in c.value for c in at.caption)
    target = df.iloc[12_345]
    at.text_input(key="view_jump").set_value(str(target["synapse_id"])).run()
    assert not at.exception, at.exception
    assert at.slider(key="w_view_z").value == int(target["c_z"] // VOXEL)


def test_the_report_says_a_whole_volume_mask_is_not_scanned(big_root, tmp_path):
    synthetic_table(3).to_parquet(big_root / "three.parquet")
    cfg = write_config(big_root, "three.parquet")
    cfg.write_text(cfg.read_text().replace('seg = { path = "seg.ome.zarr" }\n',
                                           'seg = { path = "seg.ome.zarr" }\nmask = { path = "seg.ome.zarr" }\n'))
    ds = open_dataset(cfg, cache_dir=tmp_path)
    assert "ids in the mask: not counted (a whole volume's mask is not scanned)" in ds.report.text()
