"""``python -m synapse_core gif``: one animated GIF per synapse, named ``<bbox>_<Var1>.gif``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from synapse_core.cli.crop import add_crop_arguments, parse_synapse
from synapse_core.cli.options import crop_settings_from_args

if TYPE_CHECKING:  # pandas is imported when a command runs, not for every --help
    import pandas as pd

NAME = "gif"
HELP = ("Write an animated GIF for many synapses (the slices holding the cleft/vesicle cloud ± 1, structures "
        "coloured, 128 px, as the dashboard's galleries); reports discarded ones.")

REPORT_NAME = "gif_report.csv"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_crop_arguments(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--bbox", "--bbox_name", "--bbox-name", dest="bbox", nargs="+", default=None, metavar="BBOX",
                   help="only these bboxes (default: all)")
    p.add_argument("--synapse", nargs="+", default=None, metavar="BBOX/VAR1", help="only these synapses")
    p.add_argument("--frames", choices=("structure", "all"), default="structure",
                   help="structure (default): only the slices holding the cleft or vesicle cloud ± 1; all: every slice")
    p.add_argument("--gif-size", type=int, default=None,
                   help="longer side of a frame in pixels (default 128; --scale N instead gives N pixels per voxel)")
    p.add_argument("--gray-levels", type=int, default=None,
                   help="gray levels of the palette, 2-128 (default 64: smaller files)")
    # The gallery's defaults: overlays on (--overlays with no names for none), size instead of scale.
    p.set_defaults(scale=None)


def select_rows(synapses: pd.DataFrame, bboxes=None, synapse_keys=None) -> pd.DataFrame:
    """Rows of ``synapses`` in ``bboxes`` and/or named by ``synapse_keys`` (``BBOX/VAR1``), in table order."""
    import pandas as pd

    from synapse_core.data.synapse_keys import synapse_rows  # pandas: only when the command runs

    keep = pd.Series(True, index=synapses.index)
    if bboxes:
        unknown = sorted(set(bboxes) - set(synapses["bbox_name"].astype(str)))
        if unknown:
            raise ValueError(f"--bbox {unknown[0]!r} has no synapses in the table "
                             f"(bboxes: {', '.join(sorted(synapses['bbox_name'].astype(str).unique()))})")
        keep &= synapses["bbox_name"].astype(str).isin(bboxes)
    if synapse_keys:  # UnknownSynapseError naming the synapse
        named = synapse_rows(synapses, [parse_synapse(s) for s in synapse_keys], where="the synapse table")
        keep &= synapses.index.isin(named.index)
    return synapses[keep]


def run(args) -> int:
    import pandas as pd

    from synapse_core.viz import render
    from synapse_core.data.windows import reuse_freed_memory
    from synapse_core.crops.build import Discarded, iter_crops
    from synapse_core.data.dataset import open_dataset
    from synapse_core.data.synapse_keys import synapse_file_name

    reuse_freed_memory()  # a batch process: reuse freed arrays instead of page-faulting per crop
    from synapse_core.viz.gallery import gif_options

    overlays = render.check_overlays(render.GIF_OVERLAYS if args.overlays is None else args.overlays)
    options = gif_options(overlays=overlays, image=args.image, fps=args.fps, scale=args.scale,
                          size=args.gif_size or render.GIF_SIZE_PX, frames=args.frames,
                          gray_levels=args.gray_levels or render.GIF_GRAY_LEVELS)
    settings = crop_settings_from_args(args)
    ds = open_dataset(args.data, cache_dir=args.cache_dir)
    rows = select_rows(ds.synapses, args.bbox, args.synapse)
    from synapse_core.crops.availability import check_segmentation_type_for_dataset

    check_segmentation_type_for_dataset(ds, settings, bboxes=sorted(set(rows["bbox_name"].astype(str))))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = []
    for bbox, var1, result in iter_crops(ds, settings, rows):
        entry = {"bbox_name": bbox, "Var1": var1}
        if isinstance(result, Discarded):
            entry.update(status="discarded", reason=result.reason, file="")
            if result.presynaptic is not None:
                entry.update(result.presynaptic.as_columns())
            print(f"discarded {bbox}/{var1}: {result.reason}")
        else:
            name = synapse_file_name(bbox, var1)
            (out / name).write_bytes(render.crop_gif_bytes(result, **options))
            entry.update(status="written", reason="", file=name, **result.presynaptic.as_columns())
        report.append(entry)
    pd.DataFrame(report).to_csv(out / REPORT_NAME, index=False)
    n_written = sum(e["status"] == "written" for e in report)
    print(f"wrote {n_written} GIFs to {out}; {len(report) - n_written} discarded (segmentation type "
          f"{settings.segmentation_type}); details in {out / REPORT_NAME}")
    return 0
