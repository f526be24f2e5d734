"""Training page: self-supervised training of VGG3D on this dataset's own synapses, as a background job.

Start (or resume) a run, watch its loss curve, cancel it, and use a trained model for extraction in
one click. The run is ``synapse_core.features.train`` in a child process of the server
(:func:`synapse_core.app.jobs.training_task`); models are written to ``<cache>/models``.
"""

from __future__ import annotations

import time

import streamlit as st

from app_pages import common
from synapse_core.app import escape as esc
from synapse_core.app import jobs
from synapse_core.crops.settings import CropSettings
from synapse_core.features.checkpoints import CheckpointError, read_metadata
from synapse_core.features.train import partial_path
from synapse_core.features.train_settings import METHODS, PRESETS, preset_settings

st.title("Training")
st.markdown(
    "Trains the VGG3D network on **this dataset's own synapse crops**, without labels (self-supervised: two "
    "randomly flipped, rotated, blurred and noised views of each synapse should give the same features). "
    "Without a checkpoint from another lab, a model trained here is how the network's features come to carry "
    "your synapses' biology. With a **morphology target** (the small preset's default) the network must also "
    "predict each synapse's measured morphology (volumes, cleft area and thickness, distances, intensities of "
    "its own segmentation; no type labels), which makes the features follow the synapse rather than its size "
    "(docs/training.md). The run continues on the server when you change pages; a cancelled run resumes "
    "from its last finished epoch."
)

ds = common.require_dataset()
cache = common.cache_dir()
user = common.user_label()
crop = st.session_state.get("crop_settings") or CropSettings()
st.caption(f"{len(ds.synapses)} synapses; crops as on the Extraction page: segmentation type "
           f"{crop.segmentation_type}, alpha {crop.alpha}, {crop.size}³ voxels.")

c1, c2, c3, c4, c5 = st.columns(5)
preset = c1.selectbox("Preset", list(PRESETS), key="t_preset",
                      help="small: fmaps 8, crops averaged to 32³, with the morphology target (about 12 CPU "
                           "minutes for 300 synapses); full: the original network (fmaps 24, 80³, self-supervision "
                           "only; needs a GPU)")
epochs = c2.number_input("Epochs", min_value=1, max_value=1000, value=int(PRESETS[preset]["epochs"]), step=1,
                         key=f"t_epochs_{preset}", help="passes over all synapses")
seed = c3.number_input("Seed", min_value=0, value=0, step=1, key="t_seed",
                       help="initial weights, batch order and augmentations (same seed: same model on a CPU)")
method = c4.selectbox("Method", list(METHODS), key="t_method",
                      help="vicreg: no negative pairs, works with small batches; simclr: contrastive (NT-Xent)")
morphology_weight = c5.number_input(
    "Morphology target", min_value=0.0, max_value=1000.0, step=1.0, key=f"t_morphology_{preset}",
    value=float(preset_settings(preset).morphology_weight),
    help="weight of an extra task: predict each synapse's measured morphology (volumes, cleft area and thickness, "
         "distances, intensities of its own segmentation) from the crop's image; 0: self-supervision only")
try:
    settings = preset_settings(preset, epochs=int(epochs), seed=int(seed), method=method, crop=crop,
                               morphology_weight=float(morphology_weight))
except ValueError as exc:
    st.error(f"Training settings are not valid: {exc}")
    common.stop()

out = jobs.model_path(cache, ds, settings)
key = jobs.training_key(ds, settings)
registry = jobs.REGISTRY
job = registry.get(key)
resumable = partial_path(out).is_file()
finished_file = out.is_file() and not resumable

b1, b2, _ = st.columns([1, 1, 4])
label = "Resume training" if resumable and not (job and job.active) else "Start training"
start = b1.button(label, type="primary", key="t_start", disabled=finished_file or bool(job and job.active),
                  help="Trains in a background process; leave the page or close the tab, it keeps going.")
cancel = b2.button("Cancel", key="t_cancel", disabled=not (job and job.active),
                   help="Stops after the current step; the last finished epoch is kept and Resume continues.")
if start:
    common.follow_job(jobs.submit_training(ds, settings, cache, started_by=user))
    st.rerun()  # redraw the buttons (and the sidebar's jobs) for the running job
if cancel and job is not None:
    registry.cancel(key, by=user)
    st.rerun()
if finished_file and not (job and job.status == "done"):
    st.success(f"A model with these settings is already trained: {out.name} (below).")
elif resumable and not (job and job.active):
    st.info(f"An unfinished run with these settings stopped after an epoch; **{label}** continues it.")


def loss_chart(curve: list[float], steps: list[float] = (), step_epochs: list[float] = (), key: str = "loss") -> None:
    """Mean loss per finished epoch, and the running job's loss per step (lines with markers: one epoch shows too)."""
    import plotly.graph_objects as go

    if not curve and not steps:
        return
    fig = go.Figure()
    if curve:
        fig.add_scatter(x=list(range(1, len(curve) + 1)), y=curve, mode="lines+markers", name="mean per epoch")
    if steps:
        fig.add_scatter(x=list(step_epochs), y=list(steps), mode="lines+markers", name="per step (this run)",
                        marker={"size": 4}, line={"width": 1})
    fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 10, "b": 10}, xaxis_title="epoch",
                      yaxis_title="training loss", legend={"orientation": "h"})
    fig.update_xaxes(rangemode="tozero")
    st.plotly_chart(fig, key=key)


@st.fragment(run_every=1.0)
def live(job) -> None:
    """The running job's progress and loss curve, redrawn every second; the app reruns when it ends."""
    if not job.active:
        st.rerun()
    info = job.info
    text = job.progress_text()
    if info.get("epoch"):
        text = (f"epoch {info['epoch']} / {info.get('epochs', '?')}, step {info['step']} / {info['steps']}, "
                f"loss {info['step_losses'][-1]:.3f} · {text}")
    st.progress(job.fraction, text=("cancelling… " if job.cancelling else "") + text)
    st.caption(f"Job {job.job_id} started by {esc.md(job.started_by)}; it keeps running if you leave this page.")
    loss_chart(info.get("loss_curve", []), info.get("step_losses", []), info.get("step_epochs", []), key="t_live_loss")


if job is not None:
    if job.active:
        live(job)
    elif common.show_job_end(job, "Training", "The last finished epoch is kept: **Resume training** continues."):
        st.success(f"Training {job.message()}: {out.name}")

# --- trained models ------------------------------------------------------------------------
st.subheader("Trained models")
models = jobs.trained_models(cache)
if not models:
    st.caption("None yet: models trained here are written to the server's cache (models folder).")
else:
    names = [p.name for p in models]
    default = names.index(out.name) if out.name in names else 0
    name = st.selectbox("Model", names, index=default, key="t_model")
    path = jobs.trained_model_in(cache, name)
    try:
        meta = read_metadata(path) or {}
    except (CheckpointError, OSError, ValueError) as exc:
        st.error(esc.md(f"{name} cannot be read: {exc}"))
        meta = None
    if meta is not None:
        training = meta.get("training", {})
        curve = meta.get("loss_curve", [])
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Epochs", len(curve))
        m2.metric("Final loss", f"{curve[-1]:.3f}" if curve else "–")
        m3.metric("Synapses", meta.get("data", {}).get("n_synapses", "–"))
        m4.metric("Training time", jobs.format_seconds(meta.get("wall_time_s", 0.0)))
        st.caption(esc.md(f"{meta.get('method', '?')}, fmaps {training.get('fmaps', '?')}, input "
                   f"{training.get('input_size', '?')}³, seed {training.get('seed', '?')}, written "
                   f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(path.stat().st_mtime))}."))
        loss_chart(curve, key="t_model_loss")
        if st.button("Use this model for extraction", key="t_use", icon=":material/arrow_forward:"):
            st.session_state["x_checkpoint"] = common.TRAINED_CHECKPOINT + name
            st.session_state["x_features"] = "vgg3d"
            st.switch_page("app_pages/extraction.py")
common.write_query()
