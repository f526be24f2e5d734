"""``validate``: check a data root and print the report; exit 1 on fatal problems."""

from __future__ import annotations

from synapse_core.dataset import DatasetError, open_dataset

NAME = "validate"
HELP = "check a data root (folders, slice stacks, synapse tables) and print a report"


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, help="data root (folder with raw/, seg/, mask/, excel/) or a dataset config file")
    p.add_argument("--cache-dir", "--cache_dir", dest="cache_dir", default=None,
                   help="where converted volumes are kept (default: cache/ or $SYNAPSE_CACHE_DIR)")
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
