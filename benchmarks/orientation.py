"""Which crop orientation clusters the planted synapse types better: native or canonical? One table (issue 10).

Usage::

    python benchmarks/orientation.py                                   # seeds 0 1 2, 120 synapses
    python benchmarks/orientation.py --seeds 0 --sets pixels morphology
    python benchmarks/orientation.py --work /tmp/orient_bench          # demo data and cache kept there

Steps, with the library functions the CLI (``demo``, ``extract``, ``cluster --k auto``) calls:

1. ``write_demo_dataset(seed, n_synapses)`` per seed (``--work/demo<seed>``, reused when present):
   4 planted synapse types, each synapse with a random orientation (cleft normal uniform on the
   sphere) and a random presynaptic side.
2. ``extract_features`` with ``CropSettings(orientation=...)`` for ``native`` and ``canonical``
   and each feature set: ``pixels`` (the blended 80³ crop block-averaged to 10³: sees orientation
   directly), ``vgg3d`` (untrained VGG3D, fmaps 24, seed 0: no download needed) and ``morphology``
   (rotation-invariant measurements: a control that should not change).
3. ``run_clustering(k="auto", projection="none", nan_policy="impute")``; adjusted Rand index of the
   clusters against the planted type and against type × presynaptic side. Again with k = 4 (the
   planted number): the representation's ARI even where ``k auto`` finds no structure (k = 1).

Also printed per orientation: the median angle between the cleft normal the crop stage recorded
(``cleft_normal_z/y/x``) and the planted one (``truth.csv``), and the extraction wall time.
Not a test; the table is also written to ``--work/orientation.csv``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SETS = {
    "pixels": {"features": "pixels"},
    "vgg3d": {"features": "vgg3d"},
    "morphology": {"features": "morphology"},
}


def evaluate(table, truth) -> tuple[float, float]:
    """ARI of ``table['cluster']`` against the planted type and against type × presynaptic side."""
    from sklearn.metrics import adjusted_rand_score

    planted = truth[["bbox_name", "Var1", "synapse_type", "presynaptic_side"]].rename(
        columns={"presynaptic_side": "planted_side"})
    merged = table[["bbox_name", "Var1", "cluster"]].merge(planted, on=["bbox_name", "Var1"], how="left",
                                                           validate="one_to_one")
    type_side = merged["synapse_type"].astype(str) + "/" + merged["planted_side"].astype(str)
    return (adjusted_rand_score(merged["synapse_type"], merged["cluster"]),
            adjusted_rand_score(type_side, merged["cluster"]))


def normal_error_deg(features, truth) -> float:
    """Median angle (degrees, sign ignored) between recorded and planted cleft normals."""
    import numpy as np

    merged = features.merge(truth, on=["bbox_name", "Var1"], suffixes=("", "_true"))
    got = merged[["cleft_normal_z", "cleft_normal_y", "cleft_normal_x"]].to_numpy(float)
    true = merged[["cleft_normal_z_true", "cleft_normal_y_true", "cleft_normal_x_true"]].to_numpy(float)
    cos = np.abs(np.sum(got * true, axis=1)) / np.linalg.norm(true, axis=1)
    return float(np.degrees(np.nanmedian(np.arccos(np.clip(cos, 0, 1)))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="demo seeds (default 0 1 2)")
    p.add_argument("--n-synapses", type=int, default=120, help="demo synapses per seed (default 120)")
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS), help="feature sets")
    p.add_argument("--work", default="/tmp/orient_bench", help="folder for demo data, cache and table")
    args = p.parse_args(argv)

    import pandas as pd
    import torch

    from synapse_core.cluster.run import run_clustering
    from synapse_core.cluster.settings import ClusterSettings
    from synapse_core.crops.settings import CropSettings
    from synapse_core.data.dataset import open_dataset
    from synapse_core.data.demo import write_demo_dataset
    from synapse_core.features.extract import extract_features
    from synapse_core.features.settings import ExtractSettings

    torch.set_num_threads(1)
    work = Path(args.work)
    rows = []
    for seed in args.seeds:
        root = work / f"demo{seed}"
        if not (root / "truth.csv").exists():
            write_demo_dataset(root, seed=seed, n_synapses=args.n_synapses)
        truth = pd.read_csv(root / "truth.csv", dtype={"Var1": str})
        dataset = open_dataset(root, cache_dir=work / "cache")
        for orientation in ("native", "canonical"):
            crop = CropSettings(orientation=orientation)
            for name in args.sets:
                settings = ExtractSettings(crop=crop, workers=0, batch_size=4, device="cpu", seed=0, **SETS[name])
                t = time.perf_counter()
                res = extract_features(dataset, settings, cache_dir=work / "cache")
                t_extract = time.perf_counter() - t
                clusters = run_clustering(res.features, ClusterSettings(k="auto", projection="none",
                                                                        nan_policy="impute", seed=seed))
                ari_type, ari_side = evaluate(clusters.table, truth)
                fixed = run_clustering(res.features, ClusterSettings(k=4, projection="none", nan_policy="impute",
                                                                     seed=seed))
                ari4_type, ari4_side = evaluate(fixed.table, truth)
                row = {"seed": seed, "features": name, "orientation": orientation,
                       "k": int(clusters.table["cluster"].nunique()), "ari_type": round(ari_type, 3),
                       "ari_type_x_side": round(ari_side, 3), "k4_ari_type": round(ari4_type, 3),
                       "k4_ari_type_x_side": round(ari4_side, 3),
                       "normal_err_deg": round(normal_error_deg(res.features, truth), 1),
                       "n": len(res.features), "extract_s": round(t_extract, 1)}
                rows.append(row)
                print("  " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    table = pd.DataFrame(rows)
    work.mkdir(parents=True, exist_ok=True)
    table.to_csv(work / "orientation.csv", index=False)
    print(f"\n{args.n_synapses} demo synapses per seed (4 planted types, random orientations and presynaptic "
          "sides); k auto; ARI vs planted type and vs type × side")
    print(table.to_string(index=False))
    cols = ["k", "ari_type", "ari_type_x_side", "k4_ari_type", "k4_ari_type_x_side"]
    mean = table.groupby(["features", "orientation"])[cols].mean().round(3)
    print("\nmean over seeds")
    print(mean.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
