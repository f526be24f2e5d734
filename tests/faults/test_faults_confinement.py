"""Security faults: nothing outside the configured data roots is read (issue 13).

Each case points a dataset at a file outside its folder (absolute or ``../`` config paths, symlinked
bbox folders, slices and tables, the original mask folder next to the root) and asserts the clear
refusal, that the outside file's unique content appears nowhere, and that the valid data is intact.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from faultlib import (
    SECRET,
    synapse_rows,
    write_outside_secret,
    write_small_dataset,
    write_stack,
)

from synapse_core.data.config import ConfigError
from synapse_core.data.dataset import ORIGINAL_MASK_DIR, DatasetError, open_dataset
from synapse_core.data.paths import OutsideRootsError, allowed_roots, confine


@pytest.fixture
def outside(tmp_path):
    return write_outside_secret(tmp_path / "elsewhere")


@pytest.fixture(autouse=True)
def _no_operator_roots(monkeypatch):
    monkeypatch.delenv("SYNAPSE_DATA_ROOTS", raising=False)
    monkeypatch.delenv("SYNAPSE_DATA_ROOTS_FILE", raising=False)


def _nothing_secret(ds) -> None:
    assert SECRET not in ds.synapses.to_csv()
    assert SECRET not in ds.report.text() or "is outside the allowed data roots" in ds.report.text()


@pytest.mark.parametrize("how", ["absolute", "dotdot"])
@pytest.mark.parametrize("key", ["raw", "seg", "mask"])
def test_a_config_volume_outside_the_roots_is_refused_naming_key_path_and_root(tmp_path, outside, how, key):
    root = tmp_path / "DATA"
    root.mkdir()
    (root / "mine.h5").write_bytes(b"")
    target = str(outside["h5"]) if how == "absolute" else "../elsewhere/secret.h5"
    paths = {"raw": '"mine.h5:raw"', "seg": '"mine.h5:seg"', "mask": '"mine.h5:mask"'}
    paths[key] = f'{{ path = "{target}", key = "{key}" }}'
    (root / "synapse_dataset.toml").write_text(
        "[bboxes.b1]\n" + "".join(f"{k} = {v}\n" for k, v in paths.items()))
    with pytest.raises(ConfigError) as err:
        open_dataset(root, cache_dir=tmp_path / "cache")
    msg = str(err.value)
    assert f"[bboxes.b1] {key}" in msg and "secret.h5" in msg and str(root.resolve()) in msg
    assert "SYNAPSE_DATA_ROOTS" in msg and SECRET not in msg


def test_a_config_table_outside_the_roots_is_refused(tmp_path, outside):
    root = write_small_dataset(tmp_path / "DATA")
    (root / "synapse_dataset.toml").write_text(f'[bboxes.bbox1]\ntable = "{outside["csv"]}"\n')
    with pytest.raises(ConfigError, match=r"\[bboxes.bbox1\] table: .*secret.csv is outside the allowed data roots"):
        open_dataset(root, cache_dir=tmp_path / "cache")


def test_a_config_path_through_a_symlink_inside_the_root_is_refused(tmp_path, outside):
    root = tmp_path / "DATA"
    root.mkdir()
    (root / "innocent.h5").symlink_to(outside["h5"])
    (root / "synapse_dataset.toml").write_text('[bboxes.b1]\nraw = "innocent.h5:raw"\nseg = "innocent.h5:seg"\n')
    with pytest.raises(ConfigError, match=r"innocent.h5 \(resolves to .*secret.h5\) is outside"):
        open_dataset(root, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("stack", ["raw", "seg", "mask"])
def test_a_symlinked_slice_folder_outside_is_fatal_for_its_bbox_only(tmp_path, outside, stack):
    root = write_small_dataset(tmp_path / "DATA", bboxes=("bbox1", "bbox2"))
    folder = root / stack / "bbox2"
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    folder.symlink_to(outside["slices"], target_is_directory=True)
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    if stack == "mask":  # an optional mask outside the roots is left out: bbox2 stays, without mask classes
        assert ds.bboxes["bbox2"].mask is None and len(ds.synapses) == 6
        assert any("bbox2: mask folder" in w and "is outside the allowed data roots" in w for w in ds.report.warnings)
    else:
        assert list(ds.bboxes) == ["bbox1"] and len(ds.synapses) == 3
        assert any("bbox2: slice folder" in m and "is outside the allowed data roots" in m for m in ds.report.fatal)
    # Nothing of the outside stack (all 77) was converted into the cache.
    for store in (tmp_path / "cache" / "volumes").glob(f"bbox2-{stack}"):
        pytest.fail(f"outside slices were converted into {store}")
    assert not (ds.bboxes["bbox1"].raw.open()[:] == 77).all()


def test_a_symlinked_slice_file_outside_is_refused(tmp_path, outside):
    root = write_small_dataset(tmp_path / "DATA")
    slice3 = root / "raw" / "bbox1" / "slice_3.tif"
    slice3.unlink()
    slice3.symlink_to(outside["slices"] / "slice_3.tif")
    with pytest.raises(DatasetError, match=r"slice file: .*slice_3.tif \(resolves to .*elsewhere.*\) is outside"):
        open_dataset(root, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("name", ["excel/bbox1.csv", "bbox1.csv", "synapse_info.csv"])
def test_a_symlinked_table_outside_is_refused_and_never_read(tmp_path, outside, name):
    root = write_small_dataset(tmp_path / "DATA")
    (root / "excel" / "bbox1.xlsx").unlink()
    (root / name).symlink_to(outside["csv"])
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    assert len(ds.synapses) == 0
    assert any("synapse table" in m and "is outside the allowed data roots" in m for m in ds.report.fatal)
    _nothing_secret(ds)


def _mask_in_the_original_folder(data):
    """A small dataset under ``data`` whose bbox1 mask sits in the original tool's folder next to it
    (all 6), not in the dataset's own mask folder; returns the dataset root."""
    root = write_small_dataset(data / "7_bboxes_plus_seg")
    for p in (root / "mask" / "bbox1").iterdir():
        p.unlink()
    (root / "mask" / "bbox1").rmdir()
    write_stack(data / ORIGINAL_MASK_DIR / "bbox1", np.full((8, 24, 24), 6, np.uint8))
    return root


def test_the_original_mask_folder_next_to_the_root_is_not_read_outside_the_roots(tmp_path):
    data = tmp_path / "data"
    root = _mask_in_the_original_folder(data)
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    assert ds.bboxes["bbox1"].mask is None and len(ds.synapses) == 3
    assert any(f"mask folder {data / ORIGINAL_MASK_DIR / 'bbox1'} is outside the allowed data roots" in w
               and "SYNAPSE_DATA_ROOTS" in w for w in ds.report.warnings)


def test_the_original_mask_folder_next_to_the_root_is_read_when_its_parent_is_a_root(tmp_path, monkeypatch):
    data = tmp_path / "data"
    root = _mask_in_the_original_folder(data)
    monkeypatch.setenv("SYNAPSE_DATA_ROOTS", str(data))
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    assert (ds.bboxes["bbox1"].mask.open()[:] == 6).all()


def test_an_operator_root_allows_a_config_path_outside_the_dataset_folder(tmp_path, outside, monkeypatch):
    root = write_small_dataset(tmp_path / "DATA")
    (root / "synapse_dataset.toml").write_text(f'[bboxes.bbox1]\ntable = "{outside["csv"]}"\n')
    monkeypatch.setenv("SYNAPSE_DATA_ROOTS", f"lab={outside['csv'].parent}")
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    assert list(ds.synapses["note"]) == [SECRET] * 3  # allowed by the operator: read as asked


@pytest.mark.parametrize("rel, inside", [("a/b", True), ("a/../b", True), ("../x", False), ("/etc/passwd", False),
                                         ("a/link_out", False), ("a/link_in", True)])
def test_confine_follows_symlinks_and_dotdot(tmp_path, rel, inside):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "link_out").symlink_to(tmp_path)
    (root / "a" / "link_in").symlink_to(root / "a")
    path = rel if rel.startswith("/") else root / rel
    if inside:
        assert confine(path, [root]).is_relative_to(root.resolve())
    else:
        with pytest.raises(OutsideRootsError, match="is outside the allowed data roots"):
            confine(path, [root])


def test_allowed_roots_are_the_dataset_folder_and_the_operator_roots(tmp_path):
    env = {"SYNAPSE_DATA_ROOTS": f"lab={tmp_path / 'lab'}{os.pathsep}{tmp_path / 'shared'}"}
    roots = allowed_roots(tmp_path / "DATA", environ=env)
    assert roots == ((tmp_path / "DATA").resolve(), (tmp_path / "lab").resolve(), (tmp_path / "shared").resolve())


@pytest.mark.parametrize("template, problem", [
    ("https://wk.example/{x.__class__}", "placeholders"),
    ("https://wk.example/{0}", "placeholders"),
    ("javascript:alert(1)//{x}", "http:// or https://"),
])
def test_a_link_template_that_could_run_code_or_script_is_refused(tmp_path, template, problem):
    root = write_small_dataset(tmp_path / "DATA")
    (root / "synapse_dataset.toml").write_text(f'link_template = "{template}"\n')
    with pytest.raises(ConfigError, match=f"link_template .*{problem}"):
        open_dataset(root, cache_dir=tmp_path / "cache")


@pytest.mark.slow
def test_validate_cli_refuses_a_config_outside_the_roots_with_one_line(tmp_path, outside):
    from faultlib import cli

    root = write_small_dataset(tmp_path / "DATA")
    (root / "synapse_dataset.toml").write_text(f'[bboxes.bbox1]\ntable = "{outside["csv"]}"\n')
    code, out, err = cli("validate", "--data", str(root), "--cache-dir", str(tmp_path / "cache"),
                         env={"SYNAPSE_DATA_ROOTS": ""})
    assert code == 2 and "Traceback" not in err and SECRET not in out + err
    assert err.startswith("error: ") and "[bboxes.bbox1] table" in err


def test_rows_of_a_valid_bbox_are_kept_when_another_bbox_is_refused(tmp_path, outside):
    root = write_small_dataset(tmp_path / "DATA", bboxes=("bbox1", "bbox2"), rows=synapse_rows(2))
    (root / "excel" / "bbox2.xlsx").unlink()
    (root / "excel" / "bbox2.csv").symlink_to(outside["csv"])
    ds = open_dataset(root, cache_dir=tmp_path / "cache")
    assert ds.synapses.groupby("bbox_name").size().to_dict() == {"bbox1": 2}
    _nothing_secret(ds)
