"""Saved selections on the Clustering and Galleries pages (AppTest): the page run uses apply() and the
memoised result key; the map is drawn again when what it shows changes, and not on other reruns."""

from __future__ import annotations

import dataclasses

import pytest
from app_helpers import open_page, plotly_specs

from synapse_core.app import annotations as ann
from synapse_core.data.synapse_keys import synapse_ids

pytestmark = pytest.mark.usefixtures("demo_app")
SETTINGS_KEY = "test-annotations-pages"  # its own result key: other tests' results have no saved selections


@pytest.fixture
def mapped(clusters_k3, demo_cache):
    """``clusters_k3`` with map coordinates and a result key of its own; its saved selections are removed after."""
    table = clusters_k3.table.assign(proj_1=range(len(clusters_k3.table)), proj_2=0.0)
    result = dataclasses.replace(clusters_k3, table=table,
                                 diagnostics={**clusters_k3.diagnostics, "settings_key": SETTINGS_KEY})
    yield result
    ann.store_path(demo_cache, ann.result_key(result.table, SETTINGS_KEY)).unlink(missing_ok=True)


def trace_names(at) -> list[str]:
    return [t.get("name") for t in plotly_specs(at)[0]["data"]]


def test_a_saved_assignment_colours_the_map_by_refined_cluster(morph_features, mapped, demo_cache):
    ids = synapse_ids(mapped.table).tolist()
    saved = ann.NamedSelection("first two", tuple(ids[:2]), cluster=7, author="ana", created="2026-11-30T07:00:00Z")
    ann.save(demo_cache, ann.result_key(mapped.table, SETTINGS_KEY), [saved])
    at = open_page("app_pages/clustering.py", state={"features": morph_features, "clusters": mapped})
    assert {"selection_first_two", "cluster_refined", "annotation"} <= set(at.selectbox(key="w_c_colour_by").options)
    at.selectbox(key="w_c_colour_by").set_value("cluster_refined").run()
    assert "7 (2)" in trace_names(at)


def test_the_map_is_drawn_again_only_when_what_it_shows_changes(morph_features, mapped, demo_cache):
    at = open_page("app_pages/clustering.py", state={"features": morph_features, "clusters": mapped})
    first = at.session_state["c_map_figure"][2]
    at.run()
    assert at.session_state["c_map_figure"][2] is first
    ids = synapse_ids(mapped.table).tolist()
    ann.save(demo_cache, ann.result_key(mapped.table, SETTINGS_KEY),
             [ann.NamedSelection("late", (ids[3],), cluster=9, author="bo", created="2026-11-30T08:00:00Z")])
    at.run()
    assert at.session_state["c_map_figure"][2] is not first
    at.selectbox(key="w_c_colour_by").set_value("selection_late").run()
    assert sorted(trace_names(at)) == sorted([f"False ({len(ids) - 1})", "True (1)"])


def test_above_20000_synapses_the_galleries_detail_synapse_is_typed(morph_features, clusters_k3):
    import pandas as pd

    # the demo's 30 synapses, then copies under new Var1s (no pictures: none of them is shown)
    parts = [clusters_k3.table] + [clusters_k3.table.assign(Var1=clusters_k3.table["Var1"] + f"_{i}")
                                   for i in range(1, 20_000 // len(clusters_k3.table) + 2)]
    table = pd.concat(parts, ignore_index=True)
    big = dataclasses.replace(clusters_k3, table=table, features=clusters_k3.features[[i % len(clusters_k3.table)
                                                                                        for i in range(len(table))]])
    at = open_page("app_pages/galleries.py", state={"features": morph_features, "clusters": big,
                                                    "g_n_reps": 1, "g_n_sample": 0})
    assert not [s for s in at.selectbox if s.key == "w_g_detail"]
    assert at.session_state["g_detail"] == synapse_ids(table)[0]
    other = synapse_ids(clusters_k3.table)[5]
    at.text_input(key="g_detail_text").set_value(other.replace("|", " / ")).run()
    assert at.session_state["g_detail"] == other
    at.text_input(key="g_detail_text").set_value("bbox2 / nope").run()
    assert at.session_state["g_detail"] == other
    assert any("bbox2 / nope is not in this clustering" in w.value.replace("\\", "") for w in at.warning)
