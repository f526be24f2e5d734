"""Figures of a clustering run: Plotly builders (reused by the dashboard) and matplotlib PNGs.

Plotly builders return ``go.Figure`` and take plain DataFrames:

* :func:`map_figure` — the 2D/3D map coloured by cluster, bbox or any column. Each point carries
  its synapse in ``customdata`` as ``[synapse id, bbox_name, Var1, cluster]`` (so a selection or a
  click handler finds the synapse); 2D maps with more than ``WEBGL_POINTS`` points use ``Scattergl``.
* :func:`k_curves_figure` — the k sweep (silhouette and stability against their null, gap, CH, inertia), chosen k marked.
* :func:`bbox_composition_figure` — synapses of each cluster stacked by bbox.

Colours come from :mod:`synapse_core.viz.colours`. The dashboard draws these same figures.

PNG versions are drawn with matplotlib (kaleido is not available) by the ``save_*_png`` functions;
:func:`save_figures` writes every figure of a :class:`~synapse_core.cluster.run.ClusterResult`.
"""

from __future__ import annotations

import html
import os

import numpy as np
import pandas as pd

from synapse_core.data.synapse_keys import synapse_ids
from synapse_core.viz.colours import NOISE_COLOUR, bbox_colour_map, cluster_colour

#: Above this many points a 2D map uses WebGL (Scattergl).
WEBGL_POINTS = 2000
#: Above this many points a 2D map draws a density of every point and a seeded sample of this many.
MAX_DRAWN_POINTS = 50_000
#: Hover text of a map point; ``customdata`` is ``[synapse id, bbox_name, Var1, cluster]``.
MAP_HOVER = "bbox %{customdata[1]}<br>Var1 %{customdata[2]}<br>cluster %{customdata[3]}<extra></extra>"


def _esc(text) -> str:
    """User text (bbox names, Var1, column names) for Plotly, which renders a subset of HTML: as text."""
    return html.escape(str(text), quote=False)


def _cluster_name(c) -> str:
    return "noise (−1)" if int(c) < 0 else f"cluster {int(c)}"


def _proj_cols(table: pd.DataFrame) -> list[str]:
    cols = [c for c in table.columns if str(c).startswith("proj_")]
    if len(cols) not in (2, 3):
        raise ValueError(f"the table needs 2 or 3 projection columns proj_1..proj_3; found {cols or 'none'}")
    return sorted(cols, key=lambda c: int(str(c)[5:]))


def scale_bar_length(target: float) -> float:
    """The round length (1, 2 or 5 × 10ⁿ) nearest below ``target`` (same unit), for a scale bar.

    >>> scale_bar_length(740.0), scale_bar_length(0.3)
    (500.0, 0.2)
    """
    import math

    if not target > 0:
        raise ValueError(f"a scale bar needs a positive length, got {target!r}")
    power = 10.0 ** math.floor(math.log10(target))
    return max(m for m in (1.0, 2.0, 5.0) if m * power <= target * (1 + 1e-9)) * power


#: Integer columns with at most this many distinct values are coloured as categories (e.g. presynaptic side).
MAX_CATEGORIES = 20


def is_categorical(values: pd.Series) -> bool:
    """Whether a map colours ``values`` as categories (text, booleans, integers with few values)."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    return pd.api.types.is_integer_dtype(values) and values.nunique() <= MAX_CATEGORIES


def _count_label(name: str, rows: np.ndarray, selected: np.ndarray | None) -> str:
    """``"name (n)"``, or ``"name (n, k selected)"`` when some of the rows are selected.

    ``rows``: positions of the group's rows; ``selected``: boolean mask over the whole table's rows
    (None: nothing selected).
    """
    name = _esc(name)
    if selected is not None:
        k = int(selected[rows].sum())
        if k:
            return f"{name} ({len(rows)}, {k} selected)"
    return f"{name} ({len(rows)})"


def _grouped(codes: np.ndarray, keys: list) -> list[tuple[object, np.ndarray]]:
    """``(key, row positions)`` of each of ``keys``, in their order, with at least one row.

    ``codes``: one integer per row, the index of its key in ``keys`` (−1: in no group). Positions
    come out ascending (table order), as a groupby would give the rows.
    """
    codes = codes.astype(np.int16 if len(keys) < 2**15 - 1 else np.int64)  # a radix sort for few keys
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes + 1, minlength=len(keys) + 1)
    bounds = np.cumsum(counts)
    return [(key, order[bounds[i]:bounds[i + 1]]) for i, key in enumerate(keys) if counts[i + 1]]


def _text_codes(values: pd.Series, missing: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Integer code of each row and the distinct texts (sorted) of ``values.astype(str)``.

    ``missing``: the text of missing values (None: their ``str``, as ``astype(str)``). Factorised
    first, so ``str`` is called once per distinct value, not once per row (10⁶ rows).
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=missing is not None)
    texts = [str(u) for u in uniques] + ([missing] if missing is not None else [])
    names = sorted(set(texts))
    rank = {t: i for i, t in enumerate(names)}
    return np.asarray([rank[t] for t in texts], dtype=np.int64)[codes], names  # code −1 (missing): the last text


def _map_groups(table: pd.DataFrame, color_by: str, selected: np.ndarray | None = None):
    """``(name, rows, colour, symbol)`` of each trace, or one group with a numeric colour scale.

    ``rows`` are row positions in ``table`` (ascending); ``selected`` is a boolean mask over its
    rows (None: no selection). Categories (clusters, bboxes, text/boolean/few-valued integer
    columns) are one trace each, named with their number of synapses (and of selected ones).
    """
    n = len(table)
    if color_by == "cluster":
        codes, uniques = pd.factorize(table["cluster"], sort=True)  # missing clusters (−1 code): in no trace
        return [(_count_label(_cluster_name(c), rows, selected), rows, cluster_colour(int(c)),
                 "x" if int(c) < 0 else "circle") for c, rows in _grouped(codes, list(uniques))]
    if color_by == "bbox_name":
        codes, names = _text_codes(table["bbox_name"])
        colours = bbox_colour_map(names)
        return [(_count_label(b, rows, selected), rows, colours[b], "circle") for b, rows in _grouped(codes, names)]
    values = table[color_by]
    if not is_categorical(values):
        scale = {"color": values.to_numpy(), "colorscale": "Viridis", "showscale": True,
                 "colorbar": {"title": _esc(color_by)}}
        return [(_esc(color_by), np.arange(n), scale, "circle")] if n else []
    codes, names = _text_codes(values, missing="missing")
    groups = sorted(_grouped(codes, names), key=lambda g: (g[0] == "missing", _natural(g[0])))
    return [(_count_label(k, rows, selected), rows, NOISE_COLOUR if k == "missing" else cluster_colour(i), "circle")
            for i, (k, rows) in enumerate(groups)]


def _rows_of(table: pd.DataFrame, *id_sets: set) -> list[np.ndarray]:
    """Boolean mask of the rows of ``table`` whose synapse id is in each of ``id_sets``."""
    ids = set().union(*id_sets)
    if len(ids) > len(table) // 20:
        every = synapse_ids(table)
        return [every.isin(one).to_numpy() for one in id_sets]
    from synapse_core.data.synapse_keys import ID_SEP, split_synapse_id

    keys = [split_synapse_id(i) for i in ids if isinstance(i, str) and ID_SEP in i]  # others name no row
    # cheap pre-filter on each key column (once for all sets); ids are built for the rows that pass only
    near = table["Var1"].astype(str).isin({v for _, v in keys}).to_numpy().copy()
    near[near] = table["bbox_name"][near].astype(str).isin({b for b, _ in keys}).to_numpy()
    near_ids = synapse_ids(table[near])
    masks = []
    for one in id_sets:
        mask = np.zeros(len(table), bool)
        mask[near] = near_ids.isin(one).to_numpy()
        masks.append(mask)
    return masks


def _natural(text: str):
    """Sort key: numbers by value, then text."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def map_figure(table: pd.DataFrame, color_by: str = "cluster", title: str | None = None,
               point_size: float | None = None, selected_ids=None, select: bool = False, highlight_ids=None,
               max_points: int = MAX_DRAWN_POINTS, seed: int = 0):
    """The map (2D or 3D) coloured by cluster, by bbox or by any other column.

    Parameters
    ----------
    table : DataFrame
        ``bbox_name``, ``Var1``, ``cluster``, ``proj_1..proj_d`` (d = 2 or 3), other columns.
    color_by : str
        ``"cluster"`` (noise −1 drawn as gray crosses), ``"bbox"`` / ``"bbox_name"`` (the original
        tool's bbox colours), or another column: categories (text, booleans, integers with at most
        :data:`MAX_CATEGORIES` values, e.g. ``presynaptic_side``) one colour each, other numbers on
        a Viridis scale. Category names carry their number of synapses (and of selected ones).
    title : str, optional
    point_size : float, optional
        Marker size in px (default: smaller for larger N; 3D markers are 0.6 × this).
    selected_ids : iterable of str, optional
        Synapse ids (``"bbox1|syn_003"``) drawn as selected, the others dimmed (2D maps).
    select : bool
        Drag selects points (box/lasso) instead of zooming (2D maps), for a dashboard whose
        selection is read back with :func:`synapse_core.app.state.ids_from_plotly_selection`.
    highlight_ids : iterable of str, optional
        Synapses drawn again on top as large black-edged stars (the synapse shown in detail, a
        search hit), in a last trace named ``"shown: ..."``.
    max_points : int
        A 2D map of more synapses draws the density of all of them (a gray heatmap of log counts
        in 200 × 200 bins, binned here, first trace, named ``"density of all N"``) and points for a seeded random sample of
        ``max_points`` (selected and highlighted synapses always drawn); the title says
        "n of N points drawn". Legend counts are of all synapses.
    seed : int
        Seed of that sample.

    Returns
    -------
    plotly.graph_objects.Figure
        One trace per colour group; ``customdata`` of every point is ``[synapse id, bbox_name,
        Var1, cluster]`` (:data:`MAP_HOVER`). 2D maps of more than :data:`WEBGL_POINTS` points use
        ``Scattergl``.
    """
    import plotly.graph_objects as go

    color_by = "bbox_name" if color_by == "bbox" else color_by
    if color_by not in table.columns:
        raise ValueError(f"color_by={color_by!r} is not a column of the map table; use 'cluster', 'bbox' or one of "
                         f"{', '.join(map(str, table.columns))}")
    cols = _proj_cols(table)
    # Only the columns drawn: a result table also has hundreds of feature columns, never copied here.
    table = table[list(dict.fromkeys(["bbox_name", "Var1", "cluster", *cols, color_by]))]
    n = len(table)
    size = point_size or (8 if n < 500 else 5 if n < 5000 else 3)
    three_d = len(cols) == 3
    selected, shown = _rows_of(table, set(() if selected_ids is None else selected_ids),
                               set(highlight_ids or ()))  # boolean masks over the rows
    selected = selected if selected_ids is not None else None
    shown = shown if highlight_ids else None
    trace_2d = go.Scattergl if n > WEBGL_POINTS else go.Scatter
    xyz = [table[c].to_numpy() for c in cols]

    sampled = not three_d and n > max_points
    drawn = np.arange(n)  # positions of the rows drawn as points (ascending)
    traces, custom = [], []
    if sampled:
        keep = np.zeros(n, bool)
        keep[np.random.default_rng(seed).choice(n, size=max_points, replace=False)] = True
        for always in (selected, shown):  # selected and shown synapses are always drawn
            if always is not None:
                keep |= always
        drawn = np.flatnonzero(keep)
        # Binned here: the browser gets 200 × 200 counts, not N coordinates.
        counts, xe, ye = _histogram2d(xyz[0].astype(float), xyz[1].astype(float), bins=200)
        traces.append(go.Heatmap(z=np.where(counts.T > 0, np.log1p(counts.T), np.nan), x=(xe[:-1] + xe[1:]) / 2,
                                 y=(ye[:-1] + ye[1:]) / 2, name=f"density of all {n}", colorscale="Greys",
                                 showscale=False, hoverinfo="skip", showlegend=True))
        custom.append(None)
    hover = _hover_data(table.iloc[drawn])  # [id, bbox, Var1, cluster] of each drawn row, in the order of drawn

    for name, rows, colour, symbol in _map_groups(table, color_by, selected):
        if sampled:
            rows = rows[keep[rows]]
        at = np.searchsorted(drawn, rows)  # the rows' places in hover
        colour_spec = dict(colour) if isinstance(colour, dict) else {"color": colour}
        if isinstance(colour, dict):
            colour_spec["color"] = colour["color"][rows]
        if three_d:
            traces.append(go.Scatter3d(
                x=xyz[0][rows], y=xyz[1][rows], z=xyz[2][rows], mode="markers", name=name, hovertemplate=MAP_HOVER,
                marker={"size": max(2, size * 0.6), "symbol": symbol, **colour_spec},
            ))
        else:
            chosen = None if selected is None else np.flatnonzero(selected[rows]).tolist()
            traces.append(trace_2d(
                x=xyz[0][rows], y=xyz[1][rows], mode="markers", name=name, hovertemplate=MAP_HOVER,
                marker={"size": size, "symbol": symbol, "line": {"width": 0}, **colour_spec}, selectedpoints=chosen,
            ))
        custom.append(hover[at])
    if shown is not None:
        hit = np.flatnonzero(shown)
        if len(hit):
            label = ", ".join(f"{_esc(b)} / {_esc(v)}" for b, v in zip(table["bbox_name"].to_numpy()[hit],
                                                                         table["Var1"].to_numpy()[hit]))
            marker = {"size": max(14, size * 2.2), "symbol": "star", "color": "#FFD700",
                      "line": {"width": 1.5, "color": "black"}}
            if three_d:
                traces.append(go.Scatter3d(x=xyz[0][hit], y=xyz[1][hit], z=xyz[2][hit], mode="markers",
                                           name=f"shown: {label}", hovertemplate=MAP_HOVER,
                                           marker={**marker, "size": marker["size"] * 0.6, "symbol": "diamond"}))
            else:
                traces.append(go.Scatter(x=xyz[0][hit], y=xyz[1][hit], mode="markers", name=f"shown: {label}",
                                         hovertemplate=MAP_HOVER, marker=marker))
            custom.append(hover[np.searchsorted(drawn, hit)])
    fig = go.Figure(data=traces)
    # customdata is set on the traces in the figure: adding a trace deep-copies its properties, which
    # for 50 000 × 4 strings costs more than everything else here (same figure, same JSON).
    for trace, data in zip(fig.data, custom):
        if data is not None:
            trace.customdata = data
    legend = {"cluster": "cluster", "bbox_name": "bbox"}.get(color_by, _esc(color_by))
    drawn_text = f"{len(drawn)} of {n} points drawn over the density of all" if sampled else f"{n} synapses"
    fig.update_layout(
        title=title or f"Synapse map coloured by {legend} ({drawn_text})", legend_title_text=legend,
        template="plotly_white", clickmode="event+select",
    )
    if not three_d:
        fig.update_xaxes(title_text=cols[0], showticklabels=False)
        fig.update_yaxes(title_text=cols[1], showticklabels=False, scaleanchor="x", scaleratio=1)
        if select:
            fig.update_layout(dragmode="select")
    return fig


def _hover_data(rows: pd.DataFrame) -> np.ndarray:
    """``customdata`` of map points: ``[synapse id, bbox_name, Var1, cluster]`` per row (object array).

    [0] is the id selections are read back by; [1] and [2] are shown (Plotly renders HTML): escaped.
    """
    bbox = rows["bbox_name"].astype(str).to_numpy(dtype=object)
    var1 = rows["Var1"].astype(str).to_numpy(dtype=object)
    out = np.empty((len(rows), 4), dtype=object)
    out[:, 0] = synapse_ids(rows).to_numpy(dtype=object)
    out[:, 1] = _esc_all(bbox)
    out[:, 2] = _esc_all(var1)
    out[:, 3] = rows["cluster"].astype(str).to_numpy(dtype=object)
    return out


def _esc_all(texts: np.ndarray) -> np.ndarray:
    """:func:`_esc` of every text of an object array (one pass over all when none needs escaping)."""
    if not any(c in "".join(texts) for c in "&<>"):
        return texts
    return np.asarray([_esc(t) for t in texts], dtype=object)


def _histogram2d(x: np.ndarray, y: np.ndarray, bins: int):
    """``np.histogram2d(x, y, bins)`` (equal bins over each range) by integer binning, not a search per point."""
    edges, index = [], []
    for v in (x, y):
        lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return np.histogram2d(x, y, bins=bins)  # numpy's error naming the range
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        e = np.linspace(lo, hi, bins + 1)
        i = np.clip(((v - lo) * (bins / (hi - lo))).astype(np.int64), 0, bins - 1)
        i -= v < e[i]  # rounding near an edge: the bin whose edges hold the value, as numpy's search finds it
        i += (v >= e[i + 1]) & (i != bins - 1)
        edges.append(e)
        index.append(i)
    counts = np.bincount(index[0] * bins + index[1], minlength=bins * bins).reshape(bins, bins).astype(float)
    return counts, edges[0], edges[1]


def k_curves_figure(curves: pd.DataFrame, chosen_k: int | None = None, elbow_k: int | None = None,
                    verdict: str | None = None):
    """The k sweep's curves, data against the structureless null; the chosen k (and elbow) marked.

    Panels (those whose columns are present): silhouette and stability of the data with the same
    statistic on the Gaussian null (mean ± 2 sd band; stability also shows the 0.75 floor), the gap
    statistic (with k = 1 from ``curves.attrs["gap_k1"]``), smallest cluster, Calinski–Harabasz,
    inertia. Supported k (``curves["supported"]``) are drawn as filled markers; a chosen k of 1
    ("no clear cluster structure") is named in the title.

    Parameters
    ----------
    curves : DataFrame
        :attr:`ClusterResult.k_curves` / :func:`synapse_core.cluster.k_selection.decide_k` curves
        (at least ``k``, ``silhouette``, ``calinski_harabasz``, ``inertia``).
    chosen_k, elbow_k : int, optional
    verdict : str, optional
        Sentence shown under the title (``diagnostics["cluster_structure"]``).
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [p for p in (("silhouette", "silhouette vs null (higher is better)"),
                          ("stability", "subsample stability (ARI) vs null"),
                          ("gap", "gap statistic (vs Gaussian null)"),
                          ("smallest_cluster", "smallest cluster (synapses)"),
                          ("calinski_harabasz", "Calinski–Harabasz"),
                          ("inertia", "inertia (elbow)")) if p[0] in curves.columns]
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for _, t in panels])
    k = curves["k"]
    supported = curves["supported"].astype(bool) if "supported" in curves.columns else None
    for i, (col, _) in enumerate(panels):
        r, c = i // cols + 1, i % cols + 1
        x, y = k, curves[col]
        err = curves["gap_sd"] if col == "gap" and "gap_sd" in curves.columns else None
        if col == "gap" and "gap_k1" in curves.attrs:
            x = pd.concat([pd.Series([1]), k], ignore_index=True)
            y = pd.concat([pd.Series([curves.attrs["gap_k1"]]), curves[col]], ignore_index=True)
            err = pd.concat([pd.Series([curves.attrs.get("gap_k1_sd", 0.0)]), err], ignore_index=True)
        null = {"silhouette": "silhouette_null", "stability": "stability_null"}.get(col)
        if null in curves.columns:
            sd = curves.get(f"{null}_sd", pd.Series(0.0, index=curves.index)).fillna(0.0)
            band_x = pd.concat([k, k[::-1]], ignore_index=True)
            band_y = pd.concat([curves[null] + 2 * sd, (curves[null] - 2 * sd)[::-1]], ignore_index=True)
            fig.add_trace(go.Scatter(x=band_x, y=band_y, fill="toself", fillcolor="rgba(128,128,128,0.2)",
                                     line_width=0, hoverinfo="skip", showlegend=False), row=r, col=c)
            fig.add_trace(go.Scatter(x=k, y=curves[null], mode="lines", line=dict(color="gray", dash="dot"),
                                     name="Gaussian null (± 2 sd)", showlegend=col == "silhouette"), row=r, col=c)
        if col == "stability":
            fig.add_hline(y=0.75, line_dash="dot", line_color="black", row=r, col=c)
        symbols = None
        if supported is not None and col != "gap":
            symbols = ["circle" if s else "circle-open" for s in supported]
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="data (filled: k supported)",
                                 marker=dict(symbol=symbols, size=9, color="#1f77b4"),
                                 error_y=None if err is None else dict(type="data", array=err),
                                 showlegend=col == "silhouette"), row=r, col=c)
        if chosen_k is not None and (chosen_k >= int(k.min()) or col == "gap"):
            fig.add_vline(x=chosen_k, line_dash="dash", line_color="firebrick", row=r, col=c)
        if elbow_k is not None and col == "inertia" and elbow_k != chosen_k:
            fig.add_vline(x=elbow_k, line_dash="dot", line_color="gray", row=r, col=c)
        fig.update_xaxes(title_text="k", dtick=1, row=r, col=c)
    title = "Choosing k"
    if chosen_k is not None:
        title += (": k = 1, no clear cluster structure" if chosen_k == 1 else f": k = {chosen_k} (dashed)")
    if elbow_k is not None:
        title += f"; inertia elbow at k = {elbow_k}"
    if verdict:
        title += f"<br><sup>{verdict}</sup>"
    fig.update_layout(title=title, template="plotly_white", height=340 * rows + 60)
    return fig


def bbox_composition_figure(composition: pd.DataFrame, normalize: bool = False):
    """Synapses of each cluster stacked by bbox.

    Parameters
    ----------
    composition : DataFrame
        Counts, rows = clusters, columns = bbox names (:func:`synapse_core.cluster.diagnostics.bbox_composition`).
    normalize : bool
        Show fractions of each cluster instead of counts.
    """
    import plotly.graph_objects as go

    comp = composition.div(composition.sum(axis=1), axis=0) if normalize else composition
    colors = bbox_colour_map(comp.columns)
    x = [_cluster_name(c) for c in comp.index]
    fig = go.Figure()
    for b in comp.columns:
        fig.add_trace(go.Bar(x=x, y=comp[b], name=_esc(b), marker_color=colors[str(b)]))
    fig.update_layout(barmode="stack", template="plotly_white", legend_title_text="bbox",
                      title="Cluster composition by bbox", yaxis_title="fraction" if normalize else "synapses")
    return fig


# ---------------------------------------------------------------- matplotlib PNGs


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_map_png(table: pd.DataFrame, path: str | os.PathLike, color_by: str = "cluster", dpi: int = 150) -> str:
    """PNG of the map (2D; a 3D map is drawn as a 3D scatter). Returns the path."""
    plt = _plt()
    cols = _proj_cols(table)
    three_d = len(cols) == 3
    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(111, projection="3d" if three_d else None)
    n = len(table)
    s = 30 if n < 500 else 8 if n < 5000 else 1
    group_col = "cluster" if color_by == "cluster" else "bbox_name"
    colors = bbox_colour_map(table["bbox_name"]) if color_by == "bbox" else None
    for value, g in table.groupby(group_col, sort=True):
        if color_by == "cluster":
            label, color, marker = _cluster_name(value), cluster_colour(int(value)), "x" if int(value) < 0 else "o"
        else:
            label, color, marker = f"{value} ({len(g)})", colors[str(value)], "o"
        coords = [g[c].to_numpy() for c in cols]
        ax.scatter(*coords, s=s, c=color, marker=marker, label=label, alpha=0.8,
                   edgecolors="none" if marker == "o" else None)
    ax.set_title(f"Map coloured by {'cluster' if color_by == 'cluster' else 'bbox'} ({n} synapses)")
    ax.set_xlabel(cols[0])
    ax.set_ylabel(cols[1])
    ax.legend(fontsize=7, markerscale=1.5 if s < 10 else 1, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return os.fspath(path)


def save_k_curves_png(curves: pd.DataFrame, path: str | os.PathLike, chosen_k: int | None = None,
                      elbow_k: int | None = None, dpi: int = 150) -> str:
    """PNG of the three k curves. Returns the path."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, col, title in zip(axes, ("silhouette", "calinski_harabasz", "inertia"),
                              ("silhouette", "Calinski–Harabasz", "inertia (elbow)")):
        ax.plot(curves["k"], curves[col], "o-")
        if chosen_k is not None:
            ax.axvline(chosen_k, color="firebrick", ls="--", label=f"chosen k={chosen_k}")
        if elbow_k is not None and col == "inertia":
            ax.axvline(elbow_k, color="gray", ls=":", label=f"elbow k={elbow_k}")
        ax.set_title(title)
        ax.set_xlabel("k")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return os.fspath(path)


def save_composition_png(composition: pd.DataFrame, path: str | os.PathLike, dpi: int = 150) -> str:
    """PNG of the stacked bbox composition of each cluster. Returns the path."""
    plt = _plt()
    colors = bbox_colour_map(composition.columns)
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(composition) + 3), 4))
    bottom = np.zeros(len(composition))
    x = [_cluster_name(c) for c in composition.index]
    for b in composition.columns:
        vals = composition[b].to_numpy(dtype=float)
        ax.bar(x, vals, bottom=bottom, color=colors[str(b)], label=str(b), edgecolor="black", linewidth=0.3)
        bottom += vals
    ax.set_ylabel("synapses")
    ax.set_title("Cluster composition by bbox")
    ax.legend(fontsize=7, title="bbox")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return os.fspath(path)


def save_figures(result, folder: str | os.PathLike, stem: str = "clusters") -> dict[str, str]:
    """Write the HTML (Plotly) and PNG (matplotlib) figures of a ClusterResult into ``folder``.

    Files: ``<stem>_map_cluster.{html,png}``, ``<stem>_map_bbox.{html,png}`` (when there is a map),
    ``<stem>_k_curves.{html,png}`` (when k was swept), ``<stem>_bbox_composition.{html,png}``.

    Returns
    -------
    dict name → path.
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    paths = {}

    def p(name):
        return os.path.join(folder, f"{stem}_{name}")

    table = result.table
    if result.projection_columns:
        for by in ("cluster", "bbox"):
            paths[f"map_{by}_html"] = p(f"map_{by}.html")
            map_figure(table, by).write_html(paths[f"map_{by}_html"], include_plotlyjs="directory")
            paths[f"map_{by}_png"] = save_map_png(table, p(f"map_{by}.png"), by)
    if result.k_curves is not None:
        k, elbow = result.diagnostics.get("k"), result.diagnostics.get("elbow_k")
        paths["k_curves_html"] = p("k_curves.html")
        verdict = result.diagnostics.get("cluster_structure")
        k_curves_figure(result.k_curves, k, elbow, verdict).write_html(paths["k_curves_html"],
                                                                       include_plotlyjs="directory")
        paths["k_curves_png"] = save_k_curves_png(result.k_curves, p("k_curves.png"), k, elbow)
    paths["bbox_composition_html"] = p("bbox_composition.html")
    bbox_composition_figure(result.composition).write_html(paths["bbox_composition_html"], include_plotlyjs="directory")
    paths["bbox_composition_png"] = save_composition_png(result.composition, p("bbox_composition.png"))
    return paths
