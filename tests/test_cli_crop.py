"""``python -m synapse_core crop`` and ``gif`` on the demo dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from synapse_core.cli.parser import main
from synapse_core.crops.build import crop_synapse
from synapse_core.crops.settings import CropSettings

ROOT = Path(__file__).resolve().parents[1]


def test_crop_npy_is_the_float32_network_input(demo_root, demo_cache, demo_dataset, tmp_path):
    out = tmp_path / "c.npy"
    code = main(["crop", "--data", str(demo_root), "--cache-dir", str(demo_cache), "--synapse", "bbox2/syn_004",
                 "--segmentation-type", "11", "--alpha", "0.3", "--out", str(out)])
    assert code == 0
    got = np.load(out)
    want = crop_synapse(demo_dataset, "bbox2", "syn_004", CropSettings(segmentation_type=11, alpha=0.3)).blended
    assert got.dtype == np.float32 and got.shape == (80, 80, 80)
    np.testing.assert_array_equal(got, want)


def test_crop_accepts_the_original_flag_spellings_and_writes_tif_gif_png(demo_root, demo_cache, tmp_path):
    base = ["crop", "--data", str(demo_root), "--cache_dir", str(demo_cache), "--bbox_name", "bbox1",
            "--var1", "syn_002", "--segmentation_type", "10"]
    for suffix in (".tif", ".gif", ".png"):
        assert main(base + ["--out", str(tmp_path / f"c{suffix}"), "--overlays", "cleft", "pre"]) == 0
    assert tifffile.imread(tmp_path / "c.tif").shape == (80, 80, 80)
    assert Image.open(tmp_path / "c.gif").n_frames == 80
    assert Image.open(tmp_path / "c.png").size == (3 * 160 + 8, 160)


def test_crop_with_unknown_suffix_is_a_user_error(demo_root, demo_cache, tmp_path, capsys):
    code = main(["crop", "--data", str(demo_root), "--cache-dir", str(demo_cache), "--synapse", "bbox1/syn_001",
                 "--out", str(tmp_path / "c.jpg")])
    assert code == 2 and "'.jpg'" in capsys.readouterr().err


def test_crop_of_an_unknown_synapse_names_it(demo_root, demo_cache, tmp_path, capsys):
    code = main(["crop", "--data", str(demo_root), "--cache-dir", str(demo_cache), "--synapse", "bbox1/nope",
                 "--out", str(tmp_path / "c.npy")])
    assert code == 2 and "bbox1/nope" in capsys.readouterr().err


def test_gif_writes_one_named_gif_per_synapse(demo_root, demo_cache, tmp_path):
    out = tmp_path / "gifs"
    code = main(["gif", "--data", str(demo_root), "--cache-dir", str(demo_cache), "--out", str(out),
                 "--synapse", "bbox1/syn_001", "bbox3/syn_010", "--overlays", "vesicle_cloud", "--fps", "8",
                 "--scale", "1", "--frames", "all"])
    assert code == 0
    assert sorted(p.name for p in out.glob("*.gif")) == ["bbox1_syn_001.gif", "bbox3_syn_010.gif"]
    im = Image.open(out / "bbox3_syn_010.gif")
    assert im.n_frames == 80 and im.size == (80, 80)
    report = pd.read_csv(out / "gif_report.csv")
    assert list(report["status"]) == ["written", "written"]
    assert set(report["presynaptic_side"]) <= {1, 2}


def test_gif_reports_discarded_synapses_with_their_reason(demo_root, demo_cache, tmp_path, capsys):
    out = tmp_path / "gifs"
    code = main(["gif", "--data", str(demo_root), "--cache-dir", str(demo_cache), "--out", str(out),
                 "--bbox_name", "bbox1", "--segmentation_type", "12"])
    assert code == 0
    report = pd.read_csv(out / "gif_report.csv")
    assert len(report) == 15 and (report["status"] == "discarded").all()
    assert report["reason"].str.contains("25³").all()
    assert not list(out.glob("*.gif"))
    assert "15 discarded" in capsys.readouterr().out


@pytest.mark.slow  # a fresh interpreter opens the demo
def test_python_dash_m_entry_point_writes_a_crop(demo_root, demo_cache, tmp_path):
    out = tmp_path / "c.npy"
    proc = subprocess.run(
        [sys.executable, "-m", "synapse_core", "crop", "--data", str(demo_root), "--cache-dir", str(demo_cache),
         "--synapse", "bbox4/syn_003", "--segmentation-type", "0", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "presynaptic side" in proc.stdout
    assert np.load(out).dtype == np.float32


def test_gif_defaults_are_the_gallery_gifs_structure_slices_at_128_px(demo_root, demo_cache, tmp_path):
    from synapse_core.crops.build import crop_synapse
    from synapse_core.crops.settings import CropSettings
    from synapse_core.data.dataset import open_dataset
    from synapse_core.viz.render import structure_slices

    out = tmp_path / "gifs"
    assert main(["gif", "--data", str(demo_root), "--cache-dir", str(demo_cache), "--out", str(out),
                 "--synapse", "bbox1/syn_001"]) == 0
    im = Image.open(out / "bbox1_syn_001.gif")
    crop = crop_synapse(open_dataset(demo_root, cache_dir=demo_cache), "bbox1", "syn_001", CropSettings())
    assert im.size == (128, 128) and im.n_frames == len(structure_slices(crop.structures)) < 80


def _through_zarr(source, folder: Path):
    """A copy of a converted store without its completion marker: opened by zarr, the path before issue 16."""
    import shutil

    from synapse_core.data.volumes import COMPLETE, VolumeSource

    copy = folder / Path(source.path).parent.name
    shutil.copytree(source.path, copy)
    (copy / COMPLETE).unlink()
    return VolumeSource("zarr", str(copy), None, source.fingerprint)


def test_converted_stacks_are_read_by_tensorstore_with_the_values_zarr_reads(demo_dataset):
    import zarr

    from synapse_core.data.volumes import WindowedArray
    from synapse_core.data.windows import point_values

    b = demo_dataset.bboxes["bbox2"]
    points = np.array([[0, 0, 0], [5, 17, 99], [b.shape_zyx[0] - 1, b.shape_zyx[1] - 1, b.shape_zyx[2] - 1]])
    for source in (b.raw, b.seg, b.mask):
        opened, via_zarr = source.open(), zarr.open_array(source.path, mode="r")
        assert isinstance(opened, WindowedArray) and opened.shape == via_zarr.shape and opened.dtype == via_zarr.dtype
        np.testing.assert_array_equal(opened[:], via_zarr[:])
        np.testing.assert_array_equal(point_values(source, points), point_values(via_zarr, points))


def test_crop_is_identical_to_the_crop_from_zarr_opened_volumes(demo_dataset, tmp_path):
    from dataclasses import replace

    b = demo_dataset.bboxes["bbox2"]
    old = replace(b, raw=_through_zarr(b.raw, tmp_path), seg=_through_zarr(b.seg, tmp_path),
                  mask=_through_zarr(b.mask, tmp_path))
    assert type(old.raw.open()).__module__.startswith("zarr.")
    before = replace(demo_dataset, bboxes={**demo_dataset.bboxes, "bbox2": old})
    for settings in (CropSettings(), CropSettings(segmentation_type=11, alpha=0.3)):
        want = crop_synapse(before, "bbox2", "syn_004", settings)
        got = crop_synapse(demo_dataset, "bbox2", "syn_004", settings)
        np.testing.assert_array_equal(got.blended, want.blended)
        np.testing.assert_array_equal(got.raw, want.raw)
        for name, mask in want.structures.items():
            np.testing.assert_array_equal(got.structures[name], mask)


@pytest.mark.slow  # a fresh interpreter opens the demo
def test_one_synapse_crop_imports_neither_zarr_nor_openpyxl_nor_pandas(demo_root, demo_cache, tmp_path):
    out = tmp_path / "c.npy"
    args = ["crop", "--data", str(demo_root), "--cache-dir", str(demo_cache), "--synapse", "bbox1/syn_001",
            "--out", str(out)]
    assert main(args) == 0  # volumes converted, the table parsed and the dataset remembered (zarr, pandas)
    probe = ("import json, sys\nfrom synapse_core.cli.parser import main\n"
             f"code = main({args!r})\nprint(json.dumps([code, sorted({{m.split('.')[0] for m in sys.modules}})]))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    code, modules = json.loads(proc.stdout.splitlines()[-1])
    assert code == 0 and not {"zarr", "openpyxl", "pandas", "pyarrow"} & set(modules)


# ------------------------------------------------------------------ a dataset remembered by crop (quick_open)


def test_a_remembered_dataset_gives_the_bboxes_rows_and_crops_of_open_dataset(demo_root, demo_cache, demo_dataset):
    from synapse_core.data.quick_open import ROW_COLUMNS, dataset_state

    state = dataset_state(demo_root, demo_cache)
    assert state.remember(demo_dataset)
    again = dataset_state(demo_root, demo_cache)
    assert again.key == state.key
    for _, want in demo_dataset.synapses.iterrows():
        got = again.remembered(want["bbox_name"], want["Var1"])
        assert got.bboxes == demo_dataset.bboxes  # labels checked against the mask, mask ids, voxel sizes
        row = got.synapse(want["bbox_name"], want["Var1"])
        assert row == {c: want[c] for c in ROW_COLUMNS}
    settings = CropSettings(segmentation_type=11, alpha=0.3)
    for b, v in [("bbox1", "syn_001"), ("bbox3", "syn_010")]:
        quick = crop_synapse(again.remembered(b, v), b, v, settings)
        np.testing.assert_array_equal(quick.blended, crop_synapse(demo_dataset, b, v, settings).blended)


def _linked_copy(demo_root: Path, dest: Path, monkeypatch) -> Path:
    """The demo with its own tables and config; the volume folders are links into the demo (allowed as a data root)."""
    import shutil

    dest.mkdir()
    for name in ("raw", "seg", "mask"):
        (dest / name).symlink_to(demo_root / name)
    shutil.copytree(demo_root / "excel", dest / "excel")
    shutil.copy(demo_root / "synapse_dataset.toml", dest)
    monkeypatch.setenv("SYNAPSE_DATA_ROOTS", str(demo_root))
    return dest


def _move_first_synapse(table: Path) -> None:
    df = pd.read_excel(table, dtype={"Var1": str})
    df.loc[0, "central_coord_1"] += 1
    df.to_excel(table, index=False)


def test_a_changed_table_is_never_read_from_the_remembered_dataset(demo_root, demo_cache, tmp_path, monkeypatch):
    from synapse_core.data.dataset import open_dataset
    from synapse_core.data.quick_open import dataset_state

    data = _linked_copy(demo_root, tmp_path / "data", monkeypatch)
    state = dataset_state(data, demo_cache)
    assert state.remember(open_dataset(data, cache_dir=demo_cache))
    first = open_dataset(data, cache_dir=demo_cache).synapses.iloc[0]
    b, v = first["bbox_name"], first["Var1"]
    assert dataset_state(data, demo_cache).remembered(b, v).synapse(b, v)["central_coord_1"] == first["central_coord_1"]
    _move_first_synapse(data / "excel" / f"{b}.xlsx")
    changed = dataset_state(data, demo_cache)
    assert changed.key != state.key and changed.remembered(b, v) is None  # the crop opens the dataset again
    assert main(["crop", "--data", str(data), "--cache-dir", str(demo_cache), "--synapse", f"{b}/{v}",
                 "--out", str(tmp_path / "c.npy")]) == 0
    row = dataset_state(data, demo_cache).remembered(b, v).synapse(b, v)  # remembered by that crop, moved
    assert row["central_coord_1"] == first["central_coord_1"] + 1


def test_a_table_changed_while_the_dataset_opens_is_not_remembered(demo_root, demo_cache, tmp_path, monkeypatch):
    from synapse_core.data.dataset import open_dataset
    from synapse_core.data.quick_open import dataset_state

    data = _linked_copy(demo_root, tmp_path / "data", monkeypatch)
    state = dataset_state(data, demo_cache)
    _move_first_synapse(data / "excel" / "bbox1.xlsx")
    assert not state.remember(open_dataset(data, cache_dir=demo_cache))
    assert not state.file.exists()


def test_a_damaged_remembered_dataset_is_opened_again(demo_root, demo_cache, demo_dataset):
    from synapse_core.data.quick_open import dataset_state

    state = dataset_state(demo_root, demo_cache)
    state.file.parent.mkdir(parents=True, exist_ok=True)
    state.file.write_text('{"version": 1, "rows": {')
    assert state.remembered("bbox1", "syn_001") is None
    assert state.remember(demo_dataset) and state.remembered("bbox1", "syn_001") is not None
