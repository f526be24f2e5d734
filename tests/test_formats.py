"""Chunked formats (OME-Zarr, N5, Neuroglancer precomputed, WebKnossos zarr3) written with TensorStore
give the same crops as the same voxels stored as TIFF bboxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorstore as ts
from conftest import write_stack

from synapse_core.crops.build import crop_synapse
from synapse_core.crops.settings import CropSettings
from synapse_core.data.dataset import DatasetError, open_dataset
from synapse_core.data.formats import choose_level, detect_format, open_volume
from synapse_core.data.volumes import VolumeError
from synapse_core.data.windows import read_box

SHAPE = (24, 40, 40)  # z, y, x
VOXEL = 8.0
CENTRES = {"syn_1": (12, 20, 20), "syn_2": (12, 12, 20), "syn_3": (9, 28, 21)}
LABELS = "[labels]\nmito = 5\nvesicle = 6\ncleft = 7\n"


def volumes(seed=0):
    """raw uint8 (seeded noise and a darker vesicle cloud), seg uint32 (neurons 1 | 2 split at x 20,
    background border) and mask uint8 (vesicles 6 on side 1, cleft 7 at the contact), all (z, y, x)."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(60, 200, SHAPE, dtype=np.uint8)
    seg = np.zeros(SHAPE, np.uint32)
    seg[1:-1, 1:-1, 1:20] = 1
    seg[1:-1, 1:-1, 20:-1] = 2
    mask = np.zeros(SHAPE, np.uint8)
    mask[6:18, 8:32, 12:18] = 6
    mask[6:18, 8:32, 19:21] = 7
    raw[mask == 6] //= 2
    return {"raw": raw, "seg": seg, "mask": mask}


def down(a):
    """Level 1: every second voxel (z, y, x), as a label-safe downsampling."""
    return np.ascontiguousarray(a[::2, ::2, ::2])


def table_rows(level=0):
    rows = []
    for var1, (z, y, x) in CENTRES.items():
        pts = {"central": (z, y, x), "side_1": (z, y, x - 5), "side_2": (z, y, x + 5)}
        row = {"Var1": var1}
        for name, (pz, py, px) in pts.items():
            f = 2 ** level
            row.update({f"{name}_coord_1": px // f, f"{name}_coord_2": py // f, f"{name}_coord_3": pz // f})
        rows.append(row)
    return pd.DataFrame(rows)


def write_tiff_dataset(root: Path, level=0) -> Path:
    vols = volumes()
    for kind, a in vols.items():
        write_stack(root / kind / "bbox1", down(a) if level else a)
    (root / "excel").mkdir(parents=True)
    table_rows(level).to_csv(root / "excel" / "bbox1.csv", index=False)
    v = VOXEL * 2 ** level
    (root / "synapse_dataset.toml").write_text(f"voxel_size_nm = [{v}, {v}, {v}]\n" + LABELS)
    return root


def nm_table(path: Path, offset_nm_zyx=(0, 0, 0)) -> Path:
    """The synapses as a Parquet table in absolute nm (voxel centres, x/y/z columns of our own names)."""
    rows = []
    for var1, (z, y, x) in CENTRES.items():
        row = {"synapse_id": var1}
        for name, (pz, py, px) in {"c": (z, y, x), "pre": (z, y, x - 5), "post": (z, y, x + 5)}.items():
            nm = (np.array([pz, py, px]) + 0.5) * VOXEL + np.asarray(offset_nm_zyx)
            row.update({f"{name}_x": nm[2], f"{name}_y": nm[1], f"{name}_z": nm[0]})
        rows.append(row)
    pd.DataFrame(rows).to_parquet(path)
    return path


def whole_volume_config(root: Path, volume_lines: str, table: Path) -> Path:
    cfg = root / "synapse_dataset.toml"
    cfg.write_text(LABELS + "[volume]\n" + volume_lines + "\n[synapses]\n"
                   f'path = "{table.name}"\nunits = "nm"\nid = "synapse_id"\n'
                   'central = ["c_x", "c_y", "c_z"]\nside_1 = ["pre_x", "pre_y", "pre_z"]\n'
                   'side_2 = ["post_x", "post_y", "post_z"]\n')
    return cfg


def ts_write(spec: dict, data: np.ndarray) -> None:
    store = ts.open(spec, create=True, open=True).result()  # open: a precomputed info gains a scale
    store[ts.d[:].translate_to[0]].write(data).result()


# ----------------------------------------------------------------------------------------- writers


def write_ome_zarr(folder: Path, a: np.ndarray, translation_nm=(0.0, 0.0, 0.0)) -> None:
    """OME-Zarr 0.4 (Zarr v2) with levels "0" (8 nm) and "1" (16 nm)."""
    datasets = []
    for i, level in enumerate((a, down(a))):
        ts_write({"driver": "zarr", "kvstore": f"file://{folder}/{i}/",
                  "metadata": {"shape": list(level.shape), "chunks": [8, 16, 16], "dtype": level.dtype.str}}, level)
        datasets.append({"path": str(i), "coordinateTransformations": [
            {"type": "scale", "scale": [VOXEL * 2 ** i] * 3},
            {"type": "translation", "translation": list(translation_nm)}]})
    (folder / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (folder / ".zattrs").write_text(json.dumps({"multiscales": [{
        "version": "0.4", "name": folder.name, "datasets": datasets,
        "axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"]}]}))


def write_n5(folder: Path, a: np.ndarray) -> None:
    """N5 group with s0, s1 arrays stored x, y, z (the N5 convention) and the resolution at the group."""
    for i, level in enumerate((a, down(a))):
        xyz = np.ascontiguousarray(level.transpose(2, 1, 0))
        ts_write({"driver": "n5", "kvstore": f"file://{folder}/s{i}/",
                  "metadata": {"dimensions": list(xyz.shape), "blockSize": [16, 16, 8], "dataType": str(xyz.dtype),
                               "compression": {"type": "gzip"}}}, xyz)
        attrs = json.loads((folder / f"s{i}" / "attributes.json").read_text())
        attrs["downsamplingFactors"] = [2 ** i] * 3
        (folder / f"s{i}" / "attributes.json").write_text(json.dumps(attrs))
    (folder / "attributes.json").write_text(json.dumps({"n5": "2.0.0", "resolution": [VOXEL] * 3, "units": ["nm"] * 3,
                                                        "scales": [[1, 1, 1], [2, 2, 2]]}))


def write_precomputed(folder: Path, a: np.ndarray, voxel_offset_xyz=(0, 0, 0)) -> None:
    """Neuroglancer precomputed volume (raw encoding) with two scales (8 and 16 nm)."""
    kind = "image" if a.dtype == np.uint8 else "segmentation"
    for i, level in enumerate((a, down(a))):
        xyzc = np.ascontiguousarray(level.transpose(2, 1, 0))[..., None]
        off = [int(v) // 2 ** i for v in voxel_offset_xyz]
        ts_write({"driver": "neuroglancer_precomputed", "kvstore": f"file://{folder}/",
                  "multiscale_metadata": {"type": kind, "data_type": str(a.dtype), "num_channels": 1},
                  "scale_metadata": {"size": list(xyzc.shape[:3]), "resolution": [VOXEL * 2 ** i] * 3,
                                     "voxel_offset": off, "chunk_size": [16, 16, 8], "encoding": "raw"}}, xyzc)


def write_webknossos(folder: Path, vols: dict, top_left_xyz=(0, 0, 0)) -> None:
    """WebKnossos dataset with zarr3 layers (c, x, y, z arrays) at mags 1 and 2."""
    layers = []
    for name, a in vols.items():
        mags = []
        for i, level in enumerate((a, down(a))):
            mag = 2 ** i
            cxyz = np.ascontiguousarray(level.transpose(2, 1, 0))[None]
            ts_write({"driver": "zarr3", "kvstore": f"file://{folder}/{name}/{mag}/",
                      "metadata": {"shape": list(cxyz.shape), "data_type": str(a.dtype),
                                   "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 16, 16, 8]}},
                                   "dimension_names": ["c", "x", "y", "z"]}}, cxyz)
            mags.append({"mag": [mag] * 3, "path": f"./{name}/{mag}"})
        layers.append({"name": name, "category": "color" if name == "raw" else "segmentation",
                       "dataFormat": "zarr3", "elementClass": str(a.dtype), "mags": mags,
                       "boundingBox": {"topLeft": list(top_left_xyz), "width": a.shape[2], "height": a.shape[1],
                                       "depth": a.shape[0]}})
    (folder / "datasource-properties.json").write_text(json.dumps({
        "id": {"name": folder.name, "team": ""}, "scale": {"factor": [VOXEL] * 3, "unit": "nanometer"},
        "dataLayers": layers}))


def ome_dataset(root: Path) -> Path:
    vols = volumes()
    offset = (80.0, 160.0, 240.0)
    for kind, a in vols.items():
        write_ome_zarr(root / f"{kind}.ome.zarr", a, offset)
    table = nm_table(root / "synapses.parquet", offset)
    lines = "\n".join(f'{k} = {{ path = "{k}.ome.zarr" }}' for k in vols)
    return whole_volume_config(root, lines, table)


def n5_dataset(root: Path) -> Path:
    vols = volumes()
    for kind, a in vols.items():
        write_n5(root / "vol.n5" / kind, a)
    table = nm_table(root / "synapses.parquet")
    lines = "\n".join(f'{k} = {{ path = "vol.n5", key = "{k}", format = "n5" }}' for k in vols)
    return whole_volume_config(root, lines, table)


def precomputed_dataset(root: Path) -> Path:
    vols = volumes()
    off_xyz = (16, 32, 8)
    for kind, a in vols.items():
        write_precomputed(root / kind, a, off_xyz)
    table = nm_table(root / "synapses.parquet", tuple(v * VOXEL for v in off_xyz[::-1]))
    lines = "\n".join(f'{k} = {{ path = "{k}" }}' for k in vols)
    return whole_volume_config(root, lines, table)


def webknossos_dataset(root: Path) -> Path:
    vols = volumes()
    top_left = (32, 16, 8)
    write_webknossos(root / "wk", vols, top_left)
    table = nm_table(root / "synapses.parquet", tuple(v * VOXEL for v in top_left[::-1]))
    lines = "\n".join(f'{k} = {{ path = "wk", key = "{k}" }}' for k in vols)
    return whole_volume_config(root, lines, table)


WRITERS = {"ome-zarr": ome_dataset, "n5": n5_dataset, "precomputed": precomputed_dataset,
           "webknossos": webknossos_dataset}
SETTINGS = CropSettings(size=16, segmentation_type=10, voxel_size_nm=VOXEL)


@pytest.fixture(scope="module")
def tiff_dataset(tmp_path_factory):
    root = write_tiff_dataset(tmp_path_factory.mktemp("tiff") / "DATA")
    return open_dataset(root, cache_dir=tmp_path_factory.mktemp("cache"))


def assert_same_crops(ds, reference, settings, ref_bbox="bbox1"):
    for var1 in CENTRES:
        got = crop_synapse(ds, "volume", var1, settings)
        want = crop_synapse(reference, ref_bbox, var1, settings)
        assert type(got).__name__ == "SynapseCrop" and type(want).__name__ == "SynapseCrop", (got, want)
        np.testing.assert_array_equal(got.raw, want.raw)
        np.testing.assert_array_equal(got.mask, want.mask)
        np.testing.assert_array_equal(got.blended, want.blended)
        assert got.presynaptic.side == want.presynaptic.side


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_crops_from_each_format_equal_the_crops_from_tiff_bboxes(fmt, tmp_path, tiff_dataset):
    ds = open_dataset(WRITERS[fmt](tmp_path), cache_dir=tmp_path / "cache")
    assert ds.bboxes["volume"].raw.kind == fmt
    assert ds.bboxes["volume"].voxel_size_nm == (VOXEL, VOXEL, VOXEL)
    assert list(ds.synapses["Var1"]) == list(CENTRES)
    assert_same_crops(ds, tiff_dataset, SETTINGS)


@pytest.mark.parametrize("fmt", ["ome-zarr", "precomputed"])
def test_format_is_detected_from_its_metadata(fmt, tmp_path):
    WRITERS[fmt](tmp_path)
    folder = tmp_path / ("raw.ome.zarr" if fmt == "ome-zarr" else "raw")
    assert detect_format(str(folder)) == fmt


def test_ome_zarr_reads_the_level_closest_to_the_target_voxel_size(tmp_path, tmp_path_factory):
    cfg = ome_dataset(tmp_path)
    cfg.write_text(cfg.read_text().replace("[volume]\n", "[volume]\ntarget_voxel_size_nm = [16, 16, 16]\n"))
    ds = open_dataset(cfg, cache_dir=tmp_path / "cache")
    assert ds.whole_volume.level == "1"
    assert ds.bboxes["volume"].voxel_size_nm == (16.0, 16.0, 16.0)
    reference = open_dataset(write_tiff_dataset(tmp_path_factory.mktemp("tiff16") / "DATA", level=1),
                             cache_dir=tmp_path / "cache")
    settings = CropSettings(size=8, segmentation_type=10, voxel_size_nm=16.0)
    assert_same_crops(ds, reference, settings)


def test_ome_zarr_voxel_size_and_offset_come_from_coordinate_transformations(tmp_path):
    write_ome_zarr(tmp_path / "em.ome.zarr", volumes()["raw"], (80.0, 160.0, 240.0))
    vol = open_volume(str(tmp_path / "em.ome.zarr"), key="1")
    assert (vol.level, vol.voxel_size_nm, vol.offset_nm) == ("1", (16.0, 16.0, 16.0), (80.0, 160.0, 240.0))
    assert vol.shape_zyx == (12, 20, 20)


def test_precomputed_window_is_read_in_z_y_x_from_the_voxel_offset(tmp_path):
    raw = volumes()["raw"]
    write_precomputed(tmp_path / "raw", raw, voxel_offset_xyz=(16, 32, 8))
    vol = open_volume(f"file://{tmp_path / 'raw'}")
    assert vol.offset_nm == (64.0, 256.0, 128.0)
    np.testing.assert_array_equal(read_box(vol.source, (3, 5, 7), (9, 13, 17)), raw[3:9, 5:13, 7:17])


def test_n5_voxel_size_is_resolution_times_downsampling_factors(tmp_path):
    write_n5(tmp_path / "raw.n5", volumes()["raw"])
    vol = open_volume(str(tmp_path / "raw.n5"), key="s1")
    assert vol.voxel_size_nm == (16.0, 16.0, 16.0) and vol.shape_zyx == (12, 20, 20)


def test_level_choice_takes_the_coarsest_level_not_coarser_than_the_target():
    sizes = [(8, 8, 8), (16, 16, 16), (32, 32, 32)]
    assert [choose_level(sizes, t) for t in (None, 4, 8, 20, 40)] == [0, 0, 0, 1, 2]


def test_webknossos_wkw_layer_is_refused_with_the_conversion_to_do(tmp_path):
    folder = tmp_path / "wk"
    folder.mkdir()
    (folder / "datasource-properties.json").write_text(json.dumps({
        "scale": [8, 8, 8], "dataLayers": [{"name": "color", "dataFormat": "wkw", "mags": [{"mag": [1, 1, 1]}]}]}))
    with pytest.raises(VolumeError, match="stored as 'wkw'.*zarr3"):
        open_volume(str(folder))


@pytest.mark.slow
def test_unreachable_remote_volume_says_it_cannot_be_reached(tmp_path, monkeypatch):
    monkeypatch.setattr("synapse_core.data.formats.REMOTE_TIMEOUT_S", 5.0)
    with pytest.raises(VolumeError, match="cannot reach this remote volume.*network access"):
        open_volume("https://synapse-data.invalid/em", format="precomputed")


def test_volumes_of_different_shapes_are_refused_naming_both(tmp_path):
    cfg = ome_dataset(tmp_path)
    write_ome_zarr(tmp_path / "narrow.ome.zarr", volumes()["seg"][:, :, :32])
    cfg.write_text(cfg.read_text().replace('seg = { path = "seg.ome.zarr" }', 'seg = { path = "narrow.ome.zarr" }'))
    with pytest.raises(DatasetError, match="seg has shape .* but raw has"):
        open_dataset(cfg, cache_dir=tmp_path / "cache")


def test_a_bbox_named_in_the_config_may_be_ome_zarr(tmp_path, tiff_dataset):
    for kind, a in volumes().items():
        write_ome_zarr(tmp_path / f"{kind}.ome.zarr", a)
    table_rows().to_csv(tmp_path / "bbox1.csv", index=False)
    (tmp_path / "synapse_dataset.toml").write_text(
        LABELS + "[bboxes.bbox1]\n" + "".join(f'{k} = {{ path = "{k}.ome.zarr" }}\n' for k in ("raw", "seg", "mask"))
        + 'table = "bbox1.csv"\n')
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert ds.bboxes["bbox1"].raw.kind == "ome-zarr" and ds.bboxes["bbox1"].voxel_size_nm == (VOXEL,) * 3
    for var1 in CENTRES:
        got, want = (crop_synapse(d, "bbox1", var1, SETTINGS) for d in (ds, tiff_dataset))
        np.testing.assert_array_equal(got.blended, want.blended)


def test_ome_zarr_label_image_is_named_by_its_key(tmp_path):
    vols = volumes()
    write_ome_zarr(tmp_path / "em.ome.zarr", vols["raw"])
    write_ome_zarr(tmp_path / "em.ome.zarr" / "labels" / "neurons", vols["seg"])
    vol = open_volume(str(tmp_path / "em.ome.zarr"), key="labels/neurons")
    assert (vol.level, vol.shape_zyx) == ("0", SHAPE)
    np.testing.assert_array_equal(read_box(vol.source, (2, 3, 4), (6, 9, 30)), vols["seg"][2:6, 3:9, 4:30])
