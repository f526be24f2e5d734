"""Canonical orientation of a synapse crop: the cleft normal on the crop's z axis, presynaptic side first.

With ``CropSettings.orientation = "canonical"`` every crop is rotated about its centre so that galleries
(and the network) see every synapse the same way round:

* **canonical z** (axis 0 of the crop) is the cleft normal, pointing from the presynaptic to the
  postsynaptic side: the presynaptic neuron fills the low-z half of the crop;
* **canonical y** (axis 1) is an in-plane axis: the cleft's long axis when the cleft is elongated
  (largest / middle principal extent ≥ :data:`ELONGATION_MIN`), else the data's z axis (the section
  normal) projected into the cleft plane (the data's y axis when the normal is along z); its sign
  makes it point along that projected data axis;
* **canonical x** (axis 2) is ``z × y`` (a proper rotation: a crop is never mirrored).

The cleft normal is the smallest-variance principal axis of the cleft voxels' positions in nm
(:func:`cleft_normal`); without a usable cleft (no mask, no cleft label, too few voxels, not flat)
it is the direction from the presynaptic to the postsynaptic side point of the synapse table. The
sign always comes from the presynaptic side: the normal points from the presynaptic side point
towards the postsynaptic one.

Everything is a pure function of arrays: points and vectors are (z, y, x), lengths in nm, volumes
indexed ``[z, y, x]``. The rotated crop is sampled in **one** interpolation straight from the
native grid (:func:`rotated_coordinates` composes the rotation with the native voxel size):
raw intensities trilinearly (:func:`sample_window`) after a box pre-filter of one target voxel's width along every native
axis finer than the target voxel (the area average of :mod:`synapse_core.crops.resample`, as an
anti-aliasing filter), labels by nearest neighbour (ids are never mixed). A target voxel is inside
the data when its centre lies in a native voxel (:func:`inside_data`); the rotated crop's valid
region is not a box, so it is returned as a per-voxel mask.

Example
-------
>>> import numpy as np
>>> cleft = np.zeros((9, 9, 9), bool); cleft[:, :, 4] = True           # a plane x = 4
>>> n, source = cleft_normal(cleft, (8, 8, 8), pre_nm=(36, 36, 0), post_nm=(36, 36, 72))
>>> np.round(n, 6).tolist(), source
([0.0, 0.0, 1.0], 'cleft')
>>> R = canonical_rotation(n, inplane_axis(n))
>>> np.round(R @ n, 6).tolist()                                         # the normal becomes +z
[1.0, 0.0, 0.0]
"""

from __future__ import annotations

import math

import numpy as np

from synapse_core.data.windows import read_box

#: Orientation choices of :class:`synapse_core.crops.settings.CropSettings`.
ORIENTATIONS = ("native", "canonical")
#: Fewest cleft voxels whose principal axes are trusted for the normal.
MIN_CLEFT_VOXELS = 20
#: The cleft must be flat: smallest / middle principal variance at most this (else side points decide).
FLATNESS_MAX = 0.5
#: Largest / middle principal variance from which the cleft's long axis sets canonical y.
ELONGATION_MIN = 1.5


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(3)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 and math.isfinite(n) else np.full(3, np.nan)


def principal_axes(points_nm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variances (ascending, nm²) and unit axes (rows, (z, y, x)) of points ``(n, 3)`` in nm."""
    p = np.asarray(points_nm, dtype=np.float64).reshape(-1, 3)
    cov = np.cov(p - p.mean(axis=0), rowvar=False)
    values, vectors = np.linalg.eigh(cov)
    return values, vectors.T


def mask_points_nm(mask: np.ndarray, spacing_nm, origin_nm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Centres (n, 3) in nm of the True voxels of a (z, y, x) mask: ``origin + (index + ½) spacing``."""
    idx = np.argwhere(mask)
    return origin_nm + (idx + 0.5) * np.asarray(spacing_nm, dtype=np.float64)


def cleft_normal(cleft: np.ndarray | None, spacing_nm, pre_nm, post_nm,
                 origin_nm=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, str]:
    """Unit normal (z, y, x) of the cleft, pointing from the presynaptic to the postsynaptic side.

    Parameters
    ----------
    cleft : bool ndarray (z, y, x) or None
        The synapse's cleft voxels on a grid of ``spacing_nm``; None or empty when unknown.
    spacing_nm : 3 numbers
        (z, y, x) voxel size of that grid in nm.
    pre_nm, post_nm : 3 numbers
        Presynaptic and postsynaptic side points (z, y, x) in nm, in the frame whose voxel-0 corner
        is at ``-origin_nm`` relative to the cleft grid's corner (the same frame as ``origin_nm``).
    origin_nm : 3 numbers
        Position (nm) of the corner of ``cleft[0, 0, 0]`` in that frame.

    Returns
    -------
    (normal, source)
        ``source`` says what decided the axis: ``"cleft"`` (smallest principal axis of the cleft
        voxels, when there are at least :data:`MIN_CLEFT_VOXELS` of them and they are flat),
        ``"side_points"`` (the pre → post side points direction) or ``"none"`` (the side points
        coincide and there is no cleft: the normal is NaN and the crop is not rotated).
    """
    direction = np.asarray(post_nm, dtype=np.float64) - np.asarray(pre_nm, dtype=np.float64)
    if cleft is not None and int(np.count_nonzero(cleft)) >= MIN_CLEFT_VOXELS:
        values, axes = principal_axes(mask_points_nm(cleft, spacing_nm, origin_nm))
        if values[1] > 0 and values[0] <= FLATNESS_MAX * values[1]:
            n = axes[0]
            if float(n @ direction) < 0:
                n = -n
            return _unit(n), "cleft"
    n = _unit(direction)
    return (n, "side_points") if np.all(np.isfinite(n)) else (n, "none")


def inplane_axis(normal_zyx, cleft_points_nm: np.ndarray | None = None) -> np.ndarray:
    """Unit in-plane axis (z, y, x) perpendicular to ``normal_zyx``: canonical y of the crop.

    The cleft's long axis when ``cleft_points_nm`` (n, 3) is elongated (largest / middle principal
    variance ≥ :data:`ELONGATION_MIN`), else the data's z axis projected into the plane (its y axis
    when the normal lies within ~8° of z). The sign makes the axis point along the projected data
    axis (z, else y, else x), so the same synapse gives the same crop whatever the table's side order.
    """
    n = _unit(normal_zyx)
    if not np.all(np.isfinite(n)):
        return np.full(3, np.nan)
    refs = []
    for axis in range(3):
        e = np.zeros(3)
        e[axis] = 1.0
        proj = e - (e @ n) * n
        if np.linalg.norm(proj) > 0.14:  # sin 8°: the projection still has a direction
            refs.append(_unit(proj))
    u = refs[0]
    if cleft_points_nm is not None and len(cleft_points_nm) >= MIN_CLEFT_VOXELS:
        values, axes = principal_axes(cleft_points_nm)
        if values[1] > 0 and values[2] >= ELONGATION_MIN * values[1]:
            long_axis = axes[2] - (axes[2] @ n) * n
            if np.linalg.norm(long_axis) > 1e-6:
                u = _unit(long_axis)
    for ref in refs:  # sign: along the first projected data axis it is not perpendicular to
        d = float(u @ ref)
        if abs(d) > 1e-6:
            return u if d > 0 else -u
    return u


def canonical_rotation(normal_zyx, inplane_zyx) -> np.ndarray:
    """Rotation (3, 3) whose rows are the canonical z, y, x axes in data (z, y, x) coordinates.

    ``R @ v`` gives vector ``v`` in canonical coordinates: ``R @ normal = (1, 0, 0)``. Rows are the
    normal, the in-plane axis (made exactly perpendicular) and their cross product (det +1).
    The identity when the normal is NaN.
    """
    n = _unit(normal_zyx)
    if not np.all(np.isfinite(n)):
        return np.eye(3)
    u = np.asarray(inplane_zyx, dtype=np.float64)
    u = _unit(u - (u @ n) * n)
    if not np.all(np.isfinite(u)):
        return np.eye(3)
    return np.stack([n, u, np.cross(n, u)])


def rotated_coordinates(shape_zyx, center_index_zyx, center_nm, rotation, spacing_nm, native_nm) -> np.ndarray:
    """Native fractional indices (3, *shape) of the voxel centres of a rotated output window.

    Output voxel ``j`` (z, y, x) lies at canonical offset ``(j - center_index) * spacing_nm`` nm from
    ``center_nm`` (data frame, nm from the native grid's corner), i.e. at data position
    ``center_nm + rotation.T @ offset``; its native index is ``position / native_nm - ½`` (voxel
    ``n`` covers ``[n s, (n + 1) s)``).

    Parameters
    ----------
    shape_zyx : 3 ints
        Output window shape (voxels).
    center_index_zyx : 3 numbers
        Output voxel that sits on ``center_nm``.
    center_nm : 3 numbers
        Rotation centre in the data frame (nm).
    rotation : (3, 3) array
        :func:`canonical_rotation`.
    spacing_nm : float or 3 numbers
        Output voxel size (nm); isotropic for a rotated crop.
    native_nm : 3 numbers
        The data's (z, y, x) voxel size (nm).
    """
    spacing = np.broadcast_to(np.asarray(spacing_nm, dtype=np.float64), (3,))
    native = np.asarray(native_nm, dtype=np.float64).reshape(3)
    R = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    axes = [(np.arange(n, dtype=np.float64) - c) * h for n, c, h in zip(shape_zyx, center_index_zyx, spacing)]
    # position = center + sum_k axes[k] * R[k]: separable, no (n, 3) @ (3, 3) product needed
    out = np.empty((3, *(int(n) for n in shape_zyx)), np.float64)
    for d in range(3):
        out[d] = (center_nm[d] / native[d] - 0.5
                  + (axes[0] * R[0, d] / native[d])[:, None, None]
                  + (axes[1] * R[1, d] / native[d])[None, :, None]
                  + (axes[2] * R[2, d] / native[d])[None, None, :])
    return out


def inside_data(coords: np.ndarray, shape_zyx) -> np.ndarray:
    """Bool (*shape): output voxels whose centre (native fractional index ``coords``) lies in a native voxel."""
    inside = np.ones(coords.shape[1:], bool)
    for d, n in enumerate(shape_zyx):
        inside &= (coords[d] >= -0.5) & (coords[d] < int(n) - 0.5)
    return inside


def _block_bounds(shape, coords: np.ndarray, reach) -> tuple[list[int], list[int]]:
    """Start and stop (native indices, clipped to the volume) of the block the coordinates need."""
    lo = [max(0, min(n - 1, math.floor(float(coords[d].min()) - reach[d]))) for d, n in enumerate(shape)]
    hi = [min(n, max(a + 1, math.ceil(float(coords[d].max()) + reach[d]) + 1))
          for d, (n, a) in enumerate(zip(shape, lo))]
    return lo, hi


def _box_kernel(q: float) -> np.ndarray:
    """Symmetric weights of a box ``q`` native voxels wide (cells ``[j-½, j+½)`` overlapping ``[-q/2, q/2]``)."""
    k = math.ceil(q / 2 - 0.5)
    j = np.arange(-k, k + 1, dtype=np.float64)
    w = np.clip(np.minimum(q / 2, j + 0.5) - np.maximum(-q / 2, j - 0.5), 0, None)
    return w / w.sum()


def _trilinear(block: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of ``block`` at fractional indices ``local`` (3, ...), edge replicate.

    Eight flat gathers and seven lerps in float32 (``scipy.ndimage.map_coordinates`` is several
    times slower here).
    """
    n = block.shape
    flat = np.ascontiguousarray(block, dtype=np.float32).reshape(-1)
    strides = (n[1] * n[2], n[2], 1)
    base = np.zeros(local.shape[1:], np.intp)
    frac, step = [], []
    for d in range(3):
        c = np.clip(local[d], 0, n[d] - 1).astype(np.float32, copy=False)
        i0 = np.minimum(c.astype(np.intp), max(n[d] - 2, 0))  # c >= 0: truncation is floor
        frac.append(c - i0)
        base += i0 * strides[d]
        step.append(strides[d] if n[d] > 1 else 0)
    fz, fy, fx = frac
    pad = np.concatenate([flat, np.zeros(step[0] + step[1] + step[2], np.float32)])  # shifted views stay in bounds

    def at(offset):
        return np.take(pad[offset:], base)

    def lerp(a, b, f):
        b -= a
        b *= f
        b += a
        return b

    planes = []
    for dz in (0, step[0]):
        rows = [lerp(at(dz + dy), at(dz + dy + step[2]), fx) for dy in (0, step[1])]
        planes.append(lerp(rows[0], rows[1], fy))
    return lerp(planes[0], planes[1], fz)


def _nearest_flat(local: np.ndarray, block_shape) -> np.ndarray:
    """Flat indices into a block of ``block_shape`` of the voxels nearest to ``local`` (3, ...), clipped."""
    n = block_shape
    strides = (n[1] * n[2], n[2], 1)
    flat = np.zeros(local.shape[1:], np.intp)
    for d in range(3):
        flat += np.clip(np.floor(local[d] + 0.5), 0, n[d] - 1).astype(np.intp) * strides[d]
    return flat


def sample_window(raw, seg, mask, coords: np.ndarray, native_nm, target_nm):
    """Raw, neuron ids, semantic labels and the inside-data mask at native fractional indices ``coords``.

    Parameters
    ----------
    raw, seg : array-like (z, y, x)
        EM intensities and neuron ids on the native grid (numpy, zarr, h5py); only the block the
        coordinates cover is read.
    mask : array-like (z, y, x) or None
        Semantic labels; None gives zeros (uint8).
    coords : float ndarray (3, *shape)
        Native (z, y, x) fractional indices of the output voxel centres (:func:`rotated_coordinates`).
    native_nm, target_nm : 3 numbers / float
        Voxel sizes (nm) of the data and of the output grid.

    Returns
    -------
    (raw, seg, labels, valid)
        ``raw`` float32: one trilinear interpolation after a box pre-filter one target voxel wide on
        every axis where the native voxel is smaller (anti-aliasing: the area average); near the border
        only native voxels inside the data contribute (edge replicate). ``seg`` and ``labels``: nearest
        native voxel, the volumes' dtypes. Voxels outside the data (``valid`` False) are 0 in all three.
    """
    native = np.asarray(native_nm, dtype=np.float64).reshape(3)
    q = np.broadcast_to(np.asarray(target_nm, dtype=np.float64), (3,)) / native
    shape = [int(n) for n in seg.shape[:3]]
    valid = inside_data(coords, shape)
    lo, hi = _block_bounds(shape, coords, [float(r) / 2 + 1 if r > 1 else 1.0 for r in q])
    local = coords - np.asarray(lo, dtype=np.float64).reshape(3, *([1] * (coords.ndim - 1)))
    block = read_box(raw, lo, hi).astype(np.float32)
    for axis, r in enumerate(q):
        if r > 1 + 1e-6 and block.shape[axis] > 1:
            # scipy.ndimage only when downsampling: an isotropic crop does not import it
            from scipy import ndimage

            block = ndimage.correlate1d(block, _box_kernel(float(r)).astype(np.float32), axis=axis, mode="nearest")
    raw_out = _trilinear(block, local)
    raw_out *= valid
    nearest = _nearest_flat(local, block.shape)
    outside = ~valid

    def labels_of(volume):
        out = np.take(read_box(volume, lo, hi).reshape(-1), nearest)
        out[outside] = 0
        return out

    seg_out = labels_of(seg)
    lab_out = labels_of(mask) if mask is not None else np.zeros(seg_out.shape, np.uint8)
    return raw_out, seg_out, lab_out, valid
