"""``validate``: check a data root and print the report; exit 1 on fatal problems.

Besides the data itself (folders, stacks, tables, voxel sizes, mask label ids), the report checks
the crop settings given (the same flags as ``crop``; defaults otherwise) against each bbox: a stack
thinner than a crop, anisotropic voxels, and whether the segmentation type can be built. Those are
warnings; the exit code is 1 only for fatal problems.
"""

from __future__ import annotations

from dataclasses import replace

from synapse_core.cli.options import (
    add_crop_settings_arguments,
    add_data_arguments,
    crop_settings_from_args,
)

NAME = "validate"
HELP = "check a data root (folders, slice stacks, synapse tables, voxel sizes, mask labels) and print a report"


def add_arguments(p) -> None:
    add_data_arguments(p)
    p.add_argument("--issues-csv", dest="issues_csv", default=None, help="also write the row problems to this CSV")
    add_crop_settings_arguments(p)


def segmentation_type_lines(dataset) -> list[str]:
    """One line per bbox: the segmentation types it can build, and why not the others."""
    from synapse_core.crops.availability import type_table

    lines = ["Segmentation types per bbox:"]
    for row in type_table(dataset):
        ok = ", ".join(map(str, row["available_types"]))
        why = f" (not {', '.join(map(str, row['unavailable_types']))}: {row['why']})" if row["unavailable_types"] else ""
        lines.append(f"  {row['bbox_name']}: {ok}{why}")
    return lines


def run(args) -> int:
    from synapse_core.crops.availability import crop_checks
    from synapse_core.data.cache_dir import resolve_cache_dir
    from synapse_core.data.dataset import DatasetError, config_file_of, open_dataset
    from synapse_core.data.validate import whole_mask_label_warnings

    settings = crop_settings_from_args(args)
    try:
        ds = open_dataset(args.data, cache_dir=args.cache_dir)
    except DatasetError as exc:
        print(str(exc))
        return 1
    # open_dataset looks for label ids near the synapses; here every voxel of every mask is counted (cached)
    whole = ([] if ds.whole_volume is not None  # a whole volume's mask is never scanned (issue 14)
             else whole_mask_label_warnings(ds.bboxes, config_file_of(ds.root, ds.config), resolve_cache_dir(args.cache_dir)))
    report = replace(ds.report, warnings=ds.report.warnings + whole + crop_checks(ds, settings))
    print(report.text())
    print("\n".join(segmentation_type_lines(ds)))
    if args.issues_csv:
        report.row_issues.to_csv(args.issues_csv, index=False)
    return 0 if report.ok else 1
