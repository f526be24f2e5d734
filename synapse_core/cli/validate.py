"""``validate``: check a data root and print the report; exit 1 on fatal problems."""

from __future__ import annotations

from synapse_core.cli.options import add_data_arguments
from synapse_core.data.dataset import DatasetError, open_dataset

NAME = "validate"
HELP = "check a data root (folders, slice stacks, synapse tables) and print a report"


def add_arguments(p) -> None:
    add_data_arguments(p)
    p.add_argument("--issues-csv", dest="issues_csv", default=None, help="also write the row problems to this CSV")


def run(args) -> int:
    try:
        ds = open_dataset(args.data, cache_dir=args.cache_dir)
    except DatasetError as exc:
        print(str(exc))
        return 1
    print(ds.report.text())
    if args.issues_csv:
        ds.report.row_issues.to_csv(args.issues_csv, index=False)
    return 0 if ds.report.ok else 1
