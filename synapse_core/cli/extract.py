"""``python -m synapse_core extract``: features of every synapse of a dataset, as one CSV.

Writes ``--out`` (one row per synapse: key, table columns, presynaptic record, morphology,
``feat_1..feat_N``, run settings) and ``<out stem>.skipped.csv`` (bbox_name, Var1, reason) for
synapses that could not be used; those are printed too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synapse_core.cli.options import add_crop_settings_arguments, add_data_arguments, crop_settings_from_args

NAME = "extract"
HELP = "Extract VGG3D and/or morphology features of every synapse into a CSV (cached per synapse)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    from synapse_core.features.extract import FEATURE_SETS, ExtractSettings
    from synapse_core.features.pooling import POOLING_METHODS

    e = ExtractSettings
    add_data_arguments(p)
    p.add_argument("--out", required=True, help="output CSV, e.g. features.csv")
    p.add_argument("--bbox", "--bbox_name", "--bbox-name", dest="bbox", nargs="+", default=None, metavar="BBOX",
                   help="only these bboxes (default: all)")
    add_crop_settings_arguments(p)
    p.add_argument("--checkpoint", "--checkpoint_path", "--checkpoint-path", dest="checkpoint", default=None,
                   help="VGG3D checkpoint (synister format, e.g. hemibrain_production.checkpoint); "
                        "without it the network is untrained (random weights from --seed) and outputs say so")
    p.add_argument("--layer", "--layer_num", "--layer-num", dest="layer", default=e.layer,
                   help="layer(s), comma-separated: stage1..stage4 (after the stage's max-pool; stage4 = the "
                        "original's 'standard'), stage3.conv1 or layer20 (the original's layer 20, conv output "
                        "before BatchNorm), stage<S>.conv<C>.relu ... (default %(default)s)")
    p.add_argument("--pooling", "--pooling_method", "--pooling-method", dest="pooling", choices=POOLING_METHODS,
                   default=e.pooling, help="pooling of the layer output (default %(default)s)")
    p.add_argument("--features", choices=FEATURE_SETS, default=e.features,
                   help="feature set to cluster on; morphology columns are always written (default %(default)s)")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=e.batch_size,
                   help="crops per forward pass (default %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=e.device,
                   help="auto = CUDA when available (default %(default)s)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=e.precision,
                   help="bf16 autocast: faster on CPUs with AVX512-BF16/AMX and on GPUs, but its rounding can "
                        "exceed the differences between synapses (untrained network); default %(default)s")
    p.add_argument("--seed", type=int, default=e.seed, help="seed of the untrained network (default %(default)s)")
    p.add_argument("--fmaps", type=int, default=e.fmaps,
                   help="first-stage feature maps of VGG3D (default %(default)s, the original network)")
    p.add_argument("--workers", type=int, default=e.workers,
                   help="processes building crops while the network runs; 0 = main process (default %(default)s)")
    p.add_argument("--no-cache", dest="use_cache", action="store_false", help="compute everything, store nothing")
    p.add_argument("--no-progress", dest="show_progress", action="store_false", help="no progress bar")


def skipped_path(out: Path) -> Path:
    """``features.csv`` → ``features.skipped.csv``."""
    return out.with_name(out.stem + ".skipped.csv")


def run(args) -> int:
    from synapse_core.data.dataset import open_dataset
    from synapse_core.features.extract import ExtractSettings, extract_features

    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise ValueError(f"--out {out}: give a .csv file name")
    if not out.parent.exists():
        raise ValueError(f"--out {out}: folder {out.parent} does not exist")
    crop = crop_settings_from_args(args)
    settings = ExtractSettings(crop=crop, features=args.features, checkpoint=args.checkpoint, layer=args.layer,
                               pooling=args.pooling, batch_size=args.batch_size, device=args.device,
                               precision=args.precision, seed=args.seed, fmaps=args.fmaps, workers=args.workers)
    dataset = open_dataset(args.data, cache_dir=args.cache_dir)
    bar = None
    progress = None
    if args.show_progress:
        from tqdm import tqdm

        bar = tqdm(total=None, unit="synapse", desc="extract", file=sys.stderr)

        def progress(done, total):
            bar.total = total
            bar.n = done
            bar.refresh()

    try:
        result = extract_features(dataset, settings, cache_dir=args.cache_dir, bboxes=args.bbox, progress=progress,
                                  use_cache=args.use_cache)
    finally:
        if bar is not None:
            bar.close()
    result.features.to_csv(out, index=False)
    skipped_file = skipped_path(out)
    result.skipped.to_csv(skipped_file, index=False)
    n_feat = sum(c.startswith("feat_") for c in result.features.columns)
    print(f"{len(result.features)} synapses → {out} ({n_feat} deep features, layer {settings.layer}, "
          f"pooling {settings.pooling}; network: {result.model_identity}); {result.n_cached} from cache, "
          f"{result.n_computed} computed in {result.n_forward_passes} forward passes")
    if len(result.skipped):
        print(f"{len(result.skipped)} synapses skipped (listed in {skipped_file}):", file=sys.stderr)
        for r in result.skipped.head(20).itertuples():
            print(f"  {r.bbox_name}/{r.Var1}: {r.reason}", file=sys.stderr)
        if len(result.skipped) > 20:
            print(f"  ... and {len(result.skipped) - 20} more", file=sys.stderr)
    return 0
