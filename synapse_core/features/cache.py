"""Content-addressed, process-safe store of per-synapse extraction results (diskcache).

A key is a hash of everything a result depends on (:func:`hash_key`): the synapse's input data
window and table row, the crop settings, the model identity (checkpoint sha256 or untrained
seed), layer, pooling, precision, :data:`FEATURE_CODE_VERSION` and a digest of the source of
the modules that compute results (:func:`code_fingerprint`). Nothing else: batch size,
device, worker count and clustering settings are not inputs, so changing them re-uses results.

Results are written one batch at a time, so an interrupted run resumes where it stopped. Two
processes that want the same key at once agree through :meth:`FeatureCache.claim`: the first
computes, the second waits for the stored result. A claim held by a process that died is taken
over (same host: the pid is gone; any host: older than ``claim_ttl_s``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import socket
import time
from pathlib import Path

import diskcache
import numpy as np

#: Bump when a change in crops/features/morphology code changes results; old entries are then ignored.
FEATURE_CODE_VERSION = "features-1"

#: Modules whose code decides a cached result; their source is part of every key, so an edit to any
#: of them can never serve a stale result (at the price of recomputing after cosmetic edits).
RESULT_MODULES = (
    "synapse_core.data.volumes", "synapse_core.data.labels", "synapse_core.crops.build", "synapse_core.crops.components",
    "synapse_core.crops.presynaptic", "synapse_core.crops.segmentation_types", "synapse_core.features.morphology",
    "synapse_core.features.jobs", "synapse_core.features.vgg3d", "synapse_core.features.net", "synapse_core.features.pooling",
)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Digest of the source of :data:`RESULT_MODULES` (read from disk, nothing imported)."""
    h = hashlib.blake2b(digest_size=8)
    for name in RESULT_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and os.path.exists(spec.origin):
            with open(spec.origin, "rb") as f:
                h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()

_HOST = socket.gethostname()


def array_digest(a: np.ndarray) -> str:
    """Hex digest of an array's dtype, shape and bytes."""
    a = np.ascontiguousarray(a)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.data)
    return h.hexdigest()


def _canonical(value):
    if isinstance(value, np.ndarray):
        return {"array": array_digest(value)}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        return value.item()
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "__dataclass_fields__"):
        return {"__type__": type(value).__name__,
                **{k: _canonical(getattr(value, k)) for k in value.__dataclass_fields__}}
    return repr(value)


def hash_key(kind: str, **parts) -> str:
    """``kind:<hex>``, a stable hash of ``parts`` (arrays, dataclasses, plain values) and the code version."""
    text = json.dumps({"version": FEATURE_CODE_VERSION, "code": code_fingerprint(), "kind": kind,
                       **_canonical(parts)}, sort_keys=True)
    return f"{kind}:{hashlib.blake2b(text.encode(), digest_size=20).hexdigest()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FeatureCache:
    """Per-synapse results under ``directory`` (a diskcache store, safe across processes).

    Parameters
    ----------
    directory : folder of the store (created).
    claim_ttl_s : seconds after which another host's claim counts as abandoned.
    """

    def __init__(self, directory: str | os.PathLike, claim_ttl_s: float = 3600.0):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._store = diskcache.Cache(str(self.directory), size_limit=2**35, eviction_policy="none")
        self.claim_ttl_s = claim_ttl_s
        self._token = {"host": _HOST, "pid": os.getpid()}

    def get(self, key: str):
        return self._store.get(("result", key))

    def put(self, key: str, value) -> None:
        self._store.set(("result", key), value)

    def __contains__(self, key: str) -> bool:
        return ("result", key) in self._store

    def _stale(self, claim) -> bool:
        if claim is None:
            return True
        if claim["host"] == _HOST and claim["pid"] == os.getpid():
            return False
        if claim["host"] == _HOST and not _pid_alive(claim["pid"]):
            return True
        return time.time() - claim["time"] > self.claim_ttl_s

    def claim(self, key: str) -> bool:
        """True if this process may compute ``key`` (no one else is computing it); records the claim."""
        ck = ("claim", key)
        if self._store.add(ck, {**self._token, "time": time.time()}):
            return True
        with self._store.transact():
            held = self._store.get(ck)
            if held is not None and held["host"] == _HOST and held["pid"] == os.getpid():
                return True
            if self._stale(held):
                self._store.set(ck, {**self._token, "time": time.time()})
                return True
        return False

    def release(self, key: str) -> None:
        """Drop this process's claim on ``key`` (after storing its result, or on giving up)."""
        ck = ("claim", key)
        with self._store.transact():
            held = self._store.get(ck)
            if held is not None and held["host"] == _HOST and held["pid"] == os.getpid():
                self._store.delete(ck)

    def claimed_by_other(self, key: str) -> bool:
        """True while another live process holds a claim on ``key``."""
        return not self._stale(self._store.get(("claim", key)))

    def close(self) -> None:
        self._store.close()
