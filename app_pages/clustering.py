"""Clustering page: projection and clustering settings, k curves, diagnostics, and an
interactive map whose box/lasso selection selects synapses (kept across pages)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import plotly.io as pio
import streamlit as st

from app_pages import common, synapse_detail
from app_pages.run_config_panel import (
    apply_run_config,
    current_run_config,
    loaded_settings,
    settings_widget,
)
from synapse_core.app import annotations, jobs
from synapse_core.app import escape as esc
from synapse_core.app import state as app_state
from synapse_core.app.diagnostics_text import diagnostic_rows
from synapse_core.cluster.run import run_clustering
from synapse_core.data.hashing import content_hash
from synapse_core.data.synapse_keys import split_synapse_id, synapse_ids
from synapse_core.viz import gallery
from synapse_core.viz.figures import (
    bbox_composition_figure,
    k_curves_figure,
    map_figure,
)
from synapse_core.viz.map_hover import hover_pictures_html

#: Maps with more synapses show hover pictures for the first this many (pictures travel with the page).
HOVER_PICTURES_MAX = 600
#: Above this many synapses "Find a synapse" is a text field instead of a list of every id.
FIND_OPTIONS_MAX = 20_000

st.title("Clustering")

# Plotly's orjson engine cleans object arrays (the map's synapse ids) element by element in Python: 0.96 s
# for a map of 50 000 drawn points (any map above 50 000 synapses) against 0.21 s with the standard json
# engine, which writes the same JSON document.
pio.json.config.default_engine = "json"



def open_linked_view(key: str) -> None:
    """A shared link (``?view=<key>``): recompute the view from the caches, or say it is not computed yet."""
    from synapse_core.app import run_config
    from synapse_core.cluster.settings import ClusterSettings
    from synapse_core.features.extract import cache_status, extract_features
    from synapse_core.features.settings import ExtractSettings
    from synapse_core.settings_base import settings_from_dict

    text = app_state.load_view(common.cache_dir(), key)
    if text is None:
        st.warning("This link's view is not known on this server (the cache was cleared or the link is from "
                   "another server). Run the extraction and clustering to see it.")
        return
    try:
        config = run_config.loads(text, source="the linked view")
        apply_run_config(config)
        ds = common.current_dataset()
        x_settings = settings_from_dict(ExtractSettings, config.extraction, "extraction")
        c_settings = settings_from_dict(ClusterSettings, config.clustering, "clustering")
        bboxes = common.chosen_bboxes(ds)
        with st.spinner("Opening the linked view from the cache…"):
            n_cached, n_missing = cache_status(ds, x_settings, common.cache_dir(), bboxes=bboxes)
            if n_missing:
                st.warning(f"Not computed yet: {n_missing} of {n_cached + n_missing} synapses of this view have no "
                           "features in the cache. Run the extraction (its settings are loaded), then the clustering.")
                st.page_link("app_pages/extraction.py", label="Go to Extraction", icon=":material/memory:")
                return
            extracted = extract_features(ds, x_settings, common.cache_dir(), bboxes=bboxes)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        st.error(f"The linked view cannot be opened: {esc.md(exc)}")
        return
    state = st.session_state
    state.update(features=extracted.features, skipped=extracted.skipped, extract_settings=x_settings,
                 extract_counts=(extracted.n_cached, extracted.n_computed), cluster_settings=c_settings)
    state.pop("clusters", None)
    state["opened_view"] = key
    # The clustering is a job too: the same view open elsewhere on this server is computed once.
    common.follow_job(jobs.submit_clustering(extracted.features, c_settings, common.cache_dir(),
                                             started_by=common.user_label()))
    state.pop("applied_clustering", None)


def open_saved_clustering(key: str) -> None:
    """A link to a clustering run saved in the cache (``?clusters=<key>``, printed by ``cluster --save``):
    shown as it was computed, without recomputing (how a 10⁶-synapse run reaches the dashboard)."""
    from synapse_core.cluster.run import open_result

    try:
        with st.spinner("Opening the saved clustering…"):
            result = open_result(common.cache_dir(), key)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        st.error(f"The linked clustering cannot be opened: {esc.md(exc)}")
        return
    st.session_state.update(features=result.table, clusters=result, cluster_settings=result.settings,
                            opened_clusters=key)


if st.query_params.get("clusters") and st.session_state.get("opened_clusters") != st.query_params.get("clusters"):
    open_saved_clustering(st.query_params.get("clusters"))
features = st.session_state.get("features")
linked = st.query_params.get("view")
if features is None and linked and st.session_state.get("opened_view") != linked:
    open_linked_view(linked)
    features = st.session_state.get("features")
if features is None:
    synapse_detail.next_step("no features yet: run an extraction first.", "app_pages/extraction.py",
                             "Extraction", ":material/memory:")
    common.write_query()
    common.stop()

#: The dashboard leaves synapses with missing features out (and says so) where the CLI stops with an error.
PAGE_DEFAULTS = {"nan_policy": "drop"}
NAN_POLICY_LABELS = {"error": "stop with an error", "drop": "leave them out (reported)",
                     "impute": "replace by the column median (reported)"}
# Widgets start from the declared defaults, or from a loaded run configuration.
defaults = loaded_settings("clustering", page_defaults=PAGE_DEFAULTS)

n_rows = len(features)
st.caption(f"{n_rows} synapses with features from the Extraction page.")

# --- settings ----------------------------------------------------------------------------
with st.container(border=True):
    s1, s2, s3, s4 = st.columns(4)

    def widget(kind, label, key, name, **kwargs):
        return settings_widget(kind, label, key, defaults, name, "clustering", **kwargs)

    with s1:
        widget(st.selectbox, "Method", "c_method", "method", share=True)
        common.persisted(st.checkbox, "Choose k automatically (silhouette)", "c_k_auto", defaults.k == "auto")
        widget(st.number_input, "k (when not automatic)", "c_k", "k", share=True,
               value=defaults.k if defaults.k != "auto" else 4)
        widget(st.slider, "k range swept", "c_k_range", "k_range", to_widget=tuple,
               max_value=max(30, defaults.k_range[1]))
    with s2:
        widget(st.selectbox, "Features", "c_feature_set", "feature_set")
        widget(st.selectbox, "Scaling", "c_scaler", "scaler")
        widget(st.number_input, "PCA components (0 = none)", "c_pca", "pca_components", to_widget=lambda n: n or 0,
               min_value=0)
        widget(st.selectbox, "Synapses with missing features", "c_nan_policy", "nan_policy",
               format_func=NAN_POLICY_LABELS.get)
        widget(st.number_input, "Seed", "c_seed", "seed")
    with s3:
        widget(st.selectbox, "Projection", "c_projection", "projection", share=True)
        widget(st.radio, "Map dimensions", "c_dims", "dims", horizontal=True, share=True)
        widget(st.number_input, "UMAP neighbours", "c_umap_n_neighbors", "umap_n_neighbors")
        widget(st.number_input, "UMAP min distance", "c_umap_min_dist", "umap_min_dist", step=0.05)
        widget(st.number_input, "t-SNE perplexity", "c_tsne_perplexity", "tsne_perplexity")
    with s4:
        widget(st.number_input, "HDBSCAN/DBSCAN min cluster size", "c_min_cluster_size", "min_cluster_size")
        widget(st.number_input, "HDBSCAN/DBSCAN min samples", "c_min_samples", "min_samples")
        widget(st.number_input, "DBSCAN eps (0 = automatic)", "c_dbscan_eps", "dbscan_eps", to_widget=lambda e: e or 0.0,
               step=0.1)
        widget(st.number_input, "Stability subsamples (0 = skip)", "c_n_stability", "n_stability")
    b1, b2, _ = st.columns([1, 1, 4])
    run_clicked = b1.button("Run clustering", type="primary", key="c_run",
                            help="Runs on the server: you can change settings or pages meanwhile. The same "
                                 "clustering started by someone else is joined, or its result shown, not repeated.")
    following = common.followed_job("clustering")
    cancel_clicked = b2.button("Cancel", key="c_cancel", disabled=following is None or not following.active,
                               help="Stops the running clustering after its current stage.")

state = st.session_state


def chosen_settings():
    """The settings of the widgets (ValueError, written for the user, for a value out of range)."""
    # Fields without a widget (metric, linkage, kmeans_algorithm ...) keep their loaded (or default) values.
    return dataclasses.replace(
        defaults, method=state["c_method"], k="auto" if state["c_k_auto"] else int(state["c_k"]),
        k_range=tuple(int(v) for v in state["c_k_range"]), projection=state["c_projection"], dims=int(state["c_dims"]),
        seed=int(state["c_seed"]), scaler=state["c_scaler"], pca_components=int(state["c_pca"]) or None,
        feature_set=state["c_feature_set"], nan_policy=state["c_nan_policy"], umap_n_neighbors=int(state["c_umap_n_neighbors"]),
        umap_min_dist=float(state["c_umap_min_dist"]), tsne_perplexity=float(state["c_tsne_perplexity"]),
        min_cluster_size=int(state["c_min_cluster_size"]), min_samples=int(state["c_min_samples"]),
        dbscan_eps=float(state["c_dbscan_eps"]) or None, n_stability=int(state["c_n_stability"]),
    )


# --- run: a background job of the server (synapse_core.app.jobs) --------------------------
# Clicks, page changes and closed tabs do not stop it; a second user asking for the same clustering
# (same features, same settings) attaches to it or gets its result; the sidebar shows it on every page.
user = common.user_label()
try:
    settings = chosen_settings()
except ValueError as exc:
    settings = None
    st.error(f"Clustering settings are not valid: {esc.md(exc)}")
if run_clicked and settings is not None:
    common.follow_job(jobs.submit_clustering(features, settings, common.cache_dir(), started_by=user))
    state.pop("applied_clustering", None)  # Run shows the result even when it is a job already applied here

job = common.followed_job("clustering")
if job is not None and job.active and cancel_clicked:
    jobs.REGISTRY.cancel(job.key, by=user)


@st.fragment(run_every=1.0)
def clustering_progress(job) -> None:
    """The followed clustering's stage, redrawn every second; the app reruns when it ends."""
    if not job.active:
        st.rerun()
    st.progress(job.fraction, text=job.message())
    who = job.started_by + (f", joined by {', '.join(job.attached)}" if job.attached else "")
    st.caption(f"Job {job.job_id} started by {esc.md(who)}; it keeps running if you change settings or pages. "
               "Cancel stops it after the stage it is in (a started stage runs to its end; a map computed beside the k sweep is stopped).")


if job is not None:
    if job.active:
        clustering_progress(job)
    elif common.show_job_end(job, "Clustering", "Press **Run clustering** to start it again (a finished map is "
                                                "cached and not computed again)."):
        common.apply_clustering_result(job)
elif settings is not None and state.get("clusters") is None:
    other = jobs.REGISTRY.get(jobs.clustering_key(features, settings, common.cache_dir()))
    if other is not None and other.active:
        st.info(f"{esc.md(other.started_by)} is running this clustering ({other.message()}): press "
                "**Run clustering** to follow it; it is not computed twice.")
    elif other is not None and other.status == "done":
        st.info(f"{esc.md(other.started_by)} ran this clustering: press **Run clustering** to show its result "
                "(it is not computed again).")

result = state.get("clusters")
if result is None:
    if job is not None and job.active:
        common.write_query()
        common.stop()
    synapse_detail.next_step("choose the settings above (the defaults are a good start) and press **Run clustering**.")
    common.write_query()
    common.stop()

# The link of this page names a stored view (data, extraction and clustering settings), so that a
# colleague opening it gets the same map from the caches.
if state.get("cluster_settings") is not None and state.get("extract_settings") is not None:
    from synapse_core.app import run_config as _run_config

    state["view"] = app_state.save_view(common.cache_dir(), _run_config.dumps(current_run_config()))
    common.SHARED_IN_URL["view"] = "view"

# Named selections and manual cluster assignments of this result, shared by every user (JSON in the cache).
# The key and the ids are computed once per result table (sorting and hashing 10⁶ synapse ids takes
# seconds; every click reruns the page), and apply() adds columns without copying the table.
ann_key = annotations.result_key(result.table, result.diagnostics.get("settings_key"))
try:
    named = annotations.load(common.cache_dir(), ann_key)
except ValueError as exc:
    named = []
    st.warning(f"Saved selections cannot be read: {esc.md(exc)}")
table = annotations.apply(result.table, named)
common.model_banner()
synapse_detail.next_step("hover and click points to look at synapses; select and name groups; then look at each "
                         "cluster's synapses in the Galleries.", "app_pages/galleries.py", "Galleries",
                         ":material/photo_library:")
parent = state.get("clusters_parent")
if parent is not None:
    b1, b2 = st.columns([4, 1])
    b1.info(f"Showing the re-clustering of {len(result.table)} selected synapses (of {len(parent.table)}).")
    if b2.button("Back to all synapses", key="c_back_to_all"):
        state["clusters"] = state.pop("clusters_parent")
        state["selection"] = state.pop("parent_selection", [])
        st.rerun()
diag = result.diagnostics
m1, m2, m3, m4 = st.columns(4)
m1.metric("Clusters", diag.get("n_clusters"))
m2.metric("Silhouette", f"{diag['silhouette']:.3f}" if diag.get("silhouette") is not None else "–")
m3.metric("k rule", str(diag.get("k")) if diag.get("k") is not None else "density")
stab = diag.get("stability")
stab_value = stab.get("ari_mean") if isinstance(stab, dict) else stab
m4.metric("Stability (ARI)", f"{stab_value:.2f}" if isinstance(stab_value, (int, float)) else "–")
n_left_out = n_rows - len(table)
if n_left_out:
    st.warning(f"{n_left_out} synapses with missing (NaN) features were left out of the clustering; "
               "see preprocess in the diagnostics.")
st.caption(f"k: {diag.get('k_rule')}. Clustering space: {diag.get('cluster_space')}. Noise label −1.")

# --- the map and the synapse shown beside it ----------------------------------------------
st.subheader("Map")
proj_cols = result.projection_columns
# The ids of table's rows (annotations add columns, not rows); `sid in id_set` is a hash lookup.
all_ids = id_set = annotations.table_ids(result.table)
common.SHARED_IN_URL[synapse_detail.KEY] = synapse_detail.KEY
if synapse_detail.KEY not in state and st.query_params.get(synapse_detail.KEY) in id_set:
    state[synapse_detail.KEY] = st.query_params.get(synapse_detail.KEY)  # a shared link names the synapse
shown = state.get(synapse_detail.KEY) if state.get(synapse_detail.KEY) in id_set else None
try:
    ds = common.current_dataset()
except (ValueError, FileNotFoundError, KeyError) as exc:
    ds = None
    st.warning(f"Synapse pictures are not available: the dataset cannot be opened ({esc.md(exc)}).")


@st.cache_data(show_spinner=False, max_entries=20_000)  # ≈ 3 KB per picture
def _thumbnail(_ds, ds_key: str, sid: str, crop_key: str, _crop, cache: str) -> bytes | None:
    bbox_name, var1 = split_synapse_id(sid)
    try:
        png = gallery.synapse_thumbnail(_ds, bbox_name, var1, _crop, cache)
    except (KeyError, ValueError):  # a synapse no longer in the dataset's table: no picture
        return None
    return None if isinstance(png, str) else png


def hover_thumbnails(ids: list[str]) -> dict[str, bytes]:
    """Centre-slice pictures of ``ids`` (cached on disk, shared by every user)."""
    crop = synapse_detail.crop_settings()
    crop_key, ds_key, cache = content_hash(crop, digest_size=8), str(common.dataset_path()), str(common.cache_dir())
    out = {}
    for sid in ids:
        png = _thumbnail(ds, ds_key, sid, crop_key, crop, cache)
        if png is not None:
            out[sid] = png
    return out


if not proj_cols:
    st.info("Projection was 'none': no map. Choose UMAP or t-SNE to draw one.")
    map_col, detail_col = st.container(), st.container()
else:
    map_col, detail_col = st.columns([3, 2], gap="medium")
with map_col:
    if proj_cols:
        colour_options = ["cluster", "bbox_name"] + [
            c for c in table.columns
            if c not in ("cluster", "bbox_name", "cluster_space") and not str(c).startswith(("feat_", "proj_"))
        ]
        c1, c2, c3 = st.columns([2, 2, 1])
        with c1:
            common.persisted(st.selectbox, "Colour by", "c_colour_by", "cluster", options=colour_options, share=True,
                             help="Categories (cluster, bbox, presynaptic side, annotations, selections) get one "
                                  "colour each with their counts in the legend; other numbers a colour scale.")
        with c2:
            if len(all_ids) <= FIND_OPTIONS_MAX:
                st.selectbox("Find a synapse", all_ids.tolist(), index=None, key="c_find", placeholder="bbox / Var1…",
                             format_func=synapse_detail.label,
                             on_change=lambda: synapse_detail.open_synapse(state["c_find"]) if state.get("c_find") else None,
                             help="Shows the synapse beside the map and marks it with a star on the map.")
            else:  # a list of 10⁶ options is megabytes per page run: type the id instead
                st.text_input("Find a synapse", key="c_find_text", placeholder="bbox / Var1",
                              on_change=lambda: synapse_detail.open_synapse(
                                  state["c_find_text"].replace(" / ", "|").strip())
                              if state["c_find_text"].replace(" / ", "|").strip() in id_set else None,
                              help="Type bbox / Var1: shows the synapse beside the map and marks it with a star.")
        with c3:
            point_size = st.slider("Point size", 3, 20, 8, key="c_point_size")
        dims = len(proj_cols)
        selection = [s for s in state.get("selection", []) if s in id_set]
        # No drag mode set: Streamlit then pans on drag and selects the clicked point (its detail opens);
        # Box/Lasso select in the map's toolbar select synapses.
        # Drawn again only when what it shows changed (2–3 s at 10⁶ synapses), not on every click.
        drawn = (state["c_colour_by"], point_size, tuple(selection), shown, tuple(named))
        if state.get("c_map_figure", (None,))[0] is not result or state["c_map_figure"][1] != drawn:
            state["c_map_figure"] = (result, drawn, map_figure(
                table, state["c_colour_by"], point_size=point_size, selected_ids=selection or None,
                highlight_ids=[shown] if shown else None))
        fig = state["c_map_figure"][2]
        fig.update_layout(height=620, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                          legend={"orientation": "h", "yanchor": "top", "y": -0.02})

        def on_map_event() -> None:
            kind, ids = app_state.map_event(state.get("cluster_map"))
            if kind == "click":
                state[synapse_detail.KEY] = ids[0]
            elif kind == "box":
                current = state.get("selection", []) if state.get("c_select_mode", "add") == "add" else []
                state["selection"] = app_state.add_to_selection(current, ids)

        if dims == 2:
            st.plotly_chart(fig, key="cluster_map", on_select=on_map_event, selection_mode=("points", "box", "lasso"),
                            config={"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}})
            st.radio("A box or lasso", ["add", "replace"], horizontal=True, key="c_select_mode",
                     format_func={"add": "adds to the selection", "replace": "replaces the selection"}.get)
            n_hover = min(len(all_ids), HOVER_PICTURES_MAX)
            if ds is not None:
                with st.spinner("Preparing synapse pictures for the map…"):
                    thumbs = hover_thumbnails(all_ids[:HOVER_PICTURES_MAX].tolist())
                # Our own script (data JSON-escaped); it reaches the map in the parent page (same origin).
                st.iframe(hover_pictures_html(thumbs, "cluster_map", {s: synapse_detail.label(s) for s in thumbs}),
                          height=1)
            st.caption("Hover a point to see its synapse; click it to show it beside the map. To select synapses "
                       "(kept across pages), choose Box or Lasso select in the map's toolbar and drag."
                       + (f" Pictures on hover for the first {n_hover} of {len(all_ids)} synapses."
                          if n_hover < len(all_ids) else ""))
        else:
            st.plotly_chart(fig, key="cluster_map_3d", config={"displaylogo": False})
            st.caption("3D maps can be rotated; box/lasso selection and hover pictures work on 2D maps only.")
        st.download_button("Export map (interactive HTML)", lambda: fig.to_html(include_plotlyjs="cdn").encode(),
                           file_name="cluster_map.html", mime="text/html", key="c_export_map")
with detail_col:
    if shown and ds is not None:
        synapse_detail.show(ds, result, shown, common.cache_dir(), key="c_detail")
        if st.button("Close", key="c_detail_close", icon=":material/close:"):
            state.pop(synapse_detail.KEY, None)
            st.rerun()
    else:
        st.info("Click a point on the map (or find a synapse by its id) to see its GIF, slices, measurements and "
                "nearest neighbours here.")

# --- selection: name it, assign it to a cluster, re-cluster it ---------------------------
selection = [s for s in state.get("selection", []) if s in id_set]
st.subheader(f"Selection ({len(selection)} synapses)")
if selection:
    chosen = table.iloc[annotations.row_positions(result.table, selection)]  # table order, as synapse_rows
    keep = ["bbox_name", "Var1", "cluster", "distance_to_centroid"] + result.projection_columns
    st.dataframe(chosen[[c for c in keep if c in chosen.columns]], hide_index=True, width="stretch", height=220)
    s1, s2, s3 = st.columns(3)
    s1.download_button("Download selection CSV", lambda: chosen.to_csv(index=False).encode(), file_name="selection.csv",
                       mime="text/csv", key="c_download_selection")
    if s2.button("Clear selection", key="c_clear_selection"):
        state["selection"] = []
        st.rerun()
    s3.page_link("app_pages/galleries.py", label="Show the selection as a gallery", icon=":material/photo_library:")
    with st.container(border=True):
        st.markdown("**Keep this selection** as a column of the clusters table (saved for everyone on this server)")
        n1, n2, n3, n4 = st.columns([2, 2, 2, 1])
        n1.text_input("Name", key="c_sel_name", max_chars=40, placeholder="e.g. large vesicle clouds")
        clusters_now = sorted(int(c) for c in table["cluster"].unique() if int(c) >= 0)
        new_label = annotations.new_cluster(table, named)
        n2.selectbox("Assign to cluster", ["none", *clusters_now, "new"], key="c_sel_assign",
                     format_func=lambda c: {"none": "no (only name it)", "new": f"a new cluster ({new_label})"}.get(
                         c, f"cluster {c}"),
                     help="Manual refinement: the synapses get this cluster in the column cluster_refined, with "
                          "the selection's name, your name and the time (columns annotation, annotated_by, "
                          "annotated_at). The computed cluster column is kept.")
        common.persisted(n3.text_input, "Your name", "user_name", "", max_chars=80,
                         help="Recorded with your selections (annotated_by).")
        n4.markdown("&nbsp;")
        if n4.button("Save", key="c_sel_save", type="primary"):
            assign = state["c_sel_assign"]
            try:
                new = annotations.NamedSelection(
                    state.get("c_sel_name", ""), tuple(selection),
                    cluster=None if assign == "none" else (new_label if assign == "new" else int(assign)),
                    author=state.get("user_name") or "anonymous")
                annotations.save(common.cache_dir(), ann_key, annotations.add(named, new))
            except ValueError as exc:
                st.error(esc.md(exc))
            else:
                st.toast(f"Saved: column {esc.md(new.column)}")
                st.rerun()
    r1, r2 = st.columns([1, 3])
    if len(selection) >= 4 and r1.button(f"Re-cluster only these {len(selection)}", key="c_recluster",
                                         help="Runs the same settings on the selected synapses only (new map, "
                                              "new k); 'Back to all synapses' returns."):
        sub = features[synapse_ids(features).isin(set(selection)).to_numpy()]
        try:
            with st.spinner(f"Clustering {len(sub)} synapses…"):
                sub_result = run_clustering(sub, result.settings,
                                            cache_dir=common.cache_dir())
        except ValueError as exc:
            st.error(f"Re-clustering failed: {esc.md(exc)}")
        else:
            if parent is None:
                state["clusters_parent"] = result
                state["parent_selection"] = selection
            state["clusters"] = sub_result
            state["selection"] = []
            st.rerun()
else:
    st.caption("Nothing selected yet.")
if named:
    with st.expander(f"Saved selections ({len(named)})", expanded=False):
        st.dataframe(pd.DataFrame([{"name": n.name, "column": n.column, "synapses": len(n.ids),
                                    "assigned cluster": n.cluster, "by": n.author, "at": n.created}
                                   for n in named]), hide_index=True, width="stretch")
        gone = st.selectbox("Delete a saved selection", [n.name for n in named], index=None, key="c_sel_delete")
        if gone and st.button(f"Delete {esc.md(repr(gone))}", key="c_sel_delete_go"):
            annotations.save(common.cache_dir(), ann_key, annotations.remove(named, gone))
            st.rerun()

# Built when clicked (a callable): a 10⁶-row CSV takes ~35 s, too long for every page run.
st.download_button("Download clusters CSV", lambda: table.to_csv(index=False).encode(), file_name="clusters.csv",
                   mime="text/csv", key="c_download_clusters", type="primary",
                   help="Every clustered synapse with its cluster, map position, saved selections "
                        "(selection_* columns) and manual assignments (cluster_refined, annotation, ...).")

# --- k curves and diagnostics ------------------------------------------------------------
if result.k_curves is not None and len(result.k_curves):
    st.subheader("k curves")
    kfig = k_curves_figure(result.k_curves, diag.get("k"), diag.get("elbow_k"), diag.get("cluster_structure"))
    st.plotly_chart(kfig, key="k_curves")
    st.download_button("Export k curves (HTML)", kfig.to_html(include_plotlyjs="cdn").encode(),
                       file_name="k_curves.html", mime="text/html", key="c_export_k")

st.subheader("Clusters")
st.dataframe(result.summary, hide_index=True, width="stretch")
t1, t2 = st.columns(2)
with t1:
    st.plotly_chart(bbox_composition_figure(result.composition), key="bbox_composition")
    st.dataframe(result.composition, width="stretch")
with t2:
    if len(result.effect_sizes):
        st.markdown("**Most distinctive morphology** (Cohen's d vs the other clusters)")
        st.dataframe(result.effect_sizes.sort_values("effect_size", key=np.abs, ascending=False).head(20),
                     hide_index=True, width="stretch")
st.subheader("Can these clusters be trusted?")
LIGHTS = {"good": ":green[●]", "caution": ":orange[●]", "bad": ":red[●]", "info": ":gray[●]"}
for row in diagnostic_rows(diag):
    l1, l2, l3 = st.columns([1, 8, 2])
    l1.markdown(f"{LIGHTS[row['level']]} **{esc.md(row['topic'])}**")
    l2.markdown(esc.md(row["sentence"]))
    l3.markdown(f"`{row['value']}`")
for warning in diag.get("warnings") or []:
    st.warning(esc.md(warning))
with st.expander("All diagnostics (JSON)"):
    st.json(diag, expanded=False)
    st.download_button("Download diagnostics JSON", json.dumps(diag, indent=2).encode(),
                       file_name="diagnostics.json", mime="application/json", key="c_download_diag")
common.write_query()
