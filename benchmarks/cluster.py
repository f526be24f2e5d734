"""Time the clustering stage on synthetic deep-feature tables (10⁴ and 10⁵ rows × 192 features).

Usage::

    python benchmarks/cluster.py                      # 10000 and 100000 rows
    python benchmarks/cluster.py --sizes 10000        # one size
    python benchmarks/cluster.py --skip-tsne          # UMAP + k sweep only

Each size runs in its own child process so the peak memory column (process peak RSS, MB, after
each step: cumulative) belongs to that size alone. Steps use the library functions the pipeline
uses: ``preprocess_features`` (standard scaling + PCA 50), ``project`` (UMAP 2D reproducible =
seeded single-thread and parallel = all cores; openTSNE 2D, FFT gradient), scikit-learn's
``TSNE`` (10⁴ only, for comparison), and ``sweep_k`` over k = 2..20 (KMeans, MiniBatchKMeans above
20 000 rows; silhouette on a 5 000-row sample), then the diagnostics of ``run_clustering``
(stability over 10 subsamples, bbox effect, map k-NN overlap). The last line per size is the pipeline total
(preprocess + UMAP + k sweep) that the 3-minute goal refers to.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic_features(n: int, d: int = 192, groups: int = 8, seed: int = 0) -> np.ndarray:
    """Groups in a 20-d subspace embedded in ``d`` dims, plus noise: like pooled CNN features."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(groups, 20))
    latent = centres[rng.integers(0, groups, n)] + rng.normal(size=(n, 20))
    mix = rng.normal(size=(20, d)) / np.sqrt(20)
    return (latent @ mix + 0.5 * rng.normal(size=(n, d))).astype(np.float32)


def run_size(n: int, args, queue) -> None:
    from synapse_core.cluster.algorithms import fit_kmeans
    from synapse_core.cluster.diagnostics import bbox_effect, knn_overlap, stability
    from synapse_core.cluster.k_selection import choose_k, sweep_k
    from synapse_core.cluster.preprocess import preprocess_features
    from synapse_core.cluster.projection import project
    from synapse_core.cluster.settings import ProjectionSettings

    rows = []

    def step(name, fn):
        t = time.perf_counter()
        out = fn()
        rows.append((name, time.perf_counter() - t, peak_mb()))
        print(f"  [{n}] {name}: {rows[-1][1]:.1f} s", file=sys.stderr, flush=True)
        return out

    X = synthetic_features(n, args.features)
    Z, _ = step("standardise + PCA 50", lambda: preprocess_features(X, "standard", 50, seed=0))
    umap_modes = ["parallel"] if (n > 20000 and not args.umap_both) else ["reproducible", "parallel"]
    warm = synthetic_features(300, args.features, seed=1)
    step("UMAP numba JIT warm-up (300 rows; once per process)",
         lambda: (project(warm, ProjectionSettings("umap", 2, reproducible=True)),
                  project(warm, ProjectionSettings("umap", 2, reproducible=False))))
    umap_time, umap_map = {}, []
    for mode in umap_modes:
        s = ProjectionSettings("umap", 2, seed=0, reproducible=(mode == "reproducible"))
        umap_map.append(step(f"UMAP 2D ({mode})", lambda: project(Z, s)))
        umap_time[mode] = rows[-1][1]
    if not args.skip_tsne:
        step("openTSNE 2D (FFT, all cores)", lambda: project(Z, ProjectionSettings("tsne", 2, seed=0,
                                                                                    reproducible=False)))
        if n <= 10000:
            from sklearn.manifold import TSNE

            step("scikit-learn t-SNE 2D (Barnes-Hut)",
                 lambda: TSNE(2, perplexity=30, random_state=0, n_jobs=-1).fit_transform(Z))
    sweep = step("k sweep 2..20 (+silhouette sample 5000, CH, inertia)", lambda: sweep_k(Z, (2, 20), seed=0))
    sweep_time = rows[-1][1]
    k = choose_k(sweep.curves)
    bbox = np.random.default_rng(0).choice([f"bbox{i}" for i in range(1, 8)], size=n)
    fit = lambda Zs, seed: fit_kmeans(Zs, k, seed)[0]  # noqa: E731
    step("diagnostics: stability 10x, bbox effect, map k-NN overlap",
         lambda: (stability(Z, sweep.labels[k], fit, n_runs=10), bbox_effect(Z, sweep.labels[k], bbox),
                  knn_overlap(Z, umap_map[0])))
    total = rows[0][1] + min(umap_time.values()) + sweep_time
    rows.append((f"TOTAL preprocess + UMAP ({min(umap_time, key=umap_time.get)}) + k sweep", total, peak_mb()))
    queue.put({"n": n, "rows": rows, "chosen_k": k})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    p.add_argument("--features", type=int, default=192)
    p.add_argument("--skip-tsne", action="store_true")
    p.add_argument("--umap-both", action="store_true", help="also time reproducible UMAP above 20 000 rows")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    results = []
    for n in args.sizes:
        q = ctx.Queue()
        proc = ctx.Process(target=run_size, args=(n, args, q))
        proc.start()
        results.append(q.get())
        proc.join()
    print(f"\nclustering benchmark: {args.features}-d synthetic features, {os.cpu_count()} cores\n")
    print(f"{'rows':>7} | {'step':<58} | {'time s':>7} | {'peak RSS MB':>11}")
    print("-" * 93)
    for r in results:
        for name, t, mb in r["rows"]:
            print(f"{r['n']:>7} | {name:<58} | {t:>7.1f} | {mb:>11.0f}")
        print(f"{'':>7} | chosen k (8 planted groups): {r['chosen_k']}")
        print("-" * 93)
    if len(results) == 2:
        a, b = results
        ta, tb = a["rows"][-1][1], b["rows"][-1][1]
        print(f"total time ratio {b['n']}/{a['n']} rows: {tb / ta:.1f}x for {b['n'] / a['n']:.0f}x rows")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
