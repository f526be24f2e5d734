"""Read a window of a volume on a target grid in nm: the native grid resampled, any anisotropy.

A crop is defined physically (e.g. 80 voxels of 8 nm = 640 nm). The data may be sampled at
4×4×40 nm (z last here: spacing is always (z, y, x)), so the window is read from the native grid
over the same physical extent and resampled to the target grid.

Conventions
-----------
* Voxel ``n`` of a grid with voxel size ``s`` covers ``[n s, (n + 1) s)`` nm (origin at the corner
  of voxel 0, as in Neuroglancer, N5 and OME-Zarr), so its centre is at ``(n + ½) s``. The centre of
  target voxel ``i`` is native index ``c = (i + ½) q - ½`` (fractional) with
  ``q = target_nm / native_nm``; equal sizes give ``c = i``.
* A target voxel is **inside the data** when its centre lies in a native voxel on every axis;
  :func:`target_extent` gives that range per axis.
* Labels (neuron ids, semantic mask) use nearest neighbour (``round(c)``): ids are never mixed.
* Raw intensities, separable per axis: where the target is coarser than the native grid
  (``target_nm > native_nm``, e.g. 4 nm pixels to 8 nm) each target voxel is the **area average**
  of the native voxels it covers (native voxels as constant cells, fractional overlaps weighted):
  the anti-aliasing choice, since it removes detail finer than the target voxel instead of
  folding it back (a Gaussian with scikit-image's ``sigma = (q - 1) / 2`` keeps 57% of a
  2-voxel pattern at q = 2). Where the target is finer (40 nm sections to 8 nm) it is **linear
  interpolation** between section centres. Near the border only native voxels inside the data
  contribute (edge replicate); target voxels outside the data are 0 and flagged by
  :func:`target_extent`.
* When target and native sizes are equal on an axis, that axis is copied exactly (no
  interpolation), so isotropic data at the target voxel size gives the crops of a plain read.
"""

from __future__ import annotations

import math

import numpy as np

from synapse_core.data.windows import read_box


def _ratio(native_nm, target_nm) -> np.ndarray:
    native = np.asarray(native_nm, dtype=np.float64).reshape(3)
    target = np.asarray(target_nm, dtype=np.float64).reshape(3)
    if not (np.all(np.isfinite(native)) and np.all(native > 0) and np.all(np.isfinite(target)) and np.all(target > 0)):
        raise ValueError(f"voxel sizes must be positive finite (z, y, x) nm; got native {tuple(native)}, "
                         f"target {tuple(target)}")
    return target / native


def to_target_index(native_zyx, native_nm, target_nm) -> tuple[int, int, int]:
    """Target-grid index (z, y, x) of the voxel that holds the centre of native voxel ``native_zyx``."""
    r = _ratio(native_nm, target_nm)
    return tuple(math.floor((float(n) + 0.5) / q) for n, q in zip(native_zyx, r))


def target_extent(native_shape_zyx, native_nm, target_nm) -> tuple[tuple[int, int], ...]:
    """Per axis ``(start, stop)`` of the target indices whose centre lies inside the data.

    >>> target_extent((20, 100, 100), (40, 4, 4), (8, 8, 8))
    ((0, 100), (0, 50), (0, 50))
    >>> target_extent((64, 64, 64), (8, 8, 8), (8, 8, 8))
    ((0, 64), (0, 64), (0, 64))
    """
    r = _ratio(native_nm, target_nm)
    out = []
    for n, q in zip(native_shape_zyx, r):
        # inside iff 0 <= (i + 1/2) q < n
        out.append((0, math.ceil(int(n) / q - 0.5 - 1e-9)))
    return tuple(out)


def _coords(start: int, stop: int, q: float) -> np.ndarray:
    """Native (fractional) index coordinates of the centres of target voxels ``start..stop-1``; exact when q == 1."""
    i = np.arange(start, stop, dtype=np.float64)
    return i if q == 1.0 else (i + 0.5) * q - 0.5


def _nearest_index(c: np.ndarray) -> np.ndarray:
    return np.floor(c + 0.5).astype(np.int64)


def read_labels(volume, start_zyx, stop_zyx, native_nm, target_nm) -> np.ndarray:
    """Labels of target voxels ``start..stop`` (z, y, x, target indices), nearest neighbour; 0 outside.

    The result keeps ``volume``'s integer dtype. Only the native box the window covers is read.
    """
    r = _ratio(native_nm, target_nm)
    idx = [_nearest_index(_coords(a, b, q)) for a, b, q in zip(start_zyx, stop_zyx, r)]
    if any(len(i) == 0 for i in idx):
        return np.zeros(tuple(len(i) for i in idx), volume.dtype)
    lo = [int(i.min()) for i in idx]
    hi = [int(i.max()) + 1 for i in idx]
    block = read_box(volume, lo, hi)  # zeros outside the volume
    if all(q == 1.0 for q in r):
        return block
    for axis, (i, a) in enumerate(zip(idx, lo)):  # one gather per axis: cheaper than a 3-D fancy index
        block = np.take(block, i - a, axis=axis)
    return block


def _axis_weights(c: np.ndarray, n: int, q: float) -> np.ndarray:
    """Resampling matrix (len(c), n) of one axis: row i gives target voxel i from native cells 0..n-1.

    ``c`` are the target voxels' native coordinates relative to the first native cell read.
    ``q > 1``: area average of the cells overlapping ``[c - q/2, c + q/2)`` (clipped to the cells
    read); ``q < 1``: linear interpolation between the two nearest cell centres; ``q == 1``: copy.
    """
    c = np.clip(c, 0, n - 1)
    j = np.arange(n, dtype=np.float64)[None, :]
    if q > 1:
        a = np.clip(c - q / 2, -0.5, n - 0.5)[:, None]
        b = np.clip(c + q / 2, -0.5, n - 0.5)[:, None]
        w = np.clip(np.minimum(b, j + 0.5) - np.maximum(a, j - 0.5), 0, None)
        return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
    i0 = np.floor(c).astype(np.int64)
    frac = c - i0
    i1 = np.minimum(i0 + 1, n - 1)
    w = np.zeros((len(c), n), np.float64)
    rows = np.arange(len(c))
    np.add.at(w, (rows, i0), 1 - frac)
    np.add.at(w, (rows, i1), frac)
    return w.astype(np.float32)


def _apply_axis(block: np.ndarray, axis: int, w: np.ndarray) -> np.ndarray:
    """``block`` with ``axis`` replaced by ``w @ (values along axis)``.

    ``w`` has a few non-zero taps per row (2 for linear, about ``q + 1`` for area averaging), so
    the product is a sum of a few weighted gathers: no BLAS call, whose threads stall when the
    machine is shared.
    """
    nz = w != 0
    k = max(1, int(nz.sum(axis=1).max()))
    idx = np.argsort(~nz, axis=1, kind="stable")[:, :k]  # the non-zero columns of each row first
    taps = np.take_along_axis(w, idx, axis=1)
    shape = [1, 1, 1]
    shape[axis] = -1
    out = np.take(block, idx[:, 0], axis=axis) * taps[:, 0].reshape(shape)
    for j in range(1, k):
        out += np.take(block, idx[:, j], axis=axis) * taps[:, j].reshape(shape)
    return out


def read_raw(volume, start_zyx, stop_zyx, native_nm, target_nm) -> np.ndarray:
    """Raw intensities of target voxels ``start..stop`` (z, y, x, target indices) as float32.

    Area averaging on axes the target grid is coarser on, linear interpolation on axes it is finer
    on, exact copy where equal (module docstring). Target voxels outside the data are 0; near the
    border only native voxels inside the data contribute, so no zeros from outside leak in.
    """
    r = _ratio(native_nm, target_nm)
    shape = [int(n) for n in volume.shape[:3]]
    out_shape = tuple(int(b) - int(a) for a, b in zip(start_zyx, stop_zyx))
    if any(s <= 0 for s in out_shape):
        return np.zeros(tuple(max(s, 0) for s in out_shape), np.float32)
    if all(q == 1.0 for q in r):
        return read_box(volume, start_zyx, stop_zyx).astype(np.float32)
    coords = [_coords(a, b, q) for a, b, q in zip(start_zyx, stop_zyx, r)]
    reach = [q / 2 + 1 if q > 1 else 1 for q in r]
    # Native box to read: the coordinates' span plus what one target voxel reaches, clipped to the volume.
    lo = [max(0, min(n - 1, math.floor(c.min() - m))) for c, m, n in zip(coords, reach, shape)]
    hi = [min(n, max(l + 1, math.ceil(c.max() + m) + 1)) for c, m, n, l in zip(coords, reach, shape, lo)]
    block = read_box(volume, lo, hi).astype(np.float32)
    for axis in sorted(range(3), key=lambda a: -r[a]):  # shrinking axes first: less to interpolate after
        local = np.clip(coords[axis], 0, shape[axis] - 1) - lo[axis]
        block = _apply_axis(block, axis, _axis_weights(local, block.shape[axis], float(r[axis])))
    extent = target_extent(shape, native_nm, target_nm)
    inside = [((np.arange(a, b) >= e0) & (np.arange(a, b) < e1)) for (a, b), (e0, e1)
              in zip(zip(start_zyx, stop_zyx), extent)]
    if not all(m.all() for m in inside):
        mz, my, mx = inside  # np.ix_ would turn boolean masks into indices
        block = block * (mz[:, None, None] & my[None, :, None] & mx[None, None, :])
    return np.ascontiguousarray(block, dtype=np.float32)
