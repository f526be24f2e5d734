"""Compile the map's numba code before anyone waits for it: a tiny seeded UMAP fit.

UMAP and pynndescent are compiled by numba the first time they run in a process (tens of seconds,
most of a first clustering of the demo's 60 synapses). :func:`warm_up` fits UMAP on a small seeded
float32 matrix through the pipeline's own :func:`~synapse_core.cluster.projection.run_umap`, so the
same compiled specialisations (float32 features, float32 graph, 2-D layout) are made:

* in the process that calls it, and
* in numba's on-disk cache ``<cache_dir>/numba`` (a later process, e.g. the CLI or the dashboard
  server, loads what numba can cache instead of compiling it; see
  :func:`~synapse_core.cluster.projection.enable_numba_disk_cache`).

:func:`start_in_background` runs it once per process from a daemon thread (``app.py`` calls it when
the server starts; ``SYNAPSE_WARMUP=0`` turns it off). With a cache folder the fit runs in a child
process: the compiler then never competes with the server's threads for the interpreter lock, and
two threads never compile the same code at once. A clustering job reaching its map while the
warm-up runs waits for it (:func:`wait`) and then loads the compiled code from the disk cache.
:func:`status` says where it is. Measured in ``benchmarks/first_visit.py``.

>>> report = warm_up(cache_dir=None)  # doctest: +SKIP
>>> sorted(report)  # doctest: +SKIP
['seconds', 'steps']
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Rows and columns of the seeded matrix fitted: above UMAP's minimum, far below any cost.
WARMUP_ROWS = 64
WARMUP_FEATURES = 8
#: Environment variable: ``0`` turns the dashboard's background warm-up off.
WARMUP_ENV = "SYNAPSE_WARMUP"

_LOCK = threading.Lock()
_STATE: dict = {"state": "not started", "seconds": None, "error": None, "steps": {}}
_ENDED = threading.Event()
#: The child process: the fit, its report on the last line of stdout.
_CHILD = ("import json, sys; from synapse_core.cluster.warmup import warm_up; "
          "print(json.dumps(warm_up(sys.argv[1], **json.loads(sys.argv[2]))))")


def warm_up(cache_dir: str | os.PathLike | None = None, *, seed: int = 0, parallel: bool = False,
            nn_descent: bool = False) -> dict:
    """Compile UMAP's code paths by fitting a tiny seeded matrix (``WARMUP_ROWS`` × ``WARMUP_FEATURES``, float32).

    Parameters
    ----------
    cache_dir : path or None
        The pipeline's cache folder; numba's compiled code goes to ``<cache_dir>/numba``.
        None: compiled in this process only (unless ``NUMBA_CACHE_DIR`` is set).
    seed : int
        Seed of the matrix and of the fit.
    parallel : bool
        Also compile the multi-threaded layout (``reproducible=False`` maps).
    nn_descent : bool
        Also compile nearest-neighbour descent and ``transform`` (maps of more than
        ``LARGE_ROWS`` synapses, fitted on a subsample; see :mod:`synapse_core.cluster.projection`).

    Returns
    -------
    dict
        ``seconds`` (wall time, s) and ``steps`` (seconds per compiled path).
    """
    from synapse_core.cluster.projection import enable_numba_disk_cache, run_umap
    from synapse_core.cluster.settings import ProjectionSettings

    t0 = time.perf_counter()
    Z = np.random.default_rng(seed).normal(size=(WARMUP_ROWS, WARMUP_FEATURES)).astype(np.float32)
    steps = {}
    paths = [("umap, seeded (reproducible)", True)] + ([("umap, multi-threaded", False)] if parallel else [])
    for name, reproducible in paths:
        t = time.perf_counter()
        run_umap(Z, ProjectionSettings(method="umap", dims=2, seed=seed, reproducible=reproducible), cache_dir)
        steps[name] = time.perf_counter() - t
    if nn_descent:
        import umap

        enable_numba_disk_cache(cache_dir)
        t = time.perf_counter()
        reducer = umap.UMAP(n_neighbors=15, random_state=seed, n_jobs=1, force_approximation_algorithm=True)
        reducer.fit(Z)
        reducer.transform(Z[:8])
        steps["nearest-neighbour descent + transform"] = time.perf_counter() - t
    return {"seconds": time.perf_counter() - t0, "steps": steps}


def _warm_up_in_child(cache_dir, kwargs) -> dict:
    """:func:`warm_up` in a fresh Python process (compiled code reaches this process through the disk cache)."""
    package_parent = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-c", _CHILD, os.fspath(cache_dir), json.dumps(kwargs)], env=env,
                          capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the warm-up process ended with code {done.returncode}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run(cache_dir, kwargs) -> None:
    try:
        if cache_dir is not None or os.environ.get("NUMBA_CACHE_DIR"):
            report = _warm_up_in_child(cache_dir if cache_dir is not None else os.environ["NUMBA_CACHE_DIR"], kwargs)
        else:  # no disk cache: only compiling in this process helps
            report = warm_up(None, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a failed warm-up only means the first map compiles
        log.warning("the UMAP compile warm-up failed (the first map will compile instead): %s", exc)
        with _LOCK:
            _STATE.update(state="failed", error=f"{type(exc).__name__}: {exc}")
        _ENDED.set()
        return
    log.info("UMAP compile warm-up done in %.1f s", report["seconds"])
    with _LOCK:
        _STATE.update(state="done", seconds=report["seconds"], steps=report["steps"])
    _ENDED.set()


def start_in_background(cache_dir: str | os.PathLike | None, **kwargs) -> bool:
    """Start :func:`warm_up` from a daemon thread, once per process; True if this call started it.

    With a cache folder (``cache_dir`` or ``NUMBA_CACHE_DIR``) the fit runs in a child process and
    its compiled code reaches this process through ``<cache_dir>/numba``; without one it runs in
    the thread. Does nothing when ``SYNAPSE_WARMUP=0`` or when it was started before.
    """
    if os.environ.get(WARMUP_ENV, "1").strip() == "0":
        return False
    with _LOCK:
        if _STATE["state"] != "not started":
            return False
        _STATE["state"] = "running"
    threading.Thread(target=_run, args=(cache_dir, kwargs), name="umap-warmup", daemon=True).start()
    return True


def wait(timeout: float | None = None, cancelled=None) -> dict:
    """Block until a running warm-up has ended (at most ``timeout`` seconds, or until ``cancelled()``
    is true, checked twice a second); returns :func:`status`. Returns at once when none is running."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while status()["state"] == "running":
        if cancelled is not None and cancelled():
            break
        left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
        if left <= 0:
            break
        _ENDED.wait(left)
    return status()


def status() -> dict:
    """Where this process's warm-up is: ``state`` (not started, running, done, failed), ``seconds``, ``error``."""
    with _LOCK:
        return {**_STATE, "steps": dict(_STATE["steps"])}
