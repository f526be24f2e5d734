"""Atomic writes (synapse_core.data.atomic): readers see the old entry or the whole new one, never a part."""

from __future__ import annotations

import pytest

from synapse_core.data.atomic import atomic_file, atomic_folder, write_bytes_atomically


def test_a_written_file_replaces_the_old_one_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    write_bytes_atomically(target, b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_failed_file_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed while writing")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_finished_folder_appears_under_its_name_with_its_files(tmp_path):
    with atomic_folder(tmp_path / "sub" / "entry") as tmp:
        (tmp / "x.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["entry"]
    assert (tmp_path / "sub" / "entry" / "x.json").read_text() == "{}"


def test_an_existing_content_addressed_folder_is_kept_and_the_new_one_discarded(tmp_path):
    (tmp_path / "entry").mkdir()
    (tmp_path / "entry" / "first").write_text("1")
    with atomic_folder(tmp_path / "entry") as tmp:
        (tmp / "second").write_text("2")
    assert [p.name for p in (tmp_path / "entry").iterdir()] == ["first"]
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_replace_true_puts_the_new_folder_in_place_of_the_old(tmp_path):
    (tmp_path / "entry").mkdir()
    (tmp_path / "entry" / "first").write_text("1")
    with atomic_folder(tmp_path / "entry", replace=True) as tmp:
        (tmp / "second").write_text("2")
    assert [p.name for p in (tmp_path / "entry").iterdir()] == ["second"]


def test_a_failed_folder_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(ValueError), atomic_folder(tmp_path / "entry") as tmp:
        (tmp / "part").write_text("half")
        raise ValueError("a column Parquet cannot hold")
    assert list(tmp_path.iterdir()) == []


def test_a_discarded_folder_is_gone_with_no_temporary_left(tmp_path):
    from synapse_core.data.atomic import discard_folder

    (tmp_path / "store" / "c").mkdir(parents=True)
    (tmp_path / "store" / "c" / "0").write_bytes(b"x")
    assert discard_folder(tmp_path / "store") is True
    assert list(tmp_path.iterdir()) == []
    assert discard_folder(tmp_path / "store") is False  # already gone (e.g. another process discarded it)
