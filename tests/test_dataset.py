"""Data layer: every accepted layout, HDF5/Zarr sources, slice order, dtypes, config."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr

from conftest import (
    MEDULLA_SITES_CSV,
    MEDULLA_SITES_XLSX,
    small_volumes,
    synapse_rows,
    write_medulla_config,
    write_small_dataset,
    write_stack,
)
from synapse_core.data.dataset import open_dataset
from synapse_core.data.labels import LabelIds


def test_demo_layout_opens_every_bbox_and_row(demo_dataset):
    assert sorted(demo_dataset.bboxes) == ["bbox1", "bbox2", "bbox3", "bbox4"]
    assert len(demo_dataset.synapses) == 60
    assert demo_dataset.report.ok


def test_demo_labels_follow_the_original_per_bbox_table(demo_dataset):
    assert demo_dataset.bboxes["bbox1"].labels == LabelIds(mito=5, vesicle=6, cleft=7, cleft2=7)
    assert demo_dataset.bboxes["bbox2"].labels == LabelIds(mito=1, vesicle=3, cleft=2, cleft2=4)


def test_extra_table_columns_are_carried_through(demo_dataset):
    assert list(demo_dataset.synapses.columns[:2]) == ["bbox_name", "Var1"]
    assert (demo_dataset.synapses["annotator"] == "demo").all()


def test_tiff_volume_reads_the_same_voxels_as_written(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    raw, seg, mask = small_volumes()
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    b = ds.bboxes["bbox1"]
    np.testing.assert_array_equal(b.raw.open()[:], raw)
    np.testing.assert_array_equal(b.seg.open()[:], seg)
    np.testing.assert_array_equal(b.mask.open()[:], mask)


def test_original_layout_with_bbox_underscore_mask_folder_and_tables_beside_volumes(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("SYNAPSE_DATA_ROOTS", str(data))  # the mask folder next to the root is read inside a data root
    root = data / "7_bboxes_plus_seg"
    raw, seg, mask = small_volumes()
    write_stack(root / "raw" / "bbox1", raw)
    write_stack(root / "seg" / "bbox1", seg)
    write_stack(data / "vesicle_cloud__syn_interface__mitochondria_annotation" / "bbox_1", mask)
    synapse_rows().to_excel(root / "bbox1.xlsx", index=False)
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    assert ds.bboxes["bbox1"].mask is not None
    np.testing.assert_array_equal(ds.bboxes["bbox1"].mask.open()[:], mask)
    assert list(ds.synapses["Var1"]) == ["syn_1", "syn_2", "syn_3"]


def test_combined_synapse_info_csv_with_bbox_name_column(tmp_path):
    root = write_small_dataset(tmp_path / "DATA", bboxes=("bbox1", "bbox2"))
    for f in (root / "excel").iterdir():
        f.unlink()
    combined = pd.concat([synapse_rows().assign(bbox_name="bbox1"), synapse_rows(2).assign(bbox_name="bbox2")])
    combined.to_csv(root / "synapse_info.csv", index=False)
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    assert ds.synapses.groupby("bbox_name").size().to_dict() == {"bbox1": 3, "bbox2": 2}


def test_slices_are_read_in_natural_order(tmp_path):
    raw = np.zeros((12, 4, 4), np.uint8)
    for z in range(12):
        raw[z] = z + 1  # value = slice number
    names = [f"slice_{z + 1}.tif" for z in range(12)]  # slice_1 .. slice_12, not zero-padded
    write_stack(tmp_path / "raw" / "b", raw, names)
    write_stack(tmp_path / "seg" / "b", np.ones_like(raw), names)
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert list(ds.bboxes["b"].raw.open()[:, 0, 0]) == list(range(1, 13))


def test_rgb_raw_slices_become_gray_uint8(tmp_path):
    rgb = np.zeros((2, 4, 4, 3), np.uint8)
    rgb[..., 0] = 100  # pure red 100 -> luminance 0.2989 * 100
    write_stack(tmp_path / "raw" / "b", rgb)
    write_stack(tmp_path / "seg" / "b", np.ones((2, 4, 4), np.uint8))
    vol = open_dataset(tmp_path, cache_dir=tmp_path / "cache").bboxes["b"].raw.open()
    assert vol.dtype == np.uint8 and vol.shape == (2, 4, 4)
    assert int(vol[0, 0, 0]) == 30


@pytest.mark.parametrize("max_id, dtype", [(200, np.uint8), (70000, np.uint32), (1000, np.uint16)])
def test_seg_is_kept_in_the_smallest_integer_type(tmp_path, max_id, dtype):
    seg = np.ones((2, 4, 4), np.uint32)
    seg[1, 2, 2] = max_id
    write_stack(tmp_path / "raw" / "b", np.zeros((2, 4, 4), np.uint8))
    write_stack(tmp_path / "seg" / "b", seg)
    vol = open_dataset(tmp_path, cache_dir=tmp_path / "cache").bboxes["b"].seg.open()
    assert vol.dtype == dtype
    assert int(vol[1, 2, 2]) == max_id


def test_tiff_conversion_is_reused_on_the_second_open(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    first = open_dataset(root, cache_dir=tmp_path / "cache").bboxes["bbox1"].raw
    stamp = (tmp_path / "cache" / "volumes").stat().st_mtime_ns
    marker = next((tmp_path / "cache" / "volumes" / "bbox1-raw").iterdir()) / ".complete"
    before = marker.stat().st_mtime_ns
    second = open_dataset(root, cache_dir=tmp_path / "cache").bboxes["bbox1"].raw
    assert second == first
    assert marker.stat().st_mtime_ns == before
    assert (tmp_path / "cache" / "volumes").stat().st_mtime_ns == stamp  # nothing new was written


@pytest.mark.shared_data
@pytest.mark.parametrize("table", [MEDULLA_SITES_CSV, MEDULLA_SITES_XLSX], ids=["csv", "xlsx"])
def test_medulla_hdf5_with_contact_site_table_loads_without_conversion(tmp_path, table):
    write_medulla_config(tmp_path, table)
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    b = ds.bboxes["medulla"]
    assert b.raw.kind == "hdf5" and b.shape_zyx == (250, 250, 250)
    assert len(ds.synapses) == 60 and ds.voxel_size_nm == (10.0, 10.0, 10.0)
    assert not (tmp_path / "cache" / "volumes").exists()


@pytest.mark.shared_data
def test_medulla_side_points_index_the_body_columns_as_xyz(tmp_path):
    write_medulla_config(tmp_path)
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    seg = ds.bboxes["medulla"].seg.open()
    r = ds.synapses.iloc[0]
    assert int(seg[r.side_1_coord_3, r.side_1_coord_2, r.side_1_coord_1]) == r.body_1
    assert int(seg[r.side_2_coord_3, r.side_2_coord_2, r.side_2_coord_1]) == r.body_2


@pytest.mark.shared_data
def test_config_file_path_can_be_given_instead_of_a_folder(tmp_path):
    cfg = write_medulla_config(tmp_path)
    ds = open_dataset(cfg, cache_dir=tmp_path / "cache")
    assert list(ds.bboxes) == ["medulla"]


def test_zarr_volumes_and_yaml_config(tmp_path):
    raw, seg, mask = small_volumes()
    store = zarr.open_group(str(tmp_path / "vols.zarr"), mode="w")
    for name, vol in (("raw", raw), ("seg", seg), ("mask", mask)):
        store.create_array(name, data=vol, chunks=(4, 12, 12))
    synapse_rows().to_csv(tmp_path / "syn.csv", index=False)
    (tmp_path / "synapse_dataset.yaml").write_text(
        "bboxes:\n  z1:\n"
        "    raw: {path: vols.zarr, key: raw}\n    seg: {path: vols.zarr, key: seg}\n"
        "    mask: {path: vols.zarr, key: mask}\n    table: syn.csv\n"
        "    labels: {mito: 9, vesicle: 6, cleft: 7}\n"
    )
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    b = ds.bboxes["z1"]
    assert b.raw.kind == "zarr" and b.labels == LabelIds(mito=9, vesicle=6, cleft=7, cleft2=7)
    np.testing.assert_array_equal(b.mask.open()[:], mask)
    assert len(ds.synapses) == 3


def test_link_url_adds_the_bbox_offset(demo_dataset):
    url = demo_dataset.link_url("bbox2", 10, 20, 30)
    assert url == "https://webknossos.example.org/datasets/demo/view#2010,2020,3030,0,1.0"


def test_volume_source_is_picklable_and_reopens_in_the_same_place(demo_dataset):
    import pickle

    src = demo_dataset.bboxes["bbox1"].raw
    clone = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(clone.open()[5, 10:20, 10:20], src.open()[5, 10:20, 10:20])


def test_demo_masks_agree_with_the_original_label_table_so_no_label_warnings(demo_dataset):
    assert demo_dataset.bboxes["bbox3"].mask_ids == (6, 7, 8, 9)
    assert demo_dataset.bboxes["bbox3"].labels_source == "the original tool's label table (bbox3)"
    assert not [w for w in demo_dataset.report.warnings if "mask" in w]


def test_voxel_size_can_differ_per_bbox_and_the_dataset_says_it_has_none_shared(tmp_path):
    raw, seg, mask = small_volumes()
    store = zarr.open_group(str(tmp_path / "vols.zarr"), mode="w")
    for name, vol in (("raw", raw), ("seg", seg)):
        store.create_array(name, data=vol, chunks=(4, 12, 12))
    synapse_rows().to_csv(tmp_path / "syn.csv", index=False)
    text = "voxel_size_nm = [8, 8, 8]\n"
    for b, extra in (("iso", ""), ("sstem", "voxel_size_nm = [40, 4, 4]\n")):
        text += f'[bboxes.{b}]\nraw = "vols.zarr:raw"\nseg = "vols.zarr:seg"\ntable = "syn.csv"\n{extra}'
    (tmp_path / "synapse_dataset.toml").write_text(text)
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert ds.bboxes["iso"].voxel_size_nm == (8.0, 8.0, 8.0) and ds.bboxes["sstem"].voxel_size_nm == (40.0, 4.0, 4.0)
    assert ds.voxel_size_nm is None and len(ds.synapses) == 6
    assert ("bboxes have different voxel sizes (iso 8×8×8 nm (z, y, x); sstem 40×4×4 nm (z, y, x)): dataset-wide "
            "measurements use voxel units; use each bbox's own voxel_size_nm") in ds.report.warnings


@pytest.mark.shared_data
def test_medulla_without_a_configured_voxel_size_takes_it_from_the_hdf5_attribute(tmp_path):
    from conftest import MEDULLA_H5

    (tmp_path / "synapse_dataset.toml").write_text(
        f'[bboxes.medulla]\nraw = {{ path = "{MEDULLA_H5}", key = "raw" }}\n'
        f'seg = {{ path = "{MEDULLA_H5}", key = "gt_bodies" }}\ntable = "{MEDULLA_SITES_CSV}"\n')
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert ds.bboxes["medulla"].voxel_size_nm == (10.0, 10.0, 10.0)
    assert ds.bboxes["medulla"].voxel_size_source == "training_sample2.h5:raw attribute resolution_nm_zyx"


def test_per_bbox_parquet_table_is_read_like_excel(tmp_path):
    root = write_small_dataset(tmp_path / "DATA")
    (root / "excel" / "bbox1.xlsx").unlink()
    synapse_rows().assign(Var1=["007", "008", "009"]).to_parquet(root / "excel" / "bbox1.parquet")
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    assert list(ds.synapses["Var1"]) == ["007", "008", "009"]
    assert list(ds.synapses["note"]) == ["row 1", "row 2", "row 3"]
