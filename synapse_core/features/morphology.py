"""Interpretable per-synapse measurements from a crop's structures, right at any voxel size.

Every value is computed inside the crop from the boolean structure masks of
:class:`synapse_core.crops.build.SynapseCrop` (``pre``, ``post``, ``cleft``, ``vesicle_cloud``,
``mitochondria``; all ``(z, y, x)``), its ``raw`` intensities, and a ``valid`` mask of the voxels that
hold data (the crop's padding outside the volume is not data). Voxels may be anisotropic
(``voxel_size_nm = (z, y, x)``, e.g. 40×4×4 nm); nothing assumes a cubic voxel.

Units are in the column names: with the voxel size known, volumes in µm³ (``_um3``), areas in µm²
(``_um2``), lengths in nm (``_nm``); without it, voxel units (``_vox3``, ``_vox2``, ``_vox``).

How each value is measured (``s`` = voxel size, a voxel's mask value is its centre's):

* **volumes**: voxel count × voxel volume (unbiased for point-sampled labels at any voxel shape);
* **cleft area**: the area of the cleft's *mid-surface*. The cleft is projected along the voxel axis
  ``a`` most aligned with its normal, one column of voxels per cell of the other two axes; the
  mid-surface over the columns is the best-fit plane of the cleft voxels plus a quadratic correction
  (curved clefts); a column counts when the voxel holding the mid-surface is cleft, and contributes
  its cell area × sqrt(1 + |∇(mid-surface)|²) (the area of the surface over the cell). Taking the
  voxel on the mid-surface (not "any voxel in the column") keeps the rim of a thick cleft from
  adding its shadow. An axis is used only when its voxels resolve the sheet
  (``s_a · |n_a| ≤ thickness``, else a column could miss the sheet); otherwise the next axis. A
  surface mesh (marching cubes) was not used: on a thin sheet it counts both faces and the rim, and
  on the staircase of a tilted sheet in 40×4×4 voxels it overestimates the area by up to √2.
  A cleft thinner than the voxel size along its normal in every usable axis is under-resolved: its
  area is then a lower bound (holes closed one cell wide);
* **cleft thickness**: cleft volume / cleft area (nm);
* **distances** go to the cleft's mid-surface (the points above), so they do not depend on how
  thick the cleft was drawn: ``vesicle_cloud_to_cleft_distance`` from the vesicle cloud's centroid;
  ``mito_to_cleft_distance`` from the mitochondrion's nearest voxel centre (its surface, to within
  the voxel size along the direction; see :func:`surface_to_points_distance`);
* **intensities**: mean (and the crop's std) of ``raw`` over the structure's voxels that are valid.

Accuracy, measured on phantoms of known geometry (:mod:`synapse_core.data.phantoms`, 60 random
orientations, cleft 440 nm wide and 40 nm thick): at 8×8×8 nm every value within 1.1%; at 40×4×4 nm
cleft area and thickness within 4%, volumes within 3.4%, vesicle-cloud distance 1.6%, mito distance
7.1%. Limits: a cleft lying in the section plane is located only to ±½ section along z, so its
distances can be off by that much (±20 nm at 40 nm sections); a cleft whose normal is along a
lattice diagonal (e.g. (1, 1, 1)) holds a whole number of lattice planes, so its thickness can be
off by one plane (8% for 40 nm at 8 nm isotropic).

An absent structure (no voxel in the valid part of the crop) is reported, not faked:
``morph_has_<structure>`` is 0 (``morph_has_pre``, ``_post``, ``_cleft``, ``_vesicle_cloud``,
``_mito``); its volume and area are 0 (a real measurement: there is none in the crop); its
distances, thickness and intensity are NaN (undefined, not "far away" or "average"). Clustering
handles those NaNs explicitly (:func:`synapse_core.cluster.preprocess.feature_matrix`), using
:func:`absence_indicators` to tell a NaN of an absent structure from a broken value.
"""

from __future__ import annotations

import math

import numpy as np

PREFIX = "morph_"
STRUCTURES = ("pre", "post", "cleft", "vesicle_cloud", "mitochondria")
#: Column-name stem of each structure.
STRUCTURE_NAMES = {"pre": "pre", "post": "post", "cleft": "cleft", "vesicle_cloud": "vesicle_cloud",
                   "mitochondria": "mito"}

# (column stem, unit kind, structures that must be present for the value to be defined)
_SPEC = (
    ("vesicle_cloud_volume", "volume", ()),
    ("cleft_volume", "volume", ()),
    ("cleft_area", "area", ()),
    ("cleft_thickness", "length", ("cleft",)),
    ("pre_volume", "volume", ()),
    ("post_volume", "volume", ()),
    ("mito_volume", "volume", ()),
    ("mito_to_cleft_distance", "length", ("mitochondria", "cleft")),
    ("vesicle_cloud_to_cleft_distance", "length", ("vesicle_cloud", "cleft")),
    ("intensity_mean", "none", ()),
    ("intensity_std", "none", ()),
    ("pre_intensity_mean", "none", ("pre",)),
    ("post_intensity_mean", "none", ("post",)),
    ("vesicle_cloud_intensity_mean", "none", ("vesicle_cloud",)),
    ("cleft_intensity_mean", "none", ("cleft",)),
    ("mito_intensity_mean", "none", ("mitochondria",)),
) + tuple((f"has_{STRUCTURE_NAMES[s]}", "none", ()) for s in STRUCTURES)

_UNITS = {True: {"volume": "_um3", "area": "_um2", "length": "_nm", "none": ""},
          False: {"volume": "_vox3", "area": "_vox2", "length": "_vox", "none": ""}}
_NEEDS = {stem: needs for stem, _, needs in _SPEC}
_SUFFIXES = ("_um3", "_um2", "_nm", "_vox3", "_vox2", "_vox")


def morphology_columns(voxel_size_known: bool = True) -> list[str]:
    """Names of the columns :func:`morphology_features` returns, in order."""
    return [PREFIX + stem + _UNITS[bool(voxel_size_known)][kind] for stem, kind, _ in _SPEC]


def indicator_column(structure: str) -> str:
    """``morph_has_<name>`` column of a structure (``"mitochondria"`` → ``"morph_has_mito"``)."""
    return f"{PREFIX}has_{STRUCTURE_NAMES[structure]}"


def absence_indicators(column: str) -> tuple[str, ...]:
    """The ``morph_has_*`` columns whose 0 makes ``column`` NaN (empty: the column is never NaN by design).

    >>> absence_indicators("morph_mito_to_cleft_distance_nm")
    ('morph_has_mito', 'morph_has_cleft')
    """
    stem = str(column)
    if not stem.startswith(PREFIX):
        return ()
    stem = stem[len(PREFIX):]
    for suffix in _SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return tuple(indicator_column(s) for s in _NEEDS.get(stem, ()))


def valid_mask_from_box(shape, valid_box_zyx) -> np.ndarray:
    """Boolean (z, y, x) mask of a crop's part inside the volume, from ``SynapseCrop.valid_box_zyx``.

    ``valid_box_zyx`` is one (start, stop) pair per axis in crop voxels; empty means "all valid".
    """
    valid = np.zeros(tuple(shape), dtype=bool)
    if not valid_box_zyx:
        valid[...] = True
        return valid
    valid[tuple(slice(int(a), int(b)) for a, b in valid_box_zyx)] = True
    return valid


# ---------------------------------------------------------------------------------------- boxes
#
# Every structure is measured inside its bounding box (a synapse's cleft or mitochondrion fills a
# few % of the crop): a box view holds the same voxels in the same C order as the whole mask, and
# indices are shifted back to crop voxels before any arithmetic, so every value is the one the
# whole-crop computation gives (``tests/test_morphology_reference.py``).


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice]:
    """Slices (z, y, x) of the smallest box holding every True voxel of a non-empty 3-D ``mask``."""
    planes = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    z0, z1 = int(planes[0]), int(planes[-1]) + 1
    footprint = mask[z0:z1].any(axis=0)
    rows = np.flatnonzero(footprint.any(axis=1))
    cols = np.flatnonzero(footprint.any(axis=0))
    return slice(z0, z1), slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def _boxed(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``mask``'s bounding-box view and the box's start (z, y, x) in crop voxels (int64)."""
    box = _bounding_box(mask)
    return mask[box], np.array([sl.start for sl in box], dtype=np.int64)


# ---------------------------------------------------------------------------------------- the cleft


def _fit_plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid and unit normal (smallest principal axis) of points (n, 3)."""
    centroid = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centroid, full_matrices=False)
    return centroid, vt[-1]


def _axis_area(sub: np.ndarray, start: np.ndarray, spacing: np.ndarray, axis: int, centroid: np.ndarray,
               normal: np.ndarray) -> tuple[float, np.ndarray]:
    """Mid-surface area of a sheet seen along voxel ``axis``; also the mid-surface points (nm, z, y, x).

    ``sub`` is the sheet's bounding box, starting at voxel ``start`` of the crop.
    """
    m = np.moveaxis(sub, axis, 0)
    others = [i for i in range(3) if i != axis]
    sa, sb, sc = spacing[axis], spacing[others[0]], spacing[others[1]]
    count = m.sum(axis=0)
    occupied = count > 0
    jb, jc = np.nonzero(occupied)  # box indices
    first = np.argmax(m, axis=0)[jb, jc] + start[axis]
    last = m.shape[0] - 1 - np.argmax(m[::-1], axis=0)[jb, jc] + start[axis]
    ib, ic = jb + start[others[0]], jc + start[others[1]]  # crop indices
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
    w = count[jb, jc].astype(np.float64)
    coef = np.zeros(4)
    if len(b) >= 12:
        coef, *_ = np.linalg.lstsq(design * w[:, None], (mid - plane) * w, rcond=None)
    surface = plane + design @ coef
    # Hit: the voxel holding the mid-surface point is part of the sheet (never outside its box).
    ja = np.rint(surface / sa).astype(np.int64) - start[axis]
    inside = (ja >= 0) & (ja < m.shape[0])
    hit = np.zeros(len(ja), dtype=bool)
    hit[inside] = m[ja[inside], jb[inside], jc[inside]]
    # Area of the surface over each hit cell: cell area × sqrt(1 + |gradient|²).
    g_b = -nb / na + 2 * coef[1] * db + coef[2] * dc
    g_c = -nc / na + coef[2] * db + 2 * coef[3] * dc
    stretch = np.sqrt(1.0 + g_b**2 + g_c**2)
    area = float((stretch[hit]).sum() * sb * sc)
    pts = np.empty((int(hit.sum()), 3))
    pts[:, axis] = surface[hit]
    pts[:, others[0]] = b[hit]
    pts[:, others[1]] = c[hit]
    return area, pts


def _closed_area(mask: np.ndarray, spacing: np.ndarray, axis: int, normal: np.ndarray) -> float:
    """Fallback for an under-resolved sheet: occupied columns, one-cell holes closed, over |n_a|."""
    from scipy import ndimage

    occupied = mask.any(axis=axis)
    closed = ndimage.binary_closing(np.pad(occupied, 1), structure=np.ones((3, 3), bool))[1:-1, 1:-1] | occupied
    others = [i for i in range(3) if i != axis]
    return float(closed.sum() * spacing[others[0]] * spacing[others[1]] / abs(normal[axis]))


def cleft_geometry(mask: np.ndarray, spacing_zyx) -> tuple[float, np.ndarray]:
    """Area (units of ``spacing``²) of a thin sheet's mid-surface, and points on that surface.

    Parameters
    ----------
    mask : bool array (z, y, x)
    spacing_zyx : voxel size (z, y, x), e.g. nm.

    Returns
    -------
    area : float
        0 for an empty mask. Fewer than 4 voxels: voxel count × the face area across the coarsest axis.
    points : ndarray (n, 3)
        Points (z, y, x, in units of ``spacing``, voxel centres at ``index * spacing``) sampling the
        mid-surface, one per counted column (the voxel centres themselves for tiny sheets).

    See the module docstring for the method.
    """
    mask = np.asarray(mask, dtype=bool)
    spacing = np.asarray(spacing_zyx, dtype=np.float64)
    if not mask.any():
        return 0.0, np.empty((0, 3))
    return _cleft_geometry_boxed(*_boxed(mask), spacing)


def _cleft_geometry_boxed(sub: np.ndarray, start: np.ndarray, spacing: np.ndarray) -> tuple[float, np.ndarray]:
    """:func:`cleft_geometry` of a non-empty sheet given as its bounding box ``sub`` starting at ``start``."""
    idx = np.argwhere(sub) + start
    n = len(idx)
    pts = idx * spacing
    if n < 4:
        return float(n * np.prod(spacing) / spacing.max()), pts
    centroid, normal = _fit_plane(pts)
    volume = n * float(np.prod(spacing))
    order = np.argsort(-np.abs(normal))
    candidates = [a for a in order if abs(normal[a]) >= 0.2] or [order[0]]
    for a in candidates:
        area, surface = _axis_area(sub, start, spacing, a, centroid, normal)
        if area > 0 and spacing[a] * abs(normal[a]) <= 1.05 * volume / area:
            return area, surface
    # Under-resolved in every usable axis: the least under-resolved axis, holes closed.
    a = min(candidates, key=lambda k: spacing[k] * abs(normal[k]))
    _, surface = _axis_area(sub, start, spacing, a, centroid, normal)
    return _closed_area(sub, spacing, a, normal), surface


def sheet_area(mask: np.ndarray, spacing_zyx) -> float:
    """Area (units of ``spacing``²) of a thin sheet of voxels: :func:`cleft_geometry`'s area.

    Examples
    --------
    >>> sheet = np.zeros((3, 40, 40), bool); sheet[1, 5:35, 5:35] = True
    >>> sheet_area(sheet, (40.0, 4.0, 4.0))  # 30 × 30 cells of 4 × 4 nm
    14400.0
    """
    return cleft_geometry(mask, spacing_zyx)[0]


# ---------------------------------------------------------------------------------------- distances


def _nearest(points_a: np.ndarray, points_b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Smallest distance between two point sets and the pair realising it."""
    from scipy.spatial import cKDTree

    dist, j = cKDTree(points_b).query(points_a)
    i = int(np.argmin(dist))
    return float(dist[i]), points_a[i], points_b[j[i]]


def _surface_points(sub: np.ndarray, start: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Centres (z, y, x, spacing units) of the voxels of a mask with a 6-neighbour outside it.

    ``sub`` is the mask's bounding box, starting at voxel ``start`` of the crop.
    """
    p = np.pad(sub, 1)
    inner = (p[1:-1, 1:-1, 1:-1] & p[:-2, 1:-1, 1:-1] & p[2:, 1:-1, 1:-1] & p[1:-1, :-2, 1:-1]
             & p[1:-1, 2:, 1:-1] & p[1:-1, 1:-1, :-2] & p[1:-1, 1:-1, 2:])  # the 6-neighbour erosion
    return (np.argwhere(sub & ~inner) + start) * spacing


def surface_to_points_distance(mask: np.ndarray, points: np.ndarray, spacing_zyx) -> float:
    """Distance from the object ``mask`` to the nearest of ``points`` (z, y, x; spacing units).

    The distance from the nearest voxel centre of the object. Measured on phantoms (ellipsoids at
    random orientations, 8×8×8 and 40×4×4 nm) this is within a few % of the distance from the true
    surface; subtracting half a voxel did worse, because a curved surface has voxel centres close to
    it in the fine axes. A flat face parallel to a coarse axis's sections can read up to one voxel far.
    NaN when either is empty.
    """
    mask = np.asarray(mask, dtype=bool)
    spacing = np.asarray(spacing_zyx, dtype=np.float64)
    if not mask.any() or len(points) == 0:
        return math.nan
    return _nearest(_surface_points(*_boxed(mask), spacing), np.asarray(points, dtype=np.float64))[0]


# ---------------------------------------------------------------------------------------- features


def morphology_features(structures: dict, raw: np.ndarray, voxel_size_nm=None, valid=None) -> dict[str, float]:
    """Measurements of one synapse crop, keyed by :func:`morphology_columns` names.

    Parameters
    ----------
    structures : dict of bool arrays (z, y, x), keys ``pre``, ``post``, ``cleft``, ``vesicle_cloud``,
        ``mitochondria``; a missing key counts as an empty structure.
    raw : float array (z, y, x), the crop's intensities.
    voxel_size_nm : (z, y, x) voxel edge lengths in nm, or None for voxel units.
    valid : bool array (z, y, x), optional
        Voxels that hold data (``valid_mask_from_box(crop.raw.shape, crop.valid_box_zyx)``); padding
        outside it takes no part in any value. None: every voxel is valid.

    Returns
    -------
    dict column → float; NaN for a distance, thickness or intensity of an absent structure (see the
    module docstring), with ``morph_has_<structure>`` = 0.

    Examples
    --------
    >>> cleft = np.zeros((8, 8, 8), bool); cleft[4, 2:6, 2:6] = True
    >>> f = morphology_features({"cleft": cleft}, np.zeros((8, 8, 8), np.float32), (40.0, 4.0, 4.0))
    >>> f["morph_cleft_area_um2"], f["morph_cleft_thickness_nm"], f["morph_has_mito"]
    (0.000256, 40.0, 0.0)
    """
    known = voxel_size_nm is not None
    spacing = np.asarray(voxel_size_nm if known else (1.0, 1.0, 1.0), dtype=np.float64)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ValueError(f"voxel_size_nm must be three positive (z, y, x) sizes in nm, got {voxel_size_nm!r}")
    raw = np.asarray(raw)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != raw.shape:
            raise ValueError(f"valid mask has shape {valid.shape}, the crop is {raw.shape}")
        if np.count_nonzero(valid) == valid.size:
            valid = None  # every voxel holds data: nothing to mask
    voxel = float(np.prod(spacing))
    to_vol = voxel / (1e9 if known else 1.0)  # nm³ → µm³
    to_area = 1e-6 if known else 1.0  # nm² → µm²
    boxes, counts = {}, {}
    for k in STRUCTURES:
        m = structures.get(k)
        if m is None:
            counts[k] = 0
            continue
        m = np.asarray(m, dtype=bool)
        if m.shape != raw.shape:
            raise ValueError(f"structure {k!r} has shape {m.shape}, the crop is {raw.shape}")
        if valid is not None:
            m = m & valid
        counts[k] = np.count_nonzero(m)
        if counts[k]:
            boxes[k] = _boxed(m)  # (bounding-box view, its start): where every value of k is measured
    has = {k: counts[k] > 0 for k in STRUCTURES}

    def mean_in(k: str) -> float:
        if not has[k]:
            return math.nan
        sub, start = boxes[k]
        box = tuple(slice(int(a), int(a) + n) for a, n in zip(start, sub.shape))
        return float(raw[box][sub].mean())

    if has["cleft"]:
        area, mid_surface = _cleft_geometry_boxed(*boxes["cleft"], spacing)
    else:
        area, mid_surface = 0.0, np.empty((0, 3))
    thickness = counts["cleft"] * voxel / area if area > 0 else math.nan
    if has["vesicle_cloud"] and len(mid_surface):
        sub, start = boxes["vesicle_cloud"]
        centroid = (np.argwhere(sub) + start).mean(axis=0) * spacing
        ves_dist = _nearest(centroid[None, :], mid_surface)[0]
    else:
        ves_dist = math.nan
    if has["mitochondria"] and len(mid_surface):
        mito_dist = _nearest(_surface_points(*boxes["mitochondria"], spacing), mid_surface)[0]
    else:
        mito_dist = math.nan
    data = np.ascontiguousarray(raw).reshape(-1) if valid is None else raw[valid]  # the voxels holding data
    mean, std = (float(data.mean()), float(data.std())) if data.size else (math.nan, math.nan)

    values = [
        counts["vesicle_cloud"] * to_vol, counts["cleft"] * to_vol, area * to_area, thickness,
        counts["pre"] * to_vol, counts["post"] * to_vol, counts["mitochondria"] * to_vol, mito_dist, ves_dist,
        mean, std, mean_in("pre"), mean_in("post"), mean_in("vesicle_cloud"), mean_in("cleft"),
        mean_in("mitochondria"),
    ] + [float(has[k]) for k in STRUCTURES]
    return {name: float(v) for name, v in zip(morphology_columns(known), values)}
