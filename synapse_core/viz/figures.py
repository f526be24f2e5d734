"""Figures of a clustering run: Plotly builders (reused by the dashboard) and matplotlib PNGs.

Plotly builders return ``go.Figure`` and take plain DataFrames:

* :func:`map_figure` — the 2D/3D map coloured by cluster or by bbox. Each point carries its
  synapse key in ``customdata`` as ``[bbox_name, Var1]`` (so a click handler can find the synapse);
  2D maps with more than ``WEBGL_POINTS`` points use ``Scattergl``.
* :func:`k_curves_figure` — the k sweep (silhouette and stability against their null, gap, CH, inertia), chosen k marked.
* :func:`bbox_composition_figure` — synapses of each cluster stacked by bbox.

PNG versions are drawn with matplotlib (kaleido is not available) by the ``save_*_png`` functions;
:func:`save_figures` writes every figure of a :class:`~synapse_core.cluster.run.ClusterResult`.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

#: Bbox colours of the original tool (notes §8.1), kept so figures look familiar.
BBOX_COLORS = {
    "bbox1": "#FF0000", "bbox2": "#00FFFF", "bbox3": "#FFA500", "bbox4": "#800080",
    "bbox5": "#808080", "bbox6": "#0000FF", "bbox7": "#000000",
}
#: Above this many points a 2D map uses WebGL (Scattergl).
WEBGL_POINTS = 2000
NOISE_COLOR = "#BBBBBB"
_EXTRA = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
_CLUSTER_PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
    "#756bb1", "#636363",
]


def bbox_color_map(names) -> dict[str, str]:
    """Colour of each bbox: the original tool's colour for bbox1..7, a distinct colour otherwise."""
    out, extra = {}, iter(_EXTRA * 10)
    for name in sorted({str(n) for n in names}):
        out[name] = BBOX_COLORS.get(name) or next(extra)
    return out


def cluster_color(c: int) -> str:
    """Colour of cluster ``c`` (noise −1 is light gray)."""
    return NOISE_COLOR if c < 0 else _CLUSTER_PALETTE[int(c) % len(_CLUSTER_PALETTE)]


def _cluster_name(c) -> str:
    return "noise (−1)" if int(c) < 0 else f"cluster {int(c)}"


def _proj_cols(table: pd.DataFrame) -> list[str]:
    cols = [c for c in table.columns if str(c).startswith("proj_")]
    if len(cols) not in (2, 3):
        raise ValueError(f"the table needs 2 or 3 projection columns proj_1..proj_3; found {cols or 'none'}")
    return sorted(cols, key=lambda c: int(str(c)[5:]))


def map_figure(table: pd.DataFrame, color_by: str = "cluster", title: str | None = None,
               point_size: float | None = None):
    """The map (2D or 3D) coloured by ``cluster`` or ``bbox_name``.

    Parameters
    ----------
    table : DataFrame
        ``bbox_name``, ``Var1``, ``cluster``, ``proj_1..proj_d`` (d = 2 or 3).
    color_by : {"cluster", "bbox"}
    title : str, optional
    point_size : float, optional
        Marker size in px (default: smaller for larger N).

    Returns
    -------
    plotly.graph_objects.Figure
        One trace per colour group; ``customdata`` of every point is ``[bbox_name, Var1]``.
    """
    import plotly.graph_objects as go

    if color_by not in ("cluster", "bbox"):
        raise ValueError(f"color_by={color_by!r} must be 'cluster' or 'bbox'")
    cols = _proj_cols(table)
    n = len(table)
    size = point_size or (8 if n < 500 else 5 if n < 5000 else 3)
    three_d = len(cols) == 3
    group_col = "cluster" if color_by == "cluster" else "bbox_name"
    colors = bbox_color_map(table["bbox_name"]) if color_by == "bbox" else None
    fig = go.Figure()
    for value, g in table.groupby(group_col, sort=True):
        if color_by == "cluster":
            name, color = _cluster_name(value), cluster_color(int(value))
            symbol = "x" if int(value) < 0 else "circle"
        else:
            name, color, symbol = f"{value} ({len(g)})", colors[str(value)], "circle"
        custom = np.column_stack([g["bbox_name"].astype(str).to_numpy(), g["Var1"].to_numpy()])
        other = g["bbox_name"] if color_by == "cluster" else g["cluster"].map(_cluster_name)
        hover = "%{customdata[0]} · Var1 %{customdata[1]}<br>%{text}<extra></extra>"
        marker = dict(size=size, color=color, symbol=symbol, line=dict(width=0))
        if three_d:
            fig.add_trace(go.Scatter3d(
                x=g[cols[0]], y=g[cols[1]], z=g[cols[2]], mode="markers", name=name, customdata=custom,
                text=other.astype(str), hovertemplate=hover,
                marker=dict(size=max(2, size * 0.6), color=color, symbol="x" if symbol == "x" else "circle"),
            ))
        else:
            trace = go.Scattergl if n > WEBGL_POINTS else go.Scatter
            fig.add_trace(trace(
                x=g[cols[0]], y=g[cols[1]], mode="markers", name=name, customdata=custom,
                text=other.astype(str), hovertemplate=hover, marker=marker,
            ))
    fig.update_layout(
        title=title or f"Synapse map coloured by {'cluster' if color_by == 'cluster' else 'bbox'} ({n} synapses)",
        legend_title_text="cluster" if color_by == "cluster" else "bbox", template="plotly_white",
        clickmode="event+select",
    )
    if not three_d:
        fig.update_xaxes(title_text=cols[0], showticklabels=False)
        fig.update_yaxes(title_text=cols[1], showticklabels=False, scaleanchor="x", scaleratio=1)
    return fig


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
    colors = bbox_color_map(comp.columns)
    x = [_cluster_name(c) for c in comp.index]
    fig = go.Figure()
    for b in comp.columns:
        fig.add_trace(go.Bar(x=x, y=comp[b], name=str(b), marker_color=colors[str(b)]))
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
    colors = bbox_color_map(table["bbox_name"]) if color_by == "bbox" else None
    for value, g in table.groupby(group_col, sort=True):
        if color_by == "cluster":
            label, color, marker = _cluster_name(value), cluster_color(int(value)), "x" if int(value) < 0 else "o"
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
    colors = bbox_color_map(composition.columns)
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
        k_curves_figure(result.k_curves, k, elbow).write_html(paths["k_curves_html"], include_plotlyjs="directory")
        paths["k_curves_png"] = save_k_curves_png(result.k_curves, p("k_curves.png"), k, elbow)
    paths["bbox_composition_html"] = p("bbox_composition.html")
    bbox_composition_figure(result.composition).write_html(paths["bbox_composition_html"], include_plotlyjs="directory")
    paths["bbox_composition_png"] = save_composition_png(result.composition, p("bbox_composition.png"))
    return paths
