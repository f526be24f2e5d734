"""Sidebar panel: save the current run's configuration as JSON, or load one (never pickle)."""

from __future__ import annotations

import streamlit as st

from app_pages import common
from synapse_core.app import run_config
from synapse_core.app.run_config import DataChoice, RunConfig, settings_to_dict

#: Session-state names a loaded configuration writes; the pages read them as widget values.
EXTRACTION_LOADED = "loaded_extraction"
CLUSTERING_LOADED = "loaded_clustering"


def current_run_config() -> RunConfig:
    """The configuration of this session: data choice plus the last settings of each stage."""
    state = st.session_state
    extraction = state.get("extract_settings")
    clustering = state.get("cluster_settings")
    return RunConfig(
        data=DataChoice(
            root=state.get("root", ""), subfolder=state.get("subfolder", ""), bboxes=tuple(state.get("bboxes", ()))
        ),
        extraction=settings_to_dict(extraction) if extraction is not None else dict(state.get(EXTRACTION_LOADED, {})),
        clustering=settings_to_dict(clustering) if clustering is not None else dict(state.get(CLUSTERING_LOADED, {})),
    )


def apply_run_config(config: RunConfig) -> None:
    """Put a loaded configuration into the session: the pages pick it up as widget values."""
    state = st.session_state
    roots = [r.name for r in common.available_roots()]
    if config.data.root and config.data.root not in roots:
        raise ValueError(
            f"data root {config.data.root!r} of this configuration is not configured here; available: {', '.join(roots)}"
        )
    if config.data.root:
        state["root"] = config.data.root
    state["subfolder"] = config.data.subfolder
    state["bboxes"] = list(config.data.bboxes)
    state[EXTRACTION_LOADED] = dict(config.extraction)
    state[CLUSTERING_LOADED] = dict(config.clustering)
    # Settings widgets re-read their values from the loaded sections.
    for key in [k for k in state.keys() if str(k).startswith(("x_", "c_"))]:
        del state[key]


def _on_upload() -> None:
    upload = st.session_state.get("run_config_upload")
    if upload is None:
        return
    try:
        if upload.size > run_config.MAX_CONFIG_BYTES:
            raise ValueError(f"{upload.name}: {upload.size} bytes is larger than the {run_config.MAX_CONFIG_BYTES} allowed")
        config = run_config.loads(upload.getvalue(), source=upload.name)
        apply_run_config(config)
        st.session_state["run_config_message"] = ("success", f"Loaded {upload.name}.")
    except ValueError as exc:
        st.session_state["run_config_message"] = ("error", str(exc))


def run_config_sidebar() -> None:
    """Draw the save/load controls in the sidebar."""
    with st.sidebar.expander("Run configuration (JSON)"):
        st.download_button(
            "Save configuration",
            run_config.dumps(current_run_config()).encode(),
            file_name="synapse_run_config.json",
            mime="application/json",
            key="run_config_save",
        )
        st.file_uploader(
            "Load configuration", type=["json"], key="run_config_upload", on_change=_on_upload,
            help="A JSON file saved with 'Save configuration'. Other formats are refused.",
        )
        message = st.session_state.get("run_config_message")
        if message:
            kind, text = message
            (st.success if kind == "success" else st.error)(text)
