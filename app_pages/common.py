"""Streamlit helpers shared by the dashboard pages: state that survives page changes and the
URL query, the configured data roots, and cached data products.

Session-state keys used across pages (everything else is page-local):

``root``, ``subfolder``, ``bboxes``        which data (see :mod:`synapse_core.app.data_roots`)
``extract_settings``, ``features``, ``skipped``, ``extract_counts``   extraction results
``cluster_settings``, ``clusters``       :class:`~synapse_core.cluster.run.ClusterResult`
``selection``                            list of synapse ids (``"bbox1|syn_001"``)
``crop_settings``                        the Extraction page's crop settings (the Training page crops alike)
``job_extraction``, ``job_training``, ``job_clustering``   the background job a session follows (:func:`follow_job`)
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from synapse_core.app import escape as esc
from synapse_core.app import state as app_state
from synapse_core.app.data_roots import (
    DataRoot,
    configured_roots,
    resolve_inside,
    root_by_name,
)
from synapse_core.data.cache_dir import default_cache_dir

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
        st.error(f"Cannot open the dataset: {esc.md(exc)}")
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


def model_banner() -> None:
    """Which features the shown results come from (every results page: Extraction, Clustering, Galleries).

    A warning for an untrained network (random weights), a caption naming the learned checkpoint or
    the feature set without a network; nothing before any extraction.
    """
    settings = st.session_state.get("extract_settings")
    if settings is None:
        return
    feature_set = getattr(settings, "feature_set", None) or getattr(settings, "features", "?")
    if getattr(settings, "deep", False) and getattr(settings, "checkpoint", None) is None:
        st.warning(f"These results come from an **untrained network** (random weights, seed {settings.seed}): fine "
                   "for trying the pipeline, not for biology. Choose a checkpoint on the Extraction page.",
                   icon=":material/warning:")
    elif getattr(settings, "deep", False):
        from synapse_core.features.layer_names import layer_label

        layers = "; ".join(layer_label(name) for name in str(settings.layer).split(",") if name.strip())
        st.caption(f"Features: VGG3D, {esc.md(layers)} (`{esc.md(settings.layer)}`), from the learned checkpoint "
                   f"{esc.md(Path(str(settings.checkpoint)).name)}.")
    else:
        st.caption(f"Features: {esc.md(feature_set)} (no network).")


# --- background jobs (synapse_core.app.jobs): work that outlives a page run ---------------

#: Prefix of the Extraction page's checkpoint options that are models trained on the Training page.
TRAINED_CHECKPOINT = "trained: "
#: Session-state key of the job a session follows, per kind (``job_extraction``, ``job_training``).
JOB_STATE = "job_{kind}"
_JOB_ICONS = {"queued": ":material/schedule:", "running": ":material/autorenew:", "done": ":material/check_circle:",
              "failed": ":material/error:", "cancelled": ":material/cancel:"}


def user_label() -> str:
    """Who this session is in job records: the signed-in user's name, else ``session <4 hex>``."""
    try:
        if st.user.is_logged_in:
            return str(st.user.get("name") or st.user.get("email"))
    except (AttributeError, KeyError, RuntimeError):  # no authentication configured
        pass
    if "user_label" not in st.session_state:
        import uuid

        st.session_state["user_label"] = f"session {uuid.uuid4().hex[:4]}"
    return st.session_state["user_label"]


def follow_job(job) -> None:
    """This session follows ``job``: its progress is drawn here and its result applied when done."""
    st.session_state[JOB_STATE.format(kind=job.kind)] = job


def followed_job(kind: str):
    """The job of ``kind`` this session follows, or None."""
    return st.session_state.get(JOB_STATE.format(kind=kind))


def show_job_end(job, what: str, resume_hint: str) -> bool:
    """Say how a job that is no longer running ended; True when it finished and its result can be shown.

    ``what`` names the work ("Extraction", "Training"); ``resume_hint`` tells the user how a cancelled
    job continues (what it kept and which button resumes it).
    """
    if job.status == "cancelled":
        st.warning(f"{what} {job.message()}. {resume_hint}")
    elif job.status == "failed":
        st.error(f"{what} failed: {esc.md(job.error)}")
    return job.status == "done"


def apply_extraction_result(job) -> None:
    """Put a finished extraction job's features into this session (once per job)."""
    state = st.session_state
    if job.status != "done" or state.get("applied_extraction") == job.job_id:
        return
    result = job.result
    state["applied_extraction"] = job.job_id
    state["features"] = result.features.copy()
    state["skipped"] = result.skipped.copy()
    state["extract_counts"] = (result.n_cached, result.n_computed)
    state["extract_settings"] = result.settings
    state["extract_job"] = job
    # New features invalidate clusters (and a clustering of the old ones still running), the selection
    # made on them, and the last cache check.
    for key in ("clusters", "selection", "x_cache_status", JOB_STATE.format(kind="clustering")):
        state.pop(key, None)


def apply_clustering_result(job) -> None:
    """Put a finished clustering job's result into this session (once per job): the map of every page."""
    state = st.session_state
    if job.status != "done" or state.get("applied_clustering") == job.job_id:
        return
    state["applied_clustering"] = job.job_id
    state["clusters"] = job.result
    state["cluster_settings"] = job.result.settings
    # A new clustering replaces the selection made on the old map and any re-clustered subset.
    for key in ("selection", "clusters_parent", "parent_selection"):
        state.pop(key, None)


def collect_finished_jobs() -> None:
    """Apply the results of the jobs this session follows that finished since its last run (every page)."""
    job = followed_job("extraction")
    if job is not None and job.status == "done":
        apply_extraction_result(job)
    job = followed_job("clustering")
    if job is not None and job.status == "done":
        apply_clustering_result(job)


def _draw_jobs(live: bool) -> None:
    from synapse_core.app import jobs

    shown = jobs.REGISTRY.jobs()[:6]
    if not shown:
        return
    state = st.session_state
    if live:
        # A job that was running at the last full run has ended: rerun the app so pages show its outcome.
        active_now = {j.job_id for j in shown if j.active}
        if state.get("_jobs_active_at_run", set()) - active_now:
            st.rerun()
    st.markdown("**Jobs**")
    for job in shown:
        with st.container(border=True):
            st.markdown(f"{_JOB_ICONS.get(job.status, '')} {esc.md(job.label)}")
            who = job.started_by + (f" (+ {', '.join(job.attached)})" if job.attached else "")
            if job.active:
                st.progress(job.fraction, text=job.message())
                st.caption(f"started by {esc.md(who)}")
                # Not labelled "Cancel": the pages' own Cancel buttons stay unambiguous.
                st.button("Stop", key=f"jobs_stop_{job.job_id}", help="Cancel this job; finished work stays cached.",
                          on_click=jobs.REGISTRY.cancel, args=(job.key, user_label()), disabled=job.cancelling)
            else:
                st.caption(esc.md(f"{job.message()} · started by {who}"))


@st.fragment(run_every=1.0)
def _live_jobs() -> None:
    _draw_jobs(live=True)


@st.fragment
def _static_jobs() -> None:
    _draw_jobs(live=False)


def jobs_sidebar() -> None:
    """The server's jobs (running and recently finished) in the sidebar, on every page.

    While a job runs the panel redraws itself every second (progress, rate, ETA, Stop) and reruns the
    app when a job ends; with nothing running it is drawn once per run (no polling).
    """
    from synapse_core.app import jobs

    active = {j.job_id for j in jobs.REGISTRY.active()}
    st.session_state["_jobs_active_at_run"] = active
    with st.sidebar:
        (_live_jobs if active else _static_jobs)()
