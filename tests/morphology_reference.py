"""The previous morphology implementation (whole-crop arrays, commit 3f24ea6), kept to compare with.

:mod:`synapse_core.features.morphology` now measures each structure inside its bounding box and sums
the crop's intensities once for mean and std (issue 16); ``tests/test_morphology_reference.py``
checks that every value is still exactly the one this code gives. Docstrings trimmed; not used by
the package.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from synapse_core.features.morphology import STRUCTURES, morphology_columns


def _fit_plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid and unit normal (smallest principal axis) of points (n, 3)."""
    centroid = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centroid, full_matrices=False)
    return centroid, vt[-1]


def _axis_area(mask: np.ndarray, spacing: np.ndarray, axis: int, centroid: np.ndarray, normal: np.ndarray):
    """Mid-surface area of a sheet seen along voxel ``axis``; also the mid-surface points (nm, z, y, x)."""
    m = np.moveaxis(mask, axis, 0)
    others = [i for i in range(3) if i != axis]
    sa, sb, sc = spacing[axis], spacing[others[0]], spacing[others[1]]
    count = m.sum(axis=0)
    occupied = count > 0
    ib, ic = np.nonzero(occupied)
    first = np.argmax(m, axis=0)[ib, ic]
    last = m.shape[0] - 1 - np.argmax(m[::-1], axis=0)[ib, ic]
    b, c = ib * sb, ic * sc
    # Plane: centroid·n = a n_a + b n_b + c n_c  →  a = (centroid·n − b n_b − c n_c) / n_a
    na, nb, nc = normal[axis], normal[others[0]], normal[others[1]]
    plane = (centroid @ normal - b * nb - c * nc) / na
    # Quadratic correction from the run midpoints (curved clefts); no linear term, so the one-sided
    # runs at the rim cannot tilt the plane.
    mid = (first + last) / 2.0 * sa
    bc0 = np.array([b.mean(), c.mean()])
    db, dc = b - bc0[0], c - bc0[1]
    design = np.stack([np.ones_like(db), db * db, db * dc, dc * dc], axis=1)
    w = count[ib, ic].astype(np.float64)
    coef = np.zeros(4)
    if len(b) >= 12:
        coef, *_ = np.linalg.lstsq(design * w[:, None], (mid - plane) * w, rcond=None)
    surface = plane + design @ coef
    # Hit: the voxel holding the mid-surface point is part of the sheet.
    ia = np.rint(surface / sa).astype(np.int64)
    inside = (ia >= 0) & (ia < m.shape[0])
    hit = np.zeros(len(ia), dtype=bool)
    hit[inside] = m[ia[inside], ib[inside], ic[inside]]
    # Area of the surface over each hit cell: cell area × sqrt(1 + |gradient|²).
    g_b = -nb / na + 2 * coef[1] * db + coef[2] * dc
    g_c = -nc / na + coef[2] * db + 2 * coef[3] * dc
    stretch = np.sqrt(1.0 + g_b**2 + g_c**2)
    area = float((stretch[hit]).sum() * sb * sc)
    pts = np.empty((int(hit.sum()), 3))
    pts[:, axis] = surface[hit]
    pts[:, others[0]] = b[hit]
    pts[:, others[1]] = c[hit]
    return area, pts, occupied, hit, (ib, ic)


def _closed_area(mask: np.ndarray, spacing: np.ndarray, axis: int, normal: np.ndarray) -> float:
    """Fallback for an under-resolved sheet: occupied columns, one-cell holes closed, over |n_a|."""
    occupied = mask.any(axis=axis)
    closed = ndimage.binary_closing(np.pad(occupied, 1), structure=np.ones((3, 3), bool))[1:-1, 1:-1] | occupied
    others = [i for i in range(3) if i != axis]
    return float(closed.sum() * spacing[others[0]] * spacing[others[1]] / abs(normal[axis]))


def cleft_geometry(mask: np.ndarray, spacing_zyx) -> tuple[float, np.ndarray]:
    """Area (units of ``spacing``²) of a thin sheet's mid-surface, and points on that surface."""
    spacing = np.asarray(spacing_zyx, dtype=np.float64)
    idx = np.argwhere(mask)
    n = len(idx)
    if n == 0:
        return 0.0, np.empty((0, 3))
    pts = idx * spacing
    if n < 4:
        return float(n * np.prod(spacing) / spacing.max()), pts
    centroid, normal = _fit_plane(pts)
    volume = n * float(np.prod(spacing))
    order = np.argsort(-np.abs(normal))
    candidates = [a for a in order if abs(normal[a]) >= 0.2] or [order[0]]
    for a in candidates:
        area, surface, *_ = _axis_area(mask, spacing, a, centroid, normal)
        if area > 0 and spacing[a] * abs(normal[a]) <= 1.05 * volume / area:
            return area, surface
    # Under-resolved in every usable axis: the least under-resolved axis, holes closed.
    a = min(candidates, key=lambda k: spacing[k] * abs(normal[k]))
    _, surface, *_ = _axis_area(mask, spacing, a, centroid, normal)
    return _closed_area(mask, spacing, a, normal), surface


def _nearest(points_a: np.ndarray, points_b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Smallest distance between two point sets and the pair realising it."""
    from scipy.spatial import cKDTree

    dist, j = cKDTree(points_b).query(points_a)
    i = int(np.argmin(dist))
    return float(dist[i]), points_a[i], points_b[j[i]]


def _surface_points(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Centres (z, y, x, spacing units) of the voxels of ``mask`` with a 6-neighbour outside it."""
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    sub = np.pad(mask[box], 1)
    surface = (sub & ~ndimage.binary_erosion(sub))[1:-1, 1:-1, 1:-1]
    return (np.argwhere(surface) + [sl.start for sl in box]) * spacing


def surface_to_points_distance(mask: np.ndarray, points: np.ndarray, spacing_zyx) -> float:
    """Distance from the object ``mask`` to the nearest of ``points`` (z, y, x; spacing units)."""
    spacing = np.asarray(spacing_zyx, dtype=np.float64)
    if not mask.any() or len(points) == 0:
        return math.nan
    return _nearest(_surface_points(mask, spacing), np.asarray(points, dtype=np.float64))[0]


def _mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else math.nan


def morphology_features(structures: dict, raw: np.ndarray, voxel_size_nm=None, valid=None) -> dict[str, float]:
    """Measurements of one synapse crop, keyed by :func:`morphology_columns` names."""
    known = voxel_size_nm is not None
    spacing = np.asarray(voxel_size_nm if known else (1.0, 1.0, 1.0), dtype=np.float64)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ValueError(f"voxel_size_nm must be three positive (z, y, x) sizes in nm, got {voxel_size_nm!r}")
    raw = np.asarray(raw)
    if valid is None:
        valid = np.ones(raw.shape, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != raw.shape:
        raise ValueError(f"valid mask has shape {valid.shape}, the crop is {raw.shape}")
    voxel = float(np.prod(spacing))
    to_vol = voxel / (1e9 if known else 1.0)  # nm³ → µm³
    to_area = 1e-6 if known else 1.0  # nm² → µm²
    s = {}
    for k in STRUCTURES:
        m = np.asarray(structures.get(k, np.zeros(raw.shape, dtype=bool)), dtype=bool)
        if m.shape != raw.shape:
            raise ValueError(f"structure {k!r} has shape {m.shape}, the crop is {raw.shape}")
        s[k] = m & valid
    has = {k: bool(m.any()) for k, m in s.items()}
    cleft, ves, mito = s["cleft"], s["vesicle_cloud"], s["mitochondria"]

    area, mid_surface = cleft_geometry(cleft, spacing) if has["cleft"] else (0.0, np.empty((0, 3)))
    thickness = cleft.sum() * voxel / area if area > 0 else math.nan
    if has["vesicle_cloud"] and len(mid_surface):
        centroid = np.argwhere(ves).mean(axis=0) * spacing
        ves_dist = _nearest(centroid[None, :], mid_surface)[0]
    else:
        ves_dist = math.nan
    mito_dist = surface_to_points_distance(mito, mid_surface, spacing) if has["mitochondria"] else math.nan

    values = [
        ves.sum() * to_vol, cleft.sum() * to_vol, area * to_area, thickness,
        s["pre"].sum() * to_vol, s["post"].sum() * to_vol, mito.sum() * to_vol, mito_dist, ves_dist,
        _mean(raw, valid), float(raw[valid].std()) if valid.any() else math.nan,
        _mean(raw, s["pre"]), _mean(raw, s["post"]), _mean(raw, ves), _mean(raw, cleft), _mean(raw, mito),
    ] + [float(has[k]) for k in STRUCTURES]
    return {name: float(v) for name, v in zip(morphology_columns(known), values)}
