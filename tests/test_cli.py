"""The command-line entry point: every command is listed and documents itself."""

from __future__ import annotations

import subprocess
import sys

import pytest

from synapse_core.cli.parser import COMMANDS, build_parser


@pytest.mark.slow  # a fresh interpreter imports the CLI
def test_module_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "synapse_core", "--help"], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([name, "--help"])
    assert exit_.value.code == 0
    assert f"usage: python -m synapse_core {name}" in capsys.readouterr().out


def test_unknown_command_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["cluser"])
    assert exit_.value.code == 2
    assert "invalid choice: 'cluser'" in capsys.readouterr().err
