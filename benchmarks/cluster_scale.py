"""Clustering 10⁵ and 10⁶ synthetic feature rows end to end on the large-data path (issue 15).

Usage::

    nice -n 5 python benchmarks/cluster_scale.py                        # 10⁵ and 10⁶ rows, k-means and HDBSCAN
    python benchmarks/cluster_scale.py --sizes 100000 --methods kmeans   # one size, one method
    python benchmarks/cluster_scale.py --pca 0                            # without PCA (192-d clustering space)

Each (size, method) runs :func:`synapse_core.cluster.run.run_clustering` — exactly what ``python -m
synapse_core cluster`` and the dashboard run — on a synthetic extraction table (``bbox_name``,
``Var1``, 192 float32 ``feat_*`` columns: 8 groups in a 20-d subspace plus noise, 12 bboxes) in its
own child process, so the peak RSS (cumulative, read after each stage from ``getrusage``) belongs to
that run alone. Settings are the defaults (k = auto over 2..12 with its null and stability
diagnostics, UMAP 2D map, seeded and reproducible) with ``pca_components=50`` (``--pca``); the
HDBSCAN run uses ``projection="none"`` (its map would be the k-means run's map: the same clustering
space and projection settings, a projection cache hit). Above ``LARGE_ROWS`` synapses
(:mod:`synapse_core.cluster.settings`) the pipeline takes its large-data path: float32 scaling and
PCA from the covariance, the k sweep fitted on a seeded ``FIT_ROWS`` sample with every synapse
assigned to its nearest centre, HDBSCAN on ``HDBSCAN_FIT_ROWS`` synapses in 10 principal components
with every other synapse labelled by its nearest fitted neighbour, and UMAP fitted on ``FIT_ROWS``
synapses with every other synapse placed by :func:`synapse_core.cluster.algorithms.place_by_neighbours`.

Numba's compiled UMAP code is kept in ``--cache-dir`` (default: a new temporary folder, so the first
run pays the compilation inside its projection stage; pass a warm folder to leave it out).

``rows()`` returns the measurements as a list of dicts (``rows``, ``method``, ``seconds``,
``peak_rss_mb``) for ``benchmarks/scale.py``. Goal: 10⁶ rows ≤ 10 min, peak RSS ≤ 8 GB on 2 cores.
Timings are wall-clock on a shared machine (the load average is printed).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic_features(n: int, d: int = 192, groups: int = 8, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """Groups in a 20-d subspace embedded in ``d`` dims plus noise (float32, built in chunks)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(groups, 20))
    mix = (rng.normal(size=(20, d)) / np.sqrt(20)).astype(np.float32)
    X = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        latent = (centres[rng.integers(0, groups, m)] + rng.normal(size=(m, 20))).astype(np.float32)
        X[start:start + m] = latent @ mix + 0.5 * rng.normal(size=(m, d)).astype(np.float32)
    return X


def synthetic_table(n: int, d: int = 192, seed: int = 0, n_bboxes: int = 12):
    """An extraction table of ``n`` synapses: ``bbox_name``, ``Var1`` and ``feat_1..feat_d`` (float32)."""
    import pandas as pd

    X = synthetic_features(n, d, seed=seed)
    table = pd.DataFrame(X, columns=[f"feat_{i + 1}" for i in range(d)], copy=False)
    table.insert(0, "Var1", np.arange(n) // n_bboxes)
    table.insert(0, "bbox_name", pd.Categorical([f"bbox{i % n_bboxes + 1}" for i in range(n_bboxes)])[
        np.arange(n) % n_bboxes].astype(str))
    return table


def _run(n: int, method: str, pca: int | None, cache_dir: str, queue) -> None:
    from synapse_core.cluster.run import run_clustering
    from synapse_core.cluster.settings import ClusterSettings

    out = []
    t = time.perf_counter()
    table = synthetic_table(n)
    out.append({"rows": n, "method": method, "stage": "synthetic table (not counted)",
                "seconds": time.perf_counter() - t, "peak_rss_mb": peak_mb()})

    cpu = [time.process_time()]

    def stage_done(stage, seconds):
        now = time.process_time()
        out.append({"rows": n, "method": method, "stage": stage, "seconds": seconds, "cpu_s": now - cpu[0],
                    "peak_rss_mb": peak_mb()})
        cpu[0] = now
        print(f"  [{n} {method}] {stage}: {seconds:.1f} s (CPU {out[-1]['cpu_s']:.1f} s), peak "
              f"{out[-1]['peak_rss_mb']:.0f} MB, load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)

    settings = ClusterSettings(method=method, pca_components=pca,
                               projection="umap" if method == "kmeans" else "none")
    t, c0 = time.perf_counter(), time.process_time()
    cpu[0] = c0
    result = run_clustering(table, settings, cache_dir=cache_dir, stage_done=stage_done)
    total = time.perf_counter() - t
    d = result.diagnostics
    out.append({"rows": n, "method": method, "stage": "TOTAL run_clustering", "seconds": total,
                "cpu_s": time.process_time() - c0, "peak_rss_mb": peak_mb(), "k": d["k"],
                "n_clusters": d["n_clusters"], "n_noise": d["n_noise"], "load": os.getloadavg()[0]})
    queue.put(out)


def rows(sizes=(100_000, 1_000_000), methods=("kmeans", "hdbscan"), pca: int | None = 50,
         cache_dir: str | None = None) -> list[dict]:
    """Measurements of every (size, method), one child process each: dicts with rows, method, stage,
    seconds, cpu_s, peak_rss_mb."""
    cache_dir = cache_dir or tempfile.mkdtemp(prefix="cluster-scale-")
    ctx = mp.get_context("spawn")
    results = []
    for n in sizes:
        for method in methods:
            q = ctx.Queue()
            proc = ctx.Process(target=_run, args=(int(n), method, pca, cache_dir, q))
            proc.start()
            results.extend(q.get())
            proc.join()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--methods", nargs="+", default=["kmeans", "hdbscan"], choices=["kmeans", "hdbscan"])
    p.add_argument("--pca", type=int, default=50, help="PCA components (0: none, cluster the 192 scaled columns)")
    p.add_argument("--cache-dir", default=None, help="projection and numba cache folder (default: a new "
                                                      "temporary folder)")
    args = p.parse_args()
    print(f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared)", file=sys.stderr)
    table = rows(args.sizes, args.methods, args.pca or None, args.cache_dir)
    print(f"\nclustering synthetic feature rows end to end; load average now {os.getloadavg()[0]:.1f}\n")
    print(f"{'rows':>9} | {'method':<8} | {'stage':<30} | {'time s':>7} | {'CPU s':>7} | {'peak RSS MB':>11} | result")
    print("-" * 110)
    for r in table:
        extra = (f"k={r['k']}, {r['n_clusters']} clusters, {r['n_noise']} noise, load {r['load']:.1f}"
                 if "k" in r else "")
        cpu = f"{r['cpu_s']:>7.1f}" if "cpu_s" in r else " " * 7
        print(f"{r['rows']:>9} | {r['method']:<8} | {r['stage']:<30} | {r['seconds']:>7.1f} | {cpu} | "
              f"{r['peak_rss_mb']:>11.0f} | {extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
