"""Extraction page (AppTest): settings, live preview, a real run, cache status, errors."""

from __future__ import annotations

import re

import pytest
from app_helpers import (
    errors,
    image_captions,
    markdown_texts,
    metrics,
    open_page,
)

EXTRACTION = "app_pages/extraction.py"

pytestmark = pytest.mark.usefixtures("demo_app")


def run_and_wait(at):
    """Press Run extraction and wait for its background job; rerun the page to draw the result."""
    at.button(key="x_run").click().run()
    job = at.session_state["job_extraction"]
    assert job.wait(120), job.message()
    return at.run()


def morphology_on_bbox3(gray: float):
    """Morphology extraction of bbox3; each test uses its own gray level, so its cache keys are new."""
    at = open_page(EXTRACTION, state={"bboxes": ["bbox3"]})
    at.radio(key="w_x_features").set_value("morphology").run()
    at.slider(key="w_x_gray").set_value(gray).run()
    return at


def test_segmentation_type_shows_its_description():
    at = open_page(EXTRACTION)
    at.selectbox(key="w_x_segmentation_type").set_value(6).run()
    assert any("Type 6 — Vesicle cloud" in i.value and "Closest vesicle cloud only" in i.value for i in at.info)


def test_live_preview_shows_raw_blended_and_mask_of_the_chosen_synapse():
    at = open_page(EXTRACTION, state={"bboxes": ["bbox1"]})
    at.selectbox(key="x_preview_synapse").set_value("bbox1/syn_004").run()
    captions = image_captions(at)
    assert any("raw, z = 40" in c for c in captions)
    assert "blended (network input)" in captions and "kept mask" in captions


@pytest.mark.slow  # runs the real pipeline behind the page
def test_morphology_run_shows_features_of_every_synapse_and_a_download():
    at = morphology_on_bbox3(gray=0.55)
    run_and_wait(at)
    assert not errors(at)
    m = metrics(at)
    assert (m["Synapses with features"], m["From cache / computed"], m["Skipped"]) == ("15", "0 / 15", "0")
    table = at.session_state["features"]
    assert set(table["bbox_name"]) == {"bbox3"}
    assert any(c.startswith("morph_") for c in table.columns) and not any(c.startswith("feat_") for c in table.columns)
    assert any(b.label == "Download features CSV" for b in at.get("download_button"))


@pytest.mark.slow  # runs the real pipeline behind the page
def test_cache_status_counts_what_a_run_left_in_the_cache():
    at = morphology_on_bbox3(gray=0.45)
    at.button(key="x_check_cache").click().run()
    assert "**Cache:** 0 cached, 15 to compute" in markdown_texts(at)
    run_and_wait(at)
    at.button(key="x_check_cache").click().run()
    assert "**Cache:** 15 cached, 0 to compute" in markdown_texts(at)


@pytest.mark.slow  # runs the real pipeline behind the page
def test_second_run_takes_every_synapse_from_the_cache():
    at = morphology_on_bbox3(gray=0.35)
    run_and_wait(at)
    run_and_wait(at)
    assert metrics(at)["From cache / computed"] == "15 / 0"


def test_crop_too_small_for_the_network_is_an_error_naming_the_size():
    at = open_page(EXTRACTION)
    at.radio(key="w_x_features").set_value("vgg3d").run()
    at.number_input(key="w_x_size").set_value(8).run()
    assert any("crop size 8 is too small for VGG3D" in e for e in errors(at))
    assert at.button(key="x_run").disabled


def test_loaded_run_configuration_sets_the_widgets():
    loaded = {"crop": {"segmentation_type": 5, "alpha": 0.5}, "features": "both", "pooling": "max"}
    at = open_page(EXTRACTION, state={"loaded_extraction": loaded})
    assert at.selectbox(key="w_x_segmentation_type").value == 5
    assert at.slider(key="w_x_alpha").value == 0.5
    assert at.radio(key="w_x_features").value == "both"
    assert at.selectbox(key="w_x_pooling").value == "max"


def test_loaded_run_configuration_with_unknown_field_is_reported():
    at = open_page(EXTRACTION, state={"loaded_extraction": {"crop": {"colour": 3}}})
    assert any("extraction.crop: unknown field(s) colour" in e for e in errors(at))


@pytest.mark.slow  # runs the real pipeline behind the page
def test_cancel_stops_the_job_and_says_where_and_by_whom():
    at = morphology_on_bbox3(gray=0.65)
    at.button(key="x_run").click().run()
    at.button(key="x_cancel").click().run()
    job = at.session_state["job_extraction"]
    assert job.wait(120)
    at.run()
    user = at.session_state["user_label"]
    assert job.status == "cancelled" and job.cancelled_by == user
    assert any(re.fullmatch(rf"Extraction cancelled at \d+/15 synapses by {user}\. Finished synapses are cached: "
                            r"press \*\*Run extraction\*\* to resume\.", w.value) for w in at.warning)
    assert "Synapses with features" not in metrics(at)


@pytest.mark.slow  # runs the real pipeline behind the page
def test_a_finished_run_is_offered_to_another_session_with_the_same_settings():
    run_and_wait(morphology_on_bbox3(gray=0.25))
    other = morphology_on_bbox3(gray=0.25)  # a second user, same settings
    assert any("An extraction with these settings finished" in i.value for i in other.info)
    other.button(key="x_show_other").click().run()
    assert metrics(other)["Synapses with features"] == "15"
