"""Opening a whole-volume dataset: time and peak memory for 10⁵ and 10⁶ synapse rows.

The volume is a 20000 × 40000 × 40000 voxel (z, y, x) OME-Zarr whose chunks are never written (only
metadata exists), so any cost that scaled with the volume would show. The table is Parquet, in
absolute nm, with 11 columns. Each size is opened in a fresh process (peak RSS is per process);
the table of the process that only imports the package and reads nothing is the baseline.

    python benchmarks/whole_volume.py            # 1e5 and 1e6 rows
    python benchmarks/whole_volume.py --rows 100000 --export-rows 0

The largest table's process also times the exports of ``--export-rows`` rows (Parquet table,
WebKnossos NML, Neuroglancer precomputed annotation layer).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _child(root: str, table: str, export_rows: int = 0) -> None:
    t0 = time.perf_counter()
    from synapse_core.data.dataset import open_dataset

    t_import = time.perf_counter() - t0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t1 = time.perf_counter()
    ds = None
    if table:
        ds = open_dataset(Path(root) / "synapse_dataset.toml", cache_dir=Path(root) / "cache")
    t_open = time.perf_counter() - t1
    got = {"import_s": t_import, "open_s": t_open, "rss_before_mb": rss_before / 1024,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "rows_valid": int(ds.report.n_rows_valid) if ds else 0}
    if ds is not None and export_rows:
        from synapse_core.export.neuroglancer import write_annotation_layer
        from synapse_core.export.tables import write_table
        from synapse_core.export.webknossos import write_nml

        rows = ds.synapses.head(export_rows).assign(cluster=lambda d: d.index % 8)
        out = Path(root) / "export"
        for name, write in (("parquet_s", lambda: write_table(rows, out.with_suffix(".parquet"))),
                            ("nml_s", lambda: write_nml(out.with_suffix(".nml"), ds, rows)),
                            ("annotations_s", lambda: write_annotation_layer(out, ds, rows))):
            t = time.perf_counter()
            write()
            got[name] = time.perf_counter() - t
    print(json.dumps(got))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--export-rows", type=int, default=100_000,
                        help="also time the exports (Parquet, WebKnossos NML, Neuroglancer annotation layer) of this "
                             "many rows of the largest table (0: skip)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child[0], args.child[1], int(args.child[2]))
    from test_whole_volume import synthetic_table, write_big_ome_zarr, write_config

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_big_ome_zarr(root / "raw.ome.zarr", "uint8")
        write_big_ome_zarr(root / "seg.ome.zarr", "uint32")
        for n in [0, *args.rows]:
            if n:
                synthetic_table(n, seed=0).to_parquet(root / "synapses.parquet")
                write_config(root, "synapses.parquet")
            export = args.export_rows if n == max(args.rows) else 0
            out = subprocess.run([sys.executable, __file__, "--child", str(root), "synapses.parquet" if n else "",
                                  str(export)],
                                 capture_output=True, text=True, check=True, env={**os.environ})
            got = json.loads(out.stdout.strip().splitlines()[-1])
            size = (root / "synapses.parquet").stat().st_size / 2**20 if n else 0.0
            rows.append((n, size, got))
    base = rows[0][2]["peak_rss_mb"]
    print(f"{'rows':>9} {'parquet MB':>10} {'open s':>8} {'peak RSS MB':>12} {'over import MB':>15} {'bytes/row':>10}")
    for n, size, got in rows:
        extra = got["peak_rss_mb"] - base
        per_row = extra * 2**20 / n if n else float("nan")
        print(f"{n:>9} {size:>10.1f} {got['open_s']:>8.2f} {got['peak_rss_mb']:>12.0f} {extra:>15.0f} {per_row:>10.0f}")
    timed = rows[-1][2]
    if "nml_s" in timed:
        print(f"exports of {args.export_rows} rows (8 clusters): Parquet {timed['parquet_s']:.2f} s, WebKnossos NML "
              f"{timed['nml_s']:.2f} s, Neuroglancer annotation layer {timed['annotations_s']:.2f} s (by_id sharded, "
              f"one spatial chunk)")
    if len(rows) > 2:
        (n1, _, a), (n2, _, b) = rows[1], rows[-1]
        print(f"ratio {n2 // n1}x rows: open time {b['open_s'] / a['open_s']:.1f}x, "
              f"memory over import {(b['peak_rss_mb'] - base) / max(a['peak_rss_mb'] - base, 1e-9):.1f}x")


if __name__ == "__main__":
    main()
