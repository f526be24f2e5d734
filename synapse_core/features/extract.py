"""Feature extraction, pipeline stage "features": synapses → one row of features each.

Per synapse (worker processes, :mod:`synapse_core.features.jobs`): read the context window, look
up the cache, build the crop, measure morphology. In the main process
(:class:`synapse_core.features.net.FeatureNet`): batch the crops through VGG3D and pool, or
block-average them (the pixel baseline, :mod:`synapse_core.features.pixels`), optionally averaged
over the crop's flips/rotations (:mod:`synapse_core.features.invariance`). Results
are stored per synapse in a content-addressed cache (:mod:`synapse_core.features.cache`), one
batch at a time: a re-run with unchanged inputs runs no forward pass, an interrupted run resumes,
and two processes asking for the same synapse compute it once.

Output columns, in order: ``bbox_name``, ``Var1``, the synapse table's columns, ``presynaptic_*``,
``coverage`` (fraction of the crop inside the data), ``voxel_size_nm`` and ``crop_nm`` (the crop's
isotropic voxel edge and crop edge in nm; NaN when the voxel size is unknown), ``morph_*`` (always; interpretable, see :mod:`synapse_core.features.morphology`), ``feat_1..feat_N``
(deep features, or the pixel baseline's block averages; absent for ``morphology``), then the run's settings:
``segmentation_type``, ``alpha``, ``feature_set``, ``layer``, ``pooling``, ``invariance``, ``precision``,
``checkpoint`` (``sha256:<hex>``, ``untrained (random weights, seed N)`` or ``not used (...)``),
``feature_code_version`` (version + digest of the result-deciding source code). ``feature_set`` says which columns are the features to cluster on:
``vgg3d`` and ``pixels`` → ``feat_*``, ``morphology`` → ``morph_*``, ``both`` → both.

Default: ``features="auto"``: with a checkpoint ``vgg3d`` at layer ``stage4`` (the original's
"standard" extraction: last stage after its max-pool, 192 features with ``avg``), so a run with
the original checkpoint reproduces the original tool's feature set; without one, the best feature
set that needs no download by our measurement (:data:`~synapse_core.features.settings.NO_CHECKPOINT_FEATURES`,
docs/training.md). The morphology columns always ride along for interpretation.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from synapse_core.data.cache_dir import resolve_cache_dir
from synapse_core.data.synapse_keys import synapse_rows
from synapse_core.crops.availability import check_segmentation_type_for_dataset
from synapse_core.crops.build import read_context
from synapse_core.features.jobs import (
    DeepSpec,
    PrepareJob,
    Prepared,
    crop_cache_key,
    deep_cache_key,
    open_cache,
    prepare_synapse,
)
from synapse_core.features.cache import FEATURE_CODE_VERSION, code_fingerprint, new_job_id
from synapse_core.features.executors import ExtractProgress, ProgressReporter, die_with_parent
from synapse_core.features.morphology import morphology_columns
from synapse_core.features.rerun import remember_runs
from synapse_core.features.settings import ExtractSettings

log = logging.getLogger(__name__)

SETTINGS_COLUMNS = ("segmentation_type", "alpha", "feature_set", "layer", "pooling", "invariance", "precision",
                    "checkpoint", "feature_code_version")


@dataclass
class ExtractResult:
    """Features of every synapse that could be cropped, and the ones that could not, with reasons.

    ``n_cached`` synapses came from the cache, ``n_computed`` were computed now, in
    ``n_forward_passes`` network batches. ``cancelled`` is True when ``cancel()`` stopped the run
    early (what was finished is in the cache and in ``features``).
    """

    features: pd.DataFrame
    skipped: pd.DataFrame
    n_cached: int
    n_computed: int
    n_forward_passes: int
    model_identity: str
    cancelled: bool = False
    settings: ExtractSettings | None = None


def _select_rows(dataset, bboxes, synapses=None) -> pd.DataFrame:
    rows = dataset.synapses
    if synapses is not None:  # UnknownSynapseError naming the missing ones
        rows = synapse_rows(rows, synapses, where="the valid rows of the dataset's synapse table")
    if bboxes is None:
        return rows
    bboxes = [bboxes] if isinstance(bboxes, str) else list(bboxes)
    unknown = [b for b in bboxes if b not in dataset.bboxes]
    if unknown:
        raise ValueError(f"bbox {', '.join(unknown)} not in the dataset (available: {', '.join(dataset.bboxes)})")
    return rows[rows["bbox_name"].isin(bboxes)]


def _dataset_skips(dataset, bboxes) -> list[dict]:
    """Rows the data layer already rejected, as skipped rows with their reasons."""
    issues = getattr(getattr(dataset, "report", None), "row_issues", None)
    if issues is None or len(issues) == 0:
        return []
    if bboxes is not None:
        issues = issues[issues["bbox_name"].isin([bboxes] if isinstance(bboxes, str) else list(bboxes))]
    out = []
    for (b, v), group in issues.groupby(["bbox_name", "Var1"], sort=False, dropna=False):
        reason = "; ".join(f"{r.column}: {r.problem}" for r in group.itertuples())
        out.append({"bbox_name": str(b), "Var1": str(v), "reason": f"invalid table row ({reason})"})
    return out


class FeatureModel:
    """The network of an extraction, built on first use (a fully cached run never builds it).

    Build one per set of model settings and pass it to :func:`extract_features` (``model=``) to keep
    it loaded across runs, e.g. in a dashboard's ``st.cache_resource``; :meth:`key` says which
    settings it depends on. A bad checkpoint fails here, before any work; ``checkpoint`` is the
    checked :class:`~synapse_core.features.checkpoints.CheckpointInfo` (None for an untrained network);
    its weights (the trunk only) are read when the first synapse needs the network.
    """

    def __init__(self, settings: ExtractSettings):
        from synapse_core.features.checkpoints import crop_mismatch, inspect_checkpoint, untrained_identity
        from synapse_core.features.net import resolve_device
        from synapse_core.features.vgg3d import parse_layers

        self.settings = settings
        self.device = resolve_device(settings.device)  # a missing GPU fails before any work
        self.config = settings.network_config()
        self._net = None
        self.checkpoint = None
        self.input_size = None  # (z, y, x) voxels a trained checkpoint's network expects; crops are resampled to it
        if settings.checkpoint:
            # Check now (a bad file fails before any work), without reading weights: the memory-mapped file's
            # keys, shapes and metadata, and its memoised sha256. The weights load at the first cache miss.
            self.checkpoint = inspect_checkpoint(settings.checkpoint, self.config)
            self.identity = self.checkpoint.identity
            if self.checkpoint.metadata is not None:  # from `train`: its width and input size are the file's
                self.config = self.checkpoint.config
                self.input_size = self.config.input_size
                for problem in crop_mismatch(self.checkpoint.metadata, settings.crop):
                    log.warning("checkpoint %s: %s", settings.checkpoint, problem)
        else:
            self.identity = untrained_identity(settings.seed)
        self.layers = parse_layers(settings.layer, self.config)
        # The group average is part of how a crop becomes a vector, so it goes into the cache key with the
        # pooling ("avg" alone without invariance: keys of earlier runs stay valid).
        pooling = settings.pooling if settings.invariance == "none" else f"{settings.pooling}, mean over " \
                                                                        f"{settings.invariance}"
        self.spec = DeepSpec(self.identity, repr(self.config), ",".join(l.name for l in self.layers),
                             pooling, settings.precision)
        self.forward_passes = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(settings: ExtractSettings) -> tuple:
        """The settings a model depends on; runs whose keys are equal can share one model."""
        return (settings.checkpoint, settings.layer, settings.pooling, settings.precision, settings.device,
                settings.seed, settings.fmaps, settings.crop.size, settings.invariance)

    def net(self):
        with self._lock:  # one build when several sessions share this model
            return self._build()

    def _build(self):
        if self._net is None:
            from synapse_core.features.checkpoints import load_checkpoint, load_model
            from synapse_core.features.net import FeatureNet

            # Untrained: the head is never used and its init comes after the trunk's, so a 1-unit head
            # gives the same trunk weights without 100M random parameters. A checkpoint: its trunk only.
            if self.checkpoint is not None:
                loaded = load_checkpoint(self.checkpoint.path, self.config, classifier=False)
            else:
                loaded = load_model(None, dataclasses.replace(self.config, classifier_width=1),
                                    seed=self.settings.seed)
            self._net = FeatureNet(loaded.model, self.layers, self.settings.pooling, self.device,
                                   self.settings.precision)
        return self._net

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        from synapse_core.features.invariance import group_average

        self.forward_passes += 1
        if self.input_size is not None and tuple(crops.shape[1:]) != tuple(self.input_size):
            import torch

            from synapse_core.features.augment import resize

            # The trained network saw crops area-averaged to its input size; do the same here.
            crops = resize(torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))[:, None],
                           self.input_size[0])[:, 0].numpy()
        # After the resize: the average over the group of the network's own input is exactly invariant.
        return group_average(self.net(), crops, self.settings.invariance)


def _executor(workers: int):
    if workers <= 0:
        return None
    # forkserver (spawn where missing), not fork: TensorStore, which reads Zarr windows, aborts a process
    # forked after it started (the dashboard reads crops before it extracts), and HDF5 handles must
    # not cross fork. Workers import only synapse_core.features.jobs (numpy/scipy, never torch),
    # preloaded once by the server; as with any non-fork start, a calling script needs a __main__ guard.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["synapse_core.features.jobs", "synapse_core.features.executors"])
    # A killed run must not leave its crop workers behind (they watch this process's pid).
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=die_with_parent,
                               initargs=(os.getpid(),))


def _prepared_stream(jobs: list[PrepareJob], workers: int, window: int):
    """Yield :class:`Prepared` in job order; with workers, up to ``window`` jobs run ahead."""
    pool = _executor(workers)
    if pool is None:
        for job in jobs:
            yield prepare_synapse(job)
        return
    try:
        pending = collections.deque()
        it = iter(jobs)
        for job in it:
            pending.append(pool.submit(prepare_synapse, job))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(prepare_synapse, nxt))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@remember_runs(ExtractResult)  # an unchanged rerun returns its stored table without reading volumes
def extract_features(dataset, settings: ExtractSettings = ExtractSettings(), cache_dir=None, bboxes=None,
                     progress: Callable[[int, int], None] | None = None,
                     cancel: Callable[[], bool] | None = None, use_cache: bool = True,
                     synapses=None, model: FeatureModel | None = None, job_id: str | None = None,
                     status: Callable[[ExtractProgress], None] | None = None) -> ExtractResult:
    """Extract features of every valid synapse of ``dataset`` (optionally only ``bboxes``).

    Parameters
    ----------
    dataset : synapse_core.data.dataset.Dataset (``open_dataset``).
    settings : ExtractSettings.
    cache_dir : folder of the caches (default: the project's ``cache/``); results live in
        ``<cache_dir>/features``.
    bboxes : bbox name or names to restrict to; None for all.
    progress : called as ``progress(done, total)`` after each synapse.
    cancel : polled between synapses; returning True stops the run (finished batches are kept).
    use_cache : False computes everything and stores nothing.
    synapses : iterable of (bbox_name, Var1) to restrict to; None for all.
    model : a :class:`FeatureModel` built for settings with the same :meth:`FeatureModel.key`, to reuse
        a loaded network across runs; None builds one for this run.
    job_id : identity of this run's claims in the result store: two runs with different ids split the
        synapses both want (one computes, the other waits for its result); a dashboard job shared by
        several users passes one id. None: a new id for this call.
    status : called with an :class:`~synapse_core.features.executors.ExtractProgress` (done, total,
        failed, rate, ETA, Dask dashboard) whenever ``progress`` is.

    ``settings.executor`` chooses where the per-synapse work runs: ``local`` (``settings.workers``
    crop processes, the network in this process) or ``dask`` (:func:`synapse_core.features.executors.run_dask`).

    Returns
    -------
    ExtractResult

    Examples
    --------
    >>> ds = open_dataset("DATA")                                                   # doctest: +SKIP
    >>> s = ExtractSettings(crop=CropSettings(segmentation_type=10, alpha=1.0),
    ...                     checkpoint="hemibrain_production.checkpoint", layer="stage4")  # doctest: +SKIP
    >>> r = extract_features(ds, s)                                                 # doctest: +SKIP
    >>> r.features.filter(like="feat_").shape, r.n_cached, r.skipped                # doctest: +SKIP
    """
    rows = _select_rows(dataset, bboxes, synapses)
    # A type the data cannot build (no mask, a "none" label) is an error before any work, never gray crops.
    check_segmentation_type_for_dataset(dataset, settings.crop, bboxes=sorted(set(rows["bbox_name"].astype(str))))
    if model is not None and FeatureModel.key(model.settings) != FeatureModel.key(settings):
        raise ValueError("model= was built for other model settings (checkpoint, layer, pooling, precision, device, "
                         "seed, fmaps or crop size) than this run's; build a FeatureModel for these settings")
    deep = _vector_model(settings, model)
    passes_before = deep.forward_passes if deep else 0
    if settings.deep and not settings.checkpoint:
        log.warning("no checkpoint given: deep features come from an %s VGG3D; outputs record this", deep.identity)
        if settings.precision == "bf16":
            log.warning("bf16 with an untrained network: its features differ between synapses by less than "
                        "bf16 rounding (benchmarks/extract.py), so clusters may reflect rounding; use fp32")
    cache_root = str(resolve_cache_dir(cache_dir) / "features") if use_cache else None
    job_id = job_id or new_job_id()
    cache = open_cache(cache_root, job=job_id) if cache_root is not None else None
    progress = ProgressReporter(progress, status)
    voxel = tuple(float(v) for v in dataset.voxel_size_nm) if dataset.voxel_size_nm is not None else None
    records = rows.to_dict("records")
    jobs = [PrepareJob(dataset.bboxes[str(r["bbox_name"])], r, settings.crop, voxel,
                       deep.spec if deep else None, cache_root) for r in records]
    total = len(jobs)
    results: dict[int, dict] = {}  # job index → {"crop": crop_result, "deep": vector}
    skipped: list[dict] = _dataset_skips(dataset, bboxes) if synapses is None else []
    n_cached = n_computed = 0
    batch: list[tuple[int, Prepared]] = []
    deferred: list[int] = []  # another process is computing these
    claimed: set[str] = set()
    cancelled = False
    done = 0

    def store_crop(p: Prepared):
        if cache is not None and not p.crop_cached and p.crop_key is not None and not p.error:
            cache.put(p.crop_key, p.crop_result)

    def flush():
        nonlocal n_computed, done
        if not batch:
            return
        vectors = deep(np.stack([p.blended for _, p in batch]))
        for (i, p), vec in zip(batch, vectors):
            vec = vec.astype(np.float32)
            if cache is not None:
                cache.put(p.deep_key, vec)
                cache.release(p.deep_key)
                claimed.discard(p.deep_key)
            results[i]["deep"] = vec
            n_computed += 1
            done += 1
            if progress:
                progress(done, total)
        batch.clear()

    def finish(i: int, n_from_cache: bool):
        nonlocal n_cached, n_computed, done
        if n_from_cache:
            n_cached += 1
        else:
            n_computed += 1
        done += 1
        if progress:
            progress(done, total)

    if settings.executor == "dask":  # the per-synapse work and the network run on the cluster's workers
        from synapse_core.features.executors import run_dask

        out = run_dask(jobs, settings, job_id, functools.partial(_vector_model, model=None), progress=progress,
                       cancel=cancel)
        features, skipped_df = _assemble(records, out.results, skipped, settings, deep.identity if deep else None,
                                         deep.spec.layer if deep else "", voxel_known=voxel is not None)
        log.info("extract (dask): %d synapses, %d from cache, %d computed in %d forward passes on %d workers, "
                 "%d skipped, %d in failed tasks%s", total, out.n_cached, out.n_computed, out.n_forward_passes,
                 len(out.worker_pids), len(skipped_df), out.failed, " (cancelled)" if out.cancelled else "")
        return ExtractResult(features, skipped_df, out.n_cached, out.n_computed, out.n_forward_passes,
                             deep.identity if deep else "not used (morphology only)", out.cancelled, settings)
    window = 2 * settings.batch_size + settings.workers
    stream = _prepared_stream(jobs, settings.workers, window)
    try:
        for i, p in enumerate(stream):
            if cancel is not None and cancel():
                cancelled = True
                break
            store_crop(p)
            results[i] = {"crop": p.crop_result, "deep": p.deep, "deep_key": p.deep_key}
            if p.crop_result["discarded"] or not settings.vectors or p.deep is not None:
                finish(i, p.crop_cached)
                continue
            if cache is not None:
                if not cache.claim(p.deep_key):
                    deferred.append(i)
                    continue
                vec = cache.get(p.deep_key)
                if vec is not None:  # another process stored it since this synapse was looked up
                    cache.release(p.deep_key)
                    results[i]["deep"] = vec
                    finish(i, True)
                    continue
                claimed.add(p.deep_key)
            batch.append((i, p))
            if len(batch) >= settings.batch_size:
                flush()
        if not cancelled:
            flush()
            n_cached_extra, n_computed_extra = _resolve_deferred(deferred, jobs, results, cache, deep, cancel)
            n_cached += n_cached_extra
            n_computed += n_computed_extra
            done += len(deferred)
            if progress and deferred:
                progress(done, total)
    finally:
        stream.close()
        if cache is not None:
            for key in list(claimed):
                cache.release(key)

    passes = deep.forward_passes - passes_before if deep else 0
    features, skipped_df = _assemble(records, results, skipped, settings, deep.identity if deep else None,
                                     deep.spec.layer if deep else "", voxel_known=voxel is not None)
    log.info("extract: %d synapses, %d from cache, %d computed in %d forward passes, %d skipped%s", total, n_cached,
             n_computed, passes, len(skipped_df), " (cancelled)" if cancelled else "")
    return ExtractResult(features, skipped_df, n_cached, n_computed, passes,
                         deep.identity if deep else "not used (morphology only)", cancelled, settings)


def _vector_model(settings: ExtractSettings, model: FeatureModel | None):
    """What turns blended crops into vectors: the network (deep features), the pixel baseline, or None."""
    if settings.deep:
        return model or FeatureModel(settings)
    if settings.pixels:
        from synapse_core.features.pixels import PixelModel

        return PixelModel(settings)
    return None


def _resolve_deferred(deferred, jobs, results, cache, deep, cancel, poll_s: float = 0.2):
    """Wait for synapses another process is computing; compute them here if that process goes away.

    Returns (n_cached, n_computed).
    """
    n_cached = n_computed = 0
    waiting = list(deferred)
    while waiting:
        still = []
        for i in waiting:
            key = results[i]["deep_key"]
            vec = cache.get(key)
            if vec is not None:
                results[i]["deep"] = vec
                n_cached += 1
            elif cache.claim(key):
                try:
                    p = prepare_synapse(jobs[i])
                    if p.deep is not None:
                        results[i]["deep"] = p.deep
                        n_cached += 1
                    else:
                        vec = deep(p.blended[None])[0].astype(np.float32)
                        cache.put(key, vec)
                        results[i]["deep"] = vec
                        n_computed += 1
                finally:
                    cache.release(key)
            else:
                still.append(i)
        if still:
            if cancel is not None and cancel():
                break
            time.sleep(poll_s)
        waiting = still
    return n_cached, n_computed


def _settings_columns(settings: ExtractSettings, identity: str | None, layer_names: str) -> dict:
    return {
        "segmentation_type": settings.crop.segmentation_type,
        "alpha": settings.crop.alpha,
        "feature_set": settings.feature_set,
        "layer": layer_names if settings.deep else "",
        "pooling": settings.pooling if settings.deep else "",
        "invariance": settings.invariance if settings.vectors else "",
        "precision": settings.precision if settings.deep else "",
        "checkpoint": identity if identity is not None else "not used (morphology only)",
        "feature_code_version": f"{FEATURE_CODE_VERSION}+{code_fingerprint()}",
    }


def _assemble(records, results, skipped, settings, identity, layer_names, voxel_known):
    """The features table (rows in table order) and the skipped table."""
    meta, vectors = [], []
    for i, rec in enumerate(records):
        res = results.get(i)
        if res is None:
            continue  # not reached (cancelled run)
        crop = res["crop"]
        if crop["discarded"]:
            skipped.append({"bbox_name": str(rec["bbox_name"]), "Var1": str(rec["Var1"]), "reason": crop["discarded"]})
            continue
        if settings.vectors and res["deep"] is None:
            continue  # still being computed elsewhere when the run was cancelled
        meta.append({**rec, **crop["presynaptic"], **crop.get("grid", {}), **crop["morph"]})
        if settings.vectors:
            vectors.append(res["deep"])
    table_cols = list(records[0]) if records else ["bbox_name", "Var1"]
    features = pd.DataFrame(meta)
    if features.empty:
        features = pd.DataFrame(columns=table_cols + morphology_columns(voxel_known))
    if vectors:
        mat = np.stack(vectors).astype(np.float32)
        feat = pd.DataFrame(mat, columns=[f"feat_{j + 1}" for j in range(mat.shape[1])], index=features.index)
        features = pd.concat([features, feat], axis=1)
    for k, v in _settings_columns(settings, identity, layer_names).items():
        features[k] = v
    skipped_df = pd.DataFrame(skipped, columns=["bbox_name", "Var1", "reason"])
    return features, skipped_df


def cache_status(dataset, settings: "ExtractSettings", cache_dir=None, bboxes=None,
                 progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """``(n_cached, n_to_compute)`` of ``extract_features(dataset, settings, cache_dir, bboxes)``.

    Reads each synapse's context window and looks up its cache keys, without building crops or
    running the network: one window read per synapse (tens of ms), so callers run it on request.
    A synapse counts as cached when its crop result is cached and, for deep features, its
    feature vector too (or the crop was discarded, which needs no vector). Rows whose context
    cannot be read count as cached: the run skips them without computing anything.
    """
    rows = _select_rows(dataset, bboxes)
    vectors = _vector_model(settings, None)
    spec = vectors.spec if vectors is not None else None
    cache = open_cache(str(resolve_cache_dir(cache_dir) / "features"))
    voxel = tuple(float(v) for v in dataset.voxel_size_nm) if dataset.voxel_size_nm is not None else None
    n_cached = 0
    keys: list[tuple[str, str | None]] = []  # (crop key, vector key) per readable synapse
    records = rows.to_dict("records")
    for i, row in enumerate(records, start=1):
        try:
            ctx = read_context(dataset.bboxes[str(row["bbox_name"])], row, settings.crop)
        except ValueError:
            n_cached += 1
            if progress:
                progress(i, len(records))
            continue
        crop_key = crop_cache_key(ctx, settings.crop, voxel)
        keys.append((crop_key, deep_cache_key(crop_key, spec) if spec is not None else None))
        if progress:
            progress(i, len(records))
    present = cache.contains_many(k for pair in keys for k in pair if k is not None)  # one listing per shard
    for crop_key, deep_key in keys:
        if crop_key in present and (deep_key is None or deep_key in present or
                                    (cache.get(crop_key) or {}).get("discarded")):  # discarded: no vector needed
            n_cached += 1
    return n_cached, len(records) - n_cached
