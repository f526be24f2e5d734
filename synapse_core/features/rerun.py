"""A rerun of an unchanged extraction returns its stored result without reading any volume.

:func:`synapse_core.features.extract.extract_features` asks :func:`lookup` first. The key of a run
(:func:`run_key`) is cheap to compute and changes whenever the result could:

* the dataset: every selected bbox's sources (path, kind and the stat fingerprint of each volume:
  file names, sizes, mtimes, never their bytes), shape, offset, voxel size and label ids, the synapse
  table's contents (a hash of the DataFrame) and the rows the data layer rejected;
* the selection (``bboxes``, ``synapses``);
* the result-deciding settings (:class:`~synapse_core.features.settings.ExtractSettings` without the
  fields that only say where or how fast the work runs, :data:`EXECUTION_FIELDS`) and the
  checkpoint file's (path, size, mtime);
* the code: :data:`~synapse_core.features.cache.FEATURE_CODE_VERSION` and the source of the
  result-deciding modules plus the assembly (``features.extract``) and this module.

A stored result is the assembled feature table and the skipped table as Parquet files (never
pickle) plus a small JSON record, under ``<cache_dir>/runs/<key>/``, written to a temporary folder
and renamed into place (a reader sees a whole entry or none). Anything unreadable counts as a miss
(the per-synapse cache then answers). With a changed dataset the run goes the normal way and only
what changed is computed (the per-synapse cache, :mod:`synapse_core.features.cache`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from synapse_core.data.atomic import atomic_folder

log = logging.getLogger(__name__)

#: Folder of stored run results inside the cache directory.
RUNS_FOLDER = "runs"
#: Settings that decide where or how fast a run goes, not its result (not part of the key).
EXECUTION_FIELDS = ("workers", "batch_size", "executor", "dask_workers", "scheduler")
#: Modules whose source decides an assembled table, besides the per-synapse ones of features.cache.
ASSEMBLY_MODULES = ("synapse_core.features.extract", "synapse_core.features.rerun")


@dataclass(frozen=True)
class StoredRun:
    """A stored extraction result: the tables and what the run reported."""

    features: pd.DataFrame
    skipped: pd.DataFrame
    n_synapses: int
    model_identity: str


def _table_digest(df: pd.DataFrame | None) -> str:
    """Digest of a table's columns, dtypes and values (index ignored)."""
    from synapse_core.data.hashing import content_hash

    if df is None:
        return "none"
    values = pd.util.hash_pandas_object(df.reset_index(drop=True), index=False).to_numpy()
    return content_hash({"columns": [str(c) for c in df.columns], "dtypes": [str(t) for t in df.dtypes],
                         "values": values})


def _checkpoint_stat(path: str | None) -> list | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), "missing"]  # extraction itself reports the missing file
    return [os.path.realpath(path), st.st_size, st.st_mtime_ns]


def run_key(dataset, settings, bboxes=None, synapses=None) -> str:
    """Hex key of an extraction of ``dataset`` with ``settings`` (see the module docstring); no volume is read."""
    from synapse_core.data.hashing import content_hash
    from synapse_core.features.cache import (
        FEATURE_CODE_VERSION,
        code_fingerprint,
        source_fingerprint,
    )

    names = sorted(dataset.bboxes) if bboxes is None else sorted([bboxes] if isinstance(bboxes, str) else bboxes)
    sources = [repr(dataset.bboxes[n]) if n in dataset.bboxes else f"{n}: absent" for n in names]
    issues = getattr(getattr(dataset, "report", None), "row_issues", None)
    relevant = {k: v for k, v in asdict(settings).items() if k not in EXECUTION_FIELDS}
    return content_hash({
        "kind": "extract-run",
        "code": [FEATURE_CODE_VERSION, code_fingerprint(), source_fingerprint(ASSEMBLY_MODULES)],
        "bboxes": names if bboxes is not None else None,
        "synapses": None if synapses is None else sorted((str(b), str(v)) for b, v in synapses),
        "sources": sources,
        "voxel_size_nm": getattr(dataset, "voxel_size_nm", None),
        "table": _table_digest(dataset.synapses),
        "row_issues": _table_digest(issues if isinstance(issues, pd.DataFrame) else None),
        "settings": relevant,
        "checkpoint_file": _checkpoint_stat(getattr(settings, "checkpoint", None)),
    }, digest_size=16)


def _folder(cache_dir, key: str) -> Path:
    from synapse_core.data.cache_dir import resolve_cache_dir

    return resolve_cache_dir(cache_dir) / RUNS_FOLDER / key


def lookup(cache_dir, key: str) -> StoredRun | None:
    """The stored result of the run ``key``, or None (never stored, or unreadable)."""
    folder = _folder(cache_dir, key)
    record = folder / "run.json"
    if not record.is_file():
        return None
    try:
        meta = json.loads(record.read_text())
        features = pd.read_parquet(folder / "features.parquet")
        skipped = pd.read_parquet(folder / "skipped.parquet")
    except (OSError, ValueError, ImportError) as exc:
        log.warning("stored run %s cannot be read (%s); extracting the usual way", folder, exc)
        return None
    return StoredRun(features, skipped, int(meta["n_synapses"]), str(meta["model_identity"]))


def store(cache_dir, key: str, features: pd.DataFrame, skipped: pd.DataFrame, n_synapses: int | None = None,
          model_identity: str = "") -> bool:
    """Store a finished run's tables under ``key``; False (and a log line) when they cannot be written as Parquet."""
    folder = _folder(cache_dir, key)
    try:
        with atomic_folder(folder, replace=True) as tmp:
            features.to_parquet(tmp / "features.parquet", index=False)
            skipped.to_parquet(tmp / "skipped.parquet", index=False)
            n = len(features) + len(skipped) if n_synapses is None else int(n_synapses)
            (tmp / "run.json").write_text(json.dumps({"n_synapses": n, "model_identity": model_identity,
                                                      "rows": len(features), "skipped": len(skipped)}))
        return True
    except (OSError, ValueError, TypeError, ImportError) as exc:  # e.g. a column Parquet cannot hold
        log.info("run result not stored for quick reruns (%s: %s)", type(exc).__name__, exc)
        return False


def remember_runs(result_type):
    """Decorator of ``extract_features``: an unchanged run returns its stored result; a finished one is stored.

    ``result_type`` is the result class (``ExtractResult``), built from a stored run with every
    synapse counted as cached and no forward pass. Runs with ``use_cache=False`` or cancelled runs
    are neither looked up nor stored.
    """
    import functools
    import inspect

    def wrap(extract):
        signature = inspect.signature(extract)

        @functools.wraps(extract)
        def remembered(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            a = bound.arguments
            if not a.get("use_cache", True):
                return extract(*args, **kwargs)
            try:
                key = run_key(a["dataset"], a["settings"], a.get("bboxes"), a.get("synapses"))
            except (AttributeError, TypeError, KeyError, ValueError) as exc:  # e.g. a dataset-like test double
                log.debug("no run key (%s); extracting the usual way", exc)
                return extract(*args, **kwargs)
            hit = lookup(a.get("cache_dir"), key)
            if hit is not None:
                log.info("extract: unchanged dataset and settings, %d synapses from the stored run %s",
                         hit.n_synapses, key)
                if a.get("progress") is not None:
                    a["progress"](hit.n_synapses, hit.n_synapses)
                return result_type(features=hit.features, skipped=hit.skipped, n_cached=hit.n_synapses,
                                   n_computed=0, n_forward_passes=0, model_identity=hit.model_identity,
                                   cancelled=False, settings=a["settings"])
            result = extract(*args, **kwargs)
            if not result.cancelled:
                store(a.get("cache_dir"), key, result.features, result.skipped,
                      result.n_cached + result.n_computed, result.model_identity)
            return result

        remembered.run_key = run_key
        return remembered

    return wrap
