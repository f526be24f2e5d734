"""Extraction page: crop settings with a live preview, feature settings, run with progress,
cache status, cancel/resume, and the features CSV."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import streamlit as st

from app_pages import common
from app_pages.run_config_panel import loaded_settings, settings_widget
from synapse_core.app import escape as esc
from synapse_core.app import jobs, uploads
from synapse_core.crops.build import Discarded, crop_synapse
from synapse_core.crops.segmentation_types import SEGMENTATION_TYPES
from synapse_core.features import extract
from synapse_core.features.checkpoints import CheckpointError
from synapse_core.features.layer_names import (
    layer_option_label,
    layer_options,
    layers_help,
)
from synapse_core.features.settings import DEVICES

st.title("Extraction")

ds = common.require_dataset()
bboxes = common.chosen_bboxes(ds)
rows = ds.synapses[ds.synapses["bbox_name"].isin(bboxes)]
st.caption(f"{len(rows)} synapses in {len(bboxes)} bboxes ({esc.md(', '.join(bboxes))}), chosen on the Data page.")

# Widgets start from the declared defaults, or from a loaded run configuration.
defaults = loaded_settings("extraction")
crop_defaults = defaults.crop

CHECKPOINT_DIR = os.environ.get("SYNAPSE_CHECKPOINT_DIR", "")
UNTRAINED = "untrained (random weights)"
UPLOADED = "uploaded file"
TRAINED = common.TRAINED_CHECKPOINT


def checkpoint_choices() -> list[str]:
    """Checkpoint files in the operator's folder (SYNAPSE_CHECKPOINT_DIR), by name; links out of it are left out."""
    return uploads.checkpoint_choices(CHECKPOINT_DIR)


@st.cache_resource(max_entries=4, show_spinner="Loading the network…")
def cached_feature_model(model_key: tuple, _settings):
    """The extraction network for ``model_key`` (``FeatureModel.key``), kept loaded across runs and sessions."""
    return extract.FeatureModel(_settings)


def save_upload(upload) -> str:
    """Store an uploaded checkpoint in the cache under its sha256 (uploads folder capped in total); return the path."""
    file_cap, _ = uploads.upload_limits()
    if upload.size > file_cap:  # refused before reading it into memory
        raise ValueError(f"{upload.name}: {upload.size / 1e6:.0f} MB is larger than the {file_cap / 1e6:.0f} MB allowed")
    return str(uploads.store_upload(upload.getvalue(), upload.name, common.cache_dir() / "uploads"))


# --- crop settings and preview -----------------------------------------------------------
st.subheader("Crop")
c1, c2, c3, c4 = st.columns(4)
with c1:
    settings_widget(st.selectbox, "Segmentation type", "x_segmentation_type", crop_defaults, "segmentation_type",
                    "extraction.crop", share=True, format_func=lambda t: f"{t}: {SEGMENTATION_TYPES[t].name}")
with c2:
    settings_widget(st.slider, "Alpha (gray curtain opacity)", "x_alpha", crop_defaults, "alpha", "extraction.crop",
                    share=True, step=0.05)
with c3:
    settings_widget(st.slider, "Gray level", "x_gray", crop_defaults, "gray", "extraction.crop", share=True, step=0.05)
with c4:
    settings_widget(st.number_input, "Crop size (voxels)", "x_size", crop_defaults, "size", "extraction.crop", step=8)
    settings_widget(st.checkbox, "Smart crop (towards presynapse)", "x_smart_crop", crop_defaults, "smart_crop",
                    "extraction.crop")
    settings_widget(st.selectbox, "Orientation", "x_orientation", crop_defaults, "orientation", "extraction.crop")
seg_type = st.session_state["x_segmentation_type"]
st.info(f"**Type {seg_type} — {SEGMENTATION_TYPES[seg_type].name}.** {SEGMENTATION_TYPES[seg_type].description}")

try:
    # Fields without a widget keep their loaded (or default) values.
    crop_settings = dataclasses.replace(
        crop_defaults, size=int(st.session_state["x_size"]), segmentation_type=int(seg_type),
        alpha=float(st.session_state["x_alpha"]), gray=float(st.session_state["x_gray"]),
        smart_crop=bool(st.session_state["x_smart_crop"]), orientation=str(st.session_state["x_orientation"]),
    )
    st.session_state["crop_settings"] = crop_settings  # the Training page crops the same way
except ValueError as exc:
    st.error(f"Crop settings are not valid: {esc.md(exc)}")
    common.stop()

from synapse_core.crops.availability import (
    SegmentationTypeUnavailable,
    check_segmentation_type_for_dataset,
)

try:  # before any crop: a type the chosen bboxes cannot build would give gray crops
    check_segmentation_type_for_dataset(ds, crop_settings, bboxes=sorted(set(rows["bbox_name"].astype(str))) or bboxes)
except SegmentationTypeUnavailable as exc:
    st.error(esc.md(exc))
    common.stop()

with st.expander("Live preview of the blended crop", expanded=True):
    ids = (rows["bbox_name"].astype(str) + "/" + rows["Var1"].astype(str)).tolist()
    pick = st.selectbox("Synapse", ids, key="x_preview_synapse") if ids else None
    if pick:
        bbox_name, var1 = pick.split("/", 1)
        crop = crop_synapse(ds, bbox_name, var1, crop_settings)
        if isinstance(crop, Discarded):
            st.warning(esc.md(f"{pick} is discarded with these settings: {crop.reason}"))
        else:
            zc = crop.raw.shape[0] // 2
            p1, p2, p3 = st.columns(3)
            p1.image((crop.raw[zc] * 255).astype(np.uint8), caption=f"raw, z = {zc}", width="stretch")
            p2.image((np.clip(crop.blended[zc], 0, 1) * 255).astype(np.uint8), caption="blended (network input)",
                     width="stretch")
            p3.image((crop.mask[zc] * 255).astype(np.uint8), caption="kept mask", width="stretch")
            st.caption(
                f"presynaptic side {crop.presynaptic.side}"
                + (" (fallback: no vesicle evidence)" if crop.presynaptic.fallback else "")
            )

# --- feature settings --------------------------------------------------------------------
st.subheader("Features")
f1, f2, f3 = st.columns(3)
with f1:
    settings_widget(st.radio, "Feature set", "x_features", defaults, "features", "extraction", share=True,
                    horizontal=True)
uses_network = st.session_state["x_features"] not in ("morphology", "pixels")  # auto: a checkpoint makes it vgg3d
with f2:
    checkpoints = checkpoint_choices()
    trained = [TRAINED + p.name for p in jobs.trained_models(common.cache_dir())]
    options = [UNTRAINED] + checkpoints + trained + [UPLOADED]
    default_ckpt = checkpoints[0] if checkpoints else UNTRAINED
    if defaults.checkpoint:
        default_ckpt = Path(defaults.checkpoint).name
        if default_ckpt not in checkpoints and TRAINED + default_ckpt in trained:
            default_ckpt = TRAINED + default_ckpt
        elif default_ckpt not in checkpoints:
            st.error(esc.md(f"The loaded run configuration sets extraction.checkpoint={defaults.checkpoint!r}, which is "
                            f"not among the checkpoints of this server ({', '.join(checkpoints) or 'none'}); choose one "
                            f"or upload it."))
            default_ckpt = UNTRAINED
    common.persisted(st.selectbox, "Checkpoint", "x_checkpoint", default_ckpt, options=options, disabled=not uses_network,
                     help="Files in the operator's SYNAPSE_CHECKPOINT_DIR, models trained on the Training page, "
                          "an upload, or an untrained network.")
    checkpoint_path: str | None = None
    uploaded_name: str | None = None
    if st.session_state["x_checkpoint"] == UPLOADED and uses_network:
        upload = st.file_uploader("Checkpoint file (.pth, loaded as tensors only)", type=["pth", "pt", "checkpoint", "ckpt"],
                                  key="x_checkpoint_upload")
        if upload is not None:
            try:
                checkpoint_path, uploaded_name = save_upload(upload), upload.name
            except ValueError as exc:
                st.error(esc.md(exc))
    elif st.session_state["x_checkpoint"].startswith(TRAINED):
        # Confined to the cache's models folder: the name comes from the options, and is checked again here.
        checkpoint_path = str(jobs.trained_model_in(common.cache_dir(), st.session_state["x_checkpoint"][len(TRAINED):]))
    elif st.session_state["x_checkpoint"] not in (UNTRAINED, UPLOADED):
        try:  # a name inside the operator's folder, resolved there (a symlink out of it is refused)
            checkpoint_path = str(uploads.checkpoint_path(CHECKPOINT_DIR, st.session_state["x_checkpoint"]))
        except ValueError as exc:
            st.error(esc.md(exc))
with f3:
    # Several layers are concatenated in the order chosen (ExtractSettings.layer is comma-separated).
    # Shown in plain words with the internal name; the value kept (URL, saved configuration) is the internal name.
    settings_widget(st.multiselect, "Layer(s)", "x_layer", defaults, "layer", "extraction", share=True,
                    to_widget=lambda layer: [part.strip() for part in layer.split(",") if part.strip()],
                    options=layer_options(), format_func=layer_option_label, help=layers_help(),
                    disabled=not uses_network)
g1, g2, g3, g4 = st.columns(4)
with g1:
    settings_widget(st.selectbox, "Pooling", "x_pooling", defaults, "pooling", "extraction", share=True,
                    disabled=not uses_network)
with g2:
    settings_widget(st.selectbox, "Precision", "x_precision", defaults, "precision", "extraction",
                    disabled=not uses_network)
with g3:
    import torch

    devices = [d for d in DEVICES if d != "cuda" or torch.cuda.is_available()]
    settings_widget(st.selectbox, "Device", "x_device", defaults, "device", "extraction", options=devices,
                    disabled=not uses_network)
with g4:
    settings_widget(st.number_input, "Batch size", "x_batch_size", defaults, "batch_size", "extraction")

settings_error = None
try:
    # Fields without a widget (seed, fmaps, workers) keep their loaded (or default) values.
    settings = dataclasses.replace(
        defaults, crop=crop_settings, features=st.session_state["x_features"], checkpoint=checkpoint_path,
        layer=",".join(st.session_state["x_layer"]), pooling=st.session_state["x_pooling"],
        batch_size=int(st.session_state["x_batch_size"]), device=st.session_state["x_device"],
        precision=st.session_state["x_precision"],
    )
except ValueError as exc:
    settings, settings_error = None, str(exc)
    st.error(f"Extraction settings are not valid: {esc.md(exc)}")

if uses_network and settings is not None:
    if settings.checkpoint is None and not settings.deep:  # features="auto" without a checkpoint
        st.info(f"No checkpoint: using {settings.feature_set} features, measured best without a download; see "
                "docs/training.md. Choose a checkpoint (e.g. one trained with `python -m synapse_core train`) for "
                "VGG3D features.")
    elif settings.checkpoint is None:
        st.warning(f"No checkpoint: features come from an untrained network (random weights, seed {settings.seed}); "
                   "fine for trying the pipeline, not for biology. Put checkpoints in SYNAPSE_CHECKPOINT_DIR or upload one.")
    else:
        try:
            loaded = cached_feature_model(extract.FeatureModel.key(settings), settings).checkpoint
            kind = ("self-supervised on synapse crops (python -m synapse_core train), no classifier"
                    if loaded.self_supervised else f"{loaded.n_classes} classes")
            st.caption(esc.md(f"Network: {Path(loaded.path).name} ({loaded.identity[:19]}…), {kind}"))
        except (CheckpointError, ValueError, FileNotFoundError) as exc:
            message = str(exc).replace(settings.checkpoint, uploaded_name) if uploaded_name else str(exc)
            if uploaded_name:  # a refused upload is deleted at once (visitors cannot fill the disk)
                uploads.discard_upload(settings.checkpoint, common.cache_dir() / "uploads")
            st.error(f"Checkpoint cannot be used: {esc.md(message)}")
            settings = None

# --- run ---------------------------------------------------------------------------------
# The run is a background job of the server (synapse_core.app.jobs): clicks, page changes and closed
# tabs do not stop it, a second user asking for the same extraction attaches to it, and every page's
# sidebar shows it with progress, rate, ETA and Stop.
st.subheader("Run")
user = common.user_label()
registry = jobs.REGISTRY
status_key = (repr(settings), tuple(bboxes), str(common.dataset_path()))
key = jobs.extraction_key(ds, settings, bboxes) if settings is not None else None
status = st.session_state.get("x_cache_status")
if status is not None and status[0] != status_key:
    status = None
if st.button("Check cache", key="x_check_cache", disabled=settings is None,
             help="Counts synapses whose features are already cached (reads each synapse's window, no network)."):
    from synapse_core.features.extract import cache_status

    with st.spinner("Looking up the cache…"):
        status = (status_key, *cache_status(ds, settings, common.cache_dir(), bboxes=bboxes))
    st.session_state["x_cache_status"] = status
if status is not None:
    st.markdown(f"**Cache:** {status[1]} cached, {status[2]} to compute")

b1, b2, _ = st.columns([1, 1, 4])
run_clicked = b1.button("Run extraction", type="primary", disabled=settings is None, key="x_run",
                        help="Runs on the server: you can change settings or pages meanwhile. The same run "
                             "started by someone else is joined, not repeated.")
cancel_clicked = b2.button("Cancel", key="x_cancel", help="Stops the run; finished synapses stay cached, Run resumes.")

if run_clicked and settings is not None:
    try:
        model = (cached_feature_model(extract.FeatureModel.key(settings), settings) if settings.deep else None)
    except (CheckpointError, ValueError, FileNotFoundError) as exc:
        st.error(f"Extraction failed: {esc.md(exc)}")
    else:
        common.follow_job(jobs.submit_extraction(ds, settings, common.cache_dir(), bboxes, started_by=user,
                                                 model=model))

job = common.followed_job("extraction")
if cancel_clicked:
    target = job if job is not None and job.active else (registry.get(key) if key else None)
    if target is not None and registry.cancel(target.key, by=user) is not None:
        job = target
        common.follow_job(target)


@st.fragment(run_every=1.0)
def job_progress(job) -> None:
    """The followed job's progress, redrawn every second; the app reruns when it ends."""
    if not job.active:
        st.rerun()
    text = job.progress_text() if not job.cancelling else f"cancelling at {job.done} / {job.total} synapses…"
    st.progress(job.fraction, text=text)
    who = job.started_by + (f", joined by {', '.join(job.attached)}" if job.attached else "")
    st.caption(f"Job {job.job_id} started by {esc.md(who)}; it keeps running if you change settings or pages.")


if job is not None:
    if job.active:
        job_progress(job)
    elif common.show_job_end(job, "Extraction", "Finished synapses are cached: press **Run extraction** to resume."):
        common.apply_extraction_result(job)

# Someone else's run with these settings: join it, or show its results.
other = registry.get(key) if key else None
if other is not None and other is not job:
    if other.active:
        st.info(f"{esc.md(other.started_by)} is running this extraction ({other.progress_text()}): press "
                "**Run extraction** to follow it; it is not computed twice.")
    elif other.status == "done" and st.session_state.get("applied_extraction") != other.job_id:
        st.info(f"An extraction with these settings finished {time.strftime('%H:%M', time.localtime(other.finished_at))}"
                f" (started by {esc.md(other.started_by)}).")
        if st.button("Show its results", key="x_show_other"):
            common.follow_job(other)
            common.apply_extraction_result(other)

features = st.session_state.get("features")
if features is not None and not (job is not None and job.active):
    if settings is not None and st.session_state.get("extract_settings") not in (None, settings):
        st.info("The settings changed since these features were computed: press **Run extraction** to update them.")
    common.model_banner()  # of the features shown, which may differ from the settings above
    n_cached, n_computed = st.session_state.get("extract_counts", (0, 0))
    skipped = st.session_state.get("skipped")
    m1, m2, m3 = st.columns(3)
    m1.metric("Synapses with features", len(features))
    m2.metric("From cache / computed", f"{n_cached} / {n_computed}")
    m3.metric("Skipped", 0 if skipped is None else len(skipped))
    done_job = st.session_state.get("extract_job")
    if done_job is not None:
        st.caption(f"Job {done_job.job_id} started by {esc.md(done_job.started_by)}, {done_job.message()}.")
    if skipped is not None and len(skipped):
        with st.expander(f"Skipped synapses ({len(skipped)})"):
            st.dataframe(skipped, hide_index=True, width="stretch")
    st.dataframe(features.head(200), hide_index=True, width="stretch", height=260)
    st.download_button("Download features CSV", features.to_csv(index=False).encode(), file_name="features.csv",
                       mime="text/csv", key="x_download")
    st.page_link("app_pages/clustering.py", label="Next: clustering", icon=":material/arrow_forward:")
common.write_query()
