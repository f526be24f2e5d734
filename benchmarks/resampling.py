"""Cost of crops in physical space: ms per synapse for the same synapses stored at 8×8×8 nm and at 40×4×4 nm.

Run:  python benchmarks/resampling.py [--n 40] [--rounds 4] [--size 160] [--storage numpy zarr]

Prints the voxel-grid table of ``benchmarks/crops.py`` (``python benchmarks/crops.py --grids-only``):
today's isotropic path (``voxels``: no voxel size given), ``8 nm`` (voxel size given, equal to the
crop grid: no resampling), ``40×4×4`` (the bbox cut into 40 nm sections of 4 nm pixels, resampled
to the 8 nm crop grid) and both with ``orientation="canonical"``, interleaved in rounds, with the
CPU ratio to ``voxels`` (the goal for resampling is ≤ 2×).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path


def _crops_benchmark():
    spec = importlib.util.spec_from_file_location("bench_crops", Path(__file__).with_name("crops.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=40, help="synapses (default 40)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--size", type=int, default=160, help="bbox edge in 8 nm voxels (default 160)")
    ap.add_argument("--storage", nargs="+", default=["numpy", "zarr"], choices=["numpy", "zarr"])
    args = ap.parse_args(argv)
    print("\n".join(_crops_benchmark().grid_table(args.n, args.rounds, args.size, args.storage)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
