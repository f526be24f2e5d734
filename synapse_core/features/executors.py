"""Where the per-synapse work of an extraction runs: this machine's process pool, or a Dask cluster.

An extraction is planned (one :class:`~synapse_core.features.jobs.PrepareJob` per synapse), its
per-synapse work mapped over an executor, its crops batched through the network, and the results
assembled in table order (:mod:`synapse_core.features.extract`). Both executors use one result
store (:mod:`synapse_core.features.store`), so a result computed by either is reused by both.

* ``local`` (default): worker processes on this machine read windows and build crops
  (:func:`~synapse_core.features.jobs.prepare_synapse`); the calling process runs the network.
* ``dask`` (:func:`run_dask`): each Dask task takes a batch of synapses, prepares them, runs the
  network on its worker's device (loaded once per worker process, :func:`worker_model`), writes
  the results to the store and returns feature vectors, never crops. With no scheduler address a
  ``distributed.LocalCluster`` (processes, one thread each) is started and closed with the run.
  A task lost with its worker is retried by Dask; the content-addressed store and the job's claims
  make each synapse computed once.

Importing this module imports neither dask nor torch (pool workers import it for
:func:`die_with_parent`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from synapse_core.features.jobs import PrepareJob, open_cache, prepare_synapse

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """End this worker process when ``parent_pid`` (the process that started the run) is gone.

    Linux: the kernel sends SIGKILL when the direct parent exits (``PR_SET_PDEATHSIG``); and on
    any system a daemon thread polls ``parent_pid`` every ``poll_s`` s (the direct parent may be
    a forkserver that outlives a killed run for a moment).
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def watch():
        while True:
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass
            time.sleep(poll_s)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


# --- progress -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExtractProgress:
    """Where a run is: synapses done of total, failed ones, elapsed seconds, rate and ETA."""

    done: int
    total: int
    failed: int = 0
    elapsed_s: float = 0.0
    dashboard: str | None = None  # the Dask dashboard's address, when there is one

    @property
    def rate_per_s(self) -> float:
        """Synapses per second so far (0 before the first one)."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float:
        """Seconds left at the rate so far (NaN before the first synapse)."""
        return (self.total - self.done) / self.rate_per_s if self.rate_per_s > 0 else float("nan")

    def line(self) -> str:
        """One line for a log or a page: ``12/60 synapses, 3.1/s, ETA 15 s, 0 failed``."""
        eta = "?" if np.isnan(self.eta_s) else f"{self.eta_s:.0f} s"
        text = f"{self.done}/{self.total} synapses, {self.rate_per_s:.1f}/s, ETA {eta}, {self.failed} failed"
        return text + (f" (Dask dashboard {self.dashboard})" if self.dashboard else "")


class ProgressReporter:
    """Calls ``progress(done, total)`` and ``status(ExtractProgress)`` with rate, ETA and failures.

    Called as ``reporter(done, total)`` (the local executor) or ``reporter(done, total, failed)``.
    """

    def __init__(self, progress: Callable[[int, int], None] | None = None,
                 status: Callable[[ExtractProgress], None] | None = None, dashboard: str | None = None):
        self.progress, self.status, self.dashboard = progress, status, dashboard
        self.start = time.monotonic()
        self.failed = 0
        self.last = ExtractProgress(0, 0)

    def __call__(self, done: int, total: int, failed: int | None = None) -> None:
        if failed is not None:
            self.failed = failed
        self.last = ExtractProgress(done, total, self.failed, time.monotonic() - self.start, self.dashboard)
        if self.progress is not None:
            self.progress(done, total)
        if self.status is not None:
            self.status(self.last)


# --- the Dask executor ------------------------------------------------------------------------------

_MODELS: dict[tuple, object] = {}
_MODELS_LOCK = threading.Lock()


def worker_model(settings, make_model: Callable):
    """This process's vector model for ``settings``, ``make_model(settings)`` built once per process.

    ``make_model`` is picklable by reference (e.g. :class:`~synapse_core.features.extract.FeatureModel`),
    so a worker loads its network once for all the tasks of a run, and of later runs.
    """
    key = repr(settings)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = make_model(settings)
        return _MODELS[key]


def _needs_vector(settings) -> bool:
    return bool(getattr(settings, "vectors", settings.deep))


def run_batch(items: list[tuple[int, PrepareJob]], settings, job_id: str, make_model: Callable) -> dict:
    """One Dask task: prepare each synapse, run the network on those that need it, store everything.

    Parameters
    ----------
    items : (index in the run, job) pairs.
    settings : the run's ExtractSettings (the network is built from it on the worker, once).
    job_id : the run's claim identity.
    make_model : ``make_model(settings)`` builds the model that turns blended crops into vectors.

    Returns
    -------
    dict
        ``records``: one dict per synapse (``i``, ``crop`` result, ``deep`` vector or None,
        ``cached``, ``deferred`` (another job is computing it), ``deep_key``); ``passes``: forward
        passes run; ``pid``: the worker's process id.
    """
    cache_dir = items[0][1].cache_dir if items else None
    cache = open_cache(cache_dir, job=job_id) if cache_dir is not None else None
    records, todo, claimed = [], [], []
    passes = 0
    try:
        for i, job in items:
            p = prepare_synapse(job)
            if cache is not None and not p.crop_cached and p.crop_key is not None and not p.error:
                cache.put(p.crop_key, p.crop_result)
            rec = {"i": i, "crop": p.crop_result, "deep": p.deep, "cached": p.crop_cached, "deferred": False,
                   "deep_key": p.deep_key}
            records.append(rec)
            if p.crop_result["discarded"] or not _needs_vector(settings) or p.deep is not None:
                continue
            if cache is not None:
                if not cache.claim(p.deep_key):
                    rec["deferred"] = True
                    continue
                claimed.append(p.deep_key)
                vec = cache.get(p.deep_key)
                if vec is not None:  # stored by someone else since the look-up
                    rec["deep"], rec["cached"] = vec, True
                    continue
            todo.append((rec, p.blended))
        if todo:
            model = worker_model(settings, make_model)
            for start in range(0, len(todo), settings.batch_size):
                chunk = todo[start:start + settings.batch_size]
                vectors = model(np.stack([b for _, b in chunk]))
                passes += 1
                for (rec, _), vec in zip(chunk, vectors):
                    rec["deep"] = vec.astype(np.float32)
                    rec["cached"] = False
                    if cache is not None:
                        cache.put(rec["deep_key"], rec["deep"])
                        cache.release(rec["deep_key"])
    finally:
        if cache is not None:
            for key in claimed:
                cache.release(key)
    return {"records": records, "passes": passes, "pid": os.getpid()}


class _DieWithClient:
    """Worker plugin: a local cluster's worker ends when the process that started it is gone."""

    name = "synapse-die-with-parent"

    def __init__(self, parent_pid: int):
        self.parent_pid = parent_pid

    def setup(self, worker):
        die_with_parent(self.parent_pid)

    def teardown(self, worker):
        pass


@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int = 2):
    """A ``distributed.Client``: joined to ``scheduler`` (``tcp://HOST:PORT``), or to a new LocalCluster.

    The LocalCluster has ``n_workers`` processes with one thread each, and is closed on exit.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - declared in requirements.txt
        raise RuntimeError("--executor dask needs the 'distributed' package: pip install 'dask[distributed]'") from exc
    if scheduler:
        try:
            client = Client(scheduler, timeout=30)
        except OSError as exc:
            raise RuntimeError(f"--scheduler {scheduler}: no Dask scheduler answered ({exc}); start one with "
                               "`dask scheduler` or a dask-jobqueue cluster (docs/scale.md)") from exc
        try:
            yield client
        finally:
            client.close()
        return
    try:
        import bokeh  # noqa: F401 - the dashboard needs it
        dashboard = ":0"
    except ImportError:
        dashboard = None
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # the in-process scheduler's start/stop chatter is not the user's business
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=dashboard,
                           silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        from distributed.diagnostics.plugin import WorkerPlugin

        plugin = type("DieWithClient", (_DieWithClient, WorkerPlugin), {})(os.getpid())
        client.register_plugin(plugin)
        yield client
    finally:
        client.close()
        cluster.close()
        quiet.setLevel(level)


@dataclass
class DaskOutcome:
    """What :func:`run_dask` returns: per-synapse results by job index and the run's counts."""

    results: dict[int, dict] = field(default_factory=dict)
    n_cached: int = 0
    n_computed: int = 0
    n_forward_passes: int = 0
    failed: int = 0
    cancelled: bool = False
    worker_pids: set = field(default_factory=set)
    dashboard: str | None = None


#: Times a task whose result was lost with its worker is submitted again (Dask retries failed tasks itself).
_RESUBMITS = 3


def _failed_result(reason: str) -> dict:
    return {"crop": {"discarded": reason, "presynaptic": {}, "morph": {}}, "deep": None, "deep_key": None}


def run_dask(jobs: list[PrepareJob], settings, job_id: str, make_model: Callable, progress: Callable | None = None,
             cancel: Callable[[], bool] | None = None, client=None, poll_s: float = 0.2) -> DaskOutcome:
    """Run an extraction's per-synapse work and network on Dask (see the module docstring).

    Parameters
    ----------
    jobs : the planned synapses, in table order.
    settings : ExtractSettings (``batch_size`` synapses per task; ``scheduler``, ``dask_workers``).
    job_id : the run's claim identity in the store.
    make_model : ``make_model(settings)`` builds the vector model on a worker (picklable by reference).
    progress : called as ``progress(done, total, failed)`` (a :class:`ProgressReporter`) or ``(done, total)``.
    cancel : polled as tasks finish; True cancels the tasks not yet finished.
    client : a ``distributed.Client`` to use (None: :func:`dask_client` from the settings).
    """
    if client is None:
        with dask_client(settings.scheduler, settings.dask_workers) as own:
            return run_dask(jobs, settings, job_id, make_model, progress, cancel, own, poll_s)
    from distributed import as_completed

    out = DaskOutcome(dashboard=getattr(client, "dashboard_link", None))
    if out.dashboard and isinstance(progress, ProgressReporter):
        progress.dashboard = out.dashboard
        log.info("extract: Dask dashboard at %s", out.dashboard)
    total = len(jobs)
    size = max(1, settings.batch_size)
    batches = [list(enumerate(jobs))[s:s + size] for s in range(0, total, size)]
    n_workers = max(1, len(client.nthreads()) or settings.dask_workers)
    window = max(4, 4 * n_workers)  # tasks in flight: keeps every worker busy, bounds memory and cancels fast
    pending = iter(enumerate(batches))
    inflight = {}
    done = 0

    def report():
        if progress is None:
            return
        if isinstance(progress, ProgressReporter):
            progress(done, total, out.failed)
        else:
            progress(done, total)

    def submit(n: int, items, attempt: int = 0) -> None:
        fut = client.submit(run_batch, items, settings, job_id, make_model, key=f"extract-{job_id}-{n}-{attempt}",
                            pure=False, retries=2)
        inflight[fut.key] = (n, items, attempt)
        ac.add(fut)

    def take(items, res) -> list:
        nonlocal done
        deferred = []
        out.worker_pids.add(res["pid"])
        out.n_forward_passes += res["passes"]
        for rec in res["records"]:
            i = rec["i"]
            out.results[i] = {"crop": rec["crop"], "deep": rec["deep"], "deep_key": rec["deep_key"]}
            if rec["deferred"]:
                deferred.append(i)
                continue
            done += 1
            if rec["cached"]:
                out.n_cached += 1
            else:
                out.n_computed += 1
        return deferred

    ac = as_completed()
    for _ in range(window):
        nxt = next(pending, None)
        if nxt is not None:
            submit(*nxt)
    deferred: list[int] = []
    for fut in ac:
        n, items, attempt = inflight.pop(fut.key)
        if cancel is not None and cancel():
            out.cancelled = True
            client.cancel(list(ac.futures))
            break
        try:
            res = fut.result()
        except Exception as exc:  # noqa: BLE001 - a task that failed after its retries: its synapses are reported
            if fut.status != "error" and attempt < _RESUBMITS:
                # Not the task's own error: its result went away with a worker. The store keeps what the
                # task wrote, so running it again computes only what is missing.
                log.info("extract: task %d lost (%s: %s); submitted again", n, type(exc).__name__, exc)
                submit(n, items, attempt + 1)
                continue
            out.failed += len(items)
            log.warning("extract: a task of %d synapses failed on the cluster: %s: %s", len(items),
                        type(exc).__name__, exc)
            for i, _ in items:
                out.results[i] = _failed_result(f"task failed on the Dask cluster ({type(exc).__name__}: {exc})")
            done += len(items)
        else:
            deferred += take(items, res)
        report()
        nxt = next(pending, None)
        if nxt is not None:
            submit(*nxt)
    if not out.cancelled and deferred:
        _resolve_deferred(deferred, jobs, settings, job_id, make_model, client, out, cancel, poll_s)
        done = total
        report()
    return out


def _resolve_deferred(deferred, jobs, settings, job_id, make_model, client, out: DaskOutcome, cancel, poll_s) -> None:
    """Wait for synapses another job is computing; run them here (as tasks) if that job goes away."""
    cache = open_cache(jobs[deferred[0]].cache_dir, job=job_id)
    waiting = list(deferred)
    while waiting:
        still, free = [], []
        for i in waiting:
            key = out.results[i]["deep_key"]
            vec = cache.get(key)
            if vec is not None:
                out.results[i]["deep"] = vec
                out.n_cached += 1
            elif cache.claim(key):
                free.append(i)
            else:
                still.append(i)
        if free:
            res = client.submit(run_batch, [(i, jobs[i]) for i in free], settings, job_id, make_model, pure=False,
                                retries=2).result()
            out.n_forward_passes += res["passes"]
            for rec in res["records"]:
                out.results[rec["i"]] = {"crop": rec["crop"], "deep": rec["deep"], "deep_key": rec["deep_key"]}
                if rec["deferred"]:
                    still.append(rec["i"])
                elif rec["cached"]:
                    out.n_cached += 1
                else:
                    out.n_computed += 1
        if still:
            if cancel is not None and cancel():
                out.cancelled = True
                return
            time.sleep(poll_s)
        waiting = still
