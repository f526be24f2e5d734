"""The map in a child process, beside the k sweep (issue 16): the two cores work at once.

A seeded UMAP (or t-SNE) map is single-threaded and does not depend on the clusters, and UMAP's
numba layout holds the interpreter lock, so a thread would not run beside the k sweep. :func:`start`
runs :func:`~synapse_core.cluster.projection.project` in a fresh Python process on the same
preprocessed features (same code, same seed, same settings: the same coordinates, bit for bit, as
in this process) while :func:`~synapse_core.cluster.run.run_clustering` sweeps k and computes the
diagnostics that do not need the map; :meth:`PendingMap.result` then waits for it.

The child is started before preprocessing and imports UMAP meanwhile. The features go to it as a
float32 ``.npy`` file in a temporary folder (inside the cache folder when there is one), with the exact
neighbour graph computed here (:func:`~synapse_core.cluster.projection.umap_knn`) while it imports; the
coordinates come back the same way, everything read with ``allow_pickle=False``; the settings as JSON.
Nothing else is passed. The folder is removed afterwards.

Used only where it pays (:func:`wanted`): a seeded map (a ``reproducible=False`` map already uses
every core), at least ``MIN_ROWS`` synapses (measured: below, the child's start-up costs more than
running the map beside the sweep gains), at least 2 CPUs, for UMAP a numba disk cache (a cache folder or
``NUMBA_CACHE_DIR``: else each child would compile UMAP again), no UMAP compile warm-up of this
process running (the dashboard's: the job waits for it instead of compiling the same code beside it)
and ``SYNAPSE_MAP_PROCESS`` not ``0``. When the child cannot be started or fails, the map is computed
in this process as before (with a warning).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Fewest synapses for which the map runs in a child process (measured crossover, see docs/performance.md).
MIN_ROWS = 1000
#: Environment variable: ``0`` keeps the map in the calling process.
ENV = "SYNAPSE_MAP_PROCESS"
#: Folder of the temporary exchange folders inside the cache directory.
FOLDER = "map_process"
#: The child's thread pools: one thread each. The map is single-threaded anyway, and a pool's second thread
#: would wait for the core this process sweeps on (spinning OpenMP/BLAS threads made the child's map 2-3x slower).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_CHILD = "import sys; from synapse_core.cluster.map_process import child_main; sys.exit(child_main(sys.argv[1:]))"


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def wanted(n_rows: int, settings, cache_dir: str | os.PathLike | None) -> bool:
    """Whether the map of ``n_rows`` synapses with ``settings`` (ProjectionSettings or None) should run in a
    child process (see the module's description). A UMAP map needs numba's disk cache (``cache_dir`` or
    ``NUMBA_CACHE_DIR``): without it every child would compile UMAP again (~40 CPU s), where this process
    compiles once for all its maps."""
    if os.environ.get(ENV, "1").strip() == "0":
        return False
    if settings is None or not settings.reproducible or n_rows < MIN_ROWS or _cpus() < 2:
        return False
    if settings.method == "umap" and cache_dir is None and not os.environ.get("NUMBA_CACHE_DIR"):
        return False
    from synapse_core.cluster import warmup

    return warmup.status()["state"] != "running"


@dataclass
class PendingMap:
    """A map process (:func:`start`): importing UMAP until :meth:`send` gives it the features."""

    proc: subprocess.Popen
    folder: str
    settings: object
    cache_dir: str | None
    started: float = 0.0
    #: CPU seconds of the child (imports and map), once :meth:`result` has reaped it.
    cpu_s: float | None = None

    def send(self, Z: np.ndarray) -> bool:
        """Give the child the features ``Z`` (n_synapses, d) and the exact neighbour graph (computed here,
        :func:`~synapse_core.cluster.projection.umap_knn`, while the child imports UMAP); False (and the child
        is stopped) when the map is in the projection cache already or the child is gone."""
        from synapse_core.cluster.projection import (
            cache_key,
            projection_cache,
            umap_knn,
        )

        Z = np.asarray(Z, dtype=np.float32)
        if self.cache_dir is not None:
            with projection_cache(self.cache_dir) as cache:
                if cache.get(cache_key(Z, self.settings)) is not None:
                    self.stop()
                    return False
        try:
            np.save(os.path.join(self.folder, "features.npy"), Z, allow_pickle=False)
            knn = umap_knn(Z, self.settings)
            if knn is not None:
                np.save(os.path.join(self.folder, "knn_indices.npy"), knn[0], allow_pickle=False)
                np.save(os.path.join(self.folder, "knn_distances.npy"), knn[1], allow_pickle=False)
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.close()
        except OSError as exc:  # the child has ended (BrokenPipeError) or the folder is not writable
            log.warning("the map process could not be given its features (%s); computing the map in this process",
                        exc)
            self.stop()
            return False
        self.started = time.perf_counter()
        return True

    def running(self) -> bool:
        """Whether the child is still at work (importing or mapping)."""
        return self.proc.poll() is None

    def result(self) -> tuple[np.ndarray, float] | None:
        """Wait for the child; (coordinates float32 (n_synapses, dims), its map seconds), or None if it failed
        (the reason is logged as a warning; the caller then maps in its own process)."""
        try:
            if hasattr(os, "wait4") and self.proc.returncode is None:  # reap it ourselves: its CPU seconds too
                _, status, usage = os.wait4(self.proc.pid, 0)
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.cpu_s = usage.ru_utime + usage.ru_stime
            code = self.proc.wait()
            out = os.path.join(self.folder, "map.npy")
            if code != 0 or not os.path.isfile(out):
                log.warning("the map process ended with code %s (its messages are above); "
                            "computing the map in this process instead", code)
                return None
            Y = np.load(out, allow_pickle=False)
            seconds = time.perf_counter() - self.started
            try:
                with open(os.path.join(self.folder, "report.json")) as f:
                    seconds = float(json.load(f)["seconds"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
            return Y, seconds
        finally:
            self.stop()

    def stop(self) -> None:
        """End the child if it still runs (e.g. the clustering was cancelled) and remove the exchange folder."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


def start(settings, cache_dir: str | os.PathLike | None = None) -> PendingMap | None:
    """Start a map process: it imports UMAP (seconds of numba) while this process preprocesses, then waits
    for :meth:`PendingMap.send`.

    Parameters
    ----------
    settings : ProjectionSettings
    cache_dir : path or None
        The pipeline's cache folder: the child uses its projection cache and numba cache as
        :func:`~synapse_core.cluster.projection.project` does in this process, and the exchange folder
        is made in it.

    Returns
    -------
    PendingMap or None
        None when the child could not be started (the map is then computed in this process).
    """
    from dataclasses import asdict

    if not sys.executable:  # an embedded interpreter: no Python to start
        return None
    folder = None
    cache_dir = None if cache_dir is None else os.fspath(cache_dir)
    try:
        parent = None
        if cache_dir is not None:
            parent = os.path.join(cache_dir, FOLDER)
            os.makedirs(parent, exist_ok=True)
        folder = tempfile.mkdtemp(prefix="map-", dir=parent)
        with open(os.path.join(folder, "settings.json"), "w") as f:
            json.dump(asdict(settings), f)
        package_parent = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, **ONE_THREAD,
               "PYTHONPATH": os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)}
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, folder, cache_dir or ""], env=env,
                                stdin=subprocess.PIPE)
    except OSError as exc:
        log.warning("could not start the map process (%s); computing the map in this process", exc)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return None
    return PendingMap(proc=proc, folder=folder, settings=settings, cache_dir=cache_dir)


def child_main(argv: list[str]) -> int:
    """The child: ``argv`` = [exchange folder, cache folder or ""]. Imports UMAP, waits for ``go`` on stdin
    (end of input: not needed, exit), maps ``features.npy`` and writes ``map.npy`` and ``report.json``."""
    from synapse_core.cluster.projection import import_umap, project
    from synapse_core.cluster.settings import ProjectionSettings
    from synapse_core.settings_base import settings_from_dict

    folder, cache_dir = argv[0], argv[1] or None
    with open(os.path.join(folder, "settings.json")) as f:
        settings = settings_from_dict(ProjectionSettings, json.load(f), "map settings")
    if settings.method == "umap":
        import_umap(cache_dir)
    if sys.stdin.readline().strip() != "go":
        return 0
    Z = np.load(os.path.join(folder, "features.npy"), allow_pickle=False)
    knn = None
    if os.path.isfile(os.path.join(folder, "knn_indices.npy")):
        knn = (np.load(os.path.join(folder, "knn_indices.npy"), allow_pickle=False),
               np.load(os.path.join(folder, "knn_distances.npy"), allow_pickle=False))
    t = time.perf_counter()
    Y = project(Z, settings, cache_dir, knn=knn)
    seconds = time.perf_counter() - t
    tmp = os.path.join(folder, "map.partial.npy")
    np.save(tmp, np.asarray(Y, dtype=np.float32), allow_pickle=False)
    os.replace(tmp, os.path.join(folder, "map.npy"))
    with open(os.path.join(folder, "report.json"), "w") as f:
        json.dump({"seconds": seconds}, f)
    return 0
