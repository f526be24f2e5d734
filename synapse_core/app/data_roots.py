"""Data roots an operator allows a (shared) dashboard to browse, and safe paths inside them.

A lab server must not let a visitor open arbitrary paths on the machine. The operator lists
the allowed roots; users pick one of them by name and may only go into sub-folders of it.

Roots come from, in this order (duplicates dropped):

* the environment variable ``SYNAPSE_DATA_ROOTS``: entries separated by ``os.pathsep``
  (``:`` on Linux), each either ``/path`` or ``name=/path``;
* a text file named by ``SYNAPSE_DATA_ROOTS_FILE``: one entry per line in the same form;
  blank lines and lines starting with ``#`` are ignored.

Example::

    export SYNAPSE_DATA_ROOTS="lab=/data/em/lab:/data/em/shared"

The same roots bound what a dataset may read: the data layer refuses any path a dataset config or
a symlink names outside the dataset folder and these roots (:mod:`synapse_core.data.paths`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from synapse_core.data import paths
from synapse_core.data.paths import ENV_ROOTS, ENV_ROOTS_FILE

__all__ = ["ENV_ROOTS", "ENV_ROOTS_FILE", "DataRoot", "configured_roots", "parse_root_entry", "resolve_inside",
           "root_by_name", "subfolders"]


@dataclass(frozen=True)
class DataRoot:
    """A folder the operator allows users to browse.

    Attributes
    ----------
    name : str
        Label shown to users (the folder name unless the entry was ``name=/path``).
    path : str
        Absolute, resolved path of the folder.
    """

    name: str
    path: str


def parse_root_entry(entry: str, source: str) -> DataRoot:
    """Parse one ``/path`` or ``name=/path`` entry; ``source`` names where it came from (for errors)."""
    name, resolved = paths.parse_root_entry(entry, source)
    return DataRoot(name=name, path=str(resolved))


def configured_roots(environ: Mapping[str, str] | None = None) -> list[DataRoot]:
    """The data roots the operator configured (see the module docstring), in order.

    Roots whose folder does not exist are kept (the page reports them); names are made unique
    by suffixing ``-2``, ``-3``… so that a name always selects one root.

    Raises
    ------
    ValueError
        If an entry is malformed or ``SYNAPSE_DATA_ROOTS_FILE`` names a missing file.
    """
    entries = paths.root_entries(environ)

    roots: list[DataRoot] = []
    seen_paths: set[str] = set()
    seen_names: set[str] = set()
    for entry, source in entries:
        root = parse_root_entry(entry, source)
        if root.path in seen_paths:
            continue
        name, n = root.name, 1
        while name in seen_names:
            n += 1
            name = f"{root.name}-{n}"
        seen_paths.add(root.path)
        seen_names.add(name)
        roots.append(DataRoot(name=name, path=root.path))
    return roots


def root_by_name(roots: list[DataRoot], name: str) -> DataRoot:
    """The root called ``name``; a ValueError lists the allowed names otherwise."""
    for root in roots:
        if root.name == name:
            return root
    allowed = ", ".join(r.name for r in roots) or "(none configured)"
    raise ValueError(f"data root {name!r} is not one of the configured roots: {allowed}")


def resolve_inside(root: DataRoot, relative: str = "") -> Path:
    """The folder ``relative`` inside ``root``, refusing anything that leaves the root.

    ``relative`` is a path typed or chosen by a user, e.g. ``"experiment_2/volumes"``. Absolute
    paths, ``..`` components and symlinks pointing outside the root are all refused.

    Raises
    ------
    ValueError
        If the resolved path is not inside the root.
    """
    rel = (relative or "").strip()
    if Path(rel).is_absolute():
        raise ValueError(f"path {rel!r} must be relative to the data root {root.name!r}, not absolute")
    base = Path(root.path).resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise ValueError(f"path {rel!r} leaves the data root {root.name!r}; choose a folder inside it")
    return target


def subfolders(root: DataRoot, relative: str = "", max_depth: int = 2) -> list[str]:
    """Sub-folders of ``root`` (relative paths, sorted), down to ``max_depth`` levels.

    Hidden folders are skipped, and so are symlinks that point outside the root.
    """
    base = resolve_inside(root, relative)
    found: list[str] = []
    frontier = [base]
    for _ in range(max_depth):
        next_frontier = []
        for folder in frontier:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
            for child in children:
                rel = str(child.relative_to(Path(root.path)))
                try:
                    resolve_inside(root, rel)
                except ValueError:
                    continue
                found.append(rel)
                next_frontier.append(child)
        frontier = next_frontier
    return sorted(found)
