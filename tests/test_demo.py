"""Demo dataset: deterministic, in the documented layout, with planted types that differ, random
orientations and both presynaptic sides; any number of synapses."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from synapse_core.cli.parser import main
from synapse_core.data.demo import (
    PLANTED_TYPES,
    _render_bbox,
    bbox_sizes,
    demo_data_root,
    write_demo_dataset,
)


def test_demo_writes_the_documented_layout(demo_root):
    for sub in ("raw/bbox1/slice_0.tif", "seg/bbox4/slice_111.tif", "mask/bbox2/slice_5.tif",
                "excel/bbox3.xlsx", "truth.csv", "synapse_dataset.toml"):
        assert (demo_root / sub).is_file(), sub


def test_demo_truth_has_every_planted_type_and_both_presynaptic_sides(demo_root):
    truth = pd.read_csv(demo_root / "truth.csv")
    assert len(truth) == 60
    assert set(truth["synapse_type"]) == {t.name for t in PLANTED_TYPES}
    assert set(truth["presynaptic_side"]) == {1, 2}
    assert list(truth.columns[:4]) == ["bbox_name", "Var1", "synapse_type", "presynaptic_side"]


@pytest.mark.slow
def test_demo_bbox_is_identical_for_the_same_seed_and_differs_for_another():
    digest = lambda arrays: hashlib.sha1(b"".join(a.tobytes() for a in arrays[:3])).hexdigest()
    first = digest(_render_bbox(0, "bbox1", 0))
    assert digest(_render_bbox(0, "bbox1", 0)) == first
    assert digest(_render_bbox(0, "bbox1", 1)) != first


def test_demo_vesicle_clouds_are_larger_in_the_large_vesicle_type(demo_dataset, demo_root):
    truth = pd.read_csv(demo_root / "truth.csv").set_index(["bbox_name", "Var1"])
    sizes = {}
    for _, r in demo_dataset.synapses.iterrows():
        b = demo_dataset.bboxes[r.bbox_name]
        z, y, x = r.central_coord_3, r.central_coord_2, r.central_coord_1
        m = b.mask.open()[max(z - 20, 0):z + 20, max(y - 20, 0):y + 20, max(x - 20, 0):x + 20]
        sizes.setdefault(truth.loc[(r.bbox_name, r.Var1), "synapse_type"], []).append(int((m == b.labels.vesicle).sum()))
    med = {k: np.median(v) for k, v in sizes.items()}
    assert med["large_vesicle_cloud"] > 4 * med["wide_cleft"]
    assert med["large_vesicle_cloud"] > 4 * med["small_bouton"]


def test_demo_side_points_lie_in_different_neurons(demo_dataset):
    issues = demo_dataset.report.row_issues
    assert len(issues) == 0


@pytest.mark.slow
def test_demo_data_root_writes_once_and_reuses(tmp_path):
    first = demo_data_root(tmp_path, n_bboxes=1)
    stamp = (first / ".demo_version").stat().st_mtime_ns
    assert demo_data_root(tmp_path, n_bboxes=1) == first
    assert (first / ".demo_version").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_demo_cli_writes_the_dataset(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--seed", "3", "--bboxes", "1"]) == 0
    assert "Demo dataset written to" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "d" / "truth.csv")) == 15


def test_demo_cleft_normals_are_unit_vectors_spread_over_the_sphere(demo_root):
    normals = pd.read_csv(demo_root / "truth.csv")[["cleft_normal_z", "cleft_normal_y", "cleft_normal_x"]].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-9)
    # uniform on the sphere: each |component| averages 1/2 and is rarely close to an axis
    np.testing.assert_allclose(np.abs(normals).mean(axis=0), 0.5, atol=0.1)
    assert (np.abs(normals).max(axis=1) > 0.99).mean() < 0.1


def test_demo_side_points_lie_along_the_cleft_normal_on_the_presynaptic_side(demo_root):
    truth = pd.read_csv(demo_root / "truth.csv").set_index(["bbox_name", "Var1"])
    table = pd.read_excel(demo_root / "excel" / "bbox1.xlsx").set_index("Var1")
    for var1, r in table.iterrows():
        t = truth.loc[("bbox1", var1)]
        pre = 1 if t["presynaptic_side"] == 1 else 2
        post = 3 - pre
        to_pre = np.array([r[f"side_{pre}_coord_{a}"] - r[f"central_coord_{a}"] for a in (3, 2, 1)], float)
        to_post = np.array([r[f"side_{post}_coord_{a}"] - r[f"central_coord_{a}"] for a in (3, 2, 1)], float)
        n = t[["cleft_normal_z", "cleft_normal_y", "cleft_normal_x"]].to_numpy(float)
        # side points are ≥ 8 voxels from the centre along ±n, rounded to voxels (≤ 1 voxel per axis)
        assert to_pre @ n / np.linalg.norm(to_pre) > 0.6
        assert to_post @ n / np.linalg.norm(to_post) < -0.6


@pytest.mark.parametrize("n_synapses, n_bboxes, sizes", [
    (None, None, [15, 15, 15, 15]), (None, 2, [15, 15]), (300, None, [15] * 20), (61, None, [13, 12, 12, 12, 12]),
    (36, 2, [18, 18]),
])
def test_bbox_sizes_spread_synapses_over_bboxes(n_synapses, n_bboxes, sizes):
    assert bbox_sizes(n_synapses, n_bboxes) == sizes


def test_more_synapses_than_a_bbox_holds_is_refused_naming_both_parameters():
    with pytest.raises(ValueError, match=r"n_synapses=40 does not fit n_bboxes=2.*1 to 18"):
        bbox_sizes(40, 2)


@pytest.mark.slow
def test_a_bbox_holding_more_synapses_keeps_its_first_ones():
    truth_15 = _render_bbox(0, "bbox1", 5, 15)[4]
    truth_17 = _render_bbox(0, "bbox1", 5, 17)[4]
    assert len(truth_17) == 17 and truth_17[:15] == truth_15


@pytest.mark.slow
def test_demo_is_the_same_with_one_or_two_worker_processes(tmp_path):
    a = write_demo_dataset(tmp_path / "a", seed=2, n_synapses=4, n_bboxes=2, workers=1)
    b = write_demo_dataset(tmp_path / "b", seed=2, n_synapses=4, n_bboxes=2, workers=2)
    for rel in ("raw/bbox2/slice_50.tif", "seg/bbox1/slice_30.tif", "mask/bbox2/slice_70.tif", "truth.csv",
                "synapse_dataset.toml"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert pd.read_csv(a / "truth.csv")["bbox_name"].tolist() == ["bbox1", "bbox1", "bbox2", "bbox2"]


@pytest.mark.slow
def test_demo_cli_takes_the_number_of_synapses(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--n-synapses", "5", "--seed", "1"]) == 0
    assert "Demo dataset written to" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "d" / "truth.csv")) == 5
