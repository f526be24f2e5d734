"""Demo dataset: deterministic, in the documented layout, with planted types that differ."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from synapse_core.cli.parser import main
from synapse_core.data.demo import PLANTED_TYPES, _render_bbox, demo_data_root


def test_demo_writes_the_documented_layout(demo_root):
    for sub in ("raw/bbox1/slice_0.tif", "seg/bbox4/slice_111.tif", "mask/bbox2/slice_5.tif",
                "excel/bbox3.xlsx", "truth.csv", "synapse_dataset.toml"):
        assert (demo_root / sub).is_file(), sub


def test_demo_truth_has_every_planted_type_and_both_presynaptic_sides(demo_root):
    truth = pd.read_csv(demo_root / "truth.csv")
    assert len(truth) == 60
    assert set(truth["synapse_type"]) == {t.name for t in PLANTED_TYPES}
    assert set(truth["presynaptic_side"]) == {1, 2}


def test_demo_bbox_is_identical_for_the_same_seed_and_differs_for_another():
    digest = lambda arrays: hashlib.sha1(b"".join(a.tobytes() for a in arrays[:3])).hexdigest()  # noqa: E731
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


def test_demo_data_root_writes_once_and_reuses(tmp_path):
    first = demo_data_root(tmp_path, n_bboxes=1)
    stamp = (first / ".demo_version").stat().st_mtime_ns
    assert demo_data_root(tmp_path, n_bboxes=1) == first
    assert (first / ".demo_version").stat().st_mtime_ns == stamp


def test_demo_cli_writes_the_dataset(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--seed", "3", "--bboxes", "1"]) == 0
    assert "Demo dataset written to" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "d" / "truth.csv")) == 15
