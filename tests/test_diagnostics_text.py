"""Diagnostics in sentences with a traffic light (synapse_core.app.diagnostics_text)."""

from __future__ import annotations

from synapse_core.app.diagnostics_text import (
    alignment_rows,
    batch_effect_row,
    diagnostic_rows,
    map_fidelity_row,
    stability_row,
    structure_row,
)


def test_a_map_keeping_most_neighbours_is_green_and_says_the_random_baseline():
    row = map_fidelity_row({"map_knn_overlap": 0.79, "map_knn_overlap_random": 0.17, "settings": {"knn_k": 10}})
    assert row["level"] == "good" and row["value"] == "79% (random 17%)"
    assert "keeps 79% of each synapse's 10 nearest neighbours" in row["sentence"]


def test_a_map_near_random_is_red():
    assert map_fidelity_row({"map_knn_overlap": 0.2, "map_knn_overlap_random": 0.17})["level"] == "bad"


def test_no_structure_against_the_null_is_red_and_says_continuum():
    row = structure_row({"k_decision": {"k": 1, "structure": False, "verdict": "no k beats the null"}})
    assert row["level"] == "bad" and "continuum" in row["sentence"]


def test_stability_beating_the_null_is_green_and_failing_it_red():
    good = stability_row({"stability": {"ari_mean": 0.99, "null_ari_mean": 0.64, "beats_null": True}})
    assert good["level"] == "good" and good["value"] == "0.99 vs 0.64"
    bad = stability_row({"stability": {"ari_mean": 0.8, "null_ari_mean": 0.85, "beats_null": False}})
    assert bad["level"] == "bad"


def test_batch_effect_levels_follow_the_score():
    diag = {"bbox_effect": {"batch_effect_score": -0.04, "knn_same_bbox": 0.21, "knn_same_bbox_expected": 0.24}}
    row = batch_effect_row(diag)
    assert row["level"] == "good" and "21% of each synapse's nearest neighbours come from its own bbox" in row["sentence"]
    assert batch_effect_row({"bbox_effect": {"batch_effect_score": 0.6}})["level"] == "bad"


def test_alignment_warns_for_a_column_the_clusters_follow():
    rows = alignment_rows({"alignment": {"ami": {"presynaptic_side": 0.4, "coverage": 0.01}, "threshold": 0.25}})
    assert [(r["topic"], r["level"]) for r in rows] == [("Alignment: presynaptic_side", "bad"),
                                                        ("Alignment: coverage", "good")]
    assert "mirror orientation" in rows[0]["sentence"]


def test_missing_numbers_give_no_rows():
    assert diagnostic_rows({"stability": None, "bbox_effect": {"batch_effect_score": None}}) == []
