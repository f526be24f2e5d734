"""Clustering at 10⁵ and 10⁶ synthetic feature rows on the large-data path (issue 15).

Usage::

    python benchmarks/cluster_scale.py                    # 10⁵ and 10⁶ rows
    python benchmarks/cluster_scale.py --sizes 100000     # one size
    python benchmarks/cluster_scale.py --skip-umap        # without the map

``rows()`` returns the measurements as a list of dicts (``rows``, ``method``, ``seconds``,
``peak_rss_mb``) for ``benchmarks/scale.py``. Each size runs in its own child process, so the peak
RSS (cumulative, after each step) belongs to that size alone. Steps are the library functions the
pipeline uses above ``LARGE_ROWS`` synapses (:mod:`synapse_core.cluster.settings`): float32 scaling +
randomized PCA 50 (:func:`preprocess_features`), the k sweep 2..12 fitted on a seeded ``FIT_ROWS``
sample with every synapse assigned to the nearest centre (:func:`sweep_k`, nulls and stability on
1000 rows), MiniBatchKMeans at the chosen k on every row, HDBSCAN on the sample with nearest-neighbour
assignment, and UMAP fitted on the sample with ``transform`` for the rest (numba code from the disk
cache in ``--cache-dir`` once warm; the first size pays the compilation, shown on its own line).
Goal: 10⁶ rows ≤ 10 min, peak RSS ≤ 8 GB on 2 cores. Timings are wall-clock on a shared machine.
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


def _run_size(n: int, skip_umap: bool, cache_dir: str, queue) -> None:
    from synapse_core.cluster.algorithms import fit_kmeans, fit_labels
    from synapse_core.cluster.k_selection import decide_k, sweep_k
    from synapse_core.cluster.preprocess import preprocess_features
    from synapse_core.cluster.projection import run_umap
    from synapse_core.cluster.settings import ClusterSettings, ProjectionSettings

    out = []

    def step(method, fn):
        t = time.perf_counter()
        value = fn()
        out.append({"rows": n, "method": method, "seconds": time.perf_counter() - t, "peak_rss_mb": peak_mb()})
        print(f"  [{n}] {method}: {out[-1]['seconds']:.1f} s, peak {out[-1]['peak_rss_mb']:.0f} MB",
              file=sys.stderr, flush=True)
        return value

    X = step("synthetic 192-d float32 features", lambda: synthetic_features(n))
    Z, _ = step("scale (float32) + randomized PCA 50", lambda: preprocess_features(X, "standard", 50, seed=0))
    X = None  # free the raw matrix (bounded memory)
    sweep = step("k sweep 2..12 on a sample, all rows assigned", lambda: sweep_k(Z, (2, 12), seed=0))
    k = decide_k(sweep.curves).k
    step(f"MiniBatchKMeans k={max(k, 2)} on every row", lambda: fit_kmeans(Z, max(k, 2), seed=0))
    step("HDBSCAN on a sample, nearest-neighbour assignment",
         lambda: fit_labels(Z, ClusterSettings(method="hdbscan", min_cluster_size=50), None, seed=0))
    if not skip_umap:
        step("UMAP 2D fitted on a sample + transform (reproducible)",
             lambda: run_umap(Z, ProjectionSettings("umap", 2, seed=0), cache_dir))
    total = sum(r["seconds"] for r in out[1:])
    out.append({"rows": n, "method": "TOTAL (without generating the data)", "seconds": total,
                "peak_rss_mb": peak_mb(), "chosen_k": int(k)})
    queue.put(out)


def rows(sizes=(100_000, 1_000_000), skip_umap: bool = False, cache_dir: str | None = None) -> list[dict]:
    """Measurements of every size (one child process each): dicts with rows, method, seconds, peak_rss_mb."""
    cache_dir = cache_dir or tempfile.mkdtemp(prefix="cluster-scale-")
    ctx = mp.get_context("spawn")
    results = []
    for n in sizes:
        q = ctx.Queue()
        proc = ctx.Process(target=_run_size, args=(int(n), skip_umap, cache_dir, q))
        proc.start()
        results.extend(q.get())
        proc.join()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--skip-umap", action="store_true")
    p.add_argument("--cache-dir", default=None, help="numba cache folder parent (default: a new temporary folder)")
    args = p.parse_args()
    print(f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared)", file=sys.stderr)
    table = rows(args.sizes, args.skip_umap, args.cache_dir)
    print(f"\nclustering at scale; load average now {os.getloadavg()[0]:.1f}\n")
    print(f"{'rows':>9} | {'step':<56} | {'time s':>7} | {'peak RSS MB':>11}")
    print("-" * 94)
    for r in table:
        print(f"{r['rows']:>9} | {r['method']:<56} | {r['seconds']:>7.1f} | {r['peak_rss_mb']:>11.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
