"""Clustering page (AppTest): settings, a real clustering run, the map, k curves, selection, errors."""

from __future__ import annotations

import pytest
from app_helpers import (
    errors,
    markdown_texts,
    metrics,
    open_page,
    plotly_specs,
)

CLUSTERING = "app_pages/clustering.py"

pytestmark = pytest.mark.usefixtures("demo_app")


def clustering_page(features, **state):
    return open_page(CLUSTERING, state={"features": features, **state})


def run_and_wait(at):
    """Press Run clustering and wait for its background job; rerun the page to draw the result."""
    at.button(key="c_run").click().run()
    job = at.session_state["job_clustering"]
    assert job.wait(120), job.message()
    at.run()


def set_fixed_k(at, k: int, projection: str):
    at.checkbox(key="w_c_k_auto").uncheck().run()
    at.number_input(key="w_c_k").set_value(k).run()
    at.selectbox(key="w_c_projection").set_value(projection).run()
    at.number_input(key="w_c_n_stability").set_value(0).run()


def test_without_features_the_page_points_to_extraction():
    at = open_page(CLUSTERING)
    assert any("run an extraction first" in m for m in markdown_texts(at))


@pytest.mark.slow  # runs the real pipeline behind the page
def test_map_is_the_core_figure_with_the_core_cluster_colours(morph_features):
    from synapse_core.viz.colours import cluster_colour

    at = clustering_page(morph_features)
    set_fixed_k(at, 3, "tsne")
    run_and_wait(at)
    traces = plotly_specs(at)[0]["data"]
    assert [t["marker"]["color"] for t in traces] == [cluster_colour(0), cluster_colour(1), cluster_colour(2)]
    # No drag mode: Streamlit pans on drag and a click selects one point (its detail opens).
    assert "dragmode" not in plotly_specs(at)[0]["layout"]


@pytest.mark.slow  # runs the real pipeline behind the page
def test_a_map_computed_by_the_cli_is_a_cache_hit_for_the_page(morph_features, tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    from synapse_core.cli.parser import main
    from synapse_core.cluster.projection import projection_cache

    cache = tmp_path / "cache"
    monkeypatch.setenv("SYNAPSE_CACHE_DIR", str(cache))  # the CLI's default and the page's cache folder
    morph_features.to_csv(tmp_path / "features.csv", index=False)
    features = pd.read_csv(tmp_path / "features.csv")
    assert main(["cluster", "--features", str(tmp_path / "features.csv"), "--out", str(tmp_path / "clusters.csv"),
                 "--k", "3", "--projection", "tsne", "--n-stability", "0", "--nan-policy", "drop", "--no-figures"]) == 0
    with projection_cache(cache) as store:
        (key,) = list(store)  # the CLI's one projection
        n = len(store[key])  # synapses without NaN features
        marked = np.stack([np.arange(n, dtype=np.float32), np.full(n, 7, np.float32)], axis=1)
        store.set(key, marked)  # mark it: a page that recomputed would not draw these coordinates
    at = clustering_page(features)
    set_fixed_k(at, 3, "tsne")
    run_and_wait(at)
    assert not errors(at) and not at.exception, (errors(at), at.exception)
    table = at.session_state["clusters"].table
    assert table["proj_1"].tolist() == list(range(n)) and (table["proj_2"] == 7).all()
    with projection_cache(cache) as store:
        assert len(store) == 1


@pytest.mark.slow  # runs the real pipeline behind the page
def test_run_draws_a_map_whose_points_carry_synapse_ids(morph_features):
    at = clustering_page(morph_features)
    set_fixed_k(at, 3, "tsne")
    run_and_wait(at)
    assert not errors(at)
    assert metrics(at)["Clusters"] == "3"
    map_spec = plotly_specs(at)[0]
    traces = map_spec["data"]
    sizes = at.session_state["clusters"].table["cluster"].value_counts()
    assert [t["name"] for t in traces] == [f"cluster {c} ({sizes[c]})" for c in range(3)]
    ids = [row[0] for t in traces for row in t["customdata"]]
    result = at.session_state["clusters"]
    assert sorted(ids) == sorted(result.table["bbox_name"] + "|" + result.table["Var1"])
    assert "bbox %{customdata[1]}<br>Var1 %{customdata[2]}<br>cluster %{customdata[3]}" in traces[0]["hovertemplate"]
    labels = [b.label for b in at.get("download_button")]
    assert "Download clusters CSV" in labels and "Export map (interactive HTML)" in labels


@pytest.mark.slow  # runs the real pipeline behind the page
def test_colour_by_bbox_draws_one_trace_per_bbox(morph_features):
    at = clustering_page(morph_features)
    set_fixed_k(at, 3, "tsne")
    run_and_wait(at)
    at.selectbox(key="w_c_colour_by").set_value("bbox_name").run()
    traces = plotly_specs(at)[0]["data"]
    sizes = at.session_state["clusters"].table["bbox_name"].value_counts()
    assert [t["name"] for t in traces] == [f"bbox1 ({sizes['bbox1']})", f"bbox2 ({sizes['bbox2']})"]
    assert traces[0]["marker"]["color"] == "#FF0000"  # the original tool's bbox1 colour


@pytest.mark.slow  # runs the real pipeline behind the page
def test_automatic_k_draws_k_curves_and_picks_a_swept_k(morph_features):
    at = clustering_page(morph_features)
    at.selectbox(key="w_c_projection").set_value("none").run()
    at.slider(key="w_c_k_range").set_value((2, 5)).run()
    at.number_input(key="w_c_n_stability").set_value(0).run()
    run_and_wait(at)
    assert "k curves" in [s.value for s in at.subheader]
    curves = at.session_state["clusters"].k_curves
    assert list(curves["k"]) == [2, 3, 4, 5]
    assert metrics(at)["Clusters"] == str(at.session_state["clusters"].diagnostics["k"])


def test_k_larger_than_the_number_of_synapses_is_an_error(morph_features):
    at = clustering_page(morph_features)
    set_fixed_k(at, 40, "none")
    run_and_wait(at)
    assert any("k=40 is too large" in e for e in errors(at))
    assert "clusters" not in at.session_state


@pytest.mark.slow  # runs the real pipeline behind the page
def test_selection_kept_in_the_session_is_listed_with_a_download(morph_features):
    at = clustering_page(morph_features)
    set_fixed_k(at, 3, "none")
    run_and_wait(at)
    at.session_state["selection"] = ["bbox1|syn_002", "bbox2|syn_007"]
    at.run()
    assert "Selection (2 synapses)" in [s.value for s in at.subheader]
    shown = at.dataframe[0].value
    assert list(shown["Var1"]) == ["syn_002", "syn_007"]
    assert "Download selection CSV" in [b.label for b in at.get("download_button")]


@pytest.mark.slow  # runs the real pipeline behind the page
def test_three_dimensional_map_draws_rotatable_3d_points(morph_features):
    at = clustering_page(morph_features)
    set_fixed_k(at, 3, "tsne")
    at.radio(key="w_c_dims").set_value(3).run()
    run_and_wait(at)
    traces = plotly_specs(at)[0]["data"]
    assert {t["type"] for t in traces} == {"scatter3d"}
    assert sum(len(t["customdata"]) for t in traces) == len(at.session_state["clusters"].table)


def test_large_maps_are_drawn_with_webgl(morph_features, clusters_k3):
    import dataclasses

    import pandas as pd

    from synapse_core.viz.figures import WEBGL_POINTS

    # More than WEBGL_POINTS synapses: the demo's 30 repeated under new Var1s, with map coordinates.
    parts = []
    for i in range(WEBGL_POINTS // len(clusters_k3.table) + 1):
        part = clusters_k3.table.copy()
        part["Var1"] = part["Var1"] + f"_{i}"
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    table["proj_1"] = range(len(table))
    table["proj_2"] = 0.0
    assert len(table) > WEBGL_POINTS
    big = dataclasses.replace(clusters_k3, table=table)
    at = clustering_page(morph_features, clusters=big)
    assert {t["type"] for t in plotly_specs(at)[0]["data"]} == {"scattergl"}
