"""Galleries page: per cluster the representative synapses and a seeded random sample as looping
GIFs; the current selection as a gallery; one synapse's detail view; downloads."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import common, synapse_detail
from synapse_core.app import annotations
from synapse_core.app import escape as esc
from synapse_core.app import state as app_state
from synapse_core.cluster.summary import representatives
from synapse_core.crops.settings import CropSettings
from synapse_core.data.synapse_keys import (
    ID_SEP,
    split_synapse_id,
    synapse_ids,
)
from synapse_core.viz import gallery
from synapse_core.viz.colours import STRUCTURE_COLOURS
from synapse_core.viz.render import GIF_OVERLAYS, IMAGES

st.title("Galleries")

#: Above this many synapses the detail view's synapse is typed instead of chosen from a list of every id.
DETAIL_OPTIONS_MAX = 20_000

ds = common.require_dataset()
state = st.session_state
result = state.get("clusters")
if result is None:
    st.info("No clusters yet: run an extraction and a clustering first.")
    st.page_link("app_pages/clustering.py", label="Go to Clustering", icon=":material/scatter_plot:")
    common.stop()

# Every click reruns the page: the ids (and the annotation key) are computed once per result table,
# and the table is not copied (assign shares its columns).
ids = annotations.table_ids(result.table)
table = result.table.assign(synapse_id=ids.to_numpy())
try:  # named selections and manual assignments of this result (Clustering page), for the ZIP manifests
    annotated = annotations.apply(result.table, annotations.load(
        common.cache_dir(), annotations.result_key(result.table, result.diagnostics.get("settings_key"))))
except ValueError:
    annotated = result.table
extract_settings = state.get("extract_settings")
crop_settings = extract_settings.crop if extract_settings is not None else CropSettings()
cache = common.cache_dir()

with st.sidebar:
    st.markdown("**Gallery options**")
    overlays = st.multiselect("Overlays", list(STRUCTURE_COLOURS), default=list(GIF_OVERLAYS), key="g_overlays",
                              help="Colour these structures on the GIFs (GIFs show the slices that hold the cleft "
                                   "or vesicle cloud ± 1).")
    image = st.radio("Image", list(IMAGES), horizontal=True, key="g_image",
                     help="blended: the network input; raw: unmasked EM")
    columns_per_row = st.slider("GIFs per row", 3, 8, 5, key="g_cols")


def gif_for(sid: str):
    bbox_name, var1 = split_synapse_id(sid)
    return gallery.synapse_gif(ds, bbox_name, var1, crop_settings, cache, overlays=tuple(overlays), image=image)


def link_for(sid: str) -> str | None:
    bbox_name, var1 = split_synapse_id(sid)
    row = ds.synapse(bbox_name, var1)
    return ds.link_url(bbox_name, row["central_coord_1"], row["central_coord_2"], row["central_coord_3"])


def show_detail(sid: str) -> None:
    state["g_detail"] = sid
    state[synapse_detail.KEY] = sid
    state["g_dialog"] = sid  # opened as a dialog at the end of this run


@st.dialog("Synapse detail", width="large")
def detail_dialog(sid: str) -> None:
    synapse_detail.show(ds, result, sid, cache, key="g_dialog_detail")
    st.page_link("app_pages/clustering.py", label="Show it on the map", icon=":material/scatter_plot:")


def gif_grid(ids: list[str], key: str, captions: dict | None = None) -> None:
    """GIFs of ``ids`` in rows, each with its name, a link-out and a button to the detail view."""
    for start in range(0, len(ids), columns_per_row):
        cols = st.columns(columns_per_row)
        for col, sid in zip(cols, ids[start : start + columns_per_row]):
            with col:
                data = gif_for(sid)
                label = sid.replace(ID_SEP, " / ")
                if isinstance(data, str):
                    st.warning(esc.md(f"{label}: {data}"))
                else:
                    st.image(data, caption=esc.md(label + (f" — {captions[sid]}" if captions and sid in captions else "")),
                             width="stretch")
                url = link_for(sid)
                b1, b2 = st.columns(2)
                b1.button("Details", key=f"{key}_detail_{sid}", on_click=show_detail, args=(sid,))
                if url:
                    b2.link_button("Open", url, help="Open this synapse in the dataset's viewer")


def morphology_of(ids: list[str]) -> pd.DataFrame:
    """Morphology columns of ``ids`` from the feature table (empty when none were extracted)."""
    morph = [c for c in table.columns if str(c).startswith("morph_")]
    if not morph:
        return pd.DataFrame()
    rows = table.iloc[annotations.row_positions(result.table, ids)].set_index("synapse_id").loc[ids, morph]
    return rows.rename(columns=lambda c: c.removeprefix("morph_"))


common.model_banner()
synapse_detail.next_step("compare the clusters' representatives and random samples; download a ZIP (GIFs + "
                         "manifest.csv) or name groups of synapses on the Clustering page.", "app_pages/clustering.py",
                         "Clustering", ":material/scatter_plot:")
tab_clusters, tab_selection, tab_detail = st.tabs(["Clusters", "Selection", "Synapse detail"])

with tab_clusters:
    clusters = sorted(int(c) for c in table["cluster"].unique())
    a1, a2, a3, a4 = st.columns(4)
    with a1:
        common.persisted(st.selectbox, "Cluster", "g_cluster", clusters[0], options=clusters, share=True,
                         format_func=lambda c: "noise (−1)" if c == -1 else f"cluster {c}")
    with a2:
        n_reps = st.slider("Representatives", 1, 20, 5, key="g_n_reps")
    with a3:
        n_sample = st.slider("Random sample", 0, 40, 10, key="g_n_sample")
    with a4:
        common.persisted(st.number_input, "Sample seed", "g_seed", 0, min_value=0, max_value=2**31 - 1, share=True)
    cluster = state["g_cluster"]
    if state.get("g_members", (None,))[0] is not result or state["g_members"][1] != cluster:
        # once per result and cluster (a tenth of a 10⁶-row table is a large copy), with the columns shown
        members = table[table["cluster"] == cluster]
        state["g_members"] = (result, cluster, members, members[["bbox_name", "Var1", "cluster",
                                                                 "distance_to_centroid", "synapse_id"]])
    members, shown_members = state["g_members"][2:]
    st.markdown(f"**{'Noise' if cluster == -1 else f'Cluster {cluster}'}**: {len(members)} synapses "
                f"in {members['bbox_name'].nunique()} bboxes")
    summary = result.summary[result.summary["cluster"] == cluster]
    if len(summary) and summary.iloc[0].get("top_morphology"):
        st.caption(f"Most distinctive morphology: {esc.md(summary.iloc[0]['top_morphology'])}")

    reps = synapse_ids(representatives(shown_members, n_reps)).tolist()  # empty for noise (−1)
    if reps:
        st.markdown("Representatives (closest to the cluster centre)")
        gif_grid(reps, "rep")
    others = shown_members[~shown_members["synapse_id"].isin(set(reps))]  # the sample shows other synapses than the representatives
    sample = app_state.sample_per_cluster(others, n_sample, int(state["g_seed"])).get(cluster, []) if n_sample else []
    if sample:
        st.markdown(f"Random sample (seed {state['g_seed']})")
        gif_grid(sample, "sample")
    morph = morphology_of(reps + [s for s in sample if s not in reps])
    if len(morph):
        with st.expander("Morphology of the synapses shown"):
            st.dataframe(morph, width="stretch")

    d1, d2 = st.columns(2)
    # built when clicked (a callable): a CSV of a 10⁵-synapse cluster takes seconds, too long for every page run
    d1.download_button("Download cluster CSV", lambda: members.drop(columns=["synapse_id"]).to_csv(index=False).encode(),
                       file_name=f"cluster_{cluster}.csv", mime="text/csv", key="g_cluster_csv")
    if d2.button(f"Prepare ZIP of the cluster's {min(len(members), 200)} GIFs", key="g_cluster_zip_make"):
        keys = list(zip(members["bbox_name"].astype(str), members["Var1"].astype(str)))[:200]
        with st.spinner("Rendering GIFs…"):
            state["g_cluster_zip"] = (cluster, *gallery.gif_zip(ds, keys, crop_settings, cache, overlays, image,
                                                                  table=annotated))
    made = state.get("g_cluster_zip")
    if made and made[0] == cluster:
        d2.download_button("Download cluster GIFs (ZIP)", made[1], file_name=f"cluster_{cluster}_gifs.zip",
                           mime="application/zip", key="g_cluster_zip_download")
        if made[2]:
            d2.caption(f"{len(made[2])} discarded: " + "; ".join(made[2][:5]))

with tab_selection:
    selection = [sid for sid in state.get("selection", []) if sid in ids]
    if not selection:
        st.info("No synapses selected. Drag a box or lasso on the Clustering page's map.")
    else:
        shown = selection[:60]
        st.markdown(f"**{len(selection)} selected synapses**" + (" (first 60 shown)" if len(selection) > 60 else ""))
        clusters_of = dict(zip(shown, table["cluster"].to_numpy()[ids.get_indexer(shown)]))
        gif_grid(shown, "sel", captions={sid: f"cluster {clusters_of[sid]}" for sid in shown})
        chosen = result.table.iloc[annotations.row_positions(result.table, selection)]
        e1, e2 = st.columns(2)
        e1.download_button("Download selection CSV", lambda: chosen.to_csv(index=False).encode(), file_name="selection.csv",
                           mime="text/csv", key="g_selection_csv")
        if e2.button("Prepare ZIP of the selection's GIFs", key="g_sel_zip_make"):
            keys = [split_synapse_id(s) for s in selection[:500]]
            with st.spinner("Rendering GIFs…"):
                state["g_sel_zip"] = gallery.gif_zip(ds, keys, crop_settings, cache, overlays, image, table=annotated)
        if state.get("g_sel_zip"):
            e2.download_button("Download selection GIFs (ZIP)", state["g_sel_zip"][0], file_name="selection_gifs.zip",
                               mime="application/zip", key="g_sel_zip_download")

with tab_detail:
    if len(ids) <= DETAIL_OPTIONS_MAX:
        options = ids.tolist()
        default = state.get("g_detail") if state.get("g_detail") in ids else options[0]
        common.persisted(st.selectbox, "Synapse", "g_detail", default, options=options, share=True,
                         format_func=lambda s: s.replace(ID_SEP, " / "))
    else:  # a list of 10⁶ options is megabytes per page run: type the id instead
        common.SHARED_IN_URL["g_detail"] = "g_detail"
        if state.get("g_detail") not in ids:
            state["g_detail"] = st.query_params.get("g_detail") if st.query_params.get("g_detail") in ids else ids[0]

        def _typed() -> None:
            typed = state["g_detail_text"].replace(" / ", ID_SEP).strip()
            if typed in ids:
                state["g_detail"] = typed

        st.text_input("Synapse", key="g_detail_text", placeholder="bbox / Var1", on_change=_typed,
                      help=f"Type bbox / Var1 (one of {len(ids)} synapses).")
        typed = state.get("g_detail_text", "").replace(" / ", ID_SEP).strip()
        if typed and typed not in ids:
            st.warning(f"{esc.md(typed.replace(ID_SEP, ' / '))} is not in this clustering.")
    synapse_detail.show(ds, result, state["g_detail"], cache, key="g_tab_detail")

if state.get("g_dialog") in ids:
    detail_dialog(state.pop("g_dialog"))
common.write_query()
