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
import importlib.util
import os
import socket
import time
from pathlib import Path

import diskcache

from synapse_core.data.hashing import content_hash

#: Bump when a change in crops/features/morphology code changes results; old entries are then ignored.
FEATURE_CODE_VERSION = "features-2"

#: Modules whose code decides a cached result; their source is part of every key, so an edit to any
#: of them can never serve a stale result (at the price of recomputing after cosmetic edits).
RESULT_MODULES = (
    "synapse_core.data.volumes", "synapse_core.data.windows", "synapse_core.data.labels", "synapse_core.crops.build", "synapse_core.crops.settings",
    "synapse_core.crops.components", "synapse_core.crops.resample", "synapse_core.crops.orient",
    "synapse_core.crops.presynaptic", "synapse_core.crops.segmentation_types", "synapse_core.features.morphology",
    "synapse_core.features.jobs", "synapse_core.features.vgg3d", "synapse_core.features.net", "synapse_core.features.pooling",
)


def source_fingerprint(modules) -> str:
    """Digest (16 hex characters) of the source files of ``modules`` (dotted names), read from disk.

    Raises
    ------
    ModuleNotFoundError
        A module has no source file (renamed or removed); the message names it.
    """
    sources = {}
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:  # a parent package is missing
            spec = None
        if spec is None or not spec.origin or not os.path.exists(spec.origin):
            raise ModuleNotFoundError(
                f"module {name!r} has no source file: it was renamed or removed; update RESULT_MODULES in "
                "synapse_core/features/cache.py", name=name)
        with open(spec.origin, "rb") as f:
            sources[name] = f.read().decode("utf-8")
    return content_hash(sources, digest_size=8)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """:func:`source_fingerprint` of :data:`RESULT_MODULES` (part of every key)."""
    return source_fingerprint(RESULT_MODULES)


_HOST = socket.gethostname()


def hash_key(kind: str, **parts) -> str:
    """``kind:<hex>``, a stable hash of ``parts`` (arrays, dataclasses, plain values) and the code version."""
    return f"{kind}:{content_hash({'version': FEATURE_CODE_VERSION, 'code': code_fingerprint(), 'kind': kind, **parts})}"


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

    def close(self) -> None:
        self._store.close()
