"""One synapse in detail (Clustering page beside the map, Galleries page tab): its GIF, orthogonal
slices, measurements in words, nearest neighbours in the clustering space. A thin view: pictures
come from :mod:`synapse_core.viz.gallery`, words and neighbours from :mod:`synapse_core.app.state`.

Session state: ``synapse`` is the synapse shown (``"bbox|Var1"``), shared in the URL.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from synapse_core.app import annotations
from synapse_core.app import escape as esc
from synapse_core.app import state as app_state
from synapse_core.crops.settings import CropSettings
from synapse_core.data.synapse_keys import (
    ID_SEP,
    split_synapse_id,
    synapse_file_name,
    synapse_ids,
    synapse_rows,
)
from synapse_core.viz import gallery

#: Session-state key (and URL query name) of the synapse shown in detail.
KEY = "synapse"


def crop_settings() -> CropSettings:
    """Crop settings of the extraction the clusters came from (defaults before any extraction)."""
    extract_settings = st.session_state.get("extract_settings")
    crop = getattr(extract_settings, "crop", None)
    return crop if isinstance(crop, CropSettings) else CropSettings()


def label(sid: str) -> str:
    return sid.replace(ID_SEP, " / ")


def open_synapse(sid: str) -> None:
    """Show ``sid`` in detail (a widget callback)."""
    st.session_state[KEY] = sid


def show(ds, result, sid: str, cache, key: str, n_neighbours: int = 6) -> None:
    """Draw synapse ``sid`` of ``result`` (a ClusterResult) from dataset ``ds``."""
    table = result.table
    bbox_name, var1 = split_synapse_id(sid)
    hits = annotations.row_positions(table, [sid])  # the table's ids are built once per table, not per run
    if not len(hits):
        synapse_rows(table, [sid], where="the clustered table")  # UnknownSynapseError naming the synapse
    row = table.iloc[hits[0]]
    cluster = int(row["cluster"])
    st.markdown(f"#### {esc.md(label(sid))}")
    st.caption(("noise (−1), in no cluster" if cluster < 0 else f"cluster {cluster}")
               + (f"; annotation: {esc.md(row['annotation'])}" if "annotation" in row and pd.notna(row["annotation"]) else ""))
    settings = crop_settings()
    g1, g2 = st.columns([2, 3])
    gif = gallery.synapse_gif(ds, bbox_name, var1, settings, cache)
    with g1:
        if isinstance(gif, str):
            st.warning(esc.md(gif))
        else:
            st.image(gif, caption="z sweep through the synapse", width="stretch")
            st.download_button("GIF", gif, file_name=synapse_file_name(bbox_name, var1), mime="image/gif",
                               key=f"{key}_gif", icon=":material/download:")
    with g2:
        ortho = gallery.synapse_orthogonal_png(ds, bbox_name, var1, settings, cache, scale=2)
        if not isinstance(ortho, str):
            st.image(ortho, caption="Centre slices: (y, x) | (z, x) | (z, y); cleft, vesicle cloud, "
                                    "mitochondria coloured", width="stretch")
    try:
        syn = ds.synapse(bbox_name, var1)
        url = ds.link_url(bbox_name, syn["central_coord_1"], syn["central_coord_2"], syn["central_coord_3"])
        st.caption(f"Centre (x, y, z) = {syn['central_coord_1']}, {syn['central_coord_2']}, "
                   f"{syn['central_coord_3']} voxels in {esc.md(bbox_name)}")
        if url:
            st.link_button("Open in the dataset viewer", url)
    except (KeyError, ValueError):
        pass
    words = app_state.plain_measurements(row.to_dict())
    if words:
        st.markdown("**Measurements**")
        st.dataframe(pd.DataFrame(words, columns=["measurement", "value"]), hide_index=True, width="stretch",
                     height=min(36 * (len(words) + 1), 320))
    space = result.diagnostics.get("cluster_space", "clustering space")
    neighbours = app_state.nearest_neighbours(table, result.features, sid, n_neighbours)
    nn = pd.DataFrame({"synapse": synapse_ids(neighbours).map(label).to_numpy(),
                       "cluster": neighbours["cluster"].to_numpy(),
                       "distance": neighbours["clustering_space_distance"].round(3).to_numpy()})
    st.markdown(f"**Nearest neighbours** (Euclidean distance in the clustering space: {space}); "
                "click a row to show it")
    event = st.dataframe(nn, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key=f"{key}_nn_{sid}")  # a new table per synapse: no stale row selection
    rows = event.selection.rows if event is not None and hasattr(event, "selection") else []
    if rows:
        chosen = synapse_ids(neighbours).iloc[rows[0]]
        if chosen != sid:
            st.session_state[KEY] = chosen
            st.rerun()


def next_step(text: str, page: str | None = None, label: str | None = None, icon: str = ":material/arrow_forward:"):
    """The page's suggested next step, one line (and a link to the page that does it)."""
    with st.container(border=True):
        c1, c2 = st.columns([3, 1])
        c1.markdown(f"**Next step:** {text}")
        if page:
            c2.page_link(page, label=label or "Go", icon=icon)
