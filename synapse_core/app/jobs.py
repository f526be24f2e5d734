"""Background jobs of a shared dashboard server: work that outlives a page run.

A Streamlit page's script run stops whenever its user clicks or leaves the page; long work
(extraction, training) therefore runs here, in a process-wide :class:`JobRegistry`, and the
pages only start jobs and draw their state.

* A job is named by a **key** (:func:`job_key`: kind + dataset + settings). Submitting a key that
  is queued or running returns that job, so a second user asking for the same work attaches to it
  instead of computing it again.
* Kinds: extraction (:func:`submit_extraction`), training (:func:`submit_training`) and clustering
  (:func:`submit_clustering`).
* Each job runs in its own thread (training in a child process, see :func:`training_task`), at most
  ``max_running`` at a time (the others wait as ``queued``).
* A job reports ``done``/``total``, from which :attr:`Job.rate` (items per second over the last
  ~30 s) and :attr:`Job.eta_s` follow; it ends ``done`` (with its ``result``), ``failed`` (with
  the error message) or ``cancelled`` (``"cancelled at 12/60 synapses by …"``).
* :meth:`JobRegistry.cancel` is cooperative: the task polls :meth:`Job.cancel_requested`
  (``extract_features(cancel=...)``, ``train(stop=...)``, between clustering stages) and stops at its
  next check.
* Finished jobs stay visible to every session; only the last ``keep_finished`` are kept.
* Every job has a unique :attr:`Job.job_id`, which extraction passes to the feature cache as the
  owner of its claims, so two jobs in one server split the work instead of both computing it.

No Streamlit here: the registry is plain Python, tested without a server.

>>> reg = JobRegistry()
>>> job = reg.submit("demo:1", lambda job: 6 * 7, kind="demo")
>>> job.wait(5), job.status, job.result
(True, 'done', 42)
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synapse_core.data.hashing import content_hash

log = logging.getLogger(__name__)

#: Job states, in the order a job goes through them.
STATUSES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = frozenset({"queued", "running"})
#: Seconds of progress reports the rate is measured over.
RATE_WINDOW_S = 30.0


class JobCancelled(Exception):
    """Raised by a task (or :meth:`Job.raise_if_cancelled`) that stopped because it was cancelled."""


@dataclass(eq=False)
class Job:
    """One unit of background work and its live state (read by any session, written by its task).

    Attributes
    ----------
    key : what the job computes (equal keys = the same work).
    kind : "extraction", "training", ...
    label : one line for people ("Extraction of 60 synapses (vgg3d)").
    job_id : unique id of this run of the work (a resubmitted key gets a new one).
    started_by : who submitted it (a session label); ``attached`` lists who joined later.
    unit : what ``done``/``total`` count ("synapses", "steps").
    phase : what the task is doing now ("cropping", "training"); rate and ETA restart with a new phase.
    info : task-specific live values (e.g. ``loss_curve``), replaced as a whole by :meth:`report`.
    show_rate : False for work counted in unequal steps (clustering stages): no rate or ETA is shown.
    """

    key: str
    kind: str
    label: str = ""
    started_by: str = ""
    unit: str = "items"
    total: int | None = None
    show_rate: bool = True
    job_id: str = field(default_factory=lambda: f"job-{uuid.uuid4().hex[:12]}")
    submitted_at: float = field(default_factory=time.time)
    status: str = "queued"
    done: int = 0
    phase: str = ""
    info: dict = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    result: Any = None
    cancelled_by: str | None = None
    attached: list = field(default_factory=list)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _samples: collections.deque = field(default_factory=lambda: collections.deque(maxlen=600), repr=False)

    # --- written by the task -------------------------------------------------------------
    def report(self, done: int, total: int | None = None, *args, phase: str | None = None, **info) -> None:
        """Record progress: ``done`` of ``total`` items (a ``progress(done, total)`` callback).

        Extra positional arguments are ignored (callbacks with more arguments can be passed as is);
        ``info`` entries are merged into :attr:`info`.
        """
        now = time.monotonic()
        with self._lock:
            if phase is not None and phase != self.phase:
                self.phase = phase
                self._samples.clear()
                self._samples.append((now, int(done)))  # the new phase's rate counts from here
            self.done = int(done)
            if total is not None:
                self.total = int(total)
            if info:
                self.info = {**self.info, **info}
            self._samples.append((now, self.done))
            # Keep one sample at least RATE_WINDOW_S old: a burst of reports (a batch) never makes the window.
            while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
                self._samples.popleft()

    def cancel_requested(self) -> bool:
        """True once someone asked to cancel (pass as ``cancel=``/``stop=`` to the work)."""
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled

    # --- read by the pages ---------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def cancelling(self) -> bool:
        """Cancel was asked and the task has not stopped yet."""
        return self.active and self._cancel.is_set()

    @property
    def fraction(self) -> float:
        """Progress in [0, 1] (0 while the total is unknown)."""
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def elapsed_s(self) -> float:
        """Seconds since the job started running (0 while queued)."""
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.time()) - self.started_at

    @property
    def rate(self) -> float | None:
        """Items per second over the last :data:`RATE_WINDOW_S` seconds of this phase (None: too early)."""
        with self._lock:
            samples = list(self._samples)
        if len(samples) < 2 or samples[-1][0] - samples[0][0] <= 0:
            return None
        return (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate (None while unknown)."""
        rate = self.rate
        if not self.show_rate or not self.active or not self.total or not rate or rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / rate)

    def progress_text(self) -> str:
        """``"12 / 60 synapses · 1.4/s · ETA 34 s"`` (what is known of it)."""
        parts = [f"{self.done} / {self.total} {self.unit}" if self.total else f"{self.done} {self.unit}"]
        if self.phase:
            parts[0] = f"{self.phase}: {parts[0]}"
        rate, eta = (self.rate, self.eta_s) if self.show_rate else (None, None)
        if rate:
            parts.append(f"{rate:.2g}/s" if rate < 10 else f"{rate:.0f}/s")
        if eta is not None:
            parts.append(f"ETA {format_seconds(eta)}")
        return " · ".join(parts)

    def message(self) -> str:
        """One sentence on where the job is: queued, running, done, failed or cancelled (and by whom)."""
        where = f"{self.done}/{self.total} {self.unit}" if self.total else f"{self.done} {self.unit}"
        if self.status == "queued":
            return f"queued (submitted by {self.started_by or 'unknown'}), waiting for a free slot"
        if self.status == "running":
            return ("cancelling at " if self.cancelling else "running: ") + self.progress_text()
        if self.status == "done":
            return f"done in {format_seconds(self.elapsed_s)} ({where})"
        if self.status == "failed":
            return f"failed at {where}: {self.error}"
        return f"cancelled at {where} by {self.cancelled_by or 'unknown'}"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (any end state); False on timeout."""
        return self._finished.wait(timeout)

    # --- written by the registry ---------------------------------------------------------
    def _set(self, **values) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def job_key(kind: str, **parts) -> str:
    """``kind:<hex>``: a stable name for the work described by ``parts`` (settings, dataset, bboxes...)."""
    return f"{kind}:{content_hash({'kind': kind, **parts}, digest_size=10)}"


class JobRegistry:
    """The jobs of one server process, shared by all its sessions (thread-safe).

    Parameters
    ----------
    keep_finished : finished jobs kept for display; older ones are forgotten (active jobs never are).
    max_running : jobs that run at once; the rest wait as ``queued``.
    """

    def __init__(self, keep_finished: int = 20, max_running: int = 2):
        if max_running < 1:
            raise ValueError(f"max_running={max_running}: at least 1 job must be able to run")
        self.keep_finished = keep_finished
        self._slots = threading.BoundedSemaphore(max_running)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}  # key → latest job of that key

    def submit(self, key: str, fn: Callable[[Job], Any], *, kind: str, label: str = "", started_by: str = "",
               total: int | None = None, unit: str = "items", rerun_done: bool = False,
               show_rate: bool = True) -> Job:
        """Start ``fn(job)`` in the background as the job ``key``, or return the job already doing it.

        A queued or running job of ``key`` is returned as is (the caller attaches to it; ``started_by``
        is added to its ``attached``). A ``done`` job is returned too unless ``rerun_done``; a failed or
        cancelled one is replaced by a new job (a new ``job_id``), so Run after Cancel resumes.
        ``fn`` reports through ``job.report``, polls ``job.cancel_requested`` and returns the result;
        raising :class:`JobCancelled` ends the job as cancelled, any other exception as failed.
        """
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and (job.active or (job.status == "done" and not rerun_done)):
                if started_by and started_by != job.started_by and started_by not in job.attached:
                    job.attached.append(started_by)
                return job
            job = Job(key=key, kind=kind, label=label or kind, started_by=started_by, unit=unit, total=total,
                      show_rate=show_rate)
            self._jobs[key] = job
            self._prune()
        threading.Thread(target=self._run, args=(job, fn), name=f"{kind} {job.job_id}", daemon=True).start()
        return job

    def _run(self, job: Job, fn: Callable[[Job], Any]) -> None:
        while not self._slots.acquire(timeout=0.2):
            if job.cancel_requested():
                job._set(status="cancelled", finished_at=time.time())
                job._finished.set()
                return
        try:
            if job.cancel_requested():
                job._set(status="cancelled", finished_at=time.time())
                return
            job._set(status="running", started_at=time.time())
            job._samples.append((time.monotonic(), job.done))  # the rate counts from the start, not from a first burst
            try:
                result = fn(job)
            except JobCancelled:
                job._set(status="cancelled", finished_at=time.time())
            except Exception as exc:  # the message is kept for every session to read
                log.exception("job %s (%s) failed", job.job_id, job.label)
                job._set(status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=time.time())
            else:
                job._set(status="done", result=result, finished_at=time.time())
        finally:
            self._slots.release()
            job._finished.set()
            with self._lock:
                self._prune()

    def _prune(self) -> None:
        finished = sorted((j for j in self._jobs.values() if not j.active), key=lambda j: j.finished_at or 0)
        for job in finished[: max(0, len(finished) - self.keep_finished)]:
            if self._jobs.get(job.key) is job:
                del self._jobs[job.key]

    def get(self, key: str) -> Job | None:
        """The latest job of ``key`` (None if there is none or it was forgotten)."""
        with self._lock:
            return self._jobs.get(key)

    def jobs(self, kind: str | None = None) -> list[Job]:
        """Known jobs (of ``kind``), most recently submitted first."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if kind is None or j.kind == kind]
        return sorted(jobs, key=lambda j: j.submitted_at, reverse=True)

    def active(self) -> list[Job]:
        return [j for j in self.jobs() if j.active]

    def cancel(self, key: str, by: str = "") -> Job | None:
        """Ask the job of ``key`` to stop (it does at its next check); returns it, or None if none is active."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or not job.active:
                return None
            if not job._cancel.is_set():
                job.cancelled_by = by or "unknown"
                job._cancel.set()
        return job


#: The registry of this server process (all sessions of a Streamlit server share it).
REGISTRY = JobRegistry()


# ------------------------------------------------------------------------------- extraction


def extraction_key(dataset, settings, bboxes) -> str:
    """The key of extracting ``bboxes`` of ``dataset`` with ``settings`` (data folder, bboxes, settings)."""
    return job_key("extraction", root=str(Path(dataset.root).resolve()), bboxes=sorted(str(b) for b in bboxes),
                   settings=settings)


def extraction_task(dataset, settings, cache_dir, bboxes, model=None) -> Callable[[Job], Any]:
    """``fn(job)`` running :func:`~synapse_core.features.extract.extract_features`; the job's id owns its claims.

    Returns the ``ExtractResult``; a cancelled run raises :class:`JobCancelled` (what it finished is cached).
    """

    def run(job: Job):
        from synapse_core.features.extract import extract_features

        # The job's id owns its claims in the feature store: two jobs split the synapses they both want.
        result = extract_features(dataset, settings, cache_dir, bboxes=bboxes, progress=job.report,
                                  cancel=job.cancel_requested, model=model, job_id=job.job_id)
        if result.cancelled:
            raise JobCancelled
        return result

    return run


def submit_extraction(dataset, settings, cache_dir, bboxes, *, started_by: str = "", model=None,
                      registry: JobRegistry = REGISTRY, rerun_done: bool = True) -> Job:
    """Start (or attach to) the extraction of ``bboxes`` of ``dataset`` with ``settings``.

    A finished extraction is run again by default (every synapse then comes from the cache), so the
    result always reflects the cache now; a running one is attached to.
    """
    n = int(dataset.synapses["bbox_name"].isin(list(bboxes)).sum())
    label = f"Extraction of {n} synapses ({settings.features}, type {settings.crop.segmentation_type})"
    return registry.submit(extraction_key(dataset, settings, bboxes), extraction_task(dataset, settings, cache_dir,
                                                                                      bboxes, model),
                           kind="extraction", label=label, started_by=started_by, total=n, unit="synapses",
                           rerun_done=rerun_done)


# --------------------------------------------------------------------------------- training


def models_dir(cache_dir) -> Path:
    """The folder of checkpoints trained from the dashboard: ``<cache_dir>/models``."""
    return Path(cache_dir) / "models"


def model_path(cache_dir, dataset, settings) -> Path:
    """Where the dashboard writes the model trained on ``dataset`` with ``settings`` (inside :func:`models_dir`).

    The name is built from the data folder's name and a hash of the settings, never from user text.
    """
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(dataset.root).name)[:40] or "data"
    digest = content_hash({"root": str(Path(dataset.root).resolve()), "settings": settings}, digest_size=6)
    return models_dir(cache_dir) / f"{name}-{settings.fmaps}f{settings.input_size}-e{settings.epochs}-" \
                                   f"s{settings.seed}-{digest}.pt"


def trained_model_in(cache_dir, name: str) -> Path:
    """The trained model ``name`` of :func:`models_dir`; ValueError for a name that leaves the folder."""
    folder = models_dir(cache_dir).resolve()
    path = (folder / name).resolve()
    if path.parent != folder or path.suffix != ".pt":
        raise ValueError(f"model {name!r} is not a .pt file of the trained models folder {folder}")
    return path


def trained_models(cache_dir) -> list[Path]:
    """Finished trained models of :func:`models_dir`, newest first."""
    folder = models_dir(cache_dir)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("*.pt") if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)


def training_key(dataset, settings) -> str:
    return job_key("training", root=str(Path(dataset.root).resolve()), settings=settings)


def _training_process(root: str, cache_dir: str, settings, out: str, events, stop) -> None:
    """Child process: crop the dataset, train, and send progress messages to ``events``."""
    from synapse_core.data.dataset import open_dataset
    from synapse_core.features.train import partial_path, prepare_training_data, train

    try:
        partial = partial_path(out)
        if partial.is_file():  # a resumed run: show the epochs already trained
            import torch

            state = torch.load(partial, map_location="cpu", weights_only=True)
            events.put(("resumed", [float(v) for v in state.get("loss_curve", [])]))
        dataset = open_dataset(root, cache_dir=cache_dir)
        data = prepare_training_data(dataset, settings,
                                     progress=lambda done, total: events.put(("crops", done, total)))
        if stop.is_set():
            events.put(("stopped",))
            return
        events.put(("data", len(data.keys), len(data.skipped)))
        result = train(data, settings, out, progress=lambda e, s, n, loss: events.put(("step", e, s, n, loss)),
                       stop=stop.is_set)
        events.put(("result", {"path": result.path, "identity": result.identity, "finished": result.finished,
                               "epochs_done": result.epochs_done, "resumed_from": result.resumed_from,
                               "loss_curve": result.loss_curve, "wall_time_s": result.wall_time_s,
                               "n_synapses": result.n_synapses}))
    except BaseException as exc:  # noqa: BLE001 - any failure (even SystemExit) is the job's message
        events.put(("error", f"{type(exc).__name__}: {exc}"))


def training_task(dataset, settings, cache_dir, kill_after_s: float = 30.0) -> Callable[[Job], Any]:
    """``fn(job)`` training in a child process (spawned: torch's global RNG and deterministic flags stay
    its own, and Cancel can end it). Cancel asks it to stop after its current step; the state of its last
    finished epoch stays in ``<out>.partial`` and the same job submitted again resumes from it. A child
    that does not stop within ``kill_after_s`` is killed.

    ``job.info`` holds ``loss_curve`` (mean loss per finished epoch), ``step_losses`` (this run's steps) at
    ``step_epochs`` (fractional epochs), ``epoch``, ``epochs``; the result is a dict (``path``, ``identity``, ``loss_curve``, ...).
    """
    out = model_path(cache_dir, dataset, settings)

    def run(job: Job):
        out.parent.mkdir(parents=True, exist_ok=True)
        ctx = multiprocessing.get_context("spawn")
        events, stop = ctx.Queue(), ctx.Event()
        proc = ctx.Process(target=_training_process, name=f"train {job.job_id}", daemon=True,
                           args=(str(dataset.root), str(cache_dir), settings, str(out), events, stop))
        proc.start()
        job.report(0, None, phase="starting", epochs=settings.epochs, loss_curve=[], step_losses=[], out=str(out))
        curve: list[float] = []
        epoch_sum = epoch_n = 0
        outcome = None
        stop_asked_at = None
        try:
            while outcome is None:
                if job.cancel_requested() and stop_asked_at is None:
                    stop.set()
                    stop_asked_at = time.monotonic()
                if stop_asked_at is not None and time.monotonic() - stop_asked_at > kill_after_s:
                    proc.kill()
                try:
                    event = events.get(timeout=0.2)
                except queue.Empty:
                    if not proc.is_alive() and events.empty():
                        code = proc.exitcode
                        why = f"the training process ended (exit code {code}) without a result"
                        outcome = ("stopped",) if stop.is_set() else ("error", why)
                    continue
                if event[0] == "resumed":
                    curve = list(event[1])
                    job.report(len(curve), settings.epochs, phase="resuming", loss_curve=list(curve))
                elif event[0] == "crops":
                    job.report(event[1], event[2], phase="cropping synapses")
                elif event[0] == "data":
                    job.report(len(curve), settings.epochs, phase="training", n_synapses=event[1],
                               n_skipped=event[2])
                elif event[0] == "step":
                    _, epoch, step, steps, loss = event
                    epoch_sum, epoch_n = epoch_sum + loss, epoch_n + 1
                    steps_done = (epoch - 1) * steps + step
                    info = {"epoch": epoch, "step": step, "steps": steps,
                            "step_losses": job.info.get("step_losses", []) + [float(loss)],
                            "step_epochs": job.info.get("step_epochs", []) + [epoch - 1 + step / steps]}
                    if step == steps:  # epoch finished: its mean step loss (train() weights by batch size)
                        curve.append(epoch_sum / epoch_n)
                        epoch_sum = epoch_n = 0
                    job.report(steps_done, settings.epochs * steps, phase="training", loss_curve=list(curve), **info)
                else:
                    outcome = event
        finally:
            proc.join(timeout=kill_after_s)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        if outcome[0] == "error":
            raise RuntimeError(outcome[1])
        if outcome[0] == "stopped" or not outcome[1]["finished"]:
            raise JobCancelled
        result = outcome[1]
        job.report(job.done, job.total, loss_curve=list(result["loss_curve"]))
        return result

    return run


def submit_training(dataset, settings, cache_dir, *, started_by: str = "", registry: JobRegistry = REGISTRY) -> Job:
    """Start (or attach to) training on ``dataset`` with ``settings``; a cancelled run resumes when submitted again."""
    label = (f"Training {settings.method} on {Path(dataset.root).name} (fmaps {settings.fmaps}, "
             f"{settings.input_size}³, {settings.epochs} epochs, seed {settings.seed})")
    return registry.submit(training_key(dataset, settings), training_task(dataset, settings, cache_dir),
                           kind="training", label=label, started_by=started_by, unit="steps")


# ------------------------------------------------------------------------------- clustering

#: What a clustering job does after each stage of :func:`~synapse_core.cluster.run.run_clustering` ends.
_NEXT_STAGE = {"preprocess": "cluster", "cluster": "projection", "projection": "diagnostics",
               "diagnostics": "summary", "summary": None}


def features_identity(features) -> str:
    """Content hash of a feature table (column names, row index and values): which features a clustering ran on."""
    import pandas as pd

    rows = pd.util.hash_pandas_object(features, index=True).to_numpy()
    return content_hash({"columns": [str(c) for c in features.columns], "rows": rows}, digest_size=10)


def clustering_key(features, settings, cache_dir) -> str:
    """The key of clustering ``features`` (a table, by content) with ``settings`` and the cache folder
    ``cache_dir`` (its maps are reused): the same for every user of a server."""
    return job_key("clustering", features=features_identity(features), settings=settings,
                   cache=str(Path(cache_dir).resolve()))


def clustering_stages(settings) -> list[tuple[str, str]]:
    """(stage of ``run_clustering``, what people read) in order: preprocessing, k sweep or clustering, map, ..."""
    sweep = settings.method in ("kmeans", "agglomerative") and settings.k == "auto"
    stages = [("preprocess", "preprocessing"),
              ("cluster", f"k sweep ({settings.k_range[0]}–{settings.k_range[1]})" if sweep else "clustering")]
    if settings.projection != "none":
        stages.append(("projection", f"map ({'UMAP' if settings.projection == 'umap' else 't-SNE'})"))
    return stages + [("diagnostics", "diagnostics"), ("summary", "cluster summary")]


def clustering_task(features, settings, cache_dir) -> Callable[[Job], Any]:
    """``fn(job)`` running :func:`~synapse_core.cluster.run.run_clustering` with the page's cache folder.

    Progress is by stage (``job.done`` of ``job.total`` stages, ``job.phase`` names the running one).
    Cancel is honoured between stages: a stage that has started runs to its end first, except a map
    computed in its own process beside the k sweep (from ``map_process.MIN_ROWS`` synapses), which is stopped
    with the run.
    A UMAP map waits for the server's compile warm-up (:func:`synapse_core.cluster.warmup.wait`) if it
    is still running, instead of compiling the same code a second time.
    Returns the ``ClusterResult``; a map computed before (by the CLI or another user) is a cache hit.
    """
    stages = clustering_stages(settings)
    names = dict(stages)
    order = [name for name, _ in stages]

    def run(job: Job):
        from synapse_core.cluster import warmup
        from synapse_core.cluster.run import run_clustering

        def stage_done(stage: str, seconds: float) -> None:
            nxt = _NEXT_STAGE.get(stage)
            while nxt is not None and nxt not in names:  # a stage this run skips (no map)
                nxt = _NEXT_STAGE.get(nxt)
            done = order.index(stage) + 1 if stage in names else job.done
            info = {f"{stage}_s": round(float(seconds), 3)}
            if nxt == "projection" and settings.projection == "umap" and warmup.status()["state"] == "running":
                # The server's compile warm-up is making the same code: wait for it, then load it from disk.
                job.report(done, len(order), phase=f"{names[nxt]}, waiting for the compile warm-up of this server",
                           **info)
                warmup.wait(cancelled=job.cancel_requested)
                job.raise_if_cancelled()
            job.report(done, len(order), phase=names[nxt] if nxt else "finishing", **info)
            job.raise_if_cancelled()

        job.report(0, len(order), phase=names["preprocess"])
        return run_clustering(features, settings, cache_dir=cache_dir, stage_done=stage_done)

    return run


def submit_clustering(features, settings, cache_dir, *, started_by: str = "", registry: JobRegistry = REGISTRY) -> Job:
    """Start (or attach to) the clustering of ``features`` with ``settings``.

    A finished job of the same features and settings is returned as is (its result is shared: the
    clustering is deterministic for a seed); a failed or cancelled one runs again.
    """
    n = len(features)
    label = (f"Clustering of {n} synapses ({settings.method}, k {settings.k}, "
             f"map {settings.projection if settings.projection == 'none' else f'{settings.projection} {settings.dims}D'})")
    return registry.submit(clustering_key(features, settings, cache_dir), clustering_task(features, settings, cache_dir),
                           kind="clustering", label=label, started_by=started_by, total=len(clustering_stages(settings)),
                           unit="stages", show_rate=False)
