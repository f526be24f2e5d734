"""Every path a user or a dataset config names stays inside the allowed data roots.

A lab server shares one machine between users, and a dataset folder may come from anyone: a
``synapse_dataset.toml`` with ``raw = "/home/alice/secret.h5"`` or ``table = "../../etc/x.csv"``,
a symlinked bbox folder or table, or the original tool's mask folder looked up *next to* the data
folder must never make the pipeline read a file outside the folders the operator allowed.

The allowed roots of a dataset (:func:`allowed_roots`) are

* the dataset folder itself (the folder passed as ``--data``, or that holds the config file), and
* the operator's data roots: ``SYNAPSE_DATA_ROOTS`` (entries separated by ``os.pathsep``, each
  ``/path`` or ``name=/path``) and the lines of the file named by ``SYNAPSE_DATA_ROOTS_FILE``
  (the same roots the dashboard lists, see :mod:`synapse_core.app.data_roots`).

So on a single-user machine a dataset may only read inside its own folder unless the user
allows more (``export SYNAPSE_DATA_ROOTS=/data/em``). The original tool's mask folder next to
the data folder is used only when that parent folder lies inside a root.

Every path is resolved (symlinks followed, ``..`` removed) before it is compared, so a symlink
inside a root that points outside it is refused too (:func:`confine`).

>>> import tempfile, os
>>> root = Path(tempfile.mkdtemp()).resolve()
>>> confine(root / "raw" / "bbox1", [root]) == root / "raw" / "bbox1"
True
>>> confine(root / ".." / "elsewhere", [root])
Traceback (most recent call last):
...
synapse_core.data.paths.OutsideRootsError: ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

ENV_ROOTS = "SYNAPSE_DATA_ROOTS"
ENV_ROOTS_FILE = "SYNAPSE_DATA_ROOTS_FILE"

#: What a refused path's message tells the user to do.
ALLOW_HINT = (f"move the file into the dataset folder, or (if it may be read) add its folder to the data roots: "
              f"export {ENV_ROOTS}=/path/to/folder (entries separated by '{os.pathsep}')")


class OutsideRootsError(ValueError):
    """A path that resolves outside every allowed data root; the message names the path and the roots."""


def parse_root_entry(entry: str, source: str) -> tuple[str, Path]:
    """``(name, resolved path)`` of one ``/path`` or ``name=/path`` entry; ``source`` names where it came from."""
    text = entry.strip()
    name = ""
    if "=" in text:
        name, text = (part.strip() for part in text.split("=", 1))
    if not text:
        raise ValueError(f"{source}: empty data-root path in entry {entry!r}; write '/path' or 'name=/path'")
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise ValueError(f"{source}: data root {text!r} is not an absolute path; write the full path")
    resolved = path.resolve()
    return name or resolved.name or str(resolved), resolved


def root_entries(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``(entry, source)`` of every operator root entry in ``SYNAPSE_DATA_ROOTS`` and ``SYNAPSE_DATA_ROOTS_FILE``.

    Raises
    ------
    ValueError
        If ``SYNAPSE_DATA_ROOTS_FILE`` names a file that does not exist or cannot be read.
    """
    env = os.environ if environ is None else environ
    entries: list[tuple[str, str]] = []
    for part in env.get(ENV_ROOTS, "").split(os.pathsep):
        if part.strip():
            entries.append((part, ENV_ROOTS))
    roots_file = env.get(ENV_ROOTS_FILE, "").strip()
    if roots_file:
        file = Path(roots_file).expanduser()
        if not file.is_file():
            raise ValueError(f"{ENV_ROOTS_FILE}={roots_file!r} is not a file; point it at a text file with one root per line")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{ENV_ROOTS_FILE}={roots_file!r} cannot be read ({exc}); save it as UTF-8 text") from exc
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                entries.append((line, f"{file}:{number}"))
    return entries


def operator_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The resolved folders of the operator's data roots (``SYNAPSE_DATA_ROOTS`` / ``_FILE``), in order."""
    return list(dict.fromkeys(parse_root_entry(e, s)[1] for e, s in root_entries(environ)))


def dataset_folder(root: str | os.PathLike) -> Path:
    """The resolved folder of a data root (the folder itself, or the folder of a config file)."""
    path = Path(root).expanduser().resolve()
    return path.parent if path.is_file() else path


def allowed_roots(root: str | os.PathLike, extra: Iterable[str | os.PathLike] = (),
                  environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The folders a dataset at ``root`` may read: its own folder, ``extra``, and the operator's roots."""
    folders = [dataset_folder(root), *(Path(p).expanduser().resolve() for p in extra), *operator_roots(environ)]
    return tuple(dict.fromkeys(folders))


def is_inside(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> bool:
    """True when ``path`` (resolved, symlinks followed) is one of ``roots`` or lies below one."""
    target = Path(path).expanduser().resolve()
    for root in roots:
        base = Path(root).resolve()
        if target == base or base in target.parents:
            return True
    return False


def describe_roots(roots: Iterable[str | os.PathLike]) -> str:
    """The roots as text for a message."""
    return ", ".join(str(r) for r in roots) or "(none)"


def confine(path: str | os.PathLike, roots: Iterable[str | os.PathLike], what: str = "",
            error: type[Exception] | None = None) -> Path:
    """``path`` resolved (symlinks followed), refused unless it lies inside one of ``roots``.

    Parameters
    ----------
    path : a file or folder named by a user or a dataset config (need not exist).
    roots : allowed folders (:func:`allowed_roots`).
    what : what the path is, for the message (e.g. ``"synapse_dataset.toml [bboxes.b1] raw"``).
    error : the exception class to raise instead of :class:`OutsideRootsError` (the caller's own
        error type, e.g. ``VolumeError``), with the same message.

    Returns
    -------
    Path
        The resolved path.

    Raises
    ------
    OutsideRootsError (or ``error``)
        Naming ``what``, the path, where it resolves to, the roots, and what to do.
    """
    roots = list(roots)
    given = Path(path).expanduser()
    target = given.resolve()
    if is_inside(target, roots):
        return target
    via = f" (resolves to {target})" if str(target) != str(given) else ""
    label = f"{what}: " if what else ""
    raise (error or OutsideRootsError)(f"{label}{given}{via} is outside the allowed data roots "
                                       f"({describe_roots(roots)}); it is not read. To use it, {ALLOW_HINT}")


ENV_ALLOW_REMOTE = "SYNAPSE_ALLOW_REMOTE_DATA"


def check_remote_allowed(url: str, what: str, environ: Mapping[str, str] | None = None) -> str:
    """``url`` if this process may read remote data, else :class:`OutsideRootsError` naming ``what``.

    A dataset config can name ``gs://``, ``s3://`` or ``http(s)://`` volumes. On a shared server
    (operator data roots configured through ``SYNAPSE_DATA_ROOTS``/``_FILE``) whoever writes a config
    inside a root could make the server fetch any URL, so remote data is refused there unless the
    operator sets ``SYNAPSE_ALLOW_REMOTE_DATA=1``. Without operator roots (one user's own machine)
    remote data is allowed.

    >>> check_remote_allowed("gs://bucket/em", "volume.raw", environ={})
    'gs://bucket/em'
    >>> check_remote_allowed("https://x/em", "volume.raw", environ={"SYNAPSE_DATA_ROOTS": "/data"})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    synapse_core.data.paths.OutsideRootsError: volume.raw: https://x/em is a remote URL, ...
    """
    env = os.environ if environ is None else environ
    if env.get(ENV_ALLOW_REMOTE, "").strip().lower() in ("1", "true", "yes"):
        return url
    if root_entries(env):
        raise OutsideRootsError(
            f"{what}: {url} is a remote URL, and this server only reads its data roots. The operator can allow "
            f"remote volumes with `export {ENV_ALLOW_REMOTE}=1` before starting it.")
    return url
