"""Sidebar panel: save the current run's configuration as JSON, or load one (never pickle);
and the settings widgets of the pages, whose values a loaded configuration sets.

A settings widget takes its choices, range and help from the settings declaration
(:mod:`synapse_core.app.widgets`); a loaded value it cannot show is an error on the page naming
the field, never silently replaced.
"""

from __future__ import annotations

import streamlit as st

from app_pages import common
from synapse_core.app import escape as esc
from synapse_core.app import run_config
from synapse_core.app.run_config import DataChoice, RunConfig, settings_from_dict, settings_to_dict
from synapse_core.app.widgets import declared_default, unshowable, widget_options

#: Session-state names a loaded configuration writes; the pages read them as widget values.
EXTRACTION_LOADED = "loaded_extraction"
CLUSTERING_LOADED = "loaded_clustering"
#: Session-state name of each run-config section.
LOADED = {"extraction": EXTRACTION_LOADED, "clustering": CLUSTERING_LOADED}


def loaded_settings(section: str, page_defaults: dict | None = None):
    """The settings of ``section`` ("extraction" or "clustering") that the page's widgets start from.

    Those of a loaded run configuration, else the declared defaults updated with
    ``page_defaults``. A loaded section that is not valid is an error on the page naming the
    field; the widgets then start from the defaults.
    """
    cls = run_config.SECTIONS[section]
    loaded = st.session_state.get(LOADED[section])
    if loaded is None:
        return cls(**(page_defaults or {}))
    try:
        return settings_from_dict(cls, loaded, section)
    except ValueError as exc:
        st.error(f"The loaded run configuration cannot be used: {esc.md(exc)}")
        return cls(**(page_defaults or {}))


def settings_widget(widget, label: str, key: str, settings, name: str, where: str, *, value=None, to_widget=None,
                    share: bool = False, **overrides):
    """Draw ``widget`` for field ``name`` of ``settings``, with options, range and help from its declaration.

    ``where`` names the settings in messages (``"clustering"``, ``"extraction.crop"``).
    ``to_widget`` maps the field's value to the widget's (e.g. None → 0); ``value`` gives the
    widget's value directly. ``overrides`` (``step``, ``format_func``, a page's ``min_value`` ...)
    replace the declared ones. A value the widget cannot show is an error naming the field, and
    the widget shows the declared default instead.
    """
    kwargs = widget_options(type(settings), name, **overrides)
    to_widget = to_widget or (lambda v: v)
    if value is None:
        value = to_widget(getattr(settings, name))
    problem = unshowable(f"{where}.{name}", value, kwargs.get("options"), kwargs.get("min_value"),
                         kwargs.get("max_value"))
    if problem:
        st.error(f"The loaded run configuration sets a value this page cannot show: {esc.md(problem)}. "
                 f"The widget shows the default instead; choose a value or load another configuration.")
        value = to_widget(declared_default(type(settings), name))
    options = kwargs.pop("options", None)
    return common.persisted(widget, label, key, value, options=options, share=share, **kwargs)


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
