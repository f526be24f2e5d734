"""Presynaptic side: decided from the vesicle cloud nearest the annotated centre, with its evidence."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import MEDULLA_H5, MEDULLA_SITES_CSV, synapse_row, two_neuron_volumes
from synapse_core.crops.build import build_crop, iter_crops, read_context_arrays
from synapse_core.crops.settings import CropSettings
from synapse_core.data.labels import LabelIds
from synapse_core.crops.presynaptic import PresynapticRecord, infer_presynaptic_side
from synapse_core.data.windows import read_box

VES = 6


def two_neurons(shape=(30, 30, 30)):
    """Neuron 1 at x < 15, neuron 2 at x >= 15, neuron 9 at y < 5; no labels."""
    _, seg, labels = two_neuron_volumes(shape, split_x=15)
    seg[:, :5, :] = 9
    return seg, labels


def test_side_is_the_neuron_holding_more_of_the_vesicle_cloud():
    seg, lab = two_neurons()
    lab[12:18, 12:18, 10:17] = VES  # 5 columns in neuron 1, 2 in neuron 2
    rec = infer_presynaptic_side(seg, lab, VES, (15, 15, 15), 1, 2)
    assert (rec.side, rec.overlap_side1, rec.overlap_side2) == (1, 36 * 5, 36 * 2)
    assert (rec.pre_seg_id, rec.post_seg_id, rec.fallback, rec.method) == (1, 2, False, "vesicle_cloud")


def test_side_2_when_the_cloud_is_in_the_side_2_neuron():
    seg, lab = two_neurons()
    lab[12:18, 12:18, 16:20] = VES
    rec = infer_presynaptic_side(seg, lab, VES, (15, 15, 15), 1, 2)
    assert (rec.side, rec.pre_seg_id, rec.post_seg_id) == (2, 2, 1)


def test_only_the_cloud_nearest_the_annotated_centre_counts():
    seg, lab = two_neurons()
    lab[14:16, 14:16, 16:18] = VES  # small cloud next to the centre, in neuron 2
    lab[2:12, 20:29, 2:12] = VES  # a much bigger cloud farther away, in neuron 1
    rec = infer_presynaptic_side(seg, lab, VES, (15, 15, 15), 1, 2)
    assert (rec.side, rec.overlap_side1, rec.overlap_side2, rec.vesicle_cloud_voxels) == (2, 0, 8, 8)


def test_cloud_in_neither_neuron_falls_back_to_all_vesicle_voxels_and_says_so():
    seg, lab = two_neurons()
    lab[15, 2:4, 15] = VES  # nearest cloud lies in neuron 9
    lab[25:28, 25:28, 25:28] = VES  # other vesicle voxels in neuron 2
    rec = infer_presynaptic_side(seg, lab, VES, (15, 15, 15), 1, 2)
    assert (rec.side, rec.method, rec.fallback, rec.overlap_side1, rec.overlap_side2) == (2, "vesicle_label", True, 0, 27)
    assert "fallback" in rec.evidence


def test_no_vesicle_labels_uses_the_fallback_side_and_records_it():
    seg, lab = two_neurons()
    rec = infer_presynaptic_side(seg, lab, VES, (15, 15, 15), 1, 2, fallback_side=2)
    assert (rec.side, rec.method, rec.fallback, rec.overlap_side1, rec.overlap_side2) == (2, "none", True, 0, 0)
    assert (rec.pre_seg_id, rec.post_seg_id) == (2, 1)
    assert "no vesicle-cloud evidence" in rec.evidence


def test_record_as_columns_are_prefixed_and_carry_the_evidence():
    rec = PresynapticRecord(side=1, overlap_side1=5, overlap_side2=0, fallback=False, pre_seg_id=7, post_seg_id=8)
    cols = rec.as_columns()
    assert cols["presynaptic_side"] == 1 and cols["presynaptic_overlap_side1"] == 5
    assert cols["presynaptic_pre_seg_id"] == 7 and cols["presynaptic_fallback"] is False
    assert all(k.startswith("presynaptic_") for k in cols) and "presynaptic_evidence" in cols


def test_every_segmentation_type_and_alpha_gets_the_same_record():
    seg, lab = two_neurons((60, 60, 60))
    lab[28:33, 28:33, 12:16] = VES
    row = synapse_row((30, 30, 15), (30, 30, 8), (30, 30, 25))
    raw = np.zeros(seg.shape, np.uint8)
    records = set()
    for t, alpha in ((0, 1.0), (1, 0.3), (10, 0.0), (11, 1.0)):
        s = CropSettings(size=40, segmentation_type=t, alpha=alpha)
        records.add(build_crop(read_context_arrays(raw, seg, lab, LabelIds(1, VES, 7, 7), row, s), s).presynaptic)
    assert len(records) == 1 and records.pop().side == 1


def test_presynaptic_side_matches_the_planted_truth_on_the_demo_dataset(demo_dataset, demo_root):
    truth = pd.read_csv(demo_root / "truth.csv")
    got = pd.DataFrame(
        [{"bbox_name": b, "Var1": v, "side": r.presynaptic.side, "fallback": r.presynaptic.fallback}
         for b, v, r in iter_crops(demo_dataset, CropSettings(segmentation_type=1))]
    )
    merged = truth.merge(got, on=["bbox_name", "Var1"], validate="one_to_one")
    assert len(merged) == len(truth) == 60
    assert (merged["side"] == merged["presynaptic_side"]).all()
    assert not merged["fallback"].any()


@pytest.mark.shared_data
def test_medulla_contact_sites_report_the_fallback_and_the_body_ids():
    sites = pd.read_csv(MEDULLA_SITES_CSV).head(12)
    s = CropSettings(segmentation_type=3, orientation="native")  # the mask is read back on the native grid
    with h5py.File(MEDULLA_H5, "r") as f:
        raw, seg = f["raw"], f["gt_bodies"]
        for _, row in sites.iterrows():
            out = build_crop(read_context_arrays(raw, seg, None, LabelIds(5, 6, 7, 7), row, s), s)
            rec = out.presynaptic
            assert (rec.fallback, rec.method, rec.side) == (True, "none", 1)
            assert (rec.pre_seg_id, rec.post_seg_id) == (row["body_1"], row["body_2"])
            assert "no vesicle-cloud evidence" in out.presynaptic.as_columns()["presynaptic_evidence"]
            # Type 3 (both sides) shows exactly the two bodies.
            window = read_box(seg, out.origin_zyx, [o + 80 for o in out.origin_zyx])
            ids = set(np.unique(window[out.mask]).tolist())
            assert ids == {row["body_1"], row["body_2"]}
