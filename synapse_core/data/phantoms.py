"""Synapses of known geometry, sampled at any voxel size: the ground truth for physical measurements.

One *scene* is a box of ``spec.extent_nm`` (z, y, x) nm holding one synapse: a presynaptic bouton and
a postsynaptic spine head (two truncated balls) touching at a planar contact, a disc-shaped cleft of
known radius and thickness straddling the contact plane, a ball-shaped vesicle cloud in the bouton,
and optionally an ellipsoidal mitochondrion in the bouton. The cleft plane has a random orientation
and the scene a random sub-voxel offset (both from ``seed``); which table side is presynaptic is
chosen too. :func:`sample_phantom` draws the same scene on any grid, e.g. 8×8×8 and 40×4×4 nm, so a
measurement can be checked against :attr:`SynapsePhantom.truth` at every voxel size.

Sampling convention (both stated because they decide what "exact" means):

* voxel ``(i, j, k)`` of a grid with voxel size ``(s_z, s_y, s_x)`` nm covers the box
  ``[i s_z, (i+1) s_z) × [j s_y, (j+1) s_y) × [k s_x, (k+1) s_x)`` of the scene (origin at its corner);
* **labels** (neuron ids and the semantic mask) are the scene's label at the **voxel centre**
  ``((i + ½) s_z, (j + ½) s_y, (k + ½) s_x)``: point sampling, so voxel count × voxel volume is an
  unbiased estimate of a structure's volume, and no voxel is labelled by a mixture;
* **raw** is the mean of the scene's intensity at sub-points spaced at most ``raw_supersample_nm``
  apart inside the voxel (partial volume, as a section of finite thickness is imaged), plus Gaussian
  noise drawn per voxel (``noise_sd``), clipped to uint8. Membranes, the cleft and the PSD are dark,
  vesicles are small dark rings, the mitochondrion is dark with cristae.

:func:`downsample_z` coarsens a real isotropic volume along z (raw: block mean; labels: centre slice
or mode) to compare a measurement on anisotropic data with the same data at full resolution.

Example
-------
>>> ph = random_phantom(seed=3)
>>> iso = sample_phantom(ph, (8, 8, 8))
>>> aniso = sample_phantom(ph, (40, 4, 4))
>>> iso.seg.shape, aniso.seg.shape
((120, 120, 120), (24, 240, 240))
>>> round(ph.truth["morph_cleft_area_um2"], 4)
0.1521
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synapse_core.data.labels import DEFAULT_LABELS, LabelIds


@dataclass(frozen=True)
class PhantomSpec:
    """Sizes of the phantom synapse, all in nm. Defaults: a ~440 nm wide cleft, 40 nm thick.

    The bouton is a ball of ``bouton_radius_nm`` whose centre lies ``0.8 * bouton_radius_nm`` behind the
    contact plane, cut by that plane (the spine likewise on the other side), so both touch on a disc of
    radius ``0.6 * radius`` ≥ the cleft radius. The vesicle cloud is a ball ``vesicle_cloud_gap_nm``
    behind the cleft's mid-plane; the mitochondrion an ellipsoid whose long axis is parallel to the
    cleft plane, its centre ``mito_depth_nm`` behind the mid-plane and ``mito_lateral_nm`` to the side.
    """

    extent_nm: tuple[float, float, float] = (960.0, 960.0, 960.0)
    cleft_radius_nm: float = 220.0
    cleft_thickness_nm: float = 40.0
    psd_thickness_nm: float = 25.0
    bouton_radius_nm: float = 450.0
    spine_radius_nm: float = 400.0
    membrane_nm: float = 5.0
    vesicle_cloud_radius_nm: float = 130.0
    vesicle_cloud_gap_nm: float = 40.0
    vesicle_radius_nm: float = 18.0
    vesicle_packing: float = 0.25
    mito_semi_axes_nm: tuple[float, float, float] = (160.0, 70.0, 70.0)  # long (in-plane), lateral, normal
    mito_depth_nm: float = 280.0
    mito_lateral_nm: float = 200.0
    max_offset_nm: float = 20.0  # random shift of the synapse from the scene centre, per axis

    def __post_init__(self):
        for name in ("cleft_radius_nm", "cleft_thickness_nm", "bouton_radius_nm", "spine_radius_nm",
                     "vesicle_cloud_radius_nm", "vesicle_radius_nm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PhantomSpec.{name} must be > 0 nm, got {getattr(self, name)!r}")
        if len(self.extent_nm) != 3 or min(self.extent_nm) <= 0:
            raise ValueError(f"PhantomSpec.extent_nm must be three positive (z, y, x) lengths in nm, got {self.extent_nm!r}")
        if self.cleft_radius_nm > 0.6 * min(self.bouton_radius_nm, self.spine_radius_nm):
            raise ValueError("PhantomSpec.cleft_radius_nm must be ≤ 0.6 × the bouton and spine radii "
                             "(the neurons touch on a disc of that radius)")


@dataclass(frozen=True, eq=False)
class SynapsePhantom:
    """One scene in physical space (nm, (z, y, x) from the scene's corner) and its true measurements.

    Attributes
    ----------
    center_nm : ndarray (3,)
        Centre of the cleft (on its mid-plane).
    normal_zyx : ndarray (3,)
        Unit normal of the cleft plane, pointing from the presynaptic to the postsynaptic side.
    lateral_zyx, long_zyx : ndarray (3,)
        Unit vectors in the cleft plane: towards the mitochondrion, and along its long axis.
    presynaptic_side : int
        1 or 2: which table side (``side_1_coord_*`` or ``side_2_coord_*``) lies in the bouton.
    has_mito : bool
    vesicles_nm : ndarray (n, 3)
        Centres of the vesicles inside the cloud (raw texture only).
    truth : dict
        True values, keyed like :func:`synapse_core.features.morphology.morphology_columns`:
        ``morph_cleft_area_um2`` (π r²), ``morph_cleft_thickness_nm``, ``morph_cleft_volume_um3``,
        ``morph_vesicle_cloud_volume_um3``, ``morph_mito_volume_um3`` (0 without mito),
        ``morph_vesicle_cloud_to_cleft_distance_nm`` (cloud centroid to the cleft's mid-surface),
        ``morph_mito_to_cleft_distance_nm`` (mitochondrion surface to the cleft's mid-surface; NaN
        without mito), ``morph_has_mito``.
    """

    spec: PhantomSpec
    seed: int
    center_nm: np.ndarray
    normal_zyx: np.ndarray
    lateral_zyx: np.ndarray
    long_zyx: np.ndarray
    presynaptic_side: int
    has_mito: bool
    vesicles_nm: np.ndarray
    truth: dict = field(default_factory=dict)

    # ---- geometry (all points in nm, (..., 3) arrays or three broadcastable z, y, x arrays)

    @property
    def bouton_center_nm(self) -> np.ndarray:
        return self.center_nm - 0.8 * self.spec.bouton_radius_nm * self.normal_zyx

    @property
    def spine_center_nm(self) -> np.ndarray:
        return self.center_nm + 0.8 * self.spec.spine_radius_nm * self.normal_zyx

    @property
    def vesicle_cloud_center_nm(self) -> np.ndarray:
        s = self.spec
        return self.center_nm - (s.vesicle_cloud_radius_nm + s.vesicle_cloud_gap_nm) * self.normal_zyx

    @property
    def mito_center_nm(self) -> np.ndarray:
        s = self.spec
        return self.center_nm - s.mito_depth_nm * self.normal_zyx + s.mito_lateral_nm * self.lateral_zyx


@dataclass(frozen=True, eq=False)
class PhantomVolume:
    """A phantom sampled on one grid: arrays (z, y, x), the synapse-table row and the ids used.

    ``row`` is in the synapse-table schema: ``Var1``, ``central_coord_1..3``, ``side_1_coord_1..3``,
    ``side_2_coord_1..3``, each triple (x, y, z) voxel indices (index the arrays as ``[z, y, x]``).
    """

    phantom: SynapsePhantom
    voxel_size_nm: tuple[float, float, float]
    raw: np.ndarray | None  # uint8, None when sampled with raw=False
    seg: np.ndarray  # uint32 neuron ids, 0 = extracellular
    mask: np.ndarray  # uint8 semantic labels, 0 = none
    labels: LabelIds
    pre_id: int
    post_id: int
    row: dict

    def structures(self) -> dict[str, np.ndarray]:
        """Boolean masks (z, y, x) keyed like :data:`synapse_core.features.morphology.STRUCTURES`."""
        lab = self.labels

        def is_label(v):
            return self.mask == v if v is not None else np.zeros(self.mask.shape, bool)

        return {"pre": self.seg == self.pre_id, "post": self.seg == self.post_id,
                "cleft": is_label(lab.cleft), "vesicle_cloud": is_label(lab.vesicle),
                "mitochondria": is_label(lab.mito)}


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _distance_to_disc(p: np.ndarray, center, normal, radius) -> np.ndarray:
    """Distance (nm) from points ``p`` (..., 3) to the flat disc (centre, unit normal, radius)."""
    rel = p - center
    d = rel @ normal
    rho = np.linalg.norm(rel - d[..., None] * normal, axis=-1)
    return np.sqrt(d**2 + np.maximum(rho - radius, 0.0) ** 2)


def _ellipsoid_surface(center, axes, semi, n_theta=360, n_phi=720) -> np.ndarray:
    """Points (n, 3) on an ellipsoid surface; ``axes`` rows are its unit axes, ``semi`` the semi-axes."""
    t = np.linspace(0, np.pi, n_theta)[:, None]
    p = np.linspace(0, 2 * np.pi, n_phi, endpoint=False)[None, :]
    u = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t) * np.ones_like(p)], -1).reshape(-1, 3)
    return center + (u * np.asarray(semi)) @ np.asarray(axes)


def random_phantom(seed: int, spec: PhantomSpec = PhantomSpec(), *, with_mito: bool = True,
                   presynaptic_side: int | None = None, normal_zyx=None) -> SynapsePhantom:
    """A phantom synapse with a random cleft orientation, offset and vesicle texture (all from ``seed``).

    Parameters
    ----------
    seed : int
        Decides the cleft normal (uniform on the sphere), the in-plane directions, the offset of the
        synapse from the scene centre (uniform in ±``spec.max_offset_nm`` per axis), the vesicle
        positions and, when ``presynaptic_side`` is None, the presynaptic side.
    spec : PhantomSpec
    with_mito : bool
        Put a mitochondrion in the bouton.
    presynaptic_side : 1, 2 or None
        Which table side lies in the bouton (None: drawn from ``seed``).
    normal_zyx : 3 numbers, optional
        Cleft normal (z, y, x), pre → post, e.g. ``(1, 0, 0)`` for a cleft in the section plane
        (None: uniform on the sphere, from ``seed``).

    Raises
    ------
    ValueError
        When the spec does not fit: the vesicle cloud or mitochondrion leaves the bouton or the scene,
        or they overlap (the message names the parameter to change).
    """
    if presynaptic_side not in (None, 1, 2):
        raise ValueError(f"presynaptic_side must be 1, 2 or None, got {presynaptic_side!r}")
    rng = np.random.default_rng(seed)
    normal = _unit(rng.normal(size=3))
    if normal_zyx is not None:
        normal = _unit(normal_zyx)
    lateral = _unit(np.cross(normal, rng.normal(size=3)))
    long_axis = np.cross(normal, lateral)
    extent = np.asarray(spec.extent_nm, dtype=np.float64)
    center = extent / 2 + rng.uniform(-spec.max_offset_nm, spec.max_offset_nm, 3)
    side = int(rng.integers(1, 3)) if presynaptic_side is None else int(presynaptic_side)
    ph = SynapsePhantom(spec, int(seed), center, normal, lateral, long_axis, side, bool(with_mito),
                        np.empty((0, 3)))

    # Vesicles: uniform positions inside the cloud, non-overlapping, up to the requested packing.
    rv, rc = spec.vesicle_radius_nm, spec.vesicle_cloud_radius_nm
    want = int(spec.vesicle_packing * (rc / rv) ** 3)
    cand = rng.uniform(-1, 1, (20 * want + 20, 3)) * (rc - rv)
    cand = cand[np.linalg.norm(cand, axis=1) <= rc - rv]
    kept: list[np.ndarray] = []
    for p in cand:
        if len(kept) >= want:
            break
        if not kept or np.min(np.linalg.norm(np.asarray(kept) - p, axis=1)) >= 2 * rv + 2:
            kept.append(p)
    vesicles = ph.vesicle_cloud_center_nm + np.asarray(kept).reshape(-1, 3)
    object.__setattr__(ph, "vesicles_nm", vesicles)

    _check_fits(ph)
    object.__setattr__(ph, "truth", _truth(ph))
    return ph


def _points(p) -> tuple:
    """(z, y, x) components of points: an (..., 3) array, or three broadcastable arrays as given."""
    if isinstance(p, tuple):
        return p
    p = np.asarray(p, dtype=np.float64)
    return p[..., 0], p[..., 1], p[..., 2]


def _dot(P, origin, u):
    return (P[0] - origin[0]) * u[0] + (P[1] - origin[1]) * u[1] + (P[2] - origin[2]) * u[2]


def _dist2(P, origin):
    return (P[0] - origin[0]) ** 2 + (P[1] - origin[1]) ** 2 + (P[2] - origin[2]) ** 2


def _inside_bouton(ph: SynapsePhantom, p) -> np.ndarray:
    P = _points(p)
    return (_dist2(P, ph.bouton_center_nm) < ph.spec.bouton_radius_nm**2) & (_dot(P, ph.center_nm, ph.normal_zyx) < 0)


def _check_fits(ph: SynapsePhantom) -> None:
    s = ph.spec
    extent = np.asarray(s.extent_nm, dtype=np.float64)
    sphere = _ellipsoid_surface(ph.vesicle_cloud_center_nm, np.eye(3), (s.vesicle_cloud_radius_nm,) * 3, 60, 120)
    checks = [(sphere, "vesicle cloud", "vesicle_cloud_radius_nm / vesicle_cloud_gap_nm")]
    if ph.has_mito:
        axes = np.stack([ph.long_zyx, ph.lateral_zyx, ph.normal_zyx])
        checks.append((_ellipsoid_surface(ph.mito_center_nm, axes, s.mito_semi_axes_nm, 60, 120),
                       "mitochondrion", "mito_semi_axes_nm / mito_depth_nm / mito_lateral_nm"))
        if _mito_inside(ph, sphere).any():
            raise ValueError("PhantomSpec: the mitochondrion overlaps the vesicle cloud; change "
                             "mito_lateral_nm or mito_depth_nm")
    rim = ph.center_nm + s.cleft_radius_nm * np.stack([ph.lateral_zyx, -ph.lateral_zyx, ph.long_zyx, -ph.long_zyx])
    checks.append((rim, "cleft", "cleft_radius_nm"))
    for pts, what, param in checks:
        if what != "cleft" and not _inside_bouton(ph, pts).all():
            raise ValueError(f"PhantomSpec: the {what} leaves the bouton; change {param} or bouton_radius_nm")
        if (pts < 0).any() or (pts > extent).any():
            raise ValueError(f"PhantomSpec: the {what} leaves the scene of {tuple(s.extent_nm)} nm; "
                             f"change {param} or extent_nm")


def _mito_inside(ph: SynapsePhantom, p, shrink_nm: float = 0.0) -> np.ndarray:
    """Points inside the mitochondrion ellipsoid (semi-axes reduced by ``shrink_nm``)."""
    P = _points(p)
    a, b, c = (max(v - shrink_nm, 1e-6) for v in ph.spec.mito_semi_axes_nm)
    m = ph.mito_center_nm
    return (_dot(P, m, ph.long_zyx) / a) ** 2 + (_dot(P, m, ph.lateral_zyx) / b) ** 2 + (
        _dot(P, m, ph.normal_zyx) / c) ** 2 < 1


def _truth(ph: SynapsePhantom) -> dict[str, float]:
    s = ph.spec
    area = math.pi * s.cleft_radius_nm**2
    ves_to_cleft = float(_distance_to_disc(ph.vesicle_cloud_center_nm, ph.center_nm, ph.normal_zyx, s.cleft_radius_nm))
    truth = {
        "morph_cleft_area_um2": area / 1e6,
        "morph_cleft_thickness_nm": s.cleft_thickness_nm,
        "morph_cleft_volume_um3": area * s.cleft_thickness_nm / 1e9,
        "morph_vesicle_cloud_volume_um3": 4 / 3 * math.pi * s.vesicle_cloud_radius_nm**3 / 1e9,
        "morph_vesicle_cloud_to_cleft_distance_nm": ves_to_cleft,
        "morph_has_mito": float(ph.has_mito),
        "morph_mito_volume_um3": 0.0,
        "morph_mito_to_cleft_distance_nm": math.nan,
    }
    if ph.has_mito:
        axes = np.stack([ph.long_zyx, ph.lateral_zyx, ph.normal_zyx])
        surface = _ellipsoid_surface(ph.mito_center_nm, axes, s.mito_semi_axes_nm)
        truth["morph_mito_volume_um3"] = 4 / 3 * math.pi * float(np.prod(s.mito_semi_axes_nm)) / 1e9
        truth["morph_mito_to_cleft_distance_nm"] = float(
            _distance_to_disc(surface, ph.center_nm, ph.normal_zyx, s.cleft_radius_nm).min())
    return truth


# ------------------------------------------------------------------------------------------ sampling


def _check_voxel_size(voxel_size_nm) -> np.ndarray:
    v = np.asarray(voxel_size_nm, dtype=np.float64)
    if v.shape != (3,) or not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"voxel_size_nm must be three positive (z, y, x) sizes in nm, got {voxel_size_nm!r}")
    return v


def _regions(ph: SynapsePhantom, P) -> dict[str, np.ndarray]:
    """Boolean regions and plane coordinates of the scene at points ``P`` ((z, y, x) broadcastable arrays)."""
    s = ph.spec
    d = _dot(P, ph.center_nm, ph.normal_zyx)  # signed distance from the cleft mid-plane, < 0 presynaptic
    rho2 = _dist2(P, ph.center_nm) - d**2  # squared distance from the cleft axis
    bouton2 = _dist2(P, ph.bouton_center_nm)
    spine2 = _dist2(P, ph.spine_center_nm)
    pre = (bouton2 < s.bouton_radius_nm**2) & (d < 0)
    post = (spine2 < s.spine_radius_nm**2) & (d >= 0)
    in_disc = rho2 <= s.cleft_radius_nm**2
    return {
        "d": d, "bouton2": bouton2, "spine2": spine2, "pre": pre, "post": post, "in_disc": in_disc,
        "cleft": (np.abs(d) <= s.cleft_thickness_nm / 2) & in_disc,
        "vesicle_cloud": _dist2(P, ph.vesicle_cloud_center_nm) < s.vesicle_cloud_radius_nm**2,
        "mito": _mito_inside(ph, P) if ph.has_mito else np.zeros(np.broadcast(*P).shape, bool),
    }


def _labels_at(ph: SynapsePhantom, P, pre_id: int, post_id: int, labels: LabelIds):
    """Neuron ids (uint32) and semantic labels (uint8) of the scene at points ``P``."""
    r = _regions(ph, P)
    seg = np.where(r["pre"], np.uint32(pre_id), np.where(r["post"], np.uint32(post_id), np.uint32(0)))
    mask = np.zeros(seg.shape, np.uint8)
    for key, label in (("vesicle_cloud", labels.vesicle), ("mito", labels.mito), ("cleft", labels.cleft)):
        if label is not None:
            mask[r[key]] = label
    return seg.astype(np.uint32), mask


def _intensity_at(ph: SynapsePhantom, P, vesicle_tree) -> np.ndarray:
    """EM-like intensity (0–255, before noise) of the scene at points ``P``."""
    s = ph.spec
    r = _regions(ph, P)
    pre, post, d = r["pre"], r["post"], r["d"]
    out = np.full(pre.shape, 175.0)  # extracellular space
    out[pre | post] = 150.0  # cytoplasm
    # membranes: inside a neuron, within membrane_nm of its surface (ball surface or contact plane)
    to_surface = np.where(pre, np.minimum(s.bouton_radius_nm - np.sqrt(r["bouton2"]), -d),
                          np.minimum(s.spine_radius_nm - np.sqrt(r["spine2"]), d))
    out[(pre | post) & (to_surface < s.membrane_nm)] = 75.0
    full = [np.broadcast_to(a, pre.shape) for a in P]
    ves = r["vesicle_cloud"]
    if ves.any():
        dist, _ = vesicle_tree.query(np.stack([a[ves] for a in full], -1))
        ring = np.abs(dist - s.vesicle_radius_nm) < 3.0
        out[ves] = np.where(ring, 80.0, np.where(dist < s.vesicle_radius_nm, 165.0, 140.0))
    inside = r["mito"]
    if inside.any():
        q = tuple(a[inside] for a in full)
        envelope = ~_mito_inside(ph, q, shrink_nm=6.0)
        cristae = np.cos(2 * np.pi * _dot(q, ph.mito_center_nm, ph.long_zyx) / 45.0) > 0.6
        out[inside] = np.where(envelope | cristae, 70.0, 115.0)
    out[r["cleft"]] = 95.0
    psd = (d > s.cleft_thickness_nm / 2) & (d <= s.cleft_thickness_nm / 2 + s.psd_thickness_nm) & r["in_disc"] & post
    out[psd] = 70.0  # postsynaptic density
    return out


def _grid(shape, spacing, offsets=(0.5, 0.5, 0.5)) -> tuple:
    """Broadcastable (z, y, x) coordinates (nm) of the points at ``offsets`` (voxel units) in every voxel."""
    axes = [(np.arange(n) + o) * h for n, h, o in zip(shape, spacing, offsets)]
    return axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]


def sample_phantom(phantom: SynapsePhantom, voxel_size_nm, *, labels: LabelIds = DEFAULT_LABELS,
                   pre_id: int = 1, post_id: int = 2, raw: bool = True, noise_sd: float = 8.0,
                   raw_supersample_nm: float = 8.0, var1: str | None = None) -> PhantomVolume:
    """Draw ``phantom`` on the grid of ``voxel_size_nm`` (z, y, x) nm.

    Parameters
    ----------
    phantom : SynapsePhantom
    voxel_size_nm : (z, y, x) voxel edge lengths in nm. The grid has ``ceil(extent / voxel size)``
        voxels per axis, starting at the scene's corner.
    labels : LabelIds
        Ids written into ``mask`` for the vesicle cloud, cleft and mitochondrion (a class with id
        None is not written).
    pre_id, post_id : int
        Neuron ids of the bouton and the spine in ``seg`` (0 is extracellular space).
    raw : bool
        Render the raw intensities (the slow part); False leaves ``raw`` None.
    noise_sd : float
        Standard deviation of the per-voxel Gaussian noise (grey levels); the noise is seeded by the
        phantom's seed and the voxel size.
    raw_supersample_nm : float
        Largest spacing (nm) of the sub-points averaged into one raw voxel.
    var1 : str, optional
        ``Var1`` of the table row (default ``"phantom_<seed>"``).

    Returns
    -------
    PhantomVolume
    """
    spacing = _check_voxel_size(voxel_size_nm)
    if pre_id == post_id or min(pre_id, post_id) < 1:
        raise ValueError(f"pre_id and post_id must be two different ids ≥ 1, got {pre_id}, {post_id}")
    ph = phantom
    extent = np.asarray(ph.spec.extent_nm, dtype=np.float64)
    shape = tuple(math.ceil(e / h - 1e-9) for e, h in zip(extent, spacing))
    seg, mask = _labels_at(ph, _grid(shape, spacing), pre_id, post_id, labels)

    raw_vol = None
    if raw:
        from scipy.spatial import cKDTree

        tree = cKDTree(ph.vesicles_nm if len(ph.vesicles_nm) else np.full((1, 3), 1e9))
        k = [max(1, math.ceil(h / raw_supersample_nm - 1e-9)) for h in spacing]
        subs = [(np.arange(n) + 0.5) / n for n in k]  # sub-point offsets inside a voxel, in voxel units
        acc = np.zeros(shape, np.float64)
        for oz in subs[0]:
            for oy in subs[1]:
                for ox in subs[2]:
                    acc += _intensity_at(ph, _grid(shape, spacing, (oz, oy, ox)), tree)
        acc /= np.prod(k)
        noise_rng = np.random.default_rng([ph.seed, *(round(h * 1000) for h in spacing)])
        acc += noise_rng.normal(0.0, noise_sd, shape)
        raw_vol = np.clip(np.rint(acc), 0, 255).astype(np.uint8)

    row = _table_row(ph, spacing, shape, seg, pre_id, post_id, var1)
    return PhantomVolume(ph, tuple(float(h) for h in spacing), raw_vol, seg, mask, labels, pre_id, post_id, row)


def _table_row(ph: SynapsePhantom, spacing, shape, seg, pre_id, post_id, var1) -> dict:
    def index_xyz(p_nm):
        zyx = np.clip(np.floor(np.asarray(p_nm) / spacing).astype(int), 0, np.asarray(shape) - 1)
        return zyx, (int(zyx[2]), int(zyx[1]), int(zyx[0]))

    depth = min(200.0, 0.8 * ph.spec.vesicle_cloud_radius_nm + ph.spec.vesicle_cloud_gap_nm)
    pre_zyx, pre_xyz = index_xyz(ph.center_nm - depth * ph.normal_zyx)
    post_zyx, post_xyz = index_xyz(ph.center_nm + depth * ph.normal_zyx)
    if seg[tuple(pre_zyx)] != pre_id or seg[tuple(post_zyx)] != post_id:  # cannot happen with a valid spec
        raise RuntimeError(f"phantom {ph.seed}: side points miss their neurons at voxel size {tuple(spacing)}")
    _, c_xyz = index_xyz(ph.center_nm)
    s1, s2 = (pre_xyz, post_xyz) if ph.presynaptic_side == 1 else (post_xyz, pre_xyz)
    row = {"Var1": var1 if var1 is not None else f"phantom_{ph.seed:03d}"}
    for name, xyz in (("central_coord", c_xyz), ("side_1_coord", s1), ("side_2_coord", s2)):
        for j, v in enumerate(xyz, start=1):
            row[f"{name}_{j}"] = v
    return row


# ------------------------------------------------------------------------------------------ writing


def write_phantom_dataset(root: str | os.PathLike, volumes: list[PhantomVolume]) -> Path:
    """Write phantom volumes as a dataset the pipeline reads: one bbox (HDF5 + CSV table) per volume.

    Layout: ``root/<bbox>.h5`` (datasets ``raw``, ``seg``, ``mask``; attribute ``resolution_nm_zyx``),
    ``root/<bbox>.csv`` (one synapse row), ``root/synapse_dataset.toml`` (voxel size, label ids, one
    ``[bboxes.<bbox>]`` section each), ``root/truth.csv`` (true values, presynaptic side). Bboxes are
    named ``phantom_<seed>``. All volumes must share one voxel size and label ids. Returns ``root``.
    """
    import h5py
    import pandas as pd

    if not volumes:
        raise ValueError("write_phantom_dataset: no volumes given")
    vs, labels = volumes[0].voxel_size_nm, volumes[0].labels
    if any(v.voxel_size_nm != vs or v.labels != labels for v in volumes):
        raise ValueError("write_phantom_dataset: all volumes must share one voxel size and label ids")
    if any(v.raw is None for v in volumes):
        raise ValueError("write_phantom_dataset: sample the phantoms with raw=True")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ids = {k: ("none" if v is None else v) for k, v in labels.as_dict().items()}
    lines = [f"voxel_size_nm = [{vs[0]:g}, {vs[1]:g}, {vs[2]:g}]", "", "[labels]"]
    lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in ids.items()]
    lines = [ln.replace("'", '"') for ln in lines]
    truth = []
    for v in volumes:
        bbox = f"phantom_{v.phantom.seed:03d}"
        with h5py.File(root / f"{bbox}.h5", "w") as f:
            for key in ("raw", "seg", "mask"):
                f.create_dataset(key, data=getattr(v, key), chunks=True, compression="gzip")
                f[key].attrs["resolution_nm_zyx"] = list(vs)
        pd.DataFrame([v.row]).to_csv(root / f"{bbox}.csv", index=False)
        lines += ["", f"[bboxes.{bbox}]", f'raw = {{ path = "{bbox}.h5", key = "raw" }}',
                  f'seg = {{ path = "{bbox}.h5", key = "seg" }}', f'mask = {{ path = "{bbox}.h5", key = "mask" }}',
                  f'table = "{bbox}.csv"']
        truth.append({"bbox_name": bbox, "Var1": v.row["Var1"], "presynaptic_side": v.phantom.presynaptic_side,
                      **v.phantom.truth})
    (root / "synapse_dataset.toml").write_text("\n".join(lines) + "\n")
    pd.DataFrame(truth).to_csv(root / "truth.csv", index=False)
    return root


# ------------------------------------------------------------------------------------------ real data


def downsample_z(volume: np.ndarray, factor: int, *, labels: bool = False, label_method: str = "center") -> np.ndarray:
    """Coarsen a (z, y, x) volume ``factor`` times along z, e.g. 10 nm isotropic → 50×10×10 nm.

    Output slice ``i`` covers input slices ``i*factor .. (i+1)*factor - 1``; trailing input slices that
    do not fill a block are dropped. Raw (``labels=False``): the block mean (float32; a thick section
    integrates its thickness). Labels: ``label_method="center"`` takes the slice holding the block's
    centre (slice ``factor // 2``: exactly the centre for odd factors, as voxel-centre sampling does),
    ``"mode"`` the most frequent id along the block (ties: the smallest id).
    """
    f = int(factor)
    if f < 1 or f != factor:
        raise ValueError(f"factor must be an integer ≥ 1, got {factor!r}")
    if label_method not in ("center", "mode"):
        raise ValueError(f"label_method must be 'center' or 'mode', got {label_method!r}")
    v = np.asarray(volume)
    n = v.shape[0] // f
    if n == 0:
        raise ValueError(f"volume has {v.shape[0]} z-slices, fewer than the factor {f}")
    blocks = v[: n * f].reshape(n, f, *v.shape[1:])
    if not labels:
        return blocks.mean(axis=1, dtype=np.float64).astype(np.float32)
    if label_method == "center":
        return np.ascontiguousarray(blocks[:, f // 2])
    from scipy import stats

    return stats.mode(blocks, axis=1, keepdims=False).mode.astype(v.dtype)
