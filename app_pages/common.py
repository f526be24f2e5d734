"""Streamlit helpers shared by the dashboard pages: state that survives page changes and the
URL query, the configured data roots, and cached data products.

Session-state keys used across pages (everything else is page-local):

``root``, ``subfolder``, ``bboxes``        which data (see :mod:`synapse_core.app.data_roots`)
``extract_settings``, ``features``, ``skipped``, ``extract_counts``   extraction results
``cluster_settings``, ``clusters``       :class:`~synapse_core.cluster.run.ClusterResult`
``selection``                            list of synapse ids (``"bbox1|syn_001"``)
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from synapse_core.app import state as app_state
from synapse_core.data.cache_dir import default_cache_dir
from synapse_core.app.data_roots import DataRoot, configured_roots, resolve_inside, root_by_name

#: Names whose values are written to the URL query, so a link reproduces the view.
SHARED_IN_URL: dict[str, str] = {}

#: Uploads (checkpoints, run configs) larger than this are refused; set by the operator.
MAX_UPLOAD_MB = int(os.environ.get("SYNAPSE_MAX_UPLOAD_MB", "600"))


class PageStop(Exception):
    """Raised by :func:`stop`; app.py catches it, so the shared sidebar is still drawn after the page."""


def stop() -> None:
    """End this page's run here (like ``st.stop()``, but app.py still draws what follows the page)."""
    raise PageStop


def cache_dir() -> Path:
    """The shared cache folder (``SYNAPSE_CACHE_DIR`` or the project's ``cache/``)."""
    return default_cache_dir()


@st.cache_resource(show_spinner="Preparing the demo dataset (first start only)…")
def _demo_root(cache: str) -> str:
    from synapse_core.data.demo import demo_data_root

    return str(demo_data_root(cache))


def available_roots() -> list[DataRoot]:
    """The operator's configured roots; the demo dataset when none is configured."""
    roots = configured_roots()
    if roots:
        return roots
    return [DataRoot(name="demo", path=_demo_root(str(cache_dir())))]


@st.cache_resource(show_spinner="Opening dataset…", max_entries=8)
def _open_dataset(path: str, cache: str, stamp: float):
    from synapse_core.data.dataset import open_dataset

    return open_dataset(path, cache_dir=cache)


def _folder_stamp(path: Path) -> float:
    """Latest modification time of the folder and its direct children (re-open when data changes)."""
    try:
        return max([path.stat().st_mtime] + [p.stat().st_mtime for p in path.iterdir()])
    except OSError:
        return 0.0


def dataset_path() -> Path:
    """Folder of the currently chosen dataset, checked to lie inside its configured root."""
    roots = available_roots()
    name = st.session_state.get("root") or roots[0].name
    root = root_by_name(roots, name)
    return resolve_inside(root, st.session_state.get("subfolder", ""))


def current_dataset():
    """The chosen dataset (opened once per process and shared between sessions).

    Raises ValueError (written for the user) if the folder is not a valid dataset.
    """
    path = dataset_path()
    return _open_dataset(str(path), str(cache_dir()), _folder_stamp(path))


def require_dataset():
    """The chosen dataset, or an error on the page and a stop."""
    try:
        return current_dataset()
    except (ValueError, FileNotFoundError, KeyError) as exc:
        st.error(f"Cannot open the dataset: {exc}")
        st.page_link("app_pages/data.py", label="Choose data on the Data page", icon=":material/folder_open:")
        stop()


def chosen_bboxes(ds) -> list[str]:
    """Bboxes chosen on the Data page (all of the dataset's when none were chosen)."""
    chosen = [b for b in st.session_state.get("bboxes", []) if b in ds.bboxes]
    return chosen or sorted(ds.bboxes)


# --- widgets whose values survive page changes and can come from the URL -----------------

def _from_query(name: str, default, options, lo=None, hi=None):
    text = st.query_params.get(name)
    if text is None:
        return default
    if isinstance(default, list):
        return app_state.decode_list(text, [str(o) for o in options] if options is not None else text.split(","))
    if options is not None:
        return app_state.decode_choice(text, options, default)
    if isinstance(default, bool):
        return {"true": True, "false": False}.get(text.lower(), default)
    if isinstance(default, (int, float)):
        return app_state.decode_number(
            text, lo if lo is not None else float("-inf"), hi if hi is not None else float("inf"), default, type(default)
        )
    return text


def _sync(name: str) -> None:
    st.session_state[name] = st.session_state[f"w_{name}"]


def persisted(widget, label: str, name: str, default, *, options=None, share: bool = False, **kwargs):
    """Draw ``widget`` whose value is kept in ``st.session_state[name]`` across pages.

    ``share=True`` also reads the first value from the URL query and writes it back to the
    query on every run, so the page's link reproduces the view. ``options`` are checked: a
    stored value that is no longer an option falls back to ``default``.
    """
    state = st.session_state
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if name not in state:
        state[name] = _from_query(name, default, options, lo, hi) if share else default
    value = state[name]
    if options is not None:
        opts = list(options)
        if isinstance(default, list):
            value = [v for v in value if v in opts]
        elif value not in opts:
            value = default if default in opts else (opts[0] if opts else None)
        kwargs["options"] = opts
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            value = default
    state[name] = value
    state[f"w_{name}"] = value
    if share:
        SHARED_IN_URL[name] = name
    return widget(label, key=f"w_{name}", on_change=_sync, args=(name,), **kwargs)


def write_query() -> None:
    """Write every shared value of this session to the URL query."""
    state = st.session_state
    params = {}
    for name in SHARED_IN_URL:
        if name in state and state[name] not in (None, "", []):
            value = state[name]
            params[name] = app_state.encode_list(value) if isinstance(value, (list, tuple)) else str(value)
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)


def show_selection_badge() -> None:
    """A sidebar line with the number of selected synapses."""
    n = len(st.session_state.get("selection", []))
    st.sidebar.caption(f"Selection: {n} synapse{'s' if n != 1 else ''}")
