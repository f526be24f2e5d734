"""``python -m synapse_core <command>``: the headless face of the pipeline.

Each command lives in ``synapse_core/cli/<name>.py`` and defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int`` (the exit code). The original tool's
flag spellings (``--bbox_name``, ``--segmentation_type``, ``--alpha``) are accepted too.

Command modules import only the standard library at module level; the flags of a command are
built only when that command is asked for, so ``validate --help`` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: Commands in the order ``--help`` lists them.
COMMANDS = ("demo", "validate", "crop", "gif", "train", "extract", "cluster", "export")


class _HelpFormatter(argparse.HelpFormatter):
    """Lists a flag's spellings once, then its value: ``--size, --crop-size, --subvol_size N``."""

    def _format_action_invocation(self, action):
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        return ", ".join(action.option_strings) + " " + self._format_args(action, self._get_default_metavar_for_optional(action))


def _requested(argv: list[str]) -> str | None:
    """The command named in ``argv`` (the first word that is a command), or None."""
    return next((a for a in argv if a in COMMANDS), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command`` only that command's flags are built (the others list their help).

    ``command=None`` builds every command's flags (for documentation and tests).
    """
    parser = argparse.ArgumentParser(
        prog="python -m synapse_core",
        description="SynapseClusterEM: crop, embed and cluster synapses in volume EM.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"synapse_core.cli.{name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP, formatter_class=_HelpFormatter)
        if command is None or command == name:
            module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_requested(argv) or COMMANDS[0])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        # Errors raised at the boundary are written for the user; no traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
