"""Which segmentation types a dataset can build, checked once before any crop is made.

A segmentation type keeps the voxels of its parts (:data:`~synapse_core.crops.segmentation_types.SEGMENTATION_TYPES`).
Parts other than the two neurons come from the semantic mask: the vesicle cloud, the cleft and the
mitochondria need their label, and "pre"/"post" need the vesicle label too, because the vesicle
cloud decides which side is presynaptic (:mod:`synapse_core.crops.presynaptic`). A bbox without a
mask, or whose config says ``vesicle = "none"`` (or whose mask disagreed with the original label
table), cannot build those types: :func:`check_segmentation_type_for_dataset` refuses them with a
message instead of writing gray crops. The same module gives the crop-size checks of
:func:`synapse_core.data.validate.extent_warnings` for given crop settings.

Example
-------
>>> needed_classes(10), needed_classes(3)
(('cleft', 'vesicle'), ())
"""

from __future__ import annotations

from collections.abc import Iterable

from synapse_core.crops.segmentation_types import SEGMENTATION_TYPES
from synapse_core.data.config import config_line
from synapse_core.data.labels import CLASS_NAMES

#: Mask class each structure part needs (None: only the neuron segmentation).
PART_CLASSES = {
    "side1": None,
    "side2": None,
    "pre": "vesicle",  # the vesicle cloud decides which neuron is presynaptic
    "post": "vesicle",
    "vesicle_cloud": "vesicle",
    "cleft": "cleft",
    "cleft2": "cleft",  # the second cleft label is optional; the first one is not
    "mito_closest": "mito",
    "mito_dilated": "mito",
}


class SegmentationTypeUnavailable(ValueError):
    """A segmentation type that some bbox cannot build (no mask, or a label the dataset does not have)."""


def needed_classes(segmentation_type: int) -> tuple[str, ...]:
    """Mask classes (``"mito"``, ``"vesicle"``, ``"cleft"``) a segmentation type needs, in part order."""
    out: list[str] = []
    for part in SEGMENTATION_TYPES[int(segmentation_type)].parts:
        c = PART_CLASSES[part]
        if c is not None and c not in out:
            out.append(c)
    return tuple(out)


def mask_free_types() -> list[int]:
    """Segmentation types that need no semantic mask (only raw EM and the neuron segmentation)."""
    return [t for t in SEGMENTATION_TYPES if not needed_classes(t)]


def unavailable_reason(bbox, segmentation_type: int) -> str | None:
    """Why ``bbox`` (a :class:`~synapse_core.data.dataset.BboxSource`) cannot build the type, or None."""
    need = needed_classes(segmentation_type)
    if not need:
        return None
    parts = SEGMENTATION_TYPES[int(segmentation_type)].parts
    why_vesicle = "; the vesicle label decides the presynaptic side" if {"pre", "post"} & set(parts) else ""
    if bbox.mask is None:
        return f"it has no semantic mask (type {segmentation_type} needs {_names(need)} labels{why_vesicle})"
    missing = [c for c in need if getattr(bbox.labels, c) is None]
    if missing:
        source = f" ({bbox.labels_source})" if getattr(bbox, "labels_source", "") else ""
        return f"it has no {_names(missing)} label{source}"
    return None


def _names(classes) -> str:
    """``("cleft", "vesicle")`` → ``"cleft and vesicle (vesicle cloud)"``."""
    words = [c if CLASS_NAMES[c] == c else f"{c} ({CLASS_NAMES[c]})" for c in classes]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def available_types(bbox) -> list[int]:
    """Segmentation types ``bbox`` can build."""
    return [t for t in SEGMENTATION_TYPES if unavailable_reason(bbox, t) is None]


def _bbox_names(dataset, bboxes: Iterable[str] | None) -> list[str]:
    if bboxes is None:
        have = set(dataset.synapses["bbox_name"].astype(str)) if len(dataset.synapses) else set(dataset.bboxes)
        return [b for b in dataset.bboxes if b in have]
    names = [str(b) for b in bboxes]
    unknown = [b for b in names if b not in dataset.bboxes]
    if unknown:
        raise ValueError(f"bbox {unknown[0]!r} is not in the dataset (bboxes: {', '.join(dataset.bboxes)})")
    return names


def _fix(dataset, bbox, segmentation_type: int) -> str:
    config_file = dataset.config_file
    if bbox.mask is None:
        return config_line(config_file, "mask", {"path": "<mask .h5 or .zarr file>", "key": "<dataset name>"},
                           bbox.name)
    labels = bbox.labels.as_dict()
    for c in needed_classes(segmentation_type):
        if labels[c] is None:
            labels[c] = "<id>"
    return config_line(config_file, "labels", labels, bbox.name)


def check_segmentation_type_for_dataset(dataset, settings, bboxes: Iterable[str] | None = None) -> None:
    """Refuse a segmentation type that a bbox of ``dataset`` cannot build, before any work.

    Parameters
    ----------
    dataset : :class:`~synapse_core.data.dataset.Dataset`
    settings : crop settings (anything with ``segmentation_type``)
    bboxes : the bboxes that will be cropped; None = every bbox with synapse rows.

    Raises
    ------
    SegmentationTypeUnavailable
        Naming each bbox that cannot build the type and why, the types that work for all of them
        (and, when a mask is missing, the types that work without a mask), and the config line
        that makes the type available.
    """
    t = int(settings.segmentation_type)
    names = _bbox_names(dataset, bboxes)
    reasons = {b: unavailable_reason(dataset.bboxes[b], t) for b in names}
    bad = {b: r for b, r in reasons.items() if r is not None}
    if not bad:
        return
    works = [k for k in SEGMENTATION_TYPES if all(unavailable_reason(dataset.bboxes[b], k) is None for b in names)]
    lines = [f"segmentation type {t} ({SEGMENTATION_TYPES[t].name}) cannot be used for "
             + ", ".join(f"bbox {b}: {r}" for b, r in bad.items()) + "."]
    if any(dataset.bboxes[b].mask is None for b in bad):
        lines.append("Types that work without a mask: "
                     + ", ".join(f"{k} ({SEGMENTATION_TYPES[k].name})" for k in mask_free_types()) + ".")
    lines.append("Types that work for " + ("these bboxes" if len(names) > 1 else f"bbox {names[0]}") + ": "
                 + ", ".join(f"{k} ({SEGMENTATION_TYPES[k].name})" for k in works) + ".")
    lines += [f"To use type {t} for {b}, {_fix(dataset, dataset.bboxes[b], t)}" for b in bad]
    raise SegmentationTypeUnavailable(" ".join(lines))


def crop_extent(settings, voxel_size_nm) -> tuple[tuple[float, float, float], tuple[float, float, float] | None]:
    """Extent of one crop on a bbox's native grid: ``(voxels (z, y, x), nm (z, y, x) or None)``.

    With the bbox's voxel size known a crop spans ``settings.crop_nm`` (``size × voxel_size_nm``,
    80 × 8 nm = 640 nm by default) along every axis, read from the native grid and resampled, so it
    covers ``crop_nm / voxel size`` native voxels per axis (16 sections of 40 nm). Without a voxel
    size crops are ``settings.size`` native voxels and their extent in nm is None.
    """
    if voxel_size_nm is None:
        return (float(settings.size),) * 3, None
    nm = (float(settings.crop_nm),) * 3
    return tuple(c / float(v) for c, v in zip(nm, voxel_size_nm)), nm


def crop_warnings(dataset, settings, bboxes: Iterable[str] | None = None) -> list[str]:
    """Validation warnings that depend on the crop settings, per bbox: anisotropy and stacks thinner than a crop."""
    # here: a one-synapse crop imports no pandas
    from synapse_core.data.validate import extent_warnings

    out = []
    for name in _bbox_names(dataset, bboxes):
        b = dataset.bboxes[name]
        voxels, nm = crop_extent(settings, b.voxel_size_nm)
        out += extent_warnings(name, b.shape_zyx, b.voxel_size_nm, nm, voxels)
    return out


def crop_checks(dataset, settings, bboxes: Iterable[str] | None = None) -> list[str]:
    """Every check that depends on the crop settings, as messages: :func:`crop_warnings` for the bboxes
    (default: all) and, if the segmentation type cannot be built, the reason from
    :func:`check_segmentation_type_for_dataset` (for the bboxes with synapses among them)."""
    names = list(dataset.bboxes) if bboxes is None else _bbox_names(dataset, bboxes)
    out = crop_warnings(dataset, settings, bboxes=names)
    have = set(dataset.synapses["bbox_name"].astype(str))
    try:
        check_segmentation_type_for_dataset(dataset, settings, bboxes=[b for b in names if b in have] or names)
    except SegmentationTypeUnavailable as exc:
        out.append(str(exc))
    return out


def type_table(dataset) -> list[dict]:
    """Per bbox: the segmentation types it can build, the others, and why (for reports and the Data page)."""
    rows = []
    for name, b in dataset.bboxes.items():
        ok = available_types(b)
        if b.mask is None:
            why = "no semantic mask"
        else:
            absent = [c for c in ("vesicle", "cleft", "mito") if getattr(b.labels, c) is None]
            why = f"no {', '.join(absent)} label" if absent else ""
        rows.append({"bbox_name": name, "available_types": ok,
                     "unavailable_types": [t for t in SEGMENTATION_TYPES if t not in ok], "why": why})
    return rows
