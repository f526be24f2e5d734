"""Checkpoint files on a shared dashboard: uploads stored with a size cap, refused ones deleted, and
the operator's checkpoint folder confined like the data roots.

A visitor's upload is written under its sha256 in ``<cache>/uploads`` (atomically: a temporary
file, then a rename). The folder as a whole is capped (:data:`ENV_TOTAL_MB`, default
:data:`DEFAULT_TOTAL_MB` MB): the least recently used uploads are deleted to make room, and an
upload larger than the cap is refused. An upload the page refuses (it is not a checkpoint) is
deleted at once with :func:`discard_upload`, so refused files never pile up.

The operator's checkpoint folder (``SYNAPSE_CHECKPOINT_DIR``) lists only files that resolve
inside it: a symlink in it that points elsewhere is neither listed nor opened
(:func:`checkpoint_choices`, :func:`checkpoint_path`).

Settings (environment): ``SYNAPSE_MAX_UPLOAD_MB`` (one file, default 600) and
``SYNAPSE_UPLOADS_TOTAL_MB`` (the whole uploads folder, default 2000).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from synapse_core.data.atomic import write_bytes_atomically
from synapse_core.data.paths import OutsideRootsError, confine, is_inside

ENV_FILE_MB = "SYNAPSE_MAX_UPLOAD_MB"
ENV_TOTAL_MB = "SYNAPSE_UPLOADS_TOTAL_MB"
DEFAULT_FILE_MB = 600
DEFAULT_TOTAL_MB = 2000
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".checkpoint", ".ckpt")
#: Suffix of stored uploads (the content decides how it is read, never the visitor's file name).
STORED_SUFFIX = ".pth"


class UploadError(ValueError):
    """An upload that is refused; the message names the file and the limit."""


def _mb_setting(name: str, default: int, environ: Mapping[str, str] | None) -> int:
    env = os.environ if environ is None else environ
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} must be a whole number of MB") from None
    if value <= 0:
        raise ValueError(f"{name}={text!r} must be a positive number of MB")
    return value


def upload_limits(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(largest file, whole folder)`` in bytes, from ``SYNAPSE_MAX_UPLOAD_MB`` and ``SYNAPSE_UPLOADS_TOTAL_MB``."""
    return (_mb_setting(ENV_FILE_MB, DEFAULT_FILE_MB, environ) << 20,
            _mb_setting(ENV_TOTAL_MB, DEFAULT_TOTAL_MB, environ) << 20)


def _stored(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and not p.is_symlink()] if folder.is_dir() else []


def folder_bytes(folder: str | os.PathLike) -> int:
    """Bytes held by the files of an uploads folder."""
    return sum(p.stat().st_size for p in _stored(Path(folder)))


def store_upload(data: bytes, name: str, folder: str | os.PathLike, max_file_bytes: int | None = None,
                 max_total_bytes: int | None = None) -> Path:
    """Store an uploaded file's bytes under their sha256 in ``folder`` and return its path.

    Parameters
    ----------
    data : the file's bytes.
    name : the visitor's file name (messages only; never part of the stored path).
    folder : the uploads folder (created if missing).
    max_file_bytes, max_total_bytes : limits (default: :func:`upload_limits`). To stay under the
        folder limit the least recently used uploads are deleted first.

    Raises
    ------
    UploadError
        When the file is empty, larger than ``max_file_bytes``, or cannot fit under ``max_total_bytes``.
    """
    file_cap, total_cap = upload_limits()
    file_cap = file_cap if max_file_bytes is None else max_file_bytes
    total_cap = total_cap if max_total_bytes is None else max_total_bytes
    size = len(data)
    if size == 0:
        raise UploadError(f"{name}: the file is empty")
    if size > file_cap:
        raise UploadError(f"{name}: {size / 1e6:.1f} MB is larger than the {file_cap / 1e6:.0f} MB allowed per "
                          f"upload ({ENV_FILE_MB})")
    if size > total_cap:
        raise UploadError(f"{name}: {size / 1e6:.1f} MB is larger than the {total_cap / 1e6:.0f} MB the uploads "
                          f"folder may hold ({ENV_TOTAL_MB})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(data).hexdigest()[:32] + STORED_SUFFIX)
    if path.is_file() and not path.is_symlink():
        os.utime(path)  # recently used: evicted last
        return path
    # Least recently used first, until the new file fits.
    others = sorted(_stored(folder), key=lambda p: p.stat().st_mtime)
    used = sum(p.stat().st_size for p in others)
    while others and used + size > total_cap:
        victim = others.pop(0)
        used -= victim.stat().st_size
        victim.unlink(missing_ok=True)
    write_bytes_atomically(path, data)
    return path


def discard_upload(path: str | os.PathLike | None, folder: str | os.PathLike) -> bool:
    """Delete a refused upload (only a file inside ``folder``); True when something was deleted."""
    if not path:
        return False
    p = Path(path)
    if p.is_symlink() or not p.is_file() or not is_inside(p, [folder]):
        return False
    p.unlink(missing_ok=True)
    return True


def checkpoint_choices(folder: str | os.PathLike | None) -> list[str]:
    """Names of the checkpoint files in the operator's folder that resolve inside it (symlinks out are left out)."""
    if not folder or not Path(folder).is_dir():
        return []
    base = Path(folder)
    return sorted(p.name for p in base.iterdir()
                  if p.suffix in CHECKPOINT_SUFFIXES and p.is_file() and is_inside(p, [base]))


def checkpoint_path(folder: str | os.PathLike | None, name: str) -> Path:
    """The checkpoint ``name`` in the operator's folder, resolved and refused unless it lies inside it.

    Raises
    ------
    ValueError
        When no folder is configured, ``name`` is not a plain file name, or it resolves outside the folder.
    """
    if not folder:
        raise ValueError("no checkpoint folder is configured (SYNAPSE_CHECKPOINT_DIR)")
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"checkpoint {name!r} must be a file name inside the checkpoint folder")
    try:
        return confine(Path(folder) / name, [folder], what="checkpoint")
    except OutsideRootsError as exc:
        raise ValueError(str(exc).split(" To use it,")[0]
                         + " Put the checkpoint file itself in the checkpoint folder (not a link to it).") from None
