"""Open EM volumes lazily (Zarr, HDF5, TIFF stacks converted once to Zarr) and read windows.

Every volume is indexed ``[z, y, x]``. Nothing here loads a whole volume into memory: a
volume is an array-like (``zarr.Array`` or ``h5py.Dataset``) and callers read windows.
"""

from __future__ import annotations

import numpy as np


def read_window(volume, start_zyx, stop_zyx, fill=0) -> np.ndarray:
    """Read ``volume[start:stop]`` (z, y, x voxel indices, stop exclusive) as a numpy array.

    Parts of the window outside the volume are filled with ``fill``, so the result always has
    shape ``stop - start`` and the requested point stays where it was asked for (no end-only
    padding). Only the overlapping part is read from the store.
    """
    start = np.asarray(start_zyx, dtype=np.int64)
    stop = np.asarray(stop_zyx, dtype=np.int64)
    if start.shape != (3,) or stop.shape != (3,) or np.any(stop < start):
        raise ValueError(f"window start {tuple(start)} / stop {tuple(stop)} must be 3 (z, y, x) ints with stop >= start")
    shape = np.asarray(volume.shape[:3], dtype=np.int64)
    lo = np.clip(start, 0, shape)
    hi = np.clip(stop, 0, shape)
    out = np.full(tuple(stop - start), fill, dtype=volume.dtype)
    if np.all(hi > lo):
        dst = tuple(slice(int(a - s), int(b - s)) for a, b, s in zip(lo, hi, start))
        out[dst] = np.asarray(volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
    return out
