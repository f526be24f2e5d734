"""Cost of one synapse crop: vs bbox size (160³, 320³, 512³; seg types 0/1/10/11/13) and vs voxel grid (resampling).

Run:  python benchmarks/crops.py [--n 40] [--rounds 4] [--storage numpy zarr] [--sizes 160 320 512] [--chunks 64]
      python benchmarks/crops.py --grids-only             # only the voxel-grid table (resampling, orientation)
      python benchmarks/crops.py --reuse-freed-memory     # glibc keeps freed arrays: no page faults per crop
      python benchmarks/crops.py --baseline /tmp/base     # also time an earlier checkout's reader, side by side

Two tables. The first (skipped with ``--grids-only``) is the cost vs bbox size described below.
The second, **voxel grids**, times the same synapses of a ``--grid-size``³ bbox (default 160) per
path, interleaved in rounds, default crop settings (80 voxels of 8 nm, smart crop on, type 10):

* ``voxels``: today's isotropic path, data read in native voxels (no voxel size given);
* ``8 nm``: voxel size 8×8×8 nm given, equal to the crop grid, so no resampling;
* ``40×4×4``: the bbox stored as serial sections of 40×4×4 nm (slices 2, 7, 12, …: section
  centres; each pixel split in 2×2), windows read over 640 nm and resampled to the 8 nm grid;
* ``8 nm canonical`` and ``40×4×4 canonical``: the same with ``orientation="canonical"`` (each crop
  rotated so the cleft normal is its z axis: one trilinear interpolation from the native grid).

It prints median wall and CPU ms per synapse and the CPU ratio to ``voxels`` (goal for resampling:
≤ 2×). ``benchmarks/resampling.py`` prints the same table.

Each bbox is synthetic (uint8 raw, uint32 neuron ids in 32-voxel cells, uint8 semantic mask with a
vesicle cloud, cleft and mitochondrion at every synapse). Storage:

* ``numpy``: volumes in memory; reading = copying the windows out of the arrays.
* ``zarr``: volumes on disk as Zarr v3, 64³ chunks (``--chunks``), zstd (the layout
  ``synapse_core.data.dataset`` converts TIFF stacks to); reading = decoding chunks through the
  per-process decoded-chunk cache of :func:`synapse_core.data.windows.read_box`.

``--baseline DIR`` (a checkout of an earlier commit, e.g. ``git archive <commit> | tar -x -C DIR``)
times that checkout's window reader too (``DIR/synapse_core/crops/reader.py``, the reader before
``data.windows``), interleaved with the current one in every round, and prints current / baseline.

Timed per synapse: ``read_context`` (all reads) + ``build_crop`` (all computation), synapses in
random order, settings = defaults (80³ crop, smart crop on) with the given segmentation type.
Box sizes are interleaved in rounds of ``n / rounds`` synapses (chunk cache cleared before each
round), so the ratios are measured side by side under the same machine load.
The same 40 synapses crowd a 160³ box (windows hold neighbours' labels and most cross the box
border, which costs padding), so the smallest box is not the cheapest; what matters is that the
cost does not grow with the box. The original tool grew from 0.26 s (256³) to 3 s
(512³) per synapse (notes §14.3).

Printed: ms per synapse (median over synapses) as wall time and as CPU time of this process (the
CPU time is robust to other jobs sharing the machine), and the 512³/160³ ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import synapse_core.crops.build as crops_build
from synapse_core.crops.build import Discarded, build_crop, read_context_arrays
from synapse_core.crops.settings import CropSettings
from synapse_core.data.labels import LabelIds
from synapse_core.data.windows import clear_chunk_cache, read_box, reuse_freed_memory

LABELS = LabelIds(mito=5, vesicle=6, cleft=7, cleft2=7)
CELL = 32


def synthetic_bbox(n: int, n_syn: int, seed: int = 0):
    """raw, seg, mask (z, y, x) of edge ``n`` and ``n_syn`` synapse rows on neuron-cell boundaries."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(60, 200, (n, n, n), dtype=np.uint8)
    k = n // CELL + 1
    ids = np.arange(n) // CELL
    seg = (ids[:, None, None] * k * k + ids[None, :, None] * k + ids[None, None, :] + 1).astype(np.uint32)
    mask = np.zeros((n, n, n), np.uint8)
    rows = []
    for i in range(n_syn):
        z, y = rng.integers(20, n - 20, 2)
        x = int(rng.integers(1, n // CELL)) * CELL  # cell boundary along x: neurons at x-1 and x differ
        x = min(x, n - 20)
        mask[z - 6:z + 6, y - 6:y + 6, x - 10:x - 1] = LABELS.vesicle
        mask[z - 5:z + 5, y - 5:y + 5, x - 1:x + 1] = LABELS.cleft
        mask[z - 3:z + 3, y + 8:y + 14, x - 12:x - 4] = LABELS.mito
        rows.append({"bbox_name": f"box{n}", "Var1": f"syn_{i:03d}",
                     "central_coord_1": x, "central_coord_2": int(y), "central_coord_3": int(z),
                     "side_1_coord_1": x - 5, "side_1_coord_2": int(y), "side_1_coord_3": int(z),
                     "side_2_coord_1": x + 5, "side_2_coord_2": int(y), "side_2_coord_3": int(z)})
    order = rng.permutation(len(rows))
    return raw, seg, mask, [rows[i] for i in order]


def to_zarr(folder: Path, name: str, vol: np.ndarray, chunk: int = 64):
    import zarr

    arr = zarr.open_array(str(folder / f"{name}.zarr"), mode="w", shape=vol.shape, chunks=(chunk,) * 3,
                          dtype=vol.dtype, fill_value=0)
    arr[:] = vol
    return zarr.open_array(str(folder / f"{name}.zarr"), mode="r")


def load_baseline_reader(checkout: Path):
    """(read_box, clear its cache) of the window reader in an earlier checkout (``synapse_core/crops/reader.py``).

    The file is loaded under another module name, with its own ``data/volumes.py`` standing in for
    the current one while it imports, so both readers live in this process.
    """
    def load(name: str, rel: str):
        path = checkout / rel
        if not path.exists():
            raise SystemExit(f"--baseline {checkout}: no {rel} there (a checkout from before data/windows.py?)")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
        return module

    current = sys.modules["synapse_core.data.volumes"]
    sys.modules["synapse_core.data.volumes"] = load("baseline_volumes", "synapse_core/data/volumes.py")
    try:
        reader = load("baseline_reader", "synapse_core/crops/reader.py")
    finally:
        sys.modules["synapse_core.data.volumes"] = current
    return reader.read_box, reader.CHUNK_CACHE.clear


@contextlib.contextmanager
def reading_with(read):
    """Crops read their windows with ``read`` (the name ``crops.build._read`` calls) inside the block."""
    before = crops_build.read_box
    crops_build.read_box = read
    try:
        yield
    finally:
        crops_build.read_box = before


def time_crops(raw, seg, mask, rows, seg_type, clear_cache=clear_chunk_cache):
    """Per-synapse wall and CPU seconds (read + build) and the number of discards; chunk cache cleared first."""
    s = CropSettings(segmentation_type=seg_type, orientation="native")  # axis-aligned (the grid table has both)
    clear_cache()
    total, cpu, discards = [], [], 0
    for row in rows:
        t0, c0 = time.perf_counter(), time.process_time()
        out = build_crop(read_context_arrays(raw, seg, mask, LABELS, row, s), s)
        total.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        discards += isinstance(out, Discarded)
    return total, cpu, discards


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


def grid_table(n_syn: int, rounds: int, size: int, storages, chunks: int = 64) -> list[str]:
    """Lines of the voxel-grid table: ms per synapse of each path (module docstring), side by side."""
    raw, seg, mask, rows = synthetic_bbox(size, n_syn)
    thin = sectioned(raw, seg, mask, rows)
    native, canonical = CropSettings(orientation="native"), CropSettings(orientation="canonical")
    lines = [(f"voxel grids: {n_syn} synapses, bbox {size}³ voxels of 8 nm; sectioned copy {thin[0].shape} at "
             f"40×4×4 nm; 80³ crop of 8 nm, type 10, smart crop on; load average {os.getloadavg()[0]:.1f}"),
             f"{'storage':8} {'path':18} {'wall ms':>8} {'cpu ms':>8} {'cpu / voxels':>13}"]
    with tempfile.TemporaryDirectory(prefix="bench-grids-") as tmp:
        for storage in storages:
            if storage == "zarr":
                iso = [to_zarr(Path(tmp), f"iso_{k}", v, chunks) for k, v in zip(("raw", "seg", "mask"), (raw, seg, mask))]
                sec = [to_zarr(Path(tmp), f"sec_{k}", v, chunks) for k, v in zip(("raw", "seg", "mask"), thin[:3])]
            else:
                iso, sec = [raw, seg, mask], list(thin[:3])
            paths = {
                "voxels": (iso, rows, None, native),
                "8 nm": (iso, rows, (8.0, 8.0, 8.0), native),
                "40×4×4": (sec, thin[3], (40.0, 4.0, 4.0), native),
                "8 nm canonical": (iso, rows, (8.0, 8.0, 8.0), canonical),
                "40×4×4 canonical": (sec, thin[3], (40.0, 4.0, 4.0), canonical),
            }
            for vols, rr, voxel, s in paths.values():  # warm-up (imports, store opening)
                build_crop(read_context_arrays(*vols, LABELS, rr[0], s, voxel_size_nm=voxel), s)
            times = {k: ([], []) for k in paths}
            per_round = max(1, n_syn // rounds)
            for start in range(0, n_syn, per_round):
                for name, (vols, rr, voxel, s) in paths.items():
                    clear_chunk_cache()
                    for row in rr[start:start + per_round]:
                        w0, c0 = time.perf_counter(), time.process_time()
                        build_crop(read_context_arrays(*vols, LABELS, row, s, voxel_size_nm=voxel), s)
                        times[name][0].append(time.perf_counter() - w0)
                        times[name][1].append(time.process_time() - c0)
            base = np.median(times["voxels"][1])
            for name, (wall, cpu) in times.items():
                lines.append(f"{storage:8} {name:18} {1000 * np.median(wall):8.1f} {1000 * np.median(cpu):8.1f} "
                             f"{np.median(cpu) / base:13.2f}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=40, help="synapses per box (default 40)")
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds (sizes alternate; default 4)")
    p.add_argument("--sizes", type=int, nargs="+", default=[160, 320, 512])
    p.add_argument("--types", type=int, nargs="+", default=[0, 1, 10, 11, 13])
    p.add_argument("--storage", nargs="+", default=["numpy", "zarr"], choices=["numpy", "zarr"])
    p.add_argument("--chunks", type=int, default=64, help="Zarr chunk edge in voxels (default 64, as the dataset layer)")
    p.add_argument("--reuse-freed-memory", action="store_true",
                   help="call data.windows.reuse_freed_memory() first (glibc keeps freed arrays for reuse)")
    p.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                   help="an earlier checkout whose synapse_core/crops/reader.py is timed side by side with the current reader")
    p.add_argument("--grid-size", type=int, default=160, help="bbox edge of the voxel-grid table (default 160)")
    p.add_argument("--grids-only", action="store_true", help="only the voxel-grid table (resampling, orientation)")
    args = p.parse_args(argv)
    if args.grids_only:
        print("\n".join(grid_table(args.n, args.rounds, args.grid_size, args.storage, args.chunks)))
        return 0
    tuned = reuse_freed_memory() if args.reuse_freed_memory else False
    readers = {"current": (read_box, clear_chunk_cache)}
    if args.baseline is not None:
        readers["baseline"] = load_baseline_reader(args.baseline)

    results = {}  # (storage, type, size, reader) -> [wall s list, cpu s list, discards]
    with tempfile.TemporaryDirectory(prefix="bench-crops-") as tmp:
        boxes = {}
        for n in args.sizes:
            raw, seg, mask, rows = synthetic_bbox(n, args.n)
            stores = {}
            if "numpy" in args.storage:
                stores["numpy"] = (raw, seg, mask)
            if "zarr" in args.storage:
                folder = Path(tmp) / f"box{n}"
                folder.mkdir()
                stores["zarr"] = tuple(to_zarr(folder, k, v, args.chunks) for k, v in
                                       (("raw", raw), ("seg", seg), ("mask", mask)))
            boxes[n] = (stores, rows)
        for n, (stores, rows) in boxes.items():
            for storage, vols in stores.items():
                for name, (read, clear) in readers.items():
                    with reading_with(read):
                        time_crops(*vols, rows[:3], 0, clear)  # warm-up (imports, store opening)
        # Interleave sizes and readers in rounds so a change in machine load hits every column alike.
        for r in range(args.rounds):
            for storage in args.storage:
                for t in args.types:
                    for n in args.sizes:
                        for name, (read, clear) in readers.items():
                            stores, rows = boxes[n]
                            with reading_with(read):
                                tot, rd, disc = time_crops(*stores[storage], rows[r::args.rounds], t, clear)
                            acc = results.setdefault((storage, t, n, name), [[], [], 0])
                            acc[0] += tot
                            acc[1] += rd
                            acc[2] += disc
    results = {k: (1000 * float(np.median(v[0])), 1000 * float(np.median(v[1])), v[2]) for k, v in results.items()}

    print(f"\nms per synapse, median of {args.n}: wall / CPU of this process (read + build), 80³ crop, smart crop on; "
          f"zarr chunks {args.chunks}³; reuse_freed_memory {'on' if tuned else 'off'}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
          + (f"; baseline reader from {args.baseline}" if args.baseline else "") + "\n")
    head = "storage  type reader   " + "".join(f"{str(n) + '³ wall/cpu':>17}" for n in args.sizes)
    if 160 in args.sizes and 512 in args.sizes:
        head += "   512/160 wall  cpu"
    print(head)
    print("-" * len(head))
    for storage in args.storage:
        for t in args.types:
            for name in readers:
                line = f"{storage:<8} {t:>4} {name:<9}"
                for n in args.sizes:
                    wall, cpu, _ = results[(storage, t, n, name)]
                    line += f"{wall:>10.1f} /{cpu:5.1f}"
                if 160 in args.sizes and 512 in args.sizes:
                    a, b = results[(storage, t, 160, name)], results[(storage, t, 512, name)]
                    line += f"   {b[0] / a[0]:12.2f} {b[1] / a[1]:4.2f}"
                disc = results[(storage, t, args.sizes[-1], name)][2]
                print(line + (f"  ({disc} of {args.n} discarded)" if disc else ""))
            if "baseline" in readers:
                line = f"{storage:<8} {t:>4} {'cur/base':<9}"
                for n in args.sizes:
                    c, b = results[(storage, t, n, "current")], results[(storage, t, n, "baseline")]
                    line += f"{c[0] / b[0]:>10.2f} /{c[1] / b[1]:5.2f}"
                print(line)
    print()
    print("\n".join(grid_table(args.n, args.rounds, args.grid_size, args.storage, args.chunks)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
