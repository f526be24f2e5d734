"""Write a file or a folder so that readers see either the old one or the complete new one.

Everything is first written under a temporary hidden name beside the target (same folder, so the
same disk) and then moved into place with one ``os.replace``/``os.rename``, which is atomic on
POSIX file systems. A failure removes the temporary file or folder and re-raises: no half-written
entry is ever left under the target's name. Temporary names start with a dot and end with ``.tmp``
so listings of ``*.parquet``, ``*.npz`` etc. never see them.

Used by every cache and store that other processes (dashboard users, Dask workers, a rerun) may
read while it is written.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A new hidden name in ``path``'s folder: ``.<name>.<random>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one step.

    Example
    -------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_file(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('done', ['a.txt'])
    """
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_file`."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_file`."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def atomic_folder(folder: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield a new empty temporary folder to fill; on success it becomes ``folder`` in one rename.

    Parameters
    ----------
    folder : path
        The target folder; its parent is created when missing.
    replace : bool
        What to do when ``folder`` already exists at the end: True removes it first (the new content
        wins: e.g. a stored run whose tables changed); False keeps it and discards the new folder
        (content-addressed entries, where a concurrent writer's folder holds the same content).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(folder)
    tmp.mkdir()
    try:
        yield tmp
        if replace:
            discard_folder(folder)  # readers see the old folder whole or not at all
        try:
            os.rename(tmp, folder)
        except OSError:
            if replace or not folder.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another writer won: its folder holds the same content
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def discard_folder(folder: str | os.PathLike) -> bool:
    """Remove ``folder``: first renamed to a temporary sibling (one step), then deleted.

    Readers see the folder whole or not at all, never half deleted, and a new folder can be written
    under the name at once. Returns False when ``folder`` was already gone (e.g. another process
    discarded it first).
    """
    tmp = temporary_sibling(folder)
    try:
        os.rename(folder, tmp)
    except OSError:
        return False
    shutil.rmtree(tmp, ignore_errors=True)
    return True
