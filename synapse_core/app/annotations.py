"""Named selections and manual cluster assignments (as in bigclust2), kept as columns of the table.

A :class:`NamedSelection` is a set of synapse ids with a name, who made it and when, and
optionally the cluster its synapses are assigned to (an existing one or a new one). Applied to a
clustered table (:func:`apply`) each selection becomes a boolean column ``selection_<name>``;
assignments give ``cluster_refined`` (the cluster after manual refinement, the last assignment
winning), ``annotation`` (the name of the selection that assigned it), ``annotated_by`` and
``annotated_at``. The original ``cluster`` column is never changed.

Selections are stored as JSON in the cache (``cache_dir/annotations/<result key>.json``), one file
per clustering result, shared by every user of the server; nothing is unpickled.

No Streamlit here.

>>> import pandas as pd
>>> t = pd.DataFrame({"bbox_name": ["b1", "b1", "b2"], "Var1": ["s1", "s2", "s3"], "cluster": [0, 0, 1]})
>>> big = NamedSelection("big ones", ("b1|s2",), cluster=new_cluster(t), author="ana", created="2026-01-01T00:00:00Z")
>>> apply(t, [big])[["cluster", "selection_big_ones", "cluster_refined", "annotation"]].values.tolist()
[[0, False, 0, None], [0, True, 2, 'big ones'], [1, False, 1, None]]
"""

from __future__ import annotations

import json
import os
import re
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from synapse_core.data.atomic import write_text_atomically
from synapse_core.data.hashing import canonical, canonical_hash
from synapse_core.data.synapse_keys import synapse_ids

#: Prefix of the boolean column of each named selection.
COLUMN_PREFIX = "selection_"
#: Columns written by :func:`apply` when a selection assigns a cluster.
ANNOTATION_COLUMNS = ("cluster_refined", "annotation", "annotated_by", "annotated_at")
#: A selection name: 1–40 letters, digits, spaces, ``_``, ``-``, ``.``.
NAME_PATTERN = re.compile(r"^[\w .\-]{1,40}$")
FORMAT = "synapse-annotations-1"


@dataclass(frozen=True)
class NamedSelection:
    """Synapse ids with a name, an optional cluster assignment, its author and time (ISO 8601, UTC)."""

    name: str
    ids: tuple[str, ...]
    cluster: int | None = None
    author: str = "anonymous"
    created: str = field(default_factory=lambda: now())

    def __post_init__(self):
        check_name(self.name)
        object.__setattr__(self, "ids", tuple(dict.fromkeys(str(i) for i in self.ids)))
        if not self.ids:
            raise ValueError(f"selection {self.name!r} is empty: select synapses on the map first")
        if self.cluster is not None:
            if isinstance(self.cluster, bool) or not float(self.cluster).is_integer() or int(self.cluster) < 0:
                raise ValueError(f"cluster must be a cluster number ≥ 0 (or None), got {self.cluster!r}")
            object.__setattr__(self, "cluster", int(self.cluster))
        author = str(self.author).strip()[:80] or "anonymous"
        object.__setattr__(self, "author", author)

    @property
    def column(self) -> str:
        return selection_column(self.name)


def now() -> str:
    """The current time as ISO 8601 in UTC, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_name(name: str) -> str:
    """``name`` if it is a usable selection name, else ValueError saying what is allowed."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name.strip()) or not name.strip():
        raise ValueError(f"selection name {name!r} is not allowed: use 1–40 letters, digits, spaces, '_', '-' or '.'")
    return name.strip()


def selection_column(name: str) -> str:
    """Column of selection ``name``: ``selection_`` + the name in lower case, spaces as ``_``."""
    return COLUMN_PREFIX + re.sub(r"\s+", "_", check_name(name).lower())


def new_cluster(table: pd.DataFrame, selections: Sequence[NamedSelection] = ()) -> int:
    """The next unused cluster number (above the table's clusters and those already assigned)."""
    clusters = table["cluster"]
    highest = int(clusters.max()) if len(clusters) else -1
    return max([-1, highest] + [s.cluster for s in selections if s.cluster is not None]) + 1


def add(selections: Sequence[NamedSelection], new: NamedSelection) -> list[NamedSelection]:
    """``selections`` with ``new`` appended; one with the same column (name) is replaced."""
    return [s for s in selections if s.column != new.column] + [new]


def remove(selections: Sequence[NamedSelection], name: str) -> list[NamedSelection]:
    """``selections`` without the one called ``name``."""
    col = selection_column(name)
    return [s for s in selections if s.column != col]


# --- values computed once per table object (every click reruns a page) -----------------------
# A clustering result's table lives in the session for many page runs and is not changed in place
# (pages add columns to copies; pandas copy-on-write keeps those apart). What is computed from it
# is kept per table object, by identity, and dropped when the table is freed.
_PER_TABLE: dict[int, tuple[weakref.ref, dict]] = {}
_PER_TABLE_LOCK = threading.Lock()


def _per_table(table: pd.DataFrame) -> dict:
    """The memo of ``table`` (a dict, empty at first), kept while ``table`` lives."""
    key = id(table)
    with _PER_TABLE_LOCK:
        entry = _PER_TABLE.get(key)
        if entry is not None and entry[0]() is table and entry[1]["rows"] == len(table):
            return entry[1]
        memo = {"rows": len(table)}
        _PER_TABLE[key] = (weakref.ref(table, lambda _ref, key=key: _PER_TABLE.pop(key, None)), memo)
        return memo


def table_ids(table: pd.DataFrame) -> pd.Index:
    """The synapse ids of ``table``'s rows (``"bbox|Var1"``, in row order) as an Index.

    Computed once per table object (≈0.1 s at 10⁶ rows). ``sid in table_ids(t)`` and
    ``table_ids(t).get_indexer(ids)`` use the Index's hash table, built once on first use.
    """
    memo = _per_table(table)
    if "ids" not in memo:
        memo["ids"] = pd.Index(synapse_ids(table).to_numpy(dtype=object), dtype=object)
    return memo["ids"]


def row_positions(table: pd.DataFrame, ids: Iterable[str]) -> np.ndarray:
    """Positions (ascending, i.e. table order) of the rows of ``table`` whose id is one of ``ids``.

    Ids not in the table are ignored; a table with a repeated id gives every row of it. Looks the
    ids up in :func:`table_ids` (work in proportion to ``ids``, not to the table).
    """
    index = table_ids(table)
    if index.is_unique:
        found = index.get_indexer(list(ids))
        return np.unique(found[found >= 0])
    return np.flatnonzero(index.isin(list(ids)))


def apply(table: pd.DataFrame, selections: Iterable[NamedSelection]) -> pd.DataFrame:
    """``table`` with a ``selection_<name>`` column per selection and the assignments.

    Ids of a selection that are not in the table are ignored. With at least one assignment, the
    :data:`ANNOTATION_COLUMNS` are added (``cluster_refined`` = ``cluster`` where nothing was assigned;
    the other three None there); later selections override earlier ones.

    Returns a new DataFrame that shares ``table``'s data (pandas copy-on-write: changing one never
    changes the other), so no column is copied; the work is the selections' sizes plus one pass
    per added column.
    """
    out = table.copy(deep=False)
    n = len(table)
    assigning: list[NamedSelection] = []
    by = np.full(n, -1, dtype=np.intp)  # per row: which of ``assigning`` assigned it last (−1: none)
    for sel in selections:
        rows = row_positions(table, sel.ids)
        inside = np.zeros(n, dtype=bool)
        inside[rows] = True
        out[sel.column] = inside
        if sel.cluster is not None:
            by[rows] = len(assigning)
            assigning.append(sel)
    if assigning:
        refined = out["cluster"].astype(int).to_numpy().copy()
        hit = by >= 0
        refined[hit] = np.array([s.cluster for s in assigning], dtype=refined.dtype)[by[hit]]
        out["cluster_refined"] = refined
        for name, values in (("annotation", [s.name for s in assigning]),
                             ("annotated_by", [s.author for s in assigning]),
                             ("annotated_at", [s.created for s in assigning])):
            out[name] = pd.Series(np.array([None, *values], dtype=object)[by + 1], index=out.index, dtype=object)
    return out


# --- storage (JSON in the cache) -----------------------------------------------------------

def result_key(table: pd.DataFrame, settings_key: str | None) -> str:
    """Key of a clustering result: its settings and the synapses clustered (order-free).

    The stored annotations of a result are filed under this key, so its value never changes:
    :func:`~synapse_core.data.hashing.content_hash` (8 bytes) of ``{"settings": settings_key,
    "ids": sorted ids}``. Computed once per table object and settings key.
    """
    memo = _per_table(table).setdefault("result_key", {})
    if settings_key not in memo:
        ids = sorted(table_ids(table).tolist())
        # ids are strings, already canonical: content_hash's digest without walking 10⁶ ids through
        # canonical() one by one (3.1 → 0.6 s at 10⁶ synapses)
        memo[settings_key] = canonical_hash({"settings": canonical(settings_key), "ids": ids}, digest_size=8)
    return memo[settings_key]


def dumps(selections: Sequence[NamedSelection]) -> str:
    """JSON text of ``selections``."""
    return json.dumps({"format": FORMAT, "selections": [{**asdict(s), "ids": list(s.ids)} for s in selections]},
                      indent=1)


def loads(text: str, where: str = "annotations") -> list[NamedSelection]:
    """Selections from :func:`dumps` text; ValueError naming ``where`` and the problem otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON ({exc}); delete the file to start over") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("selections"), list):
        raise ValueError(f"{where}: not a {FORMAT} file (expected keys 'format' and 'selections')")
    out = []
    for i, item in enumerate(data["selections"]):
        if not isinstance(item, dict) or not isinstance(item.get("ids"), list):
            raise ValueError(f"{where}: selection {i} has no list of 'ids'")
        try:
            out.append(NamedSelection(name=item.get("name"), ids=tuple(item["ids"]), cluster=item.get("cluster"),
                                      author=item.get("author", "anonymous"), created=str(item.get("created", ""))))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: selection {i}: {exc}") from None
    return out


def store_path(cache_dir: str | os.PathLike, key: str) -> Path:
    """The JSON file of result ``key`` under ``cache_dir/annotations``."""
    if not re.fullmatch(r"[0-9a-f]{4,64}", key):
        raise ValueError(f"annotation key must be a hex digest, got {key!r}")
    return Path(cache_dir) / "annotations" / f"{key}.json"


def save(cache_dir: str | os.PathLike, key: str, selections: Sequence[NamedSelection]) -> Path:
    """Write ``selections`` of result ``key`` atomically; returns the file."""
    path = store_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, dumps(selections))
    return path


#: Files read by :func:`load`: path → ((inode, size, mtime), selections); a page run reads the same file again.
_LOADED: dict[str, tuple[tuple[int, int, int], list[NamedSelection]]] = {}
_LOADED_MAX = 64


def load(cache_dir: str | os.PathLike, key: str) -> list[NamedSelection]:
    """Selections stored for result ``key`` (empty when none were saved).

    A file read before and not replaced since (same inode, size and modification time; :func:`save`
    replaces the file) is not parsed again (0.15 s for 10⁵ ids, on every page run).
    """
    path = store_path(cache_dir, key)
    try:
        st = path.stat()
    except FileNotFoundError:
        return []
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _LOADED.get(str(path))
    if hit is not None and hit[0] == stamp:
        return list(hit[1])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not JSON (not UTF-8 text); delete the file to start over") from None
    out = loads(text, where=str(path))
    with _PER_TABLE_LOCK:
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.pop(next(iter(_LOADED)), None)
        _LOADED[str(path)] = (stamp, out)
    return list(out)
