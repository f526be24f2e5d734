"""Plotly figures of a clustering run (the dashboard draws these same builders)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from synapse_core.viz.colours import (
    BBOX_COLOURS,
    NOISE_COLOUR,
    bbox_colour_map,
    cluster_colour,
)
from synapse_core.viz.figures import MAP_HOVER, WEBGL_POINTS, map_figure


def map_table(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({"bbox_name": ["bbox1", "bbox2"] * (n // 2), "Var1": [f"s{i}" for i in range(n)],
                         "cluster": [i % 3 - 1 for i in range(n)], "proj_1": np.arange(n, dtype=float),
                         "proj_2": np.zeros(n), "morph_volume_nm3": np.linspace(1.0, 2.0, n),
                         "presynaptic_side": ["1", "2"] * (n // 2)})


def test_cluster_traces_use_the_cluster_colours_and_noise_is_a_gray_cross():
    fig = map_figure(map_table(), "cluster")
    assert [t.name for t in fig.data] == ["noise (−1) (2)", "cluster 0 (2)", "cluster 1 (2)"]
    assert [t.marker.color for t in fig.data] == [NOISE_COLOUR, cluster_colour(0), cluster_colour(1)]
    assert fig.data[0].marker.symbol == "x"


def test_every_point_carries_its_synapse_id_bbox_var1_and_cluster():
    fig = map_figure(map_table(), "cluster")
    assert [list(r) for r in fig.data[1].customdata] == [["bbox2|s1", "bbox2", "s1", "0"], ["bbox1|s4", "bbox1", "s4", "0"]]
    assert fig.data[1].hovertemplate == MAP_HOVER


def test_bbox_traces_use_the_original_tool_colours():
    fig = map_figure(map_table(), "bbox")
    assert [t.name for t in fig.data] == ["bbox1 (3)", "bbox2 (3)"]
    assert [t.marker.color for t in fig.data] == [BBOX_COLOURS["bbox1"], BBOX_COLOURS["bbox2"]]


def test_a_numeric_column_is_one_trace_on_a_colour_scale():
    fig = map_figure(map_table(), "morph_volume_nm3")
    assert len(fig.data) == 1 and fig.data[0].marker.showscale
    np.testing.assert_allclose(fig.data[0].marker.color, np.linspace(1.0, 2.0, 6))


def test_a_text_column_is_one_trace_per_value():
    fig = map_figure(map_table(), "presynaptic_side")
    assert [(t.name, t.marker.color) for t in fig.data] == [("1 (3)", cluster_colour(0)), ("2 (3)", cluster_colour(1))]


def test_an_integer_column_with_few_values_is_categories_with_counts_of_the_selection():
    table = map_table().assign(presynaptic_side=[1, 2, 2, 2, 1, 2])
    fig = map_figure(table, "presynaptic_side", selected_ids=["bbox2|s1", "bbox2|s3"])
    assert [t.name for t in fig.data] == ["1 (2)", "2 (4, 2 selected)"]
    assert not any(getattr(t.marker, "showscale", None) for t in fig.data)


def test_missing_category_values_are_a_gray_last_category():
    table = map_table().assign(annotation=["docked", None, "docked", None, None, "far"])
    fig = map_figure(table, "annotation")
    assert [t.name for t in fig.data] == ["docked (2)", "far (1)", "missing (3)"]
    assert fig.data[-1].marker.color == NOISE_COLOUR


def test_highlighted_synapse_is_drawn_on_top_as_a_star():
    fig = map_figure(map_table(), "cluster", highlight_ids=["bbox2|s3"])
    top = fig.data[-1]
    assert top.name == "shown: bbox2 / s3" and top.marker.symbol == "star"
    assert (top.x[0], list(top.customdata[0])) == (3.0, ["bbox2|s3", "bbox2", "s3", "-1"])


def test_user_text_in_names_and_hover_is_escaped():
    table = map_table().assign(bbox_name=["<b>x</b>", "bbox2"] * 3)
    fig = map_figure(table, "bbox")
    assert fig.data[0].name == "&lt;b&gt;x&lt;/b&gt; (3)"
    assert fig.data[0].customdata[0][0] == "<b>x</b>|s0" and fig.data[0].customdata[0][1] == "&lt;b&gt;x&lt;/b&gt;"


def test_selected_synapses_are_marked_per_trace_and_drag_selects():
    fig = map_figure(map_table(), "cluster", selected_ids=["bbox1|s0", "bbox2|s5"], select=True)
    assert [t.selectedpoints for t in fig.data] == [(0,), (), (1,)]  # s0 is noise, s5 the 2nd of cluster 1
    assert fig.layout.dragmode == "select"
    assert map_figure(map_table(), "cluster").layout.dragmode is None


def test_webgl_is_used_above_the_threshold_only():
    assert isinstance(map_figure(map_table(WEBGL_POINTS)).data[0], go.Scatter)
    assert isinstance(map_figure(map_table(WEBGL_POINTS + 2)).data[0], go.Scattergl)


def test_an_unknown_colour_column_names_the_choices():
    with pytest.raises(ValueError, match="color_by='size' is not a column of the map table; use 'cluster', 'bbox'"):
        map_figure(map_table(), "size")


def test_bboxes_beyond_the_original_seven_get_distinct_colours_then_cycle():
    colours = bbox_colour_map([f"bbox{i}" for i in range(1, 16)])
    assert [colours[f"bbox{i}"] for i in range(1, 8)] == list(BBOX_COLOURS.values())
    assert len({colours[f"bbox{i}"] for i in range(8, 16)}) == 8
    assert len(bbox_colour_map([f"extra{i}" for i in range(20)])) == 20


def test_a_large_map_draws_the_density_of_all_and_says_how_many_points_are_drawn():
    table = map_table(1000)
    fig = map_figure(table, "cluster", max_points=100, highlight_ids=["bbox2|s999"], selected_ids=["bbox1|s0"])
    assert isinstance(fig.data[0], go.Heatmap) and fig.data[0].name == "density of all 1000"
    assert np.expm1(np.nan_to_num(np.asarray(fig.data[0].z, float))).round().sum() == 1000
    points = [t for t in fig.data[1:] if not t.name.startswith("shown:")]
    drawn = sum(len(t.x) for t in points)
    assert 100 <= drawn <= 102 and f"{drawn} of 1000 points drawn" in fig.layout.title.text
    ids = {row[0] for t in points for row in t.customdata}
    assert {"bbox1|s0", "bbox2|s999"} <= ids  # the selected and the shown synapse are always drawn
    assert [t.name for t in points][0].endswith("(334, 1 selected)")  # legend counts are of all synapses


def test_the_sample_of_a_large_map_is_seeded():
    a = map_figure(map_table(500), max_points=50, seed=1)
    b = map_figure(map_table(500), max_points=50, seed=1)
    assert [list(t.customdata[:, 0]) for t in a.data[1:]] == [list(t.customdata[:, 0]) for t in b.data[1:]]


def _traces_by_name(fig):
    return {t.name: t for t in fig.data}


def test_the_map_traces_carry_the_rows_of_each_cluster_in_table_order():
    # unsorted, non-contiguous clusters, noise, text Var1, and feature columns the map does not draw
    table = pd.DataFrame({"bbox_name": ["b2", "b1", "b2", "b1", "b3", "b1"], "Var1": ["7", "x", "3", "1", "9", "2"],
                          "cluster": [5, -1, 0, 5, 0, 5], "proj_1": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5],
                          "proj_2": [10.0, 11.0, 12.0, 13.0, 14.0, 15.0], "feat_1": np.zeros(6, np.float32)})
    fig = map_figure(table, "cluster", selected_ids=["b1|1", "b3|9", "nobar"])
    traces = _traces_by_name(fig)
    assert list(traces) == ["noise (−1) (1)", "cluster 0 (2, 1 selected)", "cluster 5 (3, 1 selected)"]
    five = traces["cluster 5 (3, 1 selected)"]
    assert list(five.x) == [0.5, 3.5, 5.5] and list(five.y) == [10.0, 13.0, 15.0]
    assert five.customdata.tolist() == [["b2|7", "b2", "7", "5"], ["b1|1", "b1", "1", "5"], ["b1|2", "b1", "2", "5"]]
    assert five.marker.color == cluster_colour(5) and five.selectedpoints == (1,)
    zero = traces["cluster 0 (2, 1 selected)"]
    assert zero.customdata[:, 0].tolist() == ["b2|3", "b3|9"] and zero.selectedpoints == (1,)
    assert traces["noise (−1) (1)"].customdata.tolist() == [["b1|x", "b1", "x", "-1"]]


def test_bbox_and_category_traces_carry_their_rows_and_missing_values_last():
    table = pd.DataFrame({"bbox_name": ["b2", "b1", "b2", "b1"], "Var1": [1, 2, 3, 4], "cluster": [0, 1, 0, 1],
                          "proj_1": [1.0, 2.0, 3.0, 4.0], "proj_2": [0.0, 0.0, 0.0, 0.0],
                          "side": ["10", None, "9", "10"]})
    by_bbox = map_figure(table, "bbox")
    assert [(t.name, t.customdata[:, 0].tolist(), list(t.x)) for t in by_bbox.data] == [
        ("b1 (2)", ["b1|2", "b1|4"], [2.0, 4.0]), ("b2 (2)", ["b2|1", "b2|3"], [1.0, 3.0])]
    by_side = map_figure(table, "side")  # natural order: 9 before 10; missing last, gray
    assert [(t.name, t.customdata[:, 0].tolist(), t.marker.color) for t in by_side.data] == [
        ("9 (1)", ["b2|3"], cluster_colour(0)), ("10 (2)", ["b2|1", "b1|4"], cluster_colour(1)),
        ("missing (1)", ["b1|2"], NOISE_COLOUR)]


def test_a_sampled_map_draws_each_point_at_its_own_rows_coordinates_and_colour():
    n = 3000
    table = pd.DataFrame({"bbox_name": "b1", "Var1": np.arange(n), "cluster": np.arange(n) % 4,
                          "proj_1": np.arange(n) * 0.5, "proj_2": -np.arange(n, dtype=float),
                          "morph_volume_nm3": np.arange(n) * 2.0})
    for fig in (map_figure(table, "cluster", max_points=300, seed=3), map_figure(table, "morph_volume_nm3", max_points=300)):
        for t in fig.data[1:]:
            rows = np.array([int(sid.split("|")[1]) for sid in t.customdata[:, 0]])
            assert (np.diff(rows) > 0).all()  # table order
            np.testing.assert_array_equal(t.x, rows * 0.5)
            np.testing.assert_array_equal(t.y, -rows.astype(float))
            if t.marker.showscale:
                np.testing.assert_array_equal(t.marker.color, rows * 2.0)
            else:
                assert set(rows % 4) == {int(t.customdata[0, 3])}


def test_the_density_of_a_large_map_counts_as_numpy_histogram2d():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=5000), np.linspace(-1, 1, 201)])  # values on bin edges too
    y = np.concatenate([rng.uniform(size=5000), np.linspace(0, 1, 201)])
    table = pd.DataFrame({"bbox_name": "b1", "Var1": np.arange(len(x)), "cluster": 0, "proj_1": x, "proj_2": y})
    fig = map_figure(table, max_points=100)
    counts, xe, ye = np.histogram2d(x, y, bins=200)
    np.testing.assert_array_equal(np.nan_to_num(np.asarray(fig.data[0].z, float)),
                                  np.where(counts.T > 0, np.log1p(counts.T), 0.0))
    np.testing.assert_allclose(fig.data[0].x, (xe[:-1] + xe[1:]) / 2)
    np.testing.assert_allclose(fig.data[0].y, (ye[:-1] + ye[1:]) / 2)
