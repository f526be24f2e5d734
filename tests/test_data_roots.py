"""The operator's allowed data roots, and refusing paths that leave them."""

from __future__ import annotations

import os
import re

import pytest

from synapse_core.app.data_roots import (
    DataRoot,
    configured_roots,
    resolve_inside,
    root_by_name,
    subfolders,
)


def test_env_var_lists_roots_with_optional_names(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    roots = configured_roots({"SYNAPSE_DATA_ROOTS": f"lab={a}{os.pathsep}{b}"})
    assert roots == [DataRoot("lab", str(a.resolve())), DataRoot("b", str(b.resolve()))]


def test_no_configuration_gives_no_roots():
    assert configured_roots({}) == []


def test_roots_file_adds_entries_and_skips_comments(tmp_path):
    (tmp_path / "x").mkdir()
    listing = tmp_path / "roots.txt"
    listing.write_text(f"# lab volumes\n\nxroot={tmp_path / 'x'}\n")
    roots = configured_roots({"SYNAPSE_DATA_ROOTS_FILE": str(listing)})
    assert roots == [DataRoot("xroot", str((tmp_path / "x").resolve()))]


def test_missing_roots_file_is_an_error_naming_the_variable(tmp_path):
    with pytest.raises(ValueError, match="SYNAPSE_DATA_ROOTS_FILE"):
        configured_roots({"SYNAPSE_DATA_ROOTS_FILE": str(tmp_path / "nope.txt")})


def test_relative_root_entry_is_refused():
    with pytest.raises(ValueError, match="not an absolute path"):
        configured_roots({"SYNAPSE_DATA_ROOTS": "data/em"})


def test_duplicate_names_get_a_suffix_and_duplicate_paths_are_dropped(tmp_path):
    a, b = tmp_path / "one" / "em", tmp_path / "two" / "em"
    a.mkdir(parents=True), b.mkdir(parents=True)
    roots = configured_roots({"SYNAPSE_DATA_ROOTS": os.pathsep.join([str(a), str(b), str(a)])})
    assert [r.name for r in roots] == ["em", "em-2"]


def test_root_by_name_lists_allowed_names_for_unknown_name(tmp_path):
    roots = [DataRoot("lab", str(tmp_path))]
    with pytest.raises(ValueError, match="configured roots: lab"):
        root_by_name(roots, "elsewhere")


def test_resolve_inside_accepts_subfolder(tmp_path):
    (tmp_path / "exp" / "vols").mkdir(parents=True)
    root = DataRoot("lab", str(tmp_path.resolve()))
    assert resolve_inside(root, "exp/vols") == (tmp_path / "exp" / "vols").resolve()
    assert resolve_inside(root, "") == tmp_path.resolve()


@pytest.mark.parametrize("bad", ["..", "exp/../..", "../etc", "/etc"])
def test_resolve_inside_refuses_paths_leaving_the_root(tmp_path, bad):
    (tmp_path / "root" / "exp").mkdir(parents=True)
    root = DataRoot("lab", str((tmp_path / "root").resolve()))
    with pytest.raises(ValueError, match=re.escape(f"path {bad!r} ") + ".* the data root 'lab'"):
        resolve_inside(root, bad)


def test_symlink_pointing_outside_the_root_is_refused_and_not_listed(tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    base = tmp_path / "root"
    (base / "exp").mkdir(parents=True)
    (base / "escape").symlink_to(outside)
    root = DataRoot("lab", str(base.resolve()))
    with pytest.raises(ValueError, match="leaves the data root"):
        resolve_inside(root, "escape")
    assert subfolders(root) == ["exp"]


def test_subfolders_lists_two_levels_and_skips_hidden(tmp_path):
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    root = DataRoot("lab", str(tmp_path.resolve()))
    assert subfolders(root) == ["a", "a/b"]
