"""Cost of crops in physical space: ms per synapse for the same synapses stored at 8×8×8 nm and at 40×4×4 nm.

Run:  python benchmarks/resampling.py [--n 40] [--rounds 4] [--size 160] [--storage numpy zarr]

The synthetic bbox of ``benchmarks/crops.py`` (edge ``--size`` voxels of 8 nm) is stored twice:
as it is, and as serial sections of 40×4×4 nm (slices 2, 7, 12, …: section centres; each pixel split in 2×2). Timed
per synapse, read + build, default crop settings (80 voxels of 8 nm, smart crop on, type 10):

* ``voxels``: the path before physical crops, data read in native voxels (no voxel size given);
* ``8 nm``: voxel size 8×8×8 nm given, equal to the crop grid, so no resampling (must cost the same);
* ``40×4×4``: voxel size given, windows read over 640 nm and resampled to the 8 nm grid.

Paths are interleaved in rounds (chunk cache cleared before each round), so the ratios are
measured side by side under the same load. Printed: median wall and CPU ms per synapse and the
ratio to ``voxels`` (the goal for resampling is ≤ 2×).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synapse_core.crops.build import build_crop, read_context_arrays  # noqa: E402
from synapse_core.crops.settings import CropSettings  # noqa: E402
from synapse_core.data.windows import clear_chunk_cache  # noqa: E402


def _crops_benchmark():
    spec = importlib.util.spec_from_file_location("bench_crops", Path(__file__).with_name("crops.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sectioned(raw, seg, mask, rows):
    """The same bbox as 40×4×4 nm sections: every 5th slice, each pixel repeated 2×2; rows moved along."""
    def cut(v):
        return np.ascontiguousarray(np.repeat(np.repeat(v[2::5], 2, axis=1), 2, axis=2))

    moved = []
    for r in rows:
        m = dict(r)
        for p in ("central", "side_1", "side_2"):
            m[f"{p}_coord_1"] = int(r[f"{p}_coord_1"]) * 2
            m[f"{p}_coord_2"] = int(r[f"{p}_coord_2"]) * 2
            m[f"{p}_coord_3"] = int(r[f"{p}_coord_3"]) // 5
        moved.append(m)
    return cut(raw), cut(seg), cut(mask), moved


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=40, help="synapses (default 40)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--size", type=int, default=160, help="bbox edge in 8 nm voxels (default 160)")
    ap.add_argument("--storage", nargs="+", default=["numpy", "zarr"], choices=["numpy", "zarr"])
    args = ap.parse_args(argv)
    bench = _crops_benchmark()
    raw, seg, mask, rows = bench.synthetic_bbox(args.size, args.n)
    thin = sectioned(raw, seg, mask, rows)
    settings = CropSettings()
    labels = bench.LABELS
    print(f"{args.n} synapses, bbox {args.size}³ voxels of 8 nm; sectioned copy {thin[0].shape} at 40×4×4 nm")
    print(f"{'storage':8} {'path':10} {'wall ms':>8} {'cpu ms':>8} {'cpu / voxels':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for storage in args.storage:
            if storage == "zarr":
                iso = [bench.to_zarr(Path(tmp), f"iso_{k}", v) for k, v in zip(("raw", "seg", "mask"), (raw, seg, mask))]
                sec = [bench.to_zarr(Path(tmp), f"sec_{k}", v) for k, v in zip(("raw", "seg", "mask"), thin[:3])]
            else:
                iso, sec = [raw, seg, mask], list(thin[:3])
            paths = {
                "voxels": (iso, rows, None),
                "8 nm": (iso, rows, (8.0, 8.0, 8.0)),
                "40×4×4": (sec, thin[3], (40.0, 4.0, 4.0)),
            }
            times = {k: ([], []) for k in paths}
            per_round = max(1, args.n // args.rounds)
            for start in range(0, args.n, per_round):
                for name, (vols, rr, voxel) in paths.items():
                    clear_chunk_cache()
                    for row in rr[start:start + per_round]:
                        w0, c0 = time.perf_counter(), time.process_time()
                        build_crop(read_context_arrays(*vols, labels, row, settings, voxel_size_nm=voxel), settings)
                        times[name][0].append(time.perf_counter() - w0)
                        times[name][1].append(time.process_time() - c0)
            base = np.median(times["voxels"][1])
            for name, (wall, cpu) in times.items():
                print(f"{storage:8} {name:10} {1000 * np.median(wall):8.1f} {1000 * np.median(cpu):8.1f} "
                      f"{np.median(cpu) / base:13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
