"""Interpretable per-synapse measurements from a crop's structures (no network weights needed).

Every value is computed inside the crop (80³ voxels by default) from the boolean structure masks
of :class:`synapse_core.crops.build.SynapseCrop` (``pre``, ``post``, ``cleft``, ``vesicle_cloud``,
``mitochondria``; all ``(z, y, x)``) and its ``raw`` intensities (per-crop min-max, in [0, 1]).

With the voxel size known (``voxel_size_nm``, (z, y, x) nm) volumes are in µm³, areas in µm² and
lengths in nm, and the column names say so (``_um3``, ``_um2``, ``_nm``). Without it they are in
voxel units (``_vox3``, ``_vox2``, ``_vox``).

Values are never NaN, so every column can go straight into clustering. For a structure absent
from the crop: volume, area and thickness are 0; a distance involving it is censored at the crop
diagonal ("nothing within the crop", the largest distance measurable); its mean intensity falls
back to the whole-crop mean (no contrast). ``morph_*_volume`` = 0 tells these cases apart.

The cleft is a thin sheet: its area is the number of cells (one voxel edge wide) it covers when
projected on its own plane (the two main axes of its voxel cloud), after closing one-cell gaps
left by tilted digital sheets; its thickness is volume / area.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

PREFIX = "morph_"
STRUCTURES = ("pre", "post", "cleft", "vesicle_cloud", "mitochondria")


def morphology_columns(voxel_size_known: bool = True) -> list[str]:
    """Names of the columns :func:`morphology_features` returns, in order."""
    v, a, l = ("um3", "um2", "nm") if voxel_size_known else ("vox3", "vox2", "vox")
    return [PREFIX + n for n in (
        f"vesicle_cloud_volume_{v}", f"cleft_volume_{v}", f"cleft_area_{a}", f"cleft_thickness_{l}",
        f"pre_volume_{v}", f"post_volume_{v}", f"mito_volume_{v}", f"mito_to_cleft_distance_{l}",
        f"vesicle_cloud_to_cleft_distance_{l}",
        "intensity_mean", "intensity_std", "pre_intensity_mean", "post_intensity_mean",
        "vesicle_cloud_intensity_mean", "cleft_intensity_mean", "mito_intensity_mean",
    )]


def sheet_area(mask: np.ndarray, spacing_zyx) -> float:
    """Area (units of ``spacing``²) of a thin sheet of voxels, by projection on its best-fit plane."""
    pts = np.argwhere(mask).astype(np.float64) * np.asarray(spacing_zyx, dtype=np.float64)
    cell = float(np.prod(spacing_zyx)) ** (1.0 / 3.0)
    if len(pts) < 4:
        return len(pts) * cell**2
    centred = pts - pts.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    uv = np.floor(centred @ vt[:2].T / cell).astype(np.int64)
    uv -= uv.min(axis=0) - 2
    image = np.zeros(uv.max(axis=0) + 3, dtype=bool)
    image[uv[:, 0], uv[:, 1]] = True
    # a tilted digital sheet samples its plane more sparsely than one cell: close the one-cell gaps
    image = ndimage.binary_closing(image, structure=np.ones((3, 3), bool))
    return float(image.sum()) * cell**2


def _mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float(values.mean())


def morphology_features(structures: dict, raw: np.ndarray, voxel_size_nm=None) -> dict[str, float]:
    """Measurements of one synapse crop, keyed by :func:`morphology_columns` names.

    Parameters
    ----------
    structures : dict of bool arrays (z, y, x), keys ``pre``, ``post``, ``cleft``, ``vesicle_cloud``,
        ``mitochondria``; a missing key counts as an empty structure.
    raw : float32 array (z, y, x), the crop's normalised intensities.
    voxel_size_nm : (z, y, x) voxel edge lengths in nm, or None for voxel units.

    Examples
    --------
    >>> cleft = np.zeros((8, 8, 8), bool); cleft[4, 2:6, 2:6] = True
    >>> f = morphology_features({"cleft": cleft}, np.zeros((8, 8, 8), np.float32))
    >>> f["morph_cleft_area_vox2"], f["morph_cleft_thickness_vox"]
    (16.0, 1.0)
    """
    known = voxel_size_nm is not None
    spacing = np.asarray(voxel_size_nm if known else (1.0, 1.0, 1.0), dtype=np.float64)
    if spacing.shape != (3,) or np.any(spacing <= 0):
        raise ValueError(f"voxel_size_nm must be three positive (z, y, x) sizes in nm, got {voxel_size_nm!r}")
    to_vol = float(np.prod(spacing)) / (1e9 if known else 1.0)  # nm³ → µm³
    to_area = 1e-6 if known else 1.0  # nm² → µm²
    empty = np.zeros(raw.shape, dtype=bool)
    s = {k: np.asarray(structures.get(k, empty), dtype=bool) for k in STRUCTURES}
    for k, m in s.items():
        if m.shape != raw.shape:
            raise ValueError(f"structure {k!r} has shape {m.shape}, the crop is {raw.shape}")

    cleft, ves, mito = s["cleft"], s["vesicle_cloud"], s["mitochondria"]
    cleft_vol_nm3 = cleft.sum() * float(np.prod(spacing))
    area_nm2 = sheet_area(cleft, spacing) if cleft.any() else 0.0
    thickness = cleft_vol_nm3 / area_nm2 if area_nm2 > 0 else 0.0
    far = float(np.sqrt(((np.asarray(raw.shape) * spacing) ** 2).sum()))  # crop diagonal
    if cleft.any() and (mito.any() or ves.any()):
        dist_to_cleft = ndimage.distance_transform_edt(~cleft, sampling=spacing)
        mito_dist = float(dist_to_cleft[mito].min()) if mito.any() else far
        if ves.any():
            centroid = np.asarray(ndimage.center_of_mass(ves)) * spacing
            ves_dist = float(np.sqrt((((np.argwhere(cleft) * spacing) - centroid) ** 2).sum(axis=1)).min())
        else:
            ves_dist = far
    else:
        mito_dist = ves_dist = far

    values = [
        ves.sum() * to_vol, cleft.sum() * to_vol, area_nm2 * to_area, thickness,
        s["pre"].sum() * to_vol, s["post"].sum() * to_vol, mito.sum() * to_vol, mito_dist, ves_dist,
        float(raw.mean()), float(raw.std()), _mean(raw, s["pre"]), _mean(raw, s["post"]),
        _mean(raw, ves), _mean(raw, cleft), _mean(raw, mito),
    ]
    return {name: float(v) for name, v in zip(morphology_columns(known), values)}
