"""Content hashes for cache keys and fingerprints: one canonical form, one digest (BLAKE2b).

Every cache of the package keys its entries with these functions, so equal inputs give equal keys
in any process and on any machine:

* :func:`array_digest` — an array's dtype, shape and bytes;
* :func:`content_hash` — any mix of plain values, arrays, dataclasses and dicts, through
  :func:`canonical` (a JSON-ready form in which numpy scalars are Python numbers, dict order does
  not matter and arrays are replaced by their digest);
* :func:`stat_fingerprint` — files by path, size and modification time (cheap, for large volumes
  whose bytes are not read to name a cache entry).

>>> content_hash({"b": 1, "a": [1.0, "x"]}) == content_hash({"a": [1.0, "x"], "b": 1})
True
>>> content_hash({"a": np.float64(2.0)}) == content_hash({"a": 2.0})
True
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import math
import os
import stat
from collections.abc import Iterable

import numpy as np

#: Bytes of a :func:`content_hash` digest (40 hex characters).
DIGEST_BYTES = 20


def array_digest(a: np.ndarray) -> str:
    """Hex digest (32 characters) of an array's dtype, shape and bytes (C order)."""
    a = np.ascontiguousarray(a)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.data)
    return h.hexdigest()


def canonical(value):
    """JSON-ready form of ``value`` that two equal values share.

    Arrays become ``{"array": <digest>}``; dicts are keyed by ``str(key)`` (JSON sorts them);
    tuples become lists; numpy scalars become Python numbers; NaN becomes ``"nan"``; a dataclass
    becomes its type name and fields. Anything else is represented by ``repr``.
    """
    if isinstance(value, np.ndarray):
        return {"array": array_digest(value)}
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, np.generic):
        return canonical(value.item())
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "__dataclass_fields__"):
        return {"__type__": type(value).__name__,
                **{k: canonical(getattr(value, k)) for k in value.__dataclass_fields__}}
    if hasattr(value, "model_dump"):  # a pydantic model
        return {"__type__": type(value).__name__, **canonical(value.model_dump())}
    return repr(value)


def content_hash(value, digest_size: int = DIGEST_BYTES) -> str:
    """Hex BLAKE2b digest of ``canonical(value)`` (``2 * digest_size`` characters)."""
    return canonical_hash(canonical(value), digest_size)


def canonical_hash(value, digest_size: int = DIGEST_BYTES) -> str:
    """:func:`content_hash` of a value already in canonical form, without walking it through :func:`canonical`.

    For large values made only of plain strings, ints, bools and None in lists and str-keyed dicts
    (e.g. 10⁶ synapse ids, or every slice file's path, size and mtime), which :func:`canonical` leaves
    as they are: the same digest, without a Python call per item.
    """
    text = json.dumps(value, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=digest_size).hexdigest()


def stat_fingerprint(paths: Iterable[str | os.PathLike], extra: str = "") -> str:
    """16 hex characters naming files by resolved path, size and modification time (ns).

    Changes whenever a file is replaced or rewritten; the files' bytes are not read. ``extra``
    (e.g. an HDF5 dataset name) is part of the fingerprint.
    """
    parts = [extra]
    real_folders: dict[str, str] = {}
    for p in paths:
        path = os.fspath(p)
        st = os.lstat(path)
        folder, name = os.path.split(path)
        if stat.S_ISLNK(st.st_mode) or name in ("", ".", ".."):
            st = os.stat(path)
            real = os.path.realpath(path)
        else:
            # A file that is not a symlink resolves to its folder's resolved path plus its name:
            # the folder is resolved once, not once per file (the same strings as ``Path.resolve``).
            if folder not in real_folders:
                real_folders[folder] = os.path.realpath(folder)
            real = os.path.join(real_folders[folder], name)
        parts.append([real, st.st_size, st.st_mtime_ns])
    if not isinstance(extra, str):
        return content_hash(parts, digest_size=8)
    return canonical_hash(parts, digest_size=8)  # plain strings and ints: already canonical


def source_fingerprint(modules: Iterable[str]) -> str:
    """Digest (16 hex characters) of the source files of ``modules`` (dotted names), read from disk.

    The one rule by which every cache names the code that made its entries (the per-synapse
    feature store, quick reruns, the parsed-table cache). Memoised per process and module list:
    a running server keeps the code it started with.

    Raises
    ------
    ModuleNotFoundError
        A module has no source file (renamed or removed); the message names it.
    """
    return _source_fingerprint(tuple(modules))


@functools.cache
def _source_fingerprint(modules: tuple[str, ...]) -> str:
    sources = {}
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:  # a parent package is missing
            spec = None
        if spec is None or not spec.origin or not os.path.exists(spec.origin):
            raise ModuleNotFoundError(
                f"module {name!r} has no source file: it was renamed or removed; update the module list that "
                "names it (e.g. RESULT_MODULES in synapse_core/features/cache.py)", name=name)
        with open(spec.origin, "rb") as f:
            sources[name] = f.read().decode("utf-8")
    return content_hash(sources, digest_size=8)
