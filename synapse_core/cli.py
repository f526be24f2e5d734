"""``python -m synapse_core <command>``: the headless face of the pipeline.

Each command lives in ``synapse_core/commands/<name>.py`` and defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int`` (the exit code). The original tool's
flag spellings (``--bbox_name``, ``--segmentation_type``, ``--alpha``) are accepted too.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: Commands in the order ``--help`` lists them; a module that is not present is skipped.
COMMANDS = ("demo", "validate", "crop", "gif", "extract", "cluster")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m synapse_core",
        description="SynapseClusterEM: crop, embed and cluster synapses in volume EM.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"synapse_core.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"synapse_core.commands.{name}":
                continue
            raise
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        # Errors raised at the boundary are written for the user; no traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
