"""Flags shared by several commands (not a command itself): data root, cache, crop settings.

The original tool's spellings (``--segmentation_type``, ``--gray_color``, ``--subvol_size`` ...)
are accepted next to the dashed ones.
"""

from __future__ import annotations

import argparse


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """``--data`` (required) and ``--cache-dir``."""
    p.add_argument("--data", "--data_dir", "--data-dir", dest="data", required=True,
                   help="data root (folder with raw/, seg/, mask/, excel/) or a dataset config file")
    p.add_argument("--cache-dir", "--cache_dir", dest="cache_dir", default=None,
                   help="cache folder (default: the project's cache/ or $SYNAPSE_CACHE_DIR)")


def add_crop_settings_arguments(p: argparse.ArgumentParser) -> None:
    """Every field of :class:`synapse_core.crops.build.CropSettings` a user sets, with its default."""
    from synapse_core.crops.build import CropSettings
    from synapse_core.crops.segmentation_types import SEGMENTATION_TYPES

    d = CropSettings()
    types = "; ".join(f"{k} {v.name}" for k, v in SEGMENTATION_TYPES.items())
    p.add_argument("--segmentation-type", "--segmentation_type", "--seg-type", dest="segmentation_type", type=int,
                   default=d.segmentation_type, help=f"segmentation type (default {d.segmentation_type}): {types}")
    p.add_argument("--alpha", type=float, default=d.alpha,
                   help=f"opacity of the gray outside the mask: 1 flat gray, 0 raw everywhere (default {d.alpha})")
    p.add_argument("--gray", "--gray_color", "--gray-color", dest="gray", type=float, default=d.gray,
                   help=f"gray level outside the mask (default {d.gray})")
    p.add_argument("--size", "--crop-size", "--subvol_size", "--subvol-size", dest="size", type=int, default=d.size,
                   help=f"crop edge in voxels (default {d.size}, the VGG3D input)")
    p.add_argument("--no-smart-crop", "--no_smart_crop", dest="smart_crop", action="store_false",
                   help="centre the crop on the annotated synapse centre (no shift towards the presynapse)")
    p.add_argument("--presynapse-weight", "--presynapse_weight", dest="presynapse_weight", type=float,
                   default=d.presynapse_weight, help=f"smart-crop weight (default {d.presynapse_weight})")
    p.add_argument("--vesicle-box-fill", "--vesicle_box_fill", dest="vesicle_box_fill", type=float,
                   default=d.vesicle_box_fill,
                   help=f"types 12/13: fraction of the 25³ box that must be filled (default {d.vesicle_box_fill})")


def crop_settings_from_args(args):
    """The :class:`~synapse_core.crops.build.CropSettings` of parsed :func:`add_crop_settings_arguments` flags."""
    from synapse_core.crops.build import CropSettings

    return CropSettings(size=args.size, segmentation_type=args.segmentation_type, alpha=args.alpha, gray=args.gray,
                        smart_crop=args.smart_crop, presynapse_weight=args.presynapse_weight,
                        vesicle_box_fill=args.vesicle_box_fill)
