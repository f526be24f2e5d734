"""How much of an extraction is already in the feature cache ("312 cached, 40 to compute").

Reads each synapse's context window and looks up its cache keys, without building crops or
running the network. Costs one window read per synapse (tens of ms), so callers run it on request.
"""

from __future__ import annotations

from collections.abc import Callable

from synapse_core import extract
from synapse_core.cache_dir import resolve_cache_dir
from synapse_core.crops import read_context
from synapse_core.extract_inputs import crop_cache_key, deep_cache_key, open_cache


def cache_status(dataset, settings: "extract.ExtractSettings", cache_dir=None, bboxes=None,
                 progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """``(n_cached, n_to_compute)`` for ``extract.extract_features(dataset, settings, cache_dir, bboxes)``.

    A synapse counts as cached when its crop result is cached and, for deep features, its
    feature vector too (or the crop was discarded, which needs no vector). Rows whose context
    cannot be read count as cached: the run skips them without computing anything.
    """
    rows = extract._select_rows(dataset, bboxes)
    spec = extract._Inference(settings).spec if settings.deep else None
    cache = open_cache(str(resolve_cache_dir(cache_dir) / "features"))
    voxel = tuple(float(v) for v in dataset.voxel_size_nm) if dataset.voxel_size_nm is not None else None
    n_cached = 0
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
        crop_result = cache.get(crop_key)
        if crop_result is not None and (
            spec is None or crop_result["discarded"] or deep_cache_key(crop_key, spec) in cache
        ):
            n_cached += 1
        if progress:
            progress(i, len(records))
    return n_cached, len(records) - n_cached
