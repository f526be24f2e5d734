"""Extraction throughput: the local process pool vs a Dask LocalCluster on the same cores, one table.

Usage::

    python benchmarks/scale.py                       # 32 demo synapses, 2 processes each way
    python benchmarks/scale.py --synapses 60 --processes 2 --rounds 2

Measured side by side in one run, on the same demo synapses, each run into a fresh result store
(so every synapse is computed and written, as in a first run):

* **morphology**: ``features="morphology"`` (80³ crops: window read, crop, morphology);
* **vgg3d-small**: ``features="vgg3d"``, 40³ crops, ``fmaps=8``, untrained network, batch 4.

For each: synapses/s with ``executor="local"`` (``workers=P`` crop processes, the network in this
process) and with ``executor="dask"`` on a LocalCluster of ``P`` single-threaded worker processes
started before the clock, and the ratios (goal: Dask ≥ 0.9× local): "as started" is the wall time
including each one's start-up (the pool that every extract call starts; a LocalCluster; a cluster
joined with ``--scheduler`` is already up), "steady" the rate from the first finished synapse to
the last. Per-task overhead: round trip of an empty task through the pool and through Dask. Bytes
shipped per task: the pickled arguments and result of one task (a local crop job ships the crop
back for the network; a Dask task ships feature vectors). When ``benchmarks/cluster_scale.py``
exists and has ``rows()``, its clustering rows (10⁵/10⁶ synthetic feature rows) are appended.

Timings are wall-clock on a shared machine: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from synapse_core.crops.settings import CropSettings
from synapse_core.data.dataset import open_dataset
from synapse_core.data.demo import demo_data_root
from synapse_core.features.executors import run_batch
from synapse_core.features.extract import FeatureModel, _executor, extract_features
from synapse_core.features.jobs import PrepareJob, prepare_synapse
from synapse_core.features.settings import ExtractSettings

CONFIGS = {
    "morphology": ExtractSettings(features="morphology", batch_size=4, device="cpu"),
    "vgg3d-small": ExtractSettings(features="vgg3d", crop=CropSettings(size=40), fmaps=8, batch_size=4, device="cpu"),
}


def _noop(x):
    return x


def per_task_overhead_ms(pool_submit, n: int = 200) -> float:
    """Milliseconds per empty task, ``n`` submitted at once and awaited."""
    t = time.perf_counter()
    futures = [pool_submit(_noop, i) for i in range(n)]
    for f in futures:
        f.result()
    return 1000 * (time.perf_counter() - t) / n


def bytes_per_task(dataset, settings, synapses) -> dict:
    """Pickled bytes of one task's arguments and result, local crop job vs Dask task (cache off)."""
    deep = FeatureModel(settings) if settings.deep else None
    voxel = tuple(float(v) for v in dataset.voxel_size_nm) if dataset.voxel_size_nm is not None else None
    rows = dataset.synapses.set_index(["bbox_name", "Var1"], drop=False).loc[synapses].to_dict("records")
    jobs = [PrepareJob(dataset.bboxes[str(r["bbox_name"])], r, settings.crop, voxel, deep.spec if deep else None, None)
            for r in rows[:settings.batch_size]]
    local_in = sum(len(pickle.dumps(j)) for j in jobs) / len(jobs)
    local_out = sum(len(pickle.dumps(prepare_synapse(j))) for j in jobs) / len(jobs)
    items = list(enumerate(jobs))
    dask_in = len(pickle.dumps((items, settings, "job", FeatureModel))) / len(jobs)
    dask_out = len(pickle.dumps(run_batch(items, settings, "job", FeatureModel))) / len(jobs)
    return {"local": (local_in, local_out), "dask": (dask_in, dask_out)}


def timed_run(dataset, settings, synapses) -> tuple[float, float]:
    """(wall seconds, steady synapses/s): the rate from the first finished synapse to the last."""
    marks = []

    def progress(done, total):
        marks.append((time.perf_counter(), done))

    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        result = extract_features(dataset, settings, cache_dir=cache, synapses=synapses, progress=progress)
        elapsed = time.perf_counter() - t
    assert result.n_computed == len(synapses), (result.n_computed, len(synapses))
    (t0, d0), (t1, d1) = marks[0], marks[-1]
    return elapsed, (d1 - d0) / (t1 - t0) if t1 > t0 else float("nan")


def cluster_rows(sizes) -> list[dict] | None:
    path = Path(__file__).with_name("cluster_scale.py")
    if not path.exists():
        return None
    sys.path.insert(0, str(path.parent))  # importable by name: its worker processes unpickle its functions
    module = importlib.import_module("cluster_scale")
    return module.rows(sizes=tuple(sizes)) if hasattr(module, "rows") else None


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--synapses", type=int, default=32, help="demo synapses per run")
    p.add_argument("--processes", type=int, default=2, help="crop processes (local) = Dask workers")
    p.add_argument("--rounds", type=int, default=1, help="runs of each; the best is reported")
    p.add_argument("--no-clustering", action="store_true", help="leave out benchmarks/cluster_scale.py rows")
    p.add_argument("--cluster-sizes", type=int, nargs="+", default=[100_000, 1_000_000],
                   help="synthetic feature rows clustered by benchmarks/cluster_scale.py")
    p.add_argument("--no-extraction", action="store_true", help="only the clustering rows")
    args = p.parse_args(argv)
    if not args.no_extraction:
        extraction_table(args)
    if args.no_clustering:
        return
    rows = cluster_rows(args.cluster_sizes)
    if rows is None:
        print("\nclustering at 1e5/1e6 rows: benchmarks/cluster_scale.py (with rows()) not found; run it when it lands")
        return
    print("\nClustering of synthetic feature rows (benchmarks/cluster_scale.py)\n")
    keys = list(dict.fromkeys(k for row in rows for k in row))
    widths = [max(len(k), *(len(str(row.get(k, ""))) for row in rows)) for k in keys]
    for row in [dict(zip(keys, keys)), dict(zip(keys, ("-" * w for w in widths))), *rows]:
        print("  ".join(str(row.get(k, "")).ljust(w) for k, w in zip(keys, widths)))


def extraction_table(args) -> None:

    from distributed import Client, LocalCluster

    dataset = open_dataset(demo_data_root())
    synapses = [tuple(k) for k in dataset.synapses[["bbox_name", "Var1"]].astype(str).to_numpy()[:args.synapses]]
    table = []
    t = time.perf_counter()
    with LocalCluster(n_workers=args.processes, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        startup = time.perf_counter() - t
        table.append(("Dask LocalCluster start-up", f"{startup:.1f} s", "", "", "once per run without --scheduler"))
        t = time.perf_counter()
        with _executor(args.processes) as pool:  # the pool extract starts (forkserver, preloaded modules)
            pool.submit(_noop, 0).result()
            pool_startup = time.perf_counter() - t
            local_ms = per_task_overhead_ms(pool.submit)
        table.append(("local pool start-up", f"{pool_startup:.1f} s", "", "", "once per extract call"))
        client.submit(_noop, 0).result()
        dask_ms = per_task_overhead_ms(lambda f, x: client.submit(f, x, pure=False))
        table.append(("per-task overhead (empty task)", f"{local_ms:.2f} ms", f"{dask_ms:.2f} ms",
                      f"{dask_ms / local_ms:.1f}x", "200 tasks in flight"))
        for name, base in CONFIGS.items():
            local = replace(base, executor="local", workers=args.processes)
            dask = replace(base, executor="dask", scheduler=cluster.scheduler_address)
            timed_run(dataset, replace(dask), synapses[:base.batch_size * args.processes])  # load the network on workers
            wall = {"local": float("inf"), "dask": float("inf")}
            steady = {"local": 0.0, "dask": 0.0}
            for r in range(args.rounds):
                for label, s in (("local", local), ("dask", dask)):
                    w, rate = timed_run(dataset, s, synapses)
                    wall[label], steady[label] = min(wall[label], w), max(steady[label], rate)
                    print(f"  {name} round {r + 1} {label}: {w:.1f} s, steady {rate:.2f}/s", file=sys.stderr)
            n = len(synapses)
            rl, rd = n / wall["local"], n / (wall["dask"] + startup)
            table.append((f"{name}: synapses/s, as started", f"{rl:.2f}", f"{rd:.2f}", f"{rd / rl:.2f}x",
                          "wall time incl. each one's start-up (pool / LocalCluster)"))
            rl, rd = steady["local"], steady["dask"]
            table.append((f"{name}: synapses/s, steady", f"{rl:.2f}", f"{rd:.2f}", f"{rd / rl:.2f}x",
                          "first to last finished synapse; goal dask >= 0.9x local"))
            shipped = bytes_per_task(dataset, base, synapses)
            table.append((f"{name}: bytes shipped per synapse (in / out)",
                          f"{shipped['local'][0] / 1e3:.1f} / {shipped['local'][1] / 1e3:.1f} kB",
                          f"{shipped['dask'][0] / 1e3:.1f} / {shipped['dask'][1] / 1e3:.1f} kB", "",
                          "local ships the crop to the network; dask ships vectors"))
    print(f"\nExtraction on {args.processes} processes, {len(synapses)} demo synapses, best of {args.rounds} "
          f"(cpu count {os.cpu_count()}, load {os.getloadavg()[0]:.1f})\n")
    head = ("measure", "local pool", "Dask LocalCluster", "dask/local", "note")
    widths = [max(len(str(row[i])) for row in [head, *table]) for i in range(5)]
    for row in [head, tuple("-" * w for w in widths), *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main()
