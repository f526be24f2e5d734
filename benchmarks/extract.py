"""Speed of feature extraction with the original-size VGG3D (80³ crops, fmaps 24, stage4 + avg).

Usage::

    python benchmarks/extract.py                    # 16 demo crops, batch 4
    python benchmarks/extract.py --crops 32 --batch-size 8 --threads 2

Everything is measured in one run on the same crops (the demo dataset, untrained network, seed 0),
side by side:

* matrix-multiply peak (float32 and bfloat16, square matmul), the reference for GFLOP/s;
* model only: :class:`synapse_core.features.net.FeatureNet` on pre-built crops, fp32 and bf16
  (channels-last, Conv+BN folded; batches alternate between the two), crops/s and GFLOP/s
  (analytic FLOPs of the convolutions);
* end to end: :func:`synapse_core.features.extract.extract_features` without cache, crops built in a
  worker process while the network runs; steady-state crops/s (after the first batch, like the
  model-only warm-up) and the wall time including start-up;
* naive baseline: as the original tool ran it: batch 2, default (contiguous) layout, fp32, the
  unfolded ``model.features`` + pooling, crops built one by one in the main process;
* bf16-vs-fp32 cosine similarity of the feature vectors, plain and mean-centred (the deviations
  from the mean crop, which is what clustering sees after standard scaling), and the between-crop
  spread of the features next to the bf16 rounding error.

Every measurement runs ``--rounds`` times in turn and the best of each is reported (per-round
values are printed too). Timings are wall-clock on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from synapse_core.crops.build import build_crop, read_context  # noqa: E402
from synapse_core.crops.settings import CropSettings  # noqa: E402
from synapse_core.data.dataset import open_dataset  # noqa: E402
from synapse_core.data.demo import demo_data_root  # noqa: E402
from synapse_core.features.extract import extract_features  # noqa: E402
from synapse_core.features.settings import ExtractSettings  # noqa: E402
from synapse_core.features.net import FeatureNet  # noqa: E402
from synapse_core.features.pooling import pool  # noqa: E402
from synapse_core.features.vgg3d import Vgg3DConfig, parse_layers, untrained_vgg3d  # noqa: E402


def conv_gflop_per_crop(model, layer_index: int, size: int) -> float:
    """Analytic GFLOP (2 × MACs) of the convolutions up to ``layer_index`` for one ``size``³ crop."""
    flops, spatial = 0, size**3
    for i, m in enumerate(model.features):
        if i > layer_index:
            break
        if isinstance(m, torch.nn.Conv3d):
            flops += 2 * m.in_channels * m.out_channels * 27 * spatial
        elif isinstance(m, torch.nn.MaxPool3d):
            spatial //= 8
    return flops / 1e9


def matmul_peak(dtype, n=3072, reps=6) -> float:
    """Best GFLOP/s of an n×n matmul over ``reps`` tries."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dtype)
    b = torch.randn(n, n, generator=g).to(dtype)
    a @ b
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def time_models(nets: dict, crops: np.ndarray, batch: int) -> dict:
    """{name: (crops/s, features)}; batches alternate between the nets so load changes hit all alike."""
    for net in nets.values():
        net(crops[:batch])  # warm-up
    secs = {name: 0.0 for name in nets}
    outs = {name: [] for name in nets}
    for i in range(0, len(crops), batch):
        for name, net in nets.items():
            t = time.perf_counter()
            outs[name].append(net(crops[i:i + batch]))
            secs[name] += time.perf_counter() - t
    return {name: (len(crops) / secs[name], np.concatenate(outs[name])) for name in nets}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crops", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--rounds", type=int, default=2, help="repeat every measurement; report the best")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n, batch = args.crops, args.batch_size
    tmp = tempfile.mkdtemp(prefix="bench-extract-")
    ds = open_dataset(demo_data_root(), cache_dir=None)
    rows = ds.synapses.iloc[:n]
    keys = list(zip(rows["bbox_name"], rows["Var1"]))
    crop_settings = CropSettings()
    print(f"{n} crops of 80³ from the demo dataset, batch {batch}, torch {torch.__version__}, "
          f"{args.threads} threads, {os.cpu_count()} cores visible; load average at start "
          f"{os.getloadavg()[0]:.1f} (other processes share the cores)", flush=True)

    t = time.perf_counter()
    crops = np.stack([build_crop(read_context(ds.bboxes[r.bbox_name], r, crop_settings), crop_settings).blended
                      for _, r in rows.iterrows()])
    crop_ms = (time.perf_counter() - t) / n * 1e3

    model = untrained_vgg3d(Vgg3DConfig(), seed=0)
    layers = parse_layers("stage4")
    gflop = conv_gflop_per_crop(model, layers[0].index, 80)
    nets = {p: FeatureNet(model, layers, "avg", "cpu", p) for p in ("fp32", "bf16")}
    naive_model = untrained_vgg3d(Vgg3DConfig(), seed=0).to(memory_format=torch.contiguous_format)

    def end_to_end(precision):
        stamps = []
        settings = ExtractSettings(batch_size=batch, workers=1, device="cpu", precision=precision)
        t0 = time.perf_counter()
        extract_features(ds, settings, cache_dir=tmp, synapses=keys, use_cache=False,
                         progress=lambda done, total: stamps.append((done, time.perf_counter())))
        wall = time.perf_counter() - t0
        first = next(ts for d, ts in stamps if d == batch)
        return (n - batch) / (stamps[-1][1] - first), n / wall

    def naive_run():
        # batch 2, contiguous layout, fp32, unfolded trunk, crops built one by one in the main process
        with torch.inference_mode():
            naive_model.features(torch.from_numpy(crops[:2])[:, None])  # warm-up, as for the others
            t = time.perf_counter()
            for i in range(0, n, 2):
                part = rows.iloc[i:i + 2]
                x = np.stack([build_crop(read_context(ds.bboxes[r.bbox_name], r, crop_settings),
                                         crop_settings).blended for _, r in part.iterrows()])
                pool(naive_model.features(torch.from_numpy(x)[:, None]), "avg")
            return n / (time.perf_counter() - t)

    # Rounds of every measurement in turn; each figure is the best over rounds, so a burst of load
    # from other processes during one measurement does not decide a ratio.
    peaks32, peaks16, rates, e2e_rounds, naive_rounds = [], [], [], [], []
    for r in range(args.rounds):
        peaks32.append(matmul_peak(torch.float32))
        peaks16.append(matmul_peak(torch.bfloat16))
        results = time_models(nets, crops, batch)
        rates.append({p: results[p][0] for p in results})
        e2e_rounds.append({p: end_to_end(p) for p in ("fp32", "bf16")})
        naive_rounds.append(naive_run())
        print(f"  round {r + 1}: matmul {peaks32[-1]:.0f}/{peaks16[-1]:.0f} GFLOP/s; model fp32 "
              f"{rates[-1]['fp32']:.3f}, bf16 {rates[-1]['bf16']:.3f}; end-to-end fp32 "
              f"{e2e_rounds[-1]['fp32'][0]:.3f}, bf16 {e2e_rounds[-1]['bf16'][0]:.3f}; naive "
              f"{naive_rounds[-1]:.3f} crops/s; load {os.getloadavg()[0]:.1f}", flush=True)
    peak32, peak16 = max(peaks32), max(peaks16)
    results = {p: (max(r[p] for r in rates), results[p][1]) for p in ("fp32", "bf16")}
    e2e = {p: (max(r[p][0] for r in e2e_rounds), max(r[p][1] for r in e2e_rounds)) for p in ("fp32", "bf16")}
    naive = max(naive_rounds)

    a, b = results["fp32"][1], results["bf16"][1]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    # Stricter: cosine of the deviations from the mean crop (what clustering sees after scaling), and
    # the between-crop spread of the fp32 features next to the bf16 rounding error.
    ac, bc = a - a.mean(0), b - a.mean(0)
    cos_c = (ac * bc).sum(1) / np.linalg.norm(ac, axis=1) / np.linalg.norm(bc, axis=1)
    spread = float(np.median(a.std(0)) / np.median(np.abs(a)))
    bf16_err = float(np.median(np.abs(a - b)) / np.median(np.abs(a)))
    m32, m16 = results["fp32"][0], results["bf16"][0]
    best_e2e = max(e2e["fp32"][0], e2e["bf16"][0])
    lines = [
        ("matmul peak fp32", f"{peak32:.0f} GFLOP/s", ""),
        ("matmul peak bf16", f"{peak16:.0f} GFLOP/s", f"{peak16 / peak32:.2f}x fp32"),
        ("crop building (main process)", f"{crop_ms:.0f} ms/crop", ""),
        ("model fp32", f"{m32:.3f} crops/s = {m32 * gflop:.0f} GFLOP/s",
         f"{m32 * gflop / peak32:.0%} of fp32 peak (goal >= 60%)"),
        ("model bf16", f"{m16:.3f} crops/s = {m16 * gflop:.0f} GFLOP/s",
         f"{m16 / m32:.2f}x fp32 (goal >= 1.6x); {m16 * gflop / peak16:.0%} of bf16 peak"),
        ("end-to-end fp32 (steady)", f"{e2e['fp32'][0]:.3f} crops/s",
         f"{e2e['fp32'][0] / m32:.0%} of model-only (goal >= 85%); incl. start-up {e2e['fp32'][1]:.3f}"),
        ("end-to-end bf16 (steady)", f"{e2e['bf16'][0]:.3f} crops/s",
         f"{e2e['bf16'][0] / m16:.0%} of model-only; incl. start-up {e2e['bf16'][1]:.3f}"),
        ("naive baseline", f"{naive:.3f} crops/s", "batch 2, contiguous, fp32, unfolded BN, crops in main"),
        ("speed-up over naive", f"{best_e2e / naive:.2f}x",
         f"best end-to-end (goal >= 2.5x); fp32 end-to-end {e2e['fp32'][0] / naive:.2f}x"),
        ("bf16 vs fp32 cosine", f"min {cos.min():.5f}", f"mean {cos.mean():.5f} (goal >= 0.999)"),
        ("  same, mean-centred", f"min {cos_c.min():.5f}", f"mean {cos_c.mean():.5f} (deviations from the mean crop)"),
        ("  between-crop spread", f"{spread:.2e} of |feature|", f"bf16 error {bf16_err:.2e} of |feature| (fp32)"),
    ]
    print(f"\nconvolution cost: {gflop:.1f} GFLOP per 80³ crop (stage4); load average at end "
          f"{os.getloadavg()[0]:.1f}\n")
    w = max(len(l[0]) for l in lines)
    w2 = max(len(l[1]) for l in lines)
    print(f"{'measure':<{w}}  {'value':<{w2}}  ratio / note")
    for name, value, note in lines:
        print(f"{name:<{w}}  {value:<{w2}}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
