"""``python -m synapse_core extract``: features of every synapse of a dataset, as one table (.csv, .parquet or .h5ad).

Writes ``--out`` (one row per synapse: key, table columns, presynaptic record, morphology,
``feat_1..feat_N``, run settings) and ``<out stem>.skipped.csv`` (bbox_name, Var1, reason) for
synapses that could not be used; those are printed too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synapse_core.cli.options import (
    add_crop_settings_arguments,
    add_data_arguments,
    add_settings_arguments,
    crop_settings_from_args,
    settings_from_args,
)

NAME = "extract"
HELP = "Extract VGG3D and/or morphology features of every synapse into a CSV (cached per synapse)."

#: The original tool's spellings of extraction flags (the first is shown in --help).
ALIASES: dict[str, tuple[str, ...]] = {
    "checkpoint": ("--checkpoint", "--checkpoint_path", "--checkpoint-path"),
    "layer": ("--layer", "--layer_num", "--layer-num"),
    "pooling": ("--pooling", "--pooling_method", "--pooling-method"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from synapse_core.features.settings import ExtractSettings

    add_data_arguments(p)
    p.add_argument("--out", required=True, help="output table: features.csv, features.parquet (large runs) or "
                   "features.h5ad (scanpy/cellxgene)")
    p.add_argument("--bbox", "--bbox_name", "--bbox-name", dest="bbox", nargs="+", default=None, metavar="BBOX",
                   help="only these bboxes (default: all)")
    p.add_argument("--no-cache", dest="use_cache", action="store_false", help="compute everything, store nothing")
    p.add_argument("--no-progress", dest="show_progress", action="store_false", help="no progress bar")
    add_crop_settings_arguments(p)
    add_settings_arguments(p, ExtractSettings, aliases=ALIASES, exclude=("crop",), title="extraction settings")


def skipped_path(out: Path) -> Path:
    """``features.csv`` → ``features.skipped.csv``."""
    return out.with_name(out.stem + ".skipped.csv")


def run(args) -> int:
    from synapse_core.data.dataset import open_dataset
    from synapse_core.features.extract import extract_features
    from synapse_core.features.settings import ExtractSettings

    out = Path(args.out)
    from synapse_core.export.tables import check_table_suffix, write_features

    check_table_suffix(out)  # .csv, .parquet or .h5ad, before any work
    if not out.parent.exists():
        raise ValueError(f"--out {out}: folder {out.parent} does not exist")
    settings = settings_from_args(ExtractSettings, args, crop=crop_settings_from_args(args))
    dataset = open_dataset(args.data, cache_dir=args.cache_dir)
    from synapse_core.crops.availability import check_segmentation_type_for_dataset

    check_segmentation_type_for_dataset(dataset, settings.crop, bboxes=args.bbox)  # before any crop is built
    bar = None
    progress = status = None
    if args.show_progress:
        from tqdm import tqdm

        bar = tqdm(total=None, unit="synapse", desc="extract", file=sys.stderr)

        def progress(done, total):
            bar.total = total
            bar.n = done
            bar.refresh()

        def status(s):  # rate and ETA are the bar's; failed tasks and the Dask dashboard beside it
            if s.failed or s.dashboard:
                bar.set_postfix_str(f"{s.failed} failed" + (f", dashboard {s.dashboard}" if s.dashboard else ""))

    try:
        result = extract_features(dataset, settings, cache_dir=args.cache_dir, bboxes=args.bbox, progress=progress,
                                  use_cache=args.use_cache, status=status)
    finally:
        if bar is not None:
            bar.close()
    write_features(result.features, out)
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
