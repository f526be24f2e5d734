"""The per-synapse half of feature extraction that needs no network: crop, morphology, cache keys.

:func:`prepare_synapse` is a function of plain, picklable data (a ``BboxSource``, a row as a
dict, frozen settings), run in worker processes (or a future Dask cluster) while the main
process runs the network. It does not import torch.

Cache keys (:func:`synapse_core.features.cache.hash_key`):

* ``crop:…`` = the synapse's context (raw/seg/mask windows as read, points, presynaptic record,
  label ids) + crop settings + voxel size → presynaptic record, morphology, or the discard reason;
* ``deep:…`` = the crop key + model identity + network shape + layer + pooling + precision → the
  pooled feature vector.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from synapse_core.crops.build import Discarded, build_crop, read_context
from synapse_core.crops.settings import CropSettings
from synapse_core.features.cache import FeatureCache, hash_key
from synapse_core.features.morphology import morphology_features


@dataclass(frozen=True)
class DeepSpec:
    """What decides a deep feature vector besides the crop (part of its cache key)."""

    model_identity: str  # "sha256:…" or "untrained (random weights, seed N)"
    network: str  # repr of the Vgg3DConfig
    layer: str  # canonical layer names, comma-separated
    pooling: str
    precision: str


@dataclass(frozen=True)
class PrepareJob:
    """One synapse to prepare: where its data is and how to crop it (plain, picklable)."""

    bbox: object  # synapse_core.data.dataset.BboxSource
    row: dict  # the synapse-table row (bbox_name, Var1, coordinates, ...)
    crop: CropSettings
    voxel_size_nm: tuple | None
    deep: DeepSpec | None  # None: morphology only
    cache_dir: str | None  # None: no cache


@dataclass(frozen=True, eq=False)
class Prepared:
    """The outcome of :func:`prepare_synapse` for one synapse (key always kept with it).

    ``crop_result`` is ``{"discarded": reason or None, "presynaptic": {...}, "morph": {...}}``;
    ``deep`` the cached feature vector or None; ``blended`` the network input (z, y, x) float32
    when the deep vector still has to be computed, else None.
    """

    bbox_name: str
    var1: str
    crop_key: str | None
    deep_key: str | None
    crop_result: dict | None
    crop_cached: bool
    deep: np.ndarray | None
    blended: np.ndarray | None
    error: bool = False  # an unexpected failure: reported as skipped, never cached


_CACHES: dict[tuple[int, str], FeatureCache] = {}


def open_cache(cache_dir: str | os.PathLike, job: str | None = None) -> FeatureCache:
    """This process's :class:`FeatureCache` for ``cache_dir``, making claims for ``job``.

    The store holds no open handles, so one object per process and folder is kept only to avoid
    re-creating folders; ``job`` (e.g. one id per extraction run or dashboard job) decides whose
    claims :meth:`FeatureCache.claim` makes. Without it, claims are this process's.
    """
    key = (os.getpid(), str(cache_dir))
    if key not in _CACHES:
        _CACHES[key] = FeatureCache(key[1])
    return _CACHES[key] if job is None else _CACHES[key].for_job(job)


def crop_cache_key(ctx, crop: CropSettings, voxel_size_nm) -> str:
    return hash_key("crop", context=ctx, crop=crop, voxel_size_nm=voxel_size_nm)


def deep_cache_key(crop_key: str, deep: DeepSpec) -> str:
    return hash_key("deep", crop_key=crop_key, deep=deep)


def crop_grid_columns(crop) -> dict:
    """``coverage`` (fraction of the crop inside the data), ``voxel_size_nm`` (edge of the crop's
    isotropic voxels; NaN when the dataset's voxel size is unknown), ``crop_nm`` (crop edge in nm),
    ``orientation`` ("native" or "canonical") and ``cleft_normal_z/y/x`` (unit cleft normal in the
    data's frame, pre → post; NaN when unknown) with ``cleft_normal_source``."""
    v = crop.voxel_size_nm
    nz, ny, nx = (float(c) for c in crop.cleft_normal_zyx)
    return {"coverage": float(crop.coverage),
            "voxel_size_nm": float(v[0]) if v is not None else float("nan"),
            "crop_nm": float(crop.raw.shape[0] * v[0]) if v is not None else float("nan"),
            "orientation": crop.orientation, "cleft_normal_z": nz, "cleft_normal_y": ny, "cleft_normal_x": nx,
            "cleft_normal_source": crop.normal_source}


def crop_result_of(crop, voxel_size_nm) -> dict:
    """What the cache keeps of a crop: discard reason, presynaptic columns, morphology columns."""
    if isinstance(crop, Discarded):
        pre = crop.presynaptic.as_columns() if crop.presynaptic is not None else {}
        return {"discarded": crop.reason, "presynaptic": pre, "morph": {}}
    return {"discarded": None, "presynaptic": crop.presynaptic.as_columns(), "grid": crop_grid_columns(crop),
            "morph": crop_morphology(crop, voxel_size_nm)}


def crop_morphology(crop, voxel_size_nm) -> dict[str, float]:
    """The ``morph_*`` measurements of a :class:`~synapse_core.crops.build.SynapseCrop`.

    Measured on the crop's own grid (the resampled crop's voxel size, (z, y, x) nm; anisotropic is
    fine too; ``voxel_size_nm``, the dataset's, when the crop has none); the padding outside the
    volume is not data (per voxel: a rotated crop's part inside the data is not a box).
    """
    grid_nm = crop.voxel_size_nm if crop.voxel_size_nm is not None else voxel_size_nm
    return morphology_features(crop.structures, crop.raw, grid_nm, valid=crop.valid_mask())


def prepare_synapse(job: PrepareJob) -> Prepared:
    """Read one synapse's context, look it up in the cache, and build its crop only if needed.

    A row whose context cannot be read (bad coordinates) or whose crop fails comes back discarded
    with the reason (a failure is not cached, so a re-run tries again).
    """
    row: Mapping = job.row
    bbox_name, var1 = str(row["bbox_name"]), str(row["Var1"])
    try:
        ctx = read_context(job.bbox, row, job.crop)
    except ValueError as exc:
        return Prepared(bbox_name, var1, None, None, {"discarded": str(exc), "presynaptic": {}, "morph": {}},
                        False, None, None)
    cache = open_cache(job.cache_dir) if job.cache_dir is not None else None
    crop_key = crop_cache_key(ctx, job.crop, job.voxel_size_nm)
    deep_key = deep_cache_key(crop_key, job.deep) if job.deep is not None else None
    crop_result = cache.get(crop_key) if cache is not None else None
    deep = cache.get(deep_key) if cache is not None and deep_key is not None else None
    crop_cached = crop_result is not None
    need_deep = deep_key is not None and deep is None and not (crop_cached and crop_result["discarded"])
    if crop_cached and not need_deep:
        return Prepared(bbox_name, var1, crop_key, deep_key, crop_result, True, deep, None)
    try:
        crop = build_crop(ctx, job.crop)
        if not crop_cached:
            crop_result = crop_result_of(crop, job.voxel_size_nm)
    except Exception as exc:  # one broken synapse must not stop the others; the reason is reported
        reason = f"crop failed ({type(exc).__name__}: {exc})"
        return Prepared(bbox_name, var1, None, None, {"discarded": reason, "presynaptic": {}, "morph": {}},
                        False, None, None, error=True)
    blended = crop.blended if need_deep and not isinstance(crop, Discarded) else None
    return Prepared(bbox_name, var1, crop_key, deep_key, crop_result, crop_cached, deep, blended)
