"""``python -m synapse_core extract``: features of every synapse of a dataset, as one table (.csv, .parquet or .h5ad).

Writes ``--out`` (one row per synapse: key, table columns, presynaptic record, morphology,
``feat_1..feat_N``, run settings) and ``<out stem>.skipped.csv`` (bbox_name, Var1, reason) for
synapses that could not be used; those are printed too.

With ``--checkpoint`` from ``python -m synapse_core train``, the crop flags not given take the
values the network was trained with (its metadata); a given flag that differs from them is an
error naming both values, unless ``--allow-crop-mismatch``. Without a checkpoint the default
feature set (``--features auto``) is :data:`~synapse_core.features.settings.NO_CHECKPOINT_FEATURES`,
and a line says so.
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
HELP = ("Extract features of every synapse into a CSV (VGG3D, morphology, both, or the pixel baseline; cached per "
        "synapse).")

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
    p.add_argument("--allow-crop-mismatch", action="store_true",
                   help="with a trained --checkpoint: extract with crop flags that differ from the crops it was "
                        "trained on (otherwise an error; crop flags not given take the checkpoint's values)")
    add_settings_arguments(p, ExtractSettings, aliases=ALIASES, exclude=("crop",), title="extraction settings")
    # A crop flag not given leaves no attribute: run() fills in the checkpoint's crop settings, and
    # settings_from_args the declared defaults.
    crop_fields = set(_crop_fields())
    for action in p._actions:
        if action.dest in crop_fields:
            action.default = argparse.SUPPRESS


def _crop_fields() -> list[str]:
    from synapse_core.crops.settings import CropSettings

    return list(CropSettings.__pydantic_fields__)


def checkpoint_crop_settings(args):
    """The crop settings of an extraction: the given crop flags, the rest from a trained ``--checkpoint``'s
    metadata (else the declared defaults).

    Returns ``(CropSettings, names taken from the checkpoint)``. Raises ValueError naming the flag, both
    values and the way out when a given flag contradicts the checkpoint (unless ``--allow-crop-mismatch``).
    """
    from synapse_core.crops.settings import CropSettings
    from synapse_core.settings_base import settings_to_dict

    names = list(CropSettings.__pydantic_fields__)
    given = {name for name in names if hasattr(args, name)}
    trained = None
    if getattr(args, "checkpoint", None):
        from synapse_core.features.checkpoints import read_metadata, trained_crop

        trained = trained_crop(read_metadata(args.checkpoint))  # CheckpointError for a bad file
    trained = trained or {}
    from_checkpoint = []
    for name in names:
        if name in given:
            continue
        if name in trained:
            setattr(args, name, trained[name])
            if trained[name] != settings_to_dict(CropSettings()).get(name):
                from_checkpoint.append(name)
    crop = crop_settings_from_args(args)
    now = settings_to_dict(crop)
    conflicts = [name for name in sorted(given) if name in trained and now[name] != trained[name]]
    if conflicts and not getattr(args, "allow_crop_mismatch", False):
        parts = [f"--{name.replace('_', '-')} {now[name]} but {args.checkpoint} was trained on crops with "
                 f"{name}={trained[name]!r}" for name in conflicts]
        raise ValueError("; ".join(parts) + ". Leave out " + ", ".join(f"--{n.replace('_', '-')}" for n in conflicts)
                         + " to use the checkpoint's value, or add --allow-crop-mismatch to extract with yours "
                           "(features of other crops are less meaningful)")
    return crop, from_checkpoint


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
    crop, from_checkpoint = checkpoint_crop_settings(args)
    settings = settings_from_args(ExtractSettings, args, crop=crop)
    if from_checkpoint:
        print("crop settings from the checkpoint's training: " + ", ".join(
            f"{name}={getattr(crop, name)!r}" for name in from_checkpoint), file=sys.stderr)
    if settings.features == "auto" and not settings.checkpoint:
        print(f"no checkpoint: using {settings.feature_set} features, measured best without a download; see "
              f"docs/training.md (--features vgg3d for an untrained VGG3D, or train one: python -m synapse_core "
              f"train)", file=sys.stderr)
    if settings.deep:  # this process is the extraction's own: each 80³ activation reuses the last one's pages
        from synapse_core.features.heap import keep_freed_memory

        keep_freed_memory()
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
    n_morph = sum(c.startswith("morph_") for c in result.features.columns)
    if settings.deep:
        what = (f"{n_feat} deep features, layer {settings.layer}, pooling {settings.pooling}; network: "
                f"{result.model_identity}")
    elif settings.pixels:
        what = f"{n_feat} pixel features ({settings.pixel_grid}³ block averages)"
    else:
        what = f"{n_morph} morphology features"
    if settings.vectors and settings.invariance != "none":
        what += f", averaged over {settings.invariance}"
    print(f"{len(result.features)} synapses → {out} ({what}); {result.n_cached} from cache, "
          f"{result.n_computed} computed in {result.n_forward_passes} forward passes")
    if len(result.skipped):
        print(f"{len(result.skipped)} synapses skipped (listed in {skipped_file}):", file=sys.stderr)
        for r in result.skipped.head(20).itertuples():
            print(f"  {r.bbox_name}/{r.Var1}: {r.reason}", file=sys.stderr)
        if len(result.skipped) > 20:
            print(f"  ... and {len(result.skipped) - 20} more", file=sys.stderr)
    return 0
