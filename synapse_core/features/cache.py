"""Content-addressed, multi-host store of per-synapse extraction results (:mod:`.store`).

A key is a hash of everything a result depends on (:func:`hash_key`): the synapse's input data
window and table row, the crop settings, the model identity (checkpoint sha256 or untrained
seed), layer, pooling, precision, :data:`FEATURE_CODE_VERSION` and a digest of the source of
the modules that compute results (:func:`code_fingerprint`). Nothing else: batch size,
device, worker count, executor and clustering settings are not inputs, so changing them re-uses results.

Results are files in a folder (one ``.npz`` per key, written atomically, read without pickle), so
many processes on many hosts can share one store on a shared file system. Results are written
one batch at a time, so an interrupted run resumes where it stopped. Two jobs that want the same
key at once agree through :meth:`FeatureCache.claim`: the first computes, the second waits for the
stored result. Claims name the job (:meth:`FeatureCache.for_job`), not the process; a claim whose
process died is taken over (same host: the pid is gone; any host: older than ``claim_ttl_s``).
"""

from __future__ import annotations

import functools

from synapse_core.data.hashing import content_hash, source_fingerprint
from synapse_core.features.store import ResultStore, StoreError, new_job_id

__all__ = ["FEATURE_CODE_VERSION", "RESULT_MODULES", "FeatureCache", "StoreError", "code_fingerprint", "hash_key",
           "new_job_id", "source_fingerprint"]

#: Bump when a change in crops/features/morphology code changes results; old entries are then ignored.
FEATURE_CODE_VERSION = "features-2"

#: Modules whose code decides a cached result; their source is part of every key, so an edit to any
#: of them can never serve a stale result (at the price of recomputing after cosmetic edits).
RESULT_MODULES = (
    "synapse_core.data.volumes", "synapse_core.data.windows", "synapse_core.data.labels", "synapse_core.crops.build", "synapse_core.crops.settings",
    "synapse_core.crops.components", "synapse_core.crops.resample", "synapse_core.crops.orient",
    "synapse_core.crops.presynaptic", "synapse_core.crops.segmentation_types", "synapse_core.features.morphology",
    "synapse_core.features.jobs", "synapse_core.features.vgg3d", "synapse_core.features.net", "synapse_core.features.pooling",
    # pixels/invariance compute vectors; augment's resize maps crops to a trained network's input size
    "synapse_core.features.pixels", "synapse_core.features.invariance", "synapse_core.features.augment",
)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """:func:`source_fingerprint` of :data:`RESULT_MODULES` (part of every key)."""
    return source_fingerprint(RESULT_MODULES)


def hash_key(kind: str, **parts) -> str:
    """``kind:<hex>``, a stable hash of ``parts`` (arrays, dataclasses, plain values) and the code version."""
    return f"{kind}:{content_hash({'version': FEATURE_CODE_VERSION, 'code': code_fingerprint(), 'kind': kind, **parts})}"


class FeatureCache(ResultStore):
    """Per-synapse results under ``directory`` (a :class:`~synapse_core.features.store.ResultStore`).

    Parameters
    ----------
    directory : folder of the store (created).
    claim_ttl_s : seconds after which a claim counts as abandoned whatever its host.
    job : the job whose claims this object makes (default: a new id); see :meth:`for_job`.
    """
