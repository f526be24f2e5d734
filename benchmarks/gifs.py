"""Gallery GIFs: bytes per GIF and how many frames show the synapse, old defaults vs the gallery's.

Run:  python benchmarks/gifs.py [--n 60] [--cache /tmp/gif-bench]

On the demo dataset (written to ``--cache`` on first run), for the first ``n`` synapses (default
all 60), each crop (80³, segmentation type 10) is rendered with:

* ``before``: every slice (80 frames), scale 2 (160 px), no overlays, 128 gray levels (the
  dashboard's GIFs before issue 12);
* ``gallery``: the slices that hold the cleft or vesicle cloud ± 1 (``frames="structure"``),
  cleft/vesicle cloud/mitochondria coloured, 128 px, 64 gray levels — the defaults of
  :func:`synapse_core.viz.gallery.synapse_gif` and ``python -m synapse_core gif``;
* ``gallery, 32 grays``: the same with 32 gray levels, for comparison.

Printed per variant: mean and max KB per GIF, share of GIFs ≤ 150 KB, frames per GIF, the fraction
of frames whose slice holds the cleft or vesicle cloud (mean and min over synapses), ms per GIF.
All variants render the same crops in one run, so the ratios are side by side.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from synapse_core.crops.build import Discarded, crop_synapse
from synapse_core.crops.settings import CropSettings
from synapse_core.data.dataset import open_dataset
from synapse_core.data.demo import demo_data_root
from synapse_core.viz import render
from synapse_core.viz.gallery import gif_options

VARIANTS = {
    "before": {"frames": "all", "scale": 2, "overlays": (), "gray_levels": 128, "first_slice": "center"},
    "gallery": gif_options(),
    "gallery, 32 grays": {**gif_options(), "gray_levels": 32},
}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60, help="synapses (default 60: the whole demo)")
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "gif-bench"), help="demo data + cache folder")
    args = p.parse_args(argv)
    ds = open_dataset(demo_data_root(args.cache), cache_dir=args.cache)
    keys = list(zip(ds.synapses["bbox_name"].astype(str), ds.synapses["Var1"].astype(str)))[: args.n]
    crops = [c for c in (crop_synapse(ds, b, v, CropSettings()) for b, v in keys) if not isinstance(c, Discarded)]
    rows = []
    for name, options in VARIANTS.items():
        sizes, n_frames, fractions = [], [], []
        t = time.perf_counter()
        for crop in crops:
            sizes.append(len(render.crop_gif_bytes(crop, **options)) / 1000)
            z = render.structure_slices(crop.structures) if options["frames"] == "structure" else np.arange(
                crop.blended.shape[0])
            n_frames.append(len(z))
            fractions.append(render.structure_fraction(crop.structures, z))
        ms = (time.perf_counter() - t) * 1000 / len(crops)
        sizes = np.array(sizes)
        rows.append((name, sizes.mean(), sizes.max(), (sizes <= 150).mean(), np.mean(n_frames),
                     np.mean(fractions), np.min(fractions), ms))
    print(f"{len(crops)} demo synapses (80³ crops, segmentation type 10)")
    print(f"{'variant':<20} {'KB mean':>8} {'KB max':>8} {'≤150 KB':>8} {'frames':>7} {'struct mean':>12} "
          f"{'struct min':>11} {'ms/GIF':>7}")
    for name, mean, mx, ok, fr, fmean, fmin, ms in rows:
        print(f"{name:<20} {mean:>8.1f} {mx:>8.1f} {ok:>8.0%} {fr:>7.1f} {fmean:>12.0%} {fmin:>11.0%} {ms:>7.1f}")
    before, gallery = rows[0], rows[1]
    print(f"gallery / before: {gallery[1] / before[1]:.2f}x bytes, structure fraction {before[5]:.0%} → {gallery[5]:.0%}")


if __name__ == "__main__":
    main()
