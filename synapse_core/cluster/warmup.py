"""Compile the map's numba code before anyone waits for it: a tiny seeded UMAP fit.

UMAP and pynndescent are compiled by numba the first time they run in a process (tens of seconds,
most of a first clustering of the demo's 60 synapses). :func:`warm_up` fits UMAP on a small seeded
float32 matrix through the pipeline's own :func:`~synapse_core.cluster.projection.run_umap`, so the
same compiled specialisations (float32 features, float32 graph, 2-D layout) are made:

* in this process (the dashboard server: its clustering jobs run in its threads and reuse them), and
* in numba's on-disk cache ``<cache_dir>/numba`` (a later process, e.g. the CLI, loads what numba
  can cache instead of compiling it; see :func:`~synapse_core.cluster.projection.enable_numba_disk_cache`).

:func:`start_in_background` runs it once per process in a daemon thread (``app.py`` calls it when
the server starts; ``SYNAPSE_WARMUP=0`` turns it off); :func:`status` says where it is.
Measured in ``benchmarks/first_visit.py``.

>>> report = warm_up(cache_dir=None)  # doctest: +SKIP
>>> sorted(report)  # doctest: +SKIP
['seconds', 'steps']
"""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

log = logging.getLogger(__name__)

#: Rows and columns of the seeded matrix fitted: above UMAP's minimum, far below any cost.
WARMUP_ROWS = 64
WARMUP_FEATURES = 8
#: Environment variable: ``0`` turns the dashboard's background warm-up off.
WARMUP_ENV = "SYNAPSE_WARMUP"

_LOCK = threading.Lock()
_STATE: dict = {"state": "not started", "seconds": None, "error": None, "steps": {}}


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


def _run(cache_dir, kwargs) -> None:
    try:
        report = warm_up(cache_dir, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a failed warm-up only means the first map compiles
        log.warning("the UMAP compile warm-up failed (the first map will compile instead): %s", exc)
        with _LOCK:
            _STATE.update(state="failed", error=f"{type(exc).__name__}: {exc}")
        return
    log.info("UMAP compile warm-up done in %.1f s", report["seconds"])
    with _LOCK:
        _STATE.update(state="done", seconds=report["seconds"], steps=report["steps"])


def start_in_background(cache_dir: str | os.PathLike | None, **kwargs) -> bool:
    """Start :func:`warm_up` in a daemon thread, once per process; True if this call started it.

    Does nothing when ``SYNAPSE_WARMUP=0`` or when it was started before (any thread, any cache folder).
    """
    if os.environ.get(WARMUP_ENV, "1").strip() == "0":
        return False
    with _LOCK:
        if _STATE["state"] != "not started":
            return False
        _STATE["state"] = "running"
    threading.Thread(target=_run, args=(cache_dir, kwargs), name="umap-warmup", daemon=True).start()
    return True


def status() -> dict:
    """Where this process's warm-up is: ``state`` (not started, running, done, failed), ``seconds``, ``error``."""
    with _LOCK:
        return {**_STATE, "steps": dict(_STATE["steps"])}
