"""SynapseClusterEM dashboard: ``streamlit run app.py``.

Five pages, each a thin view over ``synapse_core``: Data → Extraction → Training → Clustering →
Galleries. Extraction, training and clustering run as background jobs of the server
(:mod:`synapse_core.app.jobs`), listed in the sidebar of every page. When the server starts, UMAP's
code is compiled in a background thread (:mod:`synapse_core.cluster.warmup`).
With no data roots configured (``SYNAPSE_DATA_ROOTS``) the demo dataset is used. See
README.md ("Running it for a lab") for running it as a shared lab server.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

APP_DIR = Path(__file__).resolve().parent
if str(APP_DIR) not in sys.path:  # so that pages can `import app_pages.common` and `synapse_core`
    sys.path.insert(0, str(APP_DIR))

from app_pages import common  # noqa: E402
from app_pages.run_config_panel import run_config_sidebar  # noqa: E402
from synapse_core.cluster import warmup  # noqa: E402

st.set_page_config(page_title="SynapseClusterEM", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("app_pages/data.py", title="Data", icon=":material/folder_open:", url_path="", default=True),
    st.Page("app_pages/extraction.py", title="Extraction", icon=":material/memory:", url_path="extraction"),
    st.Page("app_pages/training.py", title="Training", icon=":material/model_training:", url_path="training"),
    st.Page("app_pages/clustering.py", title="Clustering", icon=":material/scatter_plot:", url_path="clustering"),
    st.Page("app_pages/galleries.py", title="Galleries", icon=":material/photo_library:", url_path="galleries"),
]


def _data_link() -> None:
    """``/data``: the default page is served at ``/`` only (Streamlit ignores its url_path); keep the query."""
    st.switch_page(PAGES[0], query_params=dict(st.query_params))


PAGES.append(st.Page(_data_link, title="Data", url_path="data", visibility="hidden"))

# Once per server process (later calls do nothing): compile UMAP's code in a daemon thread, so that
# the first map does not wait for it (SYNAPSE_WARMUP=0 turns it off).
warmup.start_in_background(common.cache_dir())
page = st.navigation(PAGES)
st.sidebar.markdown("**SynapseClusterEM**  \nvolume-EM synapse clustering")
common.show_selection_badge()
common.collect_finished_jobs()
try:
    page.run()
except common.PageStop:
    pass
# Drawn after the page, so that a saved configuration includes what this run just computed, and the
# jobs panel includes a job this run started.
common.jobs_sidebar()
run_config_sidebar()
