"""Extraction on a real Dask LocalCluster (2 worker processes): same results, lost workers, nothing twice.

Workers write a journal line per store write (``SYNAPSE_STORE_JOURNAL``), so "computed once" is
counted from what was written, including by a worker that was killed afterwards.
"""

import collections
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from synapse_core.crops.settings import CropSettings
from synapse_core.features.extract import extract_features
from synapse_core.features.rerun import RUNS_FOLDER
from synapse_core.features.settings import ExtractSettings

ROOT = Path(__file__).resolve().parents[1]
TINY = ExtractSettings(crop=CropSettings(size=32), features="vgg3d", fmaps=4, batch_size=2, workers=0, device="cpu")
#: 8 synapses of the demo's bbox1: 4 tasks of 2.
SYNAPSES = [("bbox1", f"syn_{i:03d}") for i in range(1, 9)]
N = len(SYNAPSES)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 single-threaded worker processes that journal their store writes."""
    distributed = pytest.importorskip("distributed")
    os.environ["SYNAPSE_STORE_JOURNAL"] = "1"  # read by the workers' stores (inherited environment)
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=40) as lc, distributed.Client(lc) as client:
            yield lc, client
    finally:
        os.environ.pop("SYNAPSE_STORE_JOURNAL", None)


def on_cluster(cluster, **changes):
    return replace(TINY, executor="dask", scheduler=cluster[0].scheduler_address, **changes)


def journal(cache_dir: Path) -> collections.Counter:
    """How many times each key was written to the store under ``cache_dir``."""
    counts = collections.Counter()
    for log in (cache_dir / "features" / "journal").glob("*.log"):
        counts.update(line.split("\t")[0] for line in log.read_text().splitlines())
    return counts


@pytest.fixture(scope="module")
def local_features(demo_dataset, tmp_path_factory):
    return extract_features(demo_dataset, TINY, cache_dir=tmp_path_factory.mktemp("local"), synapses=SYNAPSES).features


@pytest.mark.slow  # a Dask cluster and a network on each worker
def test_dask_gives_the_local_executors_features(cluster, demo_dataset, local_features, tmp_path):
    result = extract_features(demo_dataset, on_cluster(cluster), cache_dir=tmp_path, synapses=SYNAPSES)
    assert (result.n_computed, result.n_cached) == (N, 0)
    pd.testing.assert_frame_equal(result.features, local_features)


@pytest.mark.slow
def test_a_killed_worker_loses_no_synapse_and_none_is_computed_twice(cluster, demo_dataset, local_features, tmp_path):
    _, client = cluster
    pids = client.run(os.getpid)  # worker address -> pid (same host)
    killed = []

    def kill_a_busy_worker(done, total):
        if killed:
            return
        busy = [w for w, keys in client.processing().items() if keys and w in pids]
        if busy:
            killed.append(busy[0])
            os.kill(pids[busy[0]], signal.SIGKILL)

    result = extract_features(demo_dataset, on_cluster(cluster), cache_dir=tmp_path, synapses=SYNAPSES,
                              progress=kill_a_busy_worker)
    assert killed
    pd.testing.assert_frame_equal(result.features, local_features)
    writes = journal(tmp_path)
    assert sum(k.startswith("deep:") for k in writes) == N
    assert max(writes.values()) == 1, [k for k, n in writes.items() if n > 1]


@pytest.mark.slow
def test_a_second_dask_run_computes_nothing(cluster, demo_dataset, tmp_path):
    first = extract_features(demo_dataset, on_cluster(cluster), cache_dir=tmp_path, synapses=SYNAPSES)
    writes = sum(journal(tmp_path).values())
    shutil.rmtree(tmp_path / RUNS_FOLDER)  # ask the per-synapse store, not the stored run table
    second = extract_features(demo_dataset, on_cluster(cluster, batch_size=5), cache_dir=tmp_path, synapses=SYNAPSES)
    assert (second.n_computed, second.n_cached, second.n_forward_passes) == (0, N, 0)
    assert sum(journal(tmp_path).values()) == writes
    pd.testing.assert_frame_equal(first.features, second.features)


@pytest.mark.slow
def test_dask_progress_reports_rate_eta_and_no_failures(cluster, demo_dataset, tmp_path):
    seen = []
    extract_features(demo_dataset, on_cluster(cluster, features="morphology"), cache_dir=tmp_path, synapses=SYNAPSES,
                     status=seen.append)
    assert seen[-1].done == seen[-1].total == N and seen[-1].failed == 0
    assert seen[-1].rate_per_s > 0 and seen[-1].eta_s == 0
    assert [s.done for s in seen] == sorted(s.done for s in seen)


POOL = """
import os, sys, time
from synapse_core.features.extract import _executor
if __name__ == "__main__":
    pool = _executor(1)
    print(pool.submit(os.getpid).result(), flush=True)
    time.sleep(60)
"""


@pytest.mark.slow  # starts a forkserver and a crop worker
def test_a_killed_run_leaves_no_crop_worker_behind(tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    run = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    worker = int(run.stdout.readline())
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.1)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
