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
import os
import sys
import traceback
from pathlib import Path

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


#: Commands whose ``--out`` is a folder (created when missing); for the others it is a file.
OUT_FOLDER_COMMANDS = ("gif", "demo", "export")


def check_writable(out: str, folder: bool) -> None:
    """Refuse an ``--out`` that cannot be written, before any work (a read-only folder, a file in its place).

    ``folder=True``: ``out`` is a folder; otherwise a file. The folder (or its nearest existing
    parent, for commands that create it) must be writable: a file is created and removed there. Raises ``ValueError``
    naming ``--out`` and the folder.
    """
    import tempfile

    path = Path(out).expanduser()
    if folder:
        if path.exists() and not path.is_dir():
            raise ValueError(f"--out {out}: a file of that name exists; give a folder")
        probe = path
        while not probe.exists():
            probe = probe.parent
    else:
        if path.is_dir():
            raise ValueError(f"--out {out}: is a folder; give a file name inside it")
        probe = path.parent if str(path.parent) else Path(".")
        while not probe.exists():  # commands that create the folder: its nearest existing parent must be writable
            probe = probe.parent
        if path.exists() and not os.access(path, os.W_OK):
            raise ValueError(f"--out {out}: the file exists and is read-only; choose another name or make it writable")
    if not probe.is_dir():
        raise ValueError(f"--out {out}: {probe} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".synapse-write-check-"):
            pass
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot write in {probe} ({exc.strerror or exc}); choose a writable "
                         "folder") from None


def _user_error(exc: BaseException) -> str:
    """One line (or a few) for an error a user can fix; OSErrors name the file."""
    if isinstance(exc, OSError) and exc.filename is not None:
        hint = {PermissionError: "check the file's permissions or choose another location",
                FileNotFoundError: "check the path"}.get(type(exc), "check the file and the disk")
        return f"{exc.filename}: {exc.strerror or exc}; {hint}"
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    if isinstance(exc, OSError | OverflowError | UnicodeError):
        return f"{exc.__class__.__name__}: {exc}"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit codes: 0 done, 1 done with a reported problem, 2 refused input, 130 interrupted.

    No traceback for anything a user can cause: input errors (``ValueError``, ``KeyError``, files
    not found, permissions, a full disk) print ``error: ...`` naming the file, row or flag; Ctrl-C
    prints one line. Anything else prints one line saying it is a bug, with the traceback under ``-v``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(_requested(argv) or COMMANDS[0])
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        out = getattr(args, "out", None)
        if out:
            check_writable(out, folder=args.command in OUT_FOLDER_COMMANDS)
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"interrupted: {args.command} stopped (Ctrl-C); finished work that is cached is kept, "
              "outputs of this run were not written", file=sys.stderr)
        return 130
    except (ValueError, KeyError, OSError, OverflowError, UnicodeError) as exc:
        # Errors raised at the boundary are written for the user; no traceback.
        if args.verbose:
            traceback.print_exc()
        print(f"error: {_user_error(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback only when asked for
        if args.verbose:
            traceback.print_exc()
        print(f"error: {args.command} failed unexpectedly ({exc.__class__.__name__}: {exc}); this is a bug, "
              "please report it with the output of the same command run with -v", file=sys.stderr)
        return 3
