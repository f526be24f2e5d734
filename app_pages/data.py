"""Data page: choose a configured data root and bboxes, read the validation report, look at
raw EM slices with mask overlays and synapse markers, browse the synapse table.

The table and the slice viewer are linked: selecting a row shows that synapse in the viewer, and
the viewer's chosen synapse (``view_synapse``, ``"bbox|Var1"``, kept in the URL) is the table's
selected row and is ringed in the slice.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app_pages import common
from synapse_core.app import escape as esc
from synapse_core.app.data_roots import subfolders
from synapse_core.crops.availability import crop_checks
from synapse_core.crops.settings import CropSettings
from synapse_core.data.synapse_keys import (
    split_synapse_id,
    synapse_id,
    synapse_ids,
    synapse_rows,
)
from synapse_core.data.voxel_size import format_voxel_size
from synapse_core.data.windows import read_slice, view_window
from synapse_core.viz.colours import STRUCTURE_COLOURS
from synapse_core.viz.figures import scale_bar_length
from synapse_core.viz.slice_overlay import MASK_STRUCTURES, overlay_slice

#: Rows listed in the synapse table and the jump list (a whole volume has 10⁶ or more).
LIST_MAX_ROWS = 10_000
#: Session-state key (and URL query name) of the synapse shown in the viewer, ``"bbox|Var1"``.
VIEW_SYNAPSE = "view_synapse"
#: Key of the synapse table (its row selection); ``TABLE_ROWS`` holds the rows this page last selected in it.
TABLE_KEY, TABLE_ROWS = "data_table", "_data_table_rows"

st.title("Data")

roots = common.available_roots()
root_names = [r.name for r in roots]
col_root, col_sub = st.columns(2)
with col_root:
    common.persisted(
        st.selectbox, "Data root", "root", root_names[0], options=root_names, share=True,
        help="Folders the operator allowed (SYNAPSE_DATA_ROOTS). With none configured, the demo dataset.",
    )
root = next(r for r in roots if r.name == st.session_state["root"])
with col_sub:
    try:
        folders = [""] + subfolders(root)
    except (ValueError, OSError) as exc:
        st.error(esc.md(f"Data root {root.name!r} cannot be listed: {exc}"))
        common.stop()
    common.persisted(
        st.selectbox, "Dataset folder inside the root", "subfolder", "", options=folders, share=True,
        format_func=lambda f: f or "(the root itself)",
    )

try:
    ds = common.current_dataset()
except (ValueError, FileNotFoundError, KeyError) as exc:
    st.error(
        f"This folder is not a usable dataset: {esc.md(exc)}\n\n"
        "Choose another folder; a dataset has raw/, seg/ and mask/ volumes per bbox and a synapse table."
    )
    common.write_query()
    common.stop()

all_bboxes = sorted(ds.bboxes)
common.persisted(
    st.multiselect, "Bounding boxes", "bboxes", list(all_bboxes), options=all_bboxes, share=True,
    help="The pipeline runs on these bboxes. None chosen means all.",
)
bboxes = common.chosen_bboxes(ds)
table = ds.synapses[ds.synapses["bbox_name"].isin(bboxes)]
listed = table.head(LIST_MAX_ROWS)
listed_ids = synapse_ids(listed).tolist()
state = st.session_state
common.SHARED_IN_URL[VIEW_SYNAPSE] = VIEW_SYNAPSE


def show_in_viewer(sid: str, set_z: bool = True) -> bool:
    """Make synapse ``sid`` the viewer's: its bbox, a window around its centre and (``set_z``) its centre slice.

    False (nothing changed) for an id that is malformed or not among the chosen bboxes' synapses.
    """
    try:
        hit = synapse_rows(table, [sid], missing="ignore")
    except ValueError:
        return False
    if not len(hit):
        return False
    row = hit.iloc[0]
    state[VIEW_SYNAPSE] = sid
    state["view_bbox"] = str(row["bbox_name"])
    state["view_center_yx"] = (int(row["central_coord_2"]), int(row["central_coord_1"]))
    if set_z:
        state["view_z"] = int(row["central_coord_3"])
    return True


if VIEW_SYNAPSE not in state and st.query_params.get(VIEW_SYNAPSE):  # a link: the slice the link names, if it does
    show_in_viewer(st.query_params[VIEW_SYNAPSE], set_z="view_z" not in st.query_params and "view_z" not in state)
if state.get(VIEW_SYNAPSE) and split_synapse_id(state[VIEW_SYNAPSE])[0] not in bboxes:  # its bbox was dropped
    del state[VIEW_SYNAPSE]
table_rows = list(state[TABLE_KEY]["selection"]["rows"]) if TABLE_KEY in state else None
if table_rows is not None and table_rows != state.get(TABLE_ROWS):  # the user selected (or cleared) a row
    if table_rows and table_rows[0] < len(listed_ids):
        show_in_viewer(listed_ids[table_rows[0]])
    else:
        state.pop(VIEW_SYNAPSE, None)

m1, m2, m3, m4 = st.columns(4)
m1.metric("Bboxes", len(bboxes))
m2.metric("Valid synapses", len(table))
issues = ds.report.row_issues
n_issue_rows = len(issues[issues["bbox_name"].isin(bboxes)]) if len(issues) else 0
m3.metric("Skipped rows", n_issue_rows)
m4.metric("Voxel size (z, y, x) nm", " × ".join(f"{v:g}" for v in ds.voxel_size_nm) if ds.voxel_size_nm else "unknown")

st.caption(esc.md("Voxel size per bbox: " + "; ".join(
    f"{b.name} {format_voxel_size(b.voxel_size_nm)} from {b.voxel_size_source}" if b.voxel_size_nm else f"{b.name} unknown"
    for b in (ds.bboxes[n] for n in bboxes))))
try:  # checks that depend on the crop settings chosen on the Extraction page (defaults before that)
    default_crop = CropSettings()
    page_crop = CropSettings(
        size=int(st.session_state.get("x_size", default_crop.size)),
        segmentation_type=int(st.session_state.get("x_segmentation_type", default_crop.segmentation_type)))
except ValueError:
    page_crop = CropSettings()
data_warnings = ds.report.warnings + crop_checks(ds, page_crop, bboxes=bboxes)

with st.expander(f"Validation report ({n_issue_rows} skipped rows, {len(data_warnings)} warnings)",
                 expanded=bool(ds.report.fatal or n_issue_rows or data_warnings)):
    for problem in ds.report.fatal:
        st.error(esc.md(problem))
    for warning in data_warnings:
        st.warning(esc.md(warning))
    if n_issue_rows:
        st.dataframe(issues[issues["bbox_name"].isin(bboxes)], hide_index=True, width="stretch")
    else:
        st.success("Every synapse row of the chosen bboxes is valid.")
    st.code(ds.report.text() or "(no problems)", language=None)

st.subheader("Slice viewer")
v1, v2, v3, v4 = st.columns([1, 1, 1, 2])
with v1:
    common.persisted(st.selectbox, "Bbox", "view_bbox", bboxes[0], options=bboxes, share=True)
bbox = ds.bboxes[st.session_state["view_bbox"]]
nz = int(bbox.shape_zyx[0])
here = table[table["bbox_name"] == bbox.name]


def jump_to_synapse() -> None:
    """Show the synapse chosen in the jump list (its centre slice); the table selects its row."""
    var1 = st.session_state.get("view_jump")
    if var1 and not show_in_viewer(synapse_id(bbox.name, var1)) and len(here) > LIST_MAX_ROWS:
        st.session_state["view_jump_missing"] = var1  # a typed Var1 that this bbox does not have


chosen = state.get(VIEW_SYNAPSE)
chosen_bbox, chosen_var1 = split_synapse_id(chosen) if chosen else (None, None)
# The jump list names the viewer's synapse (a text box for a whole volume's ids: empty, not None).
state["view_jump"] = chosen_var1 if chosen_bbox == bbox.name else (None if len(here) <= LIST_MAX_ROWS else "")
with v2:
    if len(here) <= LIST_MAX_ROWS:
        st.selectbox("Jump to synapse", here["Var1"].astype(str).tolist(), index=None, key="view_jump",
                     on_change=jump_to_synapse, placeholder="Var1…")
    else:  # a whole volume's 10⁶ ids are not sent to the browser as a list
        st.text_input("Jump to synapse (Var1)", key="view_jump", on_change=jump_to_synapse, placeholder="Var1…")
    if state.get("view_jump_missing"):
        st.warning(esc.md(f"{bbox.name} has no synapse with Var1 {state.pop('view_jump_missing')!r}."))
with v3:
    show_mask = st.toggle("Mask overlay", value=True, key="view_mask")
    show_seg = st.toggle("Neuron boundaries", value=False, key="view_seg")
with v4:
    first_z = int(here["central_coord_3"].iloc[0]) if len(here) else nz // 2
    common.persisted(st.slider, "z slice", "view_z", first_z, min_value=0, max_value=nz - 1, share=True)
z = int(st.session_state["view_z"])
opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05, key="view_opacity")

# A window of at most VIEW_MAX_YX around the chosen synapse: the whole slice of a bbox, never of a whole volume.
window = view_window(bbox.shape_zyx, st.session_state.get("view_center_yx"))
y0, y1, x0, x1 = window
raw = read_slice(bbox.raw, z, window)
mask = read_slice(bbox.mask, z, window) if (show_mask and bbox.mask is not None) else None
seg = read_slice(bbox.seg, z, window) if show_seg else None
image = overlay_slice(raw, mask, bbox.labels, opacity=opacity, seg_yx=seg)

fig = go.Figure(go.Image(z=image, hoverinfo="skip"))
near = here[((here["central_coord_3"] - z).abs() <= 3) & here["central_coord_2"].between(y0, y1 - 1)
            & here["central_coord_1"].between(x0, x1 - 1)]
if len(near):
    fig.add_trace(
        go.Scatter(
            x=near["central_coord_1"] - x0, y=near["central_coord_2"] - y0, mode="markers+text",
            text=near["Var1"].astype(str).map(esc.plotly), textposition="top center", textfont={"color": "yellow"},
            marker={"symbol": "circle-open", "size": 16, "color": "yellow", "line": {"width": 2}},
            customdata=np.stack([near["Var1"].astype(str).map(esc.plotly), near["central_coord_3"]], axis=-1),
            hovertemplate="Var1 %{customdata[0]}<br>x %{x}, y %{y}, z %{customdata[1]}<extra></extra>",
            name="synapses (±3 slices)",
        )
    )
chosen_row = synapse_rows(here, [chosen], missing="ignore") if chosen_bbox == bbox.name else here.iloc[:0]
if len(chosen_row) and y0 <= chosen_row.iloc[0]["central_coord_2"] < y1 and x0 <= chosen_row.iloc[0]["central_coord_1"] < x1:
    c = chosen_row.iloc[0]
    fig.add_trace(go.Scatter(
        x=[c["central_coord_1"] - x0], y=[c["central_coord_2"] - y0], mode="markers", name=f"chosen: {esc.plotly(chosen_var1)}",
        marker={"symbol": "circle-open", "size": 30, "color": "#FF8C00", "line": {"width": 4}},
        hovertemplate=f"chosen synapse {esc.plotly(chosen_var1)}<br>centre z {int(c['central_coord_3'])}<extra></extra>",
    ))
for side, colour, symbol in (("side_1", "#00E5FF", "triangle-up"), ("side_2", "#FF4FD8", "triangle-down")):
    if len(near) and f"{side}_coord_1" in near.columns:
        fig.add_trace(go.Scatter(
            x=near[f"{side}_coord_1"] - x0, y=near[f"{side}_coord_2"] - y0, mode="markers",
            name=side.replace("_", " ") + " point",
            marker={"symbol": symbol, "size": 11, "color": colour, "line": {"width": 1, "color": "black"}},
            customdata=np.stack([near["Var1"].astype(str).map(esc.plotly), near[f"{side}_coord_3"]], axis=-1),
            hovertemplate=f"Var1 %{{customdata[0]}} {side.replace('_', ' ')}<br>x %{{x}}, y %{{y}}, "
                          "z %{customdata[1]}<extra></extra>",
        ))
# Scale bar: a round length near a fifth of the slice width, in nm when the voxel size is known.
voxel_yx = bbox.voxel_size_nm[2] if bbox.voxel_size_nm else None
width_px = image.shape[1]
if voxel_yx:
    bar_nm = scale_bar_length(width_px * voxel_yx / 5)
    bar_px, bar_text = bar_nm / voxel_yx, (f"{bar_nm / 1000:g} µm" if bar_nm >= 1000 else f"{bar_nm:g} nm")
else:
    bar_px = scale_bar_length(width_px / 5)
    bar_text = f"{bar_px:g} voxels"
bar_x, bar_y = width_px * 0.04, image.shape[0] * 0.95
fig.add_shape(type="line", x0=bar_x, x1=bar_x + bar_px, y0=bar_y, y1=bar_y, line={"color": "white", "width": 5})
fig.add_annotation(x=bar_x + bar_px / 2, y=bar_y, yshift=14, text=bar_text, showarrow=False,
                   font={"color": "white", "size": 14}, bgcolor="rgba(0,0,0,0.4)")
fig.update_layout(height=560, margin={"l": 0, "r": 0, "t": 10, "b": 0}, showlegend=True,
                  legend={"orientation": "h", "y": -0.02})
fig.update_xaxes(showticklabels=False)
fig.update_yaxes(showticklabels=False)
st.plotly_chart(fig, key="slice_view")
legend = " ".join(
    f"<span style='color:rgb{STRUCTURE_COLOURS[name]}'>■</span> {name.replace('_', ' ')}" for name in MASK_STRUCTURES
)
st.caption(f"{esc.html(bbox.name)}, z = {z} of {nz}; {len(near)} synapse centres (circles) within ±3 slices with "
           f"their side points (side 1 ▲, side 2 ▼). {legend}", unsafe_allow_html=True)
if len(chosen_row):
    c = chosen_row.iloc[0]
    dz = z - int(c["central_coord_3"])
    st.caption(esc.md(f"Chosen synapse (orange ring; selected row of the table below): {chosen_bbox} / {chosen_var1}, "
                      f"centre x {int(c['central_coord_1'])}, y {int(c['central_coord_2'])}, z {int(c['central_coord_3'])}"
                      + (f" ({abs(dz)} slice{'s' if abs(dz) != 1 else ''} {'below' if dz > 0 else 'above'} this one)"
                         if dz else "") + "."))

next_step = st.container(border=True)
n1, n2 = next_step.columns([3, 1])
n1.markdown("**Next step:** check the report above, then extract features of these synapses.")
n2.page_link("app_pages/extraction.py", label="Extraction", icon=":material/memory:")

st.subheader("Synapse table")
st.caption("Select a row to show that synapse in the slice viewer above.")
selected = [listed_ids.index(chosen)] if chosen in listed_ids else []
state[TABLE_KEY] = {"selection": {"rows": selected, "columns": [], "cells": []}}  # the viewer's synapse
state[TABLE_ROWS] = selected
st.dataframe(listed, hide_index=True, width="stretch", height=320, key=TABLE_KEY, on_select="rerun",
             selection_mode="single-row")
if len(table) <= LIST_MAX_ROWS:
    st.download_button(
        "Download synapse table (CSV)", table.to_csv(index=False).encode(), file_name="synapses.csv", mime="text/csv"
    )
else:  # a whole volume's table is not rendered or copied on every rerun
    st.caption(f"The first {LIST_MAX_ROWS:,} of {len(table):,} rows; the full table is the file the dataset config "
               f"names.")
common.write_query()
