"""A folder of content-addressed results that many processes on many hosts share, without SQLite or pickle.

Layout under the store's folder::

    results/<kk>/<kind>-<hex>.npz    one entry per key (kk: 2 hex characters of the key's hash)
    claims/<kind>-<hex>.claim        who is computing a key now (JSON: job, host, pid, time)
    corrupt/                         entries that could not be read, moved aside
    journal/<host>-<pid>.log         optional: one line per write (``SYNAPSE_STORE_JOURNAL=1``)

An entry is an ``.npz`` file: the value's arrays (and numpy scalars, as 0-d arrays) by position,
and ``__meta__``, UTF-8 JSON holding the key and the value's structure (dicts, lists, tuples, str,
int, float incl. NaN, bool, None). It is read with ``allow_pickle=False`` and ``json``: nothing in
the folder can run code. An entry that fails to decode, or whose recorded key is not its name, is
treated as missing (moved to ``corrupt/`` with a logged message) and the caller recomputes it.

Writes go to a temporary file in the entry's folder and are renamed into place (atomic on POSIX
file systems and NFS), so readers never see half an entry and concurrent writers of one key
(equal content, by construction) simply replace each other. Claims are files created with
``O_CREAT | O_EXCL`` and name a *job* (one extraction run, one dashboard job), not a process: two
jobs in one server process split the work, while tasks of one job (e.g. a retried Dask task on
another worker) may re-enter the job's own claims. A claim is stale, and taken over, when its
process is gone (same host) or it is older than ``claim_ttl_s``. Claims only avoid duplicate
work; correctness never depends on them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from synapse_core.data.atomic import write_bytes_atomically
from synapse_core.data.outputs import pid_alive

log = logging.getLogger(__name__)

FORMAT = "synapse-store-1"
_HOST = socket.gethostname()
_SAFE = re.compile(r"[A-Za-z0-9_.-]{1,80}(:[0-9a-f]{1,80})?")
_WARNED_LEGACY: set[str] = set()


class StoreError(OSError):
    """The store's folder cannot be used (not writable, not a folder); the message names it."""


def new_job_id() -> str:
    """A fresh job identity for claims (host, pid and a random part: unique across hosts and runs)."""
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def entry_name(key: str) -> str:
    """File name stem of ``key``: the key itself (``:`` → ``-``) when it is short and plain, else its hash."""
    if _SAFE.fullmatch(key):
        return key.replace(":", "-")
    return "h-" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def _shard(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=1).hexdigest()


# --- values <-> (json tree, arrays) -----------------------------------------------------------------

def encode_value(value) -> tuple[dict, list[np.ndarray]]:
    """``(tree, arrays)`` of ``value``: a JSON-ready tree with arrays replaced by their position.

    Raises
    ------
    TypeError
        A part of ``value`` has a type the store cannot keep without pickle (named in the message).
    """
    arrays: list[np.ndarray] = []

    def enc(v):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, np.generic):
            return v
        if isinstance(v, (np.ndarray, np.generic)):
            a = np.asarray(v)
            if a.dtype.hasobject:
                raise TypeError("the feature store keeps no object arrays (they would need pickle)")
            arrays.append(a)
            return {"t": "array" if isinstance(v, np.ndarray) else "scalar", "v": len(arrays) - 1}
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise TypeError(f"the feature store keeps dicts with str keys only, not {sorted(map(repr, v))[:3]}")
            return {"t": "dict", "v": {k: enc(x) for k, x in v.items()}}
        if isinstance(v, (list, tuple)):
            return {"t": type(v).__name__, "v": [enc(x) for x in v]}
        raise TypeError(f"the feature store cannot keep a {type(v).__name__} (only arrays, numbers, str, "
                        "None, bool, dicts, lists, tuples)")

    return enc(value), arrays


def decode_value(tree, arrays: list[np.ndarray]):
    """The value :func:`encode_value` encoded (ValueError/KeyError/TypeError on a malformed tree)."""
    if tree is None or isinstance(tree, (bool, str, int, float)):
        return tree
    kind, v = tree["t"], tree["v"]
    if kind == "array":
        return arrays[v]
    if kind == "scalar":
        return arrays[v][()]
    if kind == "dict":
        return {k: decode_value(x, arrays) for k, x in v.items()}
    if kind == "list":
        return [decode_value(x, arrays) for x in v]
    if kind == "tuple":
        return tuple(decode_value(x, arrays) for x in v)
    raise ValueError(f"unknown node type {kind!r}")


def entry_bytes(key: str, value) -> bytes:
    """The bytes of the entry of ``key`` holding ``value`` (an uncompressed ``.npz``)."""
    tree, arrays = encode_value(value)
    meta = json.dumps({"format": FORMAT, "key": key, "value": tree}, allow_nan=True).encode()
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(meta, dtype=np.uint8), **{f"a{i}": a for i, a in enumerate(arrays)})
    return buf.getvalue()


def read_entry(path: str | os.PathLike, key: str | None = None):
    """The value stored at ``path``; never unpickles (ValueError and friends when it is not a valid entry)."""
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # not a zip: never handed to a loader that could unpickle it
            raise ValueError("not an .npz entry")
        f.seek(0)
        data = f.read()
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        meta = json.loads(bytes(z["__meta__"]).decode("utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r} is not {FORMAT!r}")
        if key is not None and meta.get("key") != key:
            raise ValueError(f"entry holds key {meta.get('key')!r}, not {key!r}")
        n = sum(1 for name in z.files if name != "__meta__")
        arrays = [z[f"a{i}"] for i in range(n)]
    return decode_value(meta["value"], arrays)




class ResultStore:
    """Per-key results in a folder (see the module docstring); safe for many processes on many hosts.

    Parameters
    ----------
    directory : folder of the store (created).
    claim_ttl_s : seconds after which a claim counts as abandoned whatever its host.
    job : identity of the job whose claims this object makes (:func:`new_job_id` when None);
        :meth:`for_job` gives the same store under another job.

    Examples
    --------
    >>> import tempfile
    >>> store = ResultStore(tempfile.mkdtemp())
    >>> store.put("deep:ab", np.arange(3, dtype=np.float32)); store.get("deep:ab")
    array([0., 1., 2.], dtype=float32)
    >>> store.for_job("a").claim("deep:cd"), store.for_job("b").claim("deep:cd")
    (True, False)
    """

    def __init__(self, directory: str | os.PathLike, claim_ttl_s: float = 3600.0, job: str | None = None):
        self.directory = Path(directory)
        self.claim_ttl_s = claim_ttl_s
        self.job = job or new_job_id()
        self._results = self.directory / "results"
        self._claims = self.directory / "claims"
        try:
            self._results.mkdir(parents=True, exist_ok=True)
            self._claims.mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(f"feature store {self.directory}: cannot create its folders ({exc.strerror}); give a "
                             "writable cache folder (--cache-dir or $SYNAPSE_CACHE_DIR)") from exc
        self._journal = None
        if os.environ.get("SYNAPSE_STORE_JOURNAL"):
            (self.directory / "journal").mkdir(exist_ok=True)
            self._journal = self.directory / "journal" / f"{_HOST}-{os.getpid()}.log"
        legacy = self.directory / "cache.db"
        if legacy.exists() and str(legacy) not in _WARNED_LEGACY:
            _WARNED_LEGACY.add(str(legacy))
            log.info("%s is the old diskcache store; it is no longer read (delete it to free space)", legacy)

    def for_job(self, job: str) -> ResultStore:
        """This store with claims made for ``job``."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.job = job
        return other

    # --- entries -------------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        """The file of ``key``'s entry (whether or not it exists)."""
        return self._results / _shard(key) / f"{entry_name(key)}.npz"

    def get(self, key: str, default=None):
        """The value stored for ``key``, or ``default`` when there is none or it cannot be read."""
        path = self.path(key)
        try:
            return read_entry(path, key)
        except FileNotFoundError:
            return default
        except Exception as exc:  # noqa: BLE001 - anything undecodable is a missing entry, never code run
            self._set_aside(path, exc)
            return default

    def _set_aside(self, path: Path, exc: Exception) -> None:
        target = self.directory / "corrupt" / f"{path.name}.{uuid.uuid4().hex[:8]}"
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
            where = f"moved to {target}"
        except OSError:
            where = "left in place"
        log.warning("feature store: %s could not be read (%s: %s); %s, the result will be recomputed", path,
                    type(exc).__name__, exc, where)

    def put(self, key: str, value) -> None:
        """Store ``value`` (arrays, numbers, str, None, bool, dicts with str keys, lists, tuples) under ``key``."""
        data = entry_bytes(key, value)
        path = self.path(key)
        try:
            path.parent.mkdir(exist_ok=True)
            write_bytes_atomically(path, data)
        except OSError as exc:
            raise StoreError(f"feature store {self.directory}: cannot write {path.name} ({exc.strerror}); give a "
                             "writable cache folder (--cache-dir or $SYNAPSE_CACHE_DIR)") from exc
        if self._journal is not None:
            with open(self._journal, "a") as f:
                f.write(f"{key}\t{self.job}\t{time.time():.3f}\n")

    def __contains__(self, key: str) -> bool:
        return self.path(key).exists()

    def contains_many(self, keys: Iterable[str]) -> set[str]:
        """The ``keys`` that have an entry, from one directory listing per shard (not one stat per key)."""
        by_shard: dict[str, list[str]] = {}
        for k in keys:
            by_shard.setdefault(_shard(k), []).append(k)
        found = set()
        for shard, ks in by_shard.items():
            try:
                names = set(os.listdir(self._results / shard))
            except FileNotFoundError:
                continue
            found.update(k for k in ks if f"{entry_name(k)}.npz" in names)
        return found

    # --- claims ----------------------------------------------------------------------------------------
    def _claim_path(self, key: str) -> Path:
        return self._claims / f"{entry_name(key)}.claim"

    def _record(self) -> bytes:
        return json.dumps({"job": self.job, "host": _HOST, "pid": os.getpid(), "time": time.time()}).encode()

    def _create(self, path: Path) -> bool:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(self._record())
        return True

    def holder(self, key: str) -> dict | None:
        """The claim on ``key`` (job, host, pid, time), ``{}`` while it is being written, None when unclaimed."""
        path = self._claim_path(key)
        try:
            text = path.read_bytes()
            st_mtime = path.stat().st_mtime
        except FileNotFoundError:
            return None
        try:
            held = json.loads(text)
            return held if isinstance(held, dict) else {"time": st_mtime}
        except ValueError:  # created, not yet written
            return {"time": st_mtime}

    def _stale(self, held: dict) -> bool:
        if held.get("host") == _HOST and isinstance(held.get("pid"), int) and not pid_alive(held["pid"]):
            return True
        return time.time() - float(held.get("time", 0.0)) > self.claim_ttl_s

    def claim(self, key: str) -> bool:
        """True if this job may compute ``key`` (unclaimed, claimed by this job, or a stale claim taken over)."""
        path = self._claim_path(key)
        for _ in range(3):
            if self._create(path):
                return True
            held = self.holder(key)
            if held is None:
                continue  # released meanwhile
            if held.get("job") == self.job:
                return True
            if not self._stale(held):
                return False
            # Take over: move the stale claim away (only one taker succeeds), check it was the stale one.
            broken = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.stale")
            try:
                os.rename(path, broken)
            except FileNotFoundError:
                continue
            try:
                moved = json.loads(broken.read_bytes())
            except ValueError:
                moved = {}
            if moved.get("job") != held.get("job") or moved.get("time") != held.get("time"):
                try:  # a fresh claim was moved: put it back unless someone claimed meanwhile
                    os.link(broken, path)
                except OSError:
                    pass
                os.unlink(broken)
                return False
            os.unlink(broken)
            log.info("feature store: took over the stale claim on %s (job %s)", key, held.get("job"))
        return self._create(path)

    def release(self, key: str) -> None:
        """Drop this job's claim on ``key`` (after storing its result, or on giving up)."""
        held = self.holder(key)
        if held is not None and held.get("job") == self.job:
            try:
                os.unlink(self._claim_path(key))
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Nothing to close (no open handles); kept for the old interface."""


_MISSING = object()


class FileCache:
    """A dict-like cache of bytes, str or array values in a :class:`ResultStore` folder (no pickle, no SQLite).

    For derived data that is cheap to recompute (gallery pictures, map projections). ``bytes`` are
    kept as a ``uint8`` array; anything unreadable is a miss. Use it as a context manager or call
    :meth:`close` (nothing to release; kept for the old diskcache-style call sites).

    >>> import tempfile
    >>> with FileCache(tempfile.mkdtemp()) as cache:
    ...     cache.set("k1", b"GIF89a"); cache.get("k1"), "k1" in cache, len(cache)
    (b'GIF89a', True, 1)
    """

    def __init__(self, directory: str | os.PathLike):
        self._store = ResultStore(directory)
        self.directory = self._store.directory

    def get(self, key: str, default=None):
        value = self._store.get(key, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, dict) and set(value) == {"bytes"}:
            return value["bytes"].tobytes()
        return value["value"] if isinstance(value, dict) and set(value) == {"value"} else default

    def set(self, key: str, value) -> None:
        if isinstance(value, (bytes, bytearray)):
            self._store.put(key, {"bytes": np.frombuffer(bytes(value), dtype=np.uint8)})
        else:
            self._store.put(key, {"value": value})

    __setitem__ = set

    def __getitem__(self, key: str):
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: str) -> bool:
        return key in self._store

    def __iter__(self):
        """The keys of readable entries (each entry records its own key)."""
        for path in sorted(self._store._results.glob("*/*.npz")):
            try:
                with np.load(path, allow_pickle=False) as z:
                    yield json.loads(bytes(z["__meta__"]).decode("utf-8"))["key"]
            except Exception:  # noqa: BLE001 - an unreadable entry is not a key
                continue

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def close(self) -> None:
        pass

    def __enter__(self) -> FileCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
