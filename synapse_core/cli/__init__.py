"""Command line: ``python -m synapse_core <command>``, one module per command (:mod:`.parser` dispatches)."""

from synapse_core.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
