"""``python -m synapse_core crop``: write the crop of one synapse (.npy, .tif, .gif or .png)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from synapse_core.cli.options import (
    add_crop_settings_arguments,
    add_data_arguments,
    crop_settings_from_args,
)

NAME = "crop"
HELP = "Crop one synapse and write it as .npy (float32 network input), .tif stack, .gif animation or .png slices."

OUTPUT_SUFFIXES = (".npy", ".tif", ".tiff", ".gif", ".png")


def add_crop_arguments(p: argparse.ArgumentParser) -> None:
    """Flags shared by ``crop`` and ``gif``: data root, crop settings and picture options."""
    from synapse_core.viz.colours import STRUCTURE_COLOURS
    from synapse_core.viz.render import IMAGES

    add_data_arguments(p)
    add_crop_settings_arguments(p)
    p.add_argument("--overlays", nargs="*", default=None, metavar="NAME",
                   help=f"structures coloured in .gif/.png output: {', '.join(STRUCTURE_COLOURS)} (default: none)")
    p.add_argument("--fps", type=float, default=10.0, help="GIF frames per second (default 10)")
    p.add_argument("--scale", type=int, default=2, help="GIF/PNG pixels per voxel (default 2)")
    p.add_argument("--image", choices=IMAGES, default="blended",
                   help="gray image of .gif/.png: the network input (blended, default) or unmasked EM (raw)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_crop_arguments(p)
    p.add_argument("--synapse", default=None, metavar="BBOX/VAR1", help="the synapse, e.g. bbox1/syn_003")
    p.add_argument("--bbox-name", "--bbox_name", "--bbox", dest="bbox_name", default=None,
                   help="bbox of the synapse (with --var1, instead of --synapse)")
    p.add_argument("--var1", "--Var1", dest="var1", default=None, help="Var1 of the synapse (with --bbox_name)")
    p.add_argument("--out", required=True,
                   help=f"output file; its suffix picks the format: {', '.join(OUTPUT_SUFFIXES)}")


def parse_synapse(text: str) -> tuple[str, str]:
    """``"bbox1/syn_003"`` → ``("bbox1", "syn_003")``; ValueError otherwise."""
    bbox, sep, var1 = str(text).partition("/")
    if not sep or not bbox or not var1:
        raise ValueError(f"--synapse must be BBOX/VAR1 (e.g. bbox1/syn_003), got {text!r}")
    return bbox, var1


def write_crop(crop, out: Path, overlays=(), fps=10.0, scale=2, image="blended") -> None:
    """Write ``crop`` to ``out`` in the format of its suffix."""
    from synapse_core.viz import render

    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(out, crop.blended.astype(np.float32, copy=False))
    elif suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(out, crop.blended.astype(np.float32, copy=False), metadata={"axes": "ZYX"})
    elif suffix == ".gif":
        out.write_bytes(render.crop_gif_bytes(crop, overlays=overlays, fps=fps, scale=scale, image=image))
    elif suffix == ".png":
        out.write_bytes(render.orthogonal_png_bytes(crop, overlays=overlays, scale=scale, image=image))
    else:
        raise ValueError(f"--out {out}: unknown suffix {out.suffix!r}; use one of {', '.join(OUTPUT_SUFFIXES)}")


def run(args) -> int:
    from synapse_core.crops.build import Discarded, crop_synapse
    from synapse_core.data.quick_open import dataset_state

    if args.synapse:
        bbox, var1 = parse_synapse(args.synapse)
    elif args.bbox_name and args.var1:
        bbox, var1 = args.bbox_name, args.var1
    else:
        raise ValueError("name the synapse with --synapse BBOX/VAR1 (or --bbox_name and --var1)")
    out = Path(args.out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"--out {out}: unknown suffix {out.suffix!r}; use one of {', '.join(OUTPUT_SUFFIXES)}")
    overlays = ()
    if args.overlays:  # the picture module (PIL) only when overlays are drawn
        from synapse_core.viz.render import check_overlays

        overlays = check_overlays(args.overlays)
    settings = crop_settings_from_args(args)
    # A dataset cropped before in the same state is not opened again (no tables read, no pandas):
    # see synapse_core.data.quick_open. Otherwise open_dataset, and remember what a crop reads.
    state = dataset_state(args.data, cache_dir=args.cache_dir)
    ds = state.remembered(bbox, var1) if state is not None else None
    if ds is None:
        from synapse_core.data.dataset import open_dataset

        ds = open_dataset(args.data, cache_dir=args.cache_dir,
                          discovered=state.discovered if state is not None else None)
        if state is not None:
            state.remember(ds)
    if bbox not in ds.bboxes:
        raise ValueError(f"--synapse {bbox}/{var1}: bbox {bbox!r} is not in {args.data} "
                         f"(bboxes: {', '.join(ds.bboxes)})")
    from synapse_core.crops.availability import check_segmentation_type_for_dataset

    check_segmentation_type_for_dataset(ds, settings, bboxes=[bbox])  # no gray crops from a missing mask
    result = crop_synapse(ds, bbox, var1, settings)
    if isinstance(result, Discarded):
        print(f"discarded {bbox}/{var1} (segmentation type {settings.segmentation_type}): {result.reason}")
        return 1
    write_crop(result, out, overlays=overlays, fps=args.fps, scale=args.scale, image=args.image)
    print(f"wrote {out} ({bbox}/{var1}, segmentation type {settings.segmentation_type}, alpha {settings.alpha}); "
          f"presynaptic {result.presynaptic.evidence}")
    return 0
