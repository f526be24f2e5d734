"""The clustering run's diagnostics stage alone at 10⁵–10⁶ rows: CPU s and wall s per diagnostic (issue 16).

Usage::

    python benchmarks/cluster_diagnostics.py                    # 10⁶ rows, bounded (seeded samples)
    python benchmarks/cluster_diagnostics.py --all-rows         # the same on every row (the earlier behaviour)
    python benchmarks/cluster_diagnostics.py --sizes 100000

Builds what :func:`synapse_core.cluster.run.run_clustering` hands to its diagnostics stage on the
large-data path without running the rest: a 50-d clustering space (``benchmarks/cluster_scale.py``'s
synthetic groups in a 20-d subspace, scaled), k-means labels (k = 8, nearest of the group means), a
2D map (the first two principal axes) and 12 bboxes; then times each diagnostic as ``run_clustering``
calls it (silhouette on 5000 rows, stability, bbox effect, nuisance alignment, map k-NN overlap).
Timings are on a shared machine: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)


def inputs(n: int, d: int = 50, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(8, 20))
    mix = (rng.normal(size=(20, d)) / np.sqrt(20)).astype(np.float32)
    group = rng.integers(0, 8, n)
    Z = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        latent = (centres[group[start:start + m]] + rng.normal(size=(m, 20))).astype(np.float32)
        Z[start:start + m] = latent @ mix + 0.5 * rng.normal(size=(m, d)).astype(np.float32)
    Z -= Z.mean(axis=0)
    Z /= Z.std(axis=0)
    axes = np.linalg.svd(Z[:20000], full_matrices=False)[2][:2]
    Y = (Z @ axes.T).astype(np.float32)
    bbox = np.array([f"bbox{i % 12 + 1}" for i in range(12)])[np.arange(n) % 12]
    table = pd.DataFrame({"bbox_name": bbox})
    return Z, group.astype(np.int64), Y, table


def measure(n: int, all_rows: bool) -> list[tuple[int, str, float, float]]:
    """(rows, diagnostic, CPU s, wall s) of each diagnostic on ``n`` synthetic rows, as run_clustering calls it."""
    from sklearn.metrics import silhouette_score

    from synapse_core.cluster import diagnostics
    from synapse_core.cluster.algorithms import fit_labels
    from synapse_core.cluster.settings import ClusterSettings

    s = ClusterSettings(pca_components=50)
    Z, labels, Y, table = inputs(n)
    cap = n if all_rows else None
    out = []

    def timed(name, fn):
        c, w = time.process_time(), time.perf_counter()
        value = fn()
        out.append((n, name, time.process_time() - c, time.perf_counter() - w))
        print(f"{n:>9} {name:<24} {out[-1][2]:8.1f} CPU s {out[-1][3]:8.1f} wall s", flush=True)
        return value

    timed("silhouette (5000 rows)", lambda: silhouette_score(Z, labels, sample_size=5000, random_state=0))
    timed("stability", lambda: diagnostics.stability(Z, labels, lambda Zs, sd: fit_labels(Zs, s, 8, sd),
                                                     n_runs=s.n_stability, fraction=s.stability_fraction))
    e = timed("bbox_effect", lambda: diagnostics.bbox_effect(Z, labels, table["bbox_name"].to_numpy(),
                                                           k=s.knn_k, max_rows=cap))
    a = timed("cluster_alignment", lambda: diagnostics.cluster_alignment(
        labels, diagnostics.nuisance_columns(table), max_rows=cap))
    o = timed("knn_overlap", lambda: diagnostics.knn_overlap(Z, Y, k=s.knn_k, max_rows=cap))
    print(f"{'':>9} rows used: bbox_effect {e['n_rows_used']}, alignment {a['n_rows_used']}; "
          f"batch score {e['batch_effect_score']:.3f}, bbox AMI {a['ami']['bbox_name']:.4f}, k-NN overlap {o:.3f}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    p.add_argument("--all-rows", action="store_true", help="every row (max_rows = n): the behaviour before the bound")
    args = p.parse_args()
    rows_out = []
    for n in args.sizes:
        rows_out += measure(n, args.all_rows)
    for n in args.sizes:
        cpu = sum(r[2] for r in rows_out if r[0] == n)
        wall = sum(r[3] for r in rows_out if r[0] == n)
        print(f"{n:>9} {'diagnostics stage total':<24} {cpu:8.1f} CPU s {wall:8.1f} wall s")
    print(f"load average {os.getloadavg()[0]:.1f} ({'every row' if args.all_rows else 'bounded: diagnostic_rows'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
