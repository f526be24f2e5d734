"""Which feature set finds the planted synapse types? One table: ARI, k chosen, time (issue 11).

Usage::

    python benchmarks/learned_features.py                        # 300 synapses, seed 0, work in /tmp
    python benchmarks/learned_features.py --n-synapses 300 --seed 1 --work /tmp/lf_s1
    python benchmarks/learned_features.py --sets pixels morphology   # only some rows
    python benchmarks/learned_features.py --orientation native       # crops on the data's axes (before issue 10)

Steps, with the library functions the CLI and the dashboard call:

1. ``write_demo_dataset(seed, n_synapses)``: 4 planted synapse types, every synapse with a random
   orientation (cleft normal uniform on the sphere) and a random presynaptic side.
2. ``prepare_training_data`` + ``train`` with ``preset_settings("small", seed=seed)`` (any
   ``--epochs`` on top) on crops of ``--orientation`` (default: ``CropSettings``' own, canonical),
   timed (wall and CPU seconds of this process). A finished checkpoint with the same settings in
   ``--work`` is reused (its recorded training wall time is reported); an unfinished one (its
   ``.partial``) is continued, so a cut run keeps its finished epochs. The ``trained-ssl`` row trains a
   second model with the same settings but no morphology target (``morphology_weight=0``,
   ``ssl_weight=1``): what self-supervision alone gives.
3. ``extract_features`` per feature set (cached per synapse in ``--work/cache``):
   untrained VGG3D (fmaps 24, 80³: the network without a download), pixels (80³ → 10³ block
   averages), morphology, both (untrained VGG3D + morphology), the trained model, the trained model
   with morphology, the trained model averaged over a symmetry group of the crop (``--invariance``
   rows), ... Every set uses the same crops (``--orientation``).
4. ``run_clustering(k="auto", projection="none", nan_policy="impute", pca_components=50)`` on each; adjusted Rand
   index of the clusters against the planted type and against type × presynaptic side (a feature
   set that follows the annotation side scores higher on the second).

Not a test: it prints the table and writes it to ``--work/learned_features.csv``. Training time is
wall time on this machine, which other jobs share (the 1-minute load is printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def feature_sets(checkpoint: str, ssl_checkpoint: str = "") -> dict[str, dict]:
    """Row name → ExtractSettings fields (besides the shared ones)."""
    return {
        "untrained VGG3D (fmaps 24, 80³)": {"features": "vgg3d"},
        "pixels (10³)": {"features": "pixels"},
        "pixels (10³), invariance cube": {"features": "pixels", "invariance": "cube"},
        "morphology": {"features": "morphology"},
        "both (untrained VGG3D + morphology)": {"features": "both"},
        "trained (small preset)": {"features": "vgg3d", "checkpoint": checkpoint},
        "trained + morphology": {"features": "both", "checkpoint": checkpoint},
        "trained, self-supervised only": {"features": "vgg3d", "checkpoint": ssl_checkpoint},
        "trained, invariance flips_rot90": {"features": "vgg3d", "checkpoint": checkpoint,
                                            "invariance": "flips_rot90"},
        "trained, invariance cube": {"features": "vgg3d", "checkpoint": checkpoint, "invariance": "cube"},
        "trained, invariance cube + morphology": {"features": "both", "checkpoint": checkpoint, "invariance": "cube"},
    }


SHORT = {"untrained": "untrained VGG3D (fmaps 24, 80³)", "pixels": "pixels (10³)",
         "pixels-inv": "pixels (10³), invariance cube", "morphology": "morphology",
         "both": "both (untrained VGG3D + morphology)", "trained": "trained (small preset)",
         "trained-both": "trained + morphology", "trained-ssl": "trained, self-supervised only",
         "trained-plane": "trained, invariance flips_rot90", "trained-inv": "trained, invariance cube",
         "trained-inv-both": "trained, invariance cube + morphology"}
#: Rows run without --sets. The cube / flips_rot90 averages mix the canonical crop's z (the cleft normal,
#: presynaptic side low) with y, x or flip it: they undo canonical orientation (ask for them by name).
DEFAULT_SETS = ["morphology", "pixels", "untrained", "both", "trained", "trained-both", "trained-ssl"]


def load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and its finished children."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def train_model(dataset, work: Path, seed: int, overrides: dict, threads: int | None, crop
                ) -> tuple[str, float, float, str]:
    """(checkpoint path, training wall time s, CPU s (nan when reused), how it was obtained)."""
    import torch

    from synapse_core.data.hashing import content_hash
    from synapse_core.features.checkpoints import read_metadata
    from synapse_core.features.train import partial_path, prepare_training_data, train
    from synapse_core.features.train_settings import TrainSettings, preset_settings
    from synapse_core.settings_base import settings_from_dict, settings_to_dict

    settings = preset_settings("small", seed=seed, crop=crop, **overrides)
    tag = content_hash(settings_to_dict(settings))[:10]  # any changed setting (or preset default): a new model
    out = work / f"model_small_seed{seed}_e{settings.epochs}_in{settings.input_size}_{crop.orientation}_{tag}.pt"
    if out.exists():
        meta = read_metadata(out)
        if meta and settings_from_dict(TrainSettings, meta.get("training")) == settings:
            return str(out), float(meta["wall_time_s"]), float("nan"), "reused (recorded time)"
    if threads:
        torch.set_num_threads(threads)
    t0, c0 = time.perf_counter(), cpu_seconds()
    data = prepare_training_data(dataset, settings)
    t_data = time.perf_counter() - t0
    resumed = " (continuing " + partial_path(out).name + ")" if partial_path(out).exists() else ""
    print(f"training: {len(data.keys)} crops prepared in {t_data:.0f} s; {settings.epochs} epochs{resumed} "
          f"(load {load()})", flush=True)
    last = [0]

    def progress(epoch, step, steps, loss):
        if epoch != last[0] and step == steps:
            last[0] = epoch
            print(f"  epoch {epoch}/{settings.epochs} loss {loss:.3f} ({time.perf_counter() - t0:.0f} s, "
                  f"{cpu_seconds() - c0:.0f} CPU s, load {load()})", flush=True)

    result = train(data, settings, out, progress=progress)
    return (str(out), time.perf_counter() - t0, cpu_seconds() - c0,
            f"trained now: {result.wall_time_s:.0f} s in epochs, crops {t_data:.0f} s"
            + (f", resumed at epoch {result.resumed_from}" if result.resumed_from else ""))


def evaluate(table, truth) -> tuple[float, float]:
    from sklearn.metrics import adjusted_rand_score

    planted = truth[["bbox_name", "Var1", "synapse_type", "presynaptic_side"]].rename(
        columns={"synapse_type": "true_type", "presynaptic_side": "true_side"})
    merged = table[["bbox_name", "Var1", "cluster"]].astype({"Var1": str}).merge(
        planted, on=["bbox_name", "Var1"], how="left", validate="one_to_one")
    type_side = merged["true_type"].astype(str) + "/" + merged["true_side"].astype(str)
    return (adjusted_rand_score(merged["true_type"], merged["cluster"]),
            adjusted_rand_score(type_side, merged["cluster"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-synapses", type=int, default=300, help="demo synapses (default 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo data, the training and the clustering")
    p.add_argument("--work", default=None, help="folder for data, cache, model and table (default /tmp/lf_<n>_s<seed>)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the small preset's)")
    p.add_argument("--input-size", type=int, default=None, help="network input edge (default: the small preset's 32)")
    p.add_argument("--rotation-probability", type=float, default=None,
                   help="free-rotation augmentation (default: the small preset's 1)")
    p.add_argument("--morphology-weight", type=float, default=None,
                   help="weight of the morphology target (default: the small preset's)")
    p.add_argument("--ssl-weight", type=float, default=None,
                   help="weight of the self-supervised loss (default: the small preset's)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster on a shared machine)")
    p.add_argument("--pca", type=int, default=50, help="principal components kept by clustering (default 50; the "
                                                       "pixel set has 1000 columns)")
    p.add_argument("--orientation", choices=["native", "canonical"], default=None,
                   help="crop orientation of every row and of the training (default: CropSettings', canonical)")
    p.add_argument("--sets", nargs="+", default=DEFAULT_SETS, choices=list(SHORT),
                   help=f"rows to run (default: {' '.join(DEFAULT_SETS)})")
    args = p.parse_args(argv)

    import pandas as pd

    from synapse_core.cluster.run import run_clustering
    from synapse_core.cluster.settings import ClusterSettings
    from synapse_core.crops.settings import CropSettings
    from synapse_core.data.dataset import open_dataset
    from synapse_core.data.demo import write_demo_dataset
    from synapse_core.features.extract import extract_features
    from synapse_core.features.settings import ExtractSettings

    work = Path(args.work or f"/tmp/lf_{args.n_synapses}_s{args.seed}")
    work.mkdir(parents=True, exist_ok=True)
    data_root = work / "demo"
    if not (data_root / "truth.csv").exists():
        t = time.perf_counter()
        write_demo_dataset(data_root, seed=args.seed, n_synapses=args.n_synapses)
        print(f"demo: {args.n_synapses} synapses written in {time.perf_counter() - t:.0f} s", flush=True)
    truth = pd.read_csv(data_root / "truth.csv", dtype={"Var1": str})
    dataset = open_dataset(data_root, cache_dir=work / "cache")
    print(f"{len(dataset.synapses)} synapses, {truth['synapse_type'].nunique()} planted types; load {load()}",
          flush=True)

    crop = CropSettings() if args.orientation is None else CropSettings(orientation=args.orientation)
    wants_model = any(s.startswith("trained") and s != "trained-ssl" for s in args.sets)
    overrides = {k: v for k, v in {"epochs": args.epochs, "input_size": args.input_size,
                                   "rotation_probability": args.rotation_probability,
                                   "morphology_weight": args.morphology_weight,
                                   "ssl_weight": args.ssl_weight}.items() if v is not None}
    load_before = load()
    checkpoint, train_s, train_cpu, how = (train_model(dataset, work, args.seed, overrides, args.threads, crop)
                                           if wants_model else ("", float("nan"), float("nan"), "not run"))
    if wants_model:
        print(f"training: {train_s:.0f} s wall, {train_cpu:.0f} CPU s ({how}); load {load_before} → {load()}; "
              f"{checkpoint}", flush=True)
    ssl_checkpoint = ""
    if "trained-ssl" in args.sets:  # the same training without the morphology target: what self-supervision alone gives
        ssl_overrides = {**overrides, "morphology_weight": 0.0, "ssl_weight": 1.0}
        ssl_checkpoint, ssl_s, ssl_cpu, ssl_how = train_model(dataset, work, args.seed, ssl_overrides, args.threads,
                                                              crop)
        print(f"training (self-supervised only): {ssl_s:.0f} s wall, {ssl_cpu:.0f} CPU s ({ssl_how}); "
              f"{ssl_checkpoint}", flush=True)

    import torch

    torch.set_num_threads(args.threads)
    sets = feature_sets(checkpoint, ssl_checkpoint)
    rows = []
    for short in args.sets:
        name = sets[SHORT[short]]
        settings = ExtractSettings(crop=crop, workers=1, batch_size=4, device="cpu", seed=0, **name)
        t, c = time.perf_counter(), cpu_seconds()
        res = extract_features(dataset, settings, cache_dir=work / "cache")
        t_extract, c_extract = time.perf_counter() - t, cpu_seconds() - c
        t = time.perf_counter()
        clusters = run_clustering(res.features, ClusterSettings(k="auto", projection="none", nan_policy="impute",
                                                                pca_components=args.pca, seed=args.seed))
        t_cluster = time.perf_counter() - t
        ari_type, ari_side = evaluate(clusters.table, truth)
        k = int(clusters.table["cluster"].nunique())
        n_feat = len(clusters.preprocess.columns)
        rows.append({"features": SHORT[short], "n_features": n_feat, "k": k, "ari_type": round(ari_type, 3),
                     "ari_type_x_side": round(ari_side, 3), "extract_s": round(t_extract, 1),
                     "extract_cpu_main_s": round(c_extract, 1),  # crops are cut in a worker: not counted
                     "cluster_s": round(t_cluster, 1)})
        print(f"  {SHORT[short]}: k {k}, ARI type {ari_type:.3f}, type×side {ari_side:.3f} ({n_feat} features; "
              f"extract {t_extract:.0f} s, cluster {t_cluster:.0f} s, load {load()})", flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(work / "learned_features.csv", index=False)
    print(f"\n{args.n_synapses} synapses, seed {args.seed}, {truth['synapse_type'].nunique()} planted types, "
          f"{crop.orientation} crops; training (small preset{''.join(f', {k} {v}' for k, v in overrides.items())}): "
          f"{train_s:.0f} s wall, {train_cpu:.0f} CPU s ({how}); load now {load()}")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
