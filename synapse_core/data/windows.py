"""Read windows ``[z, y, x]`` of EM volumes: one reader for numpy, Zarr (v2 and v3) and HDF5.

:func:`read_box` is the only window reader of the package (crops, resampling, figures). Each
format is read by a library that keeps decoded chunks, so the evidence window and the crop window
of a synapse (which share most chunks), and neighbouring synapses, decode each chunk once:

* **Zarr** on a local file store: TensorStore, with one ``cache_pool`` of decoded chunks per
  process (:data:`CACHE_BYTES`, all arrays together). Stores are opened once per process, keyed by
  the metadata file's modification time, size and inode (an array created again at the same path
  is opened again), and every read revalidates the cached chunks against the chunk files
  (``recheck_cached_data``: one ``stat`` per chunk), so a chunk written again is read again, never
  served stale. Zarr arrays on other stores (memory, zip, remote) are sliced through zarr, uncached.
* **HDF5**: h5py, whose chunk cache keeps decoded chunks
  (:meth:`synapse_core.data.volumes.VolumeSource.open` opens files with ``rdcc_nbytes`` =
  ``volumes.HDF5_CHUNK_CACHE_BYTES`` per dataset).
* **OME-Zarr, N5, Neuroglancer precomputed, WebKnossos zarr3** (:mod:`synapse_core.data.formats`):
  TensorStore through the same per-process ``cache_pool`` (:func:`tensorstore_context`); the
  :class:`~synapse_core.data.volumes.WindowedArray` reads just the window (``read_window``).
* **numpy** (and any array-like without chunks): sliced.

TensorStore threads do not survive ``fork()``: a process forked after TensorStore started cannot
use it (TensorStore aborts such a process). Worker processes must therefore be started with
``forkserver`` or ``spawn`` (as :mod:`synapse_core.features.extract` does); :func:`read_box` in a
forked child raises a :class:`RuntimeError` that says so instead of letting TensorStore abort.

Nothing here hides a failure: a chunk absent from the store reads as the array's ``fill_value``
because the Zarr and HDF5 formats define an unwritten chunk so; a chunk file that exists but
cannot be decoded raises the library's error.
"""

from __future__ import annotations

import os

import numpy as np

from synapse_core.data.volumes import (  # the TensorStore plumbing lives with the volumes it opens
    CACHE_BYTES,
    VolumeSource,
    clear_tensorstore_cache,
    local_zarr_tensorstore,
    tensorstore_context,
)

__all__ = ["CACHE_BYTES", "VIEW_MAX_YX", "clear_chunk_cache", "point_values", "read_box", "read_slice",
           "reuse_freed_memory", "tensorstore_context", "view_window"]

#: Largest slice window (rows, columns) a viewer reads at once: a whole-volume slice is never loaded.
VIEW_MAX_YX = (1024, 1024)

def _zarr_tensorstore(array):
    """The TensorStore view of a zarr.Array on a local file store, or None for other stores."""
    from zarr.storage import LocalStore

    store_path = array.store_path
    if not isinstance(store_path.store, LocalStore):
        return None
    folder = os.path.join(str(store_path.store.root), store_path.path)
    return local_zarr_tensorstore(folder, int(array.metadata.zarr_format))


def clear_chunk_cache() -> None:
    """Drop this process's open Zarr stores and their decoded chunks (the next read decodes again)."""
    clear_tensorstore_cache()


def _read_inside(volume, lo: list[int], hi: list[int]) -> np.ndarray:
    """A fresh array of ``volume[lo:hi]`` for a box inside the volume (z, y, x)."""
    if isinstance(volume, np.ndarray):
        return np.array(volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])  # a copy, never a view
    if hasattr(volume, "read_window"):  # volumes.WindowedArray (converted stacks, OME-Zarr, N5, ...)
        return volume.read_window(lo, hi)
    if type(volume).__module__.startswith("zarr."):
        store = _zarr_tensorstore(volume)
        if store is not None:
            return store[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].read().result()
    return np.asarray(volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])  # zarr, h5py: a new array per read


def read_box(volume, start_zyx, stop_zyx, fill=0) -> np.ndarray:
    """A fresh array of ``volume[start:stop]`` (z, y, x voxel indices, stop exclusive).

    Parameters
    ----------
    volume : VolumeSource, zarr.Array, h5py.Dataset or numpy array, indexed ``[z, y, x]``
        A :class:`~synapse_core.data.volumes.VolumeSource` is opened (once per process).
    start_zyx, stop_zyx : sequences of 3 ints
        Corners of the window in voxels; they may lie outside the volume.
    fill : scalar
        Value of the voxels outside the volume (0 by default).

    Returns
    -------
    ndarray of shape ``stop - start`` and the volume's dtype, never a view of the volume: parts
    outside the volume are ``fill``, so the requested point stays where it was asked for (no
    end-only padding). Only the part inside the volume is read.

    Raises
    ------
    ValueError
        When start/stop are not 3 ints each with ``stop >= start``.

    Examples
    --------
    >>> vol = np.arange(27).reshape(3, 3, 3)
    >>> read_box(vol, (2, 2, 1), (4, 3, 3))[:, 0].tolist()
    [[25, 26], [0, 0]]
    """
    if isinstance(volume, VolumeSource):
        volume = volume.open()
    start = np.asarray(start_zyx, dtype=np.int64).reshape(-1)
    stop = np.asarray(stop_zyx, dtype=np.int64).reshape(-1)
    if start.shape != (3,) or stop.shape != (3,) or np.any(stop < start):
        raise ValueError(f"window start {tuple(start.tolist())} / stop {tuple(stop.tolist())} must be 3 (z, y, x) "
                         f"ints with stop >= start")
    shape = np.asarray(volume.shape[:3], dtype=np.int64)
    lo = np.clip(start, 0, shape)
    hi = np.clip(stop, 0, shape)
    if np.array_equal(lo, start) and np.array_equal(hi, stop) and np.all(hi > lo):
        return _read_inside(volume, lo.tolist(), hi.tolist())
    out = np.full(tuple((stop - start).tolist()), fill, dtype=volume.dtype)
    if np.all(hi > lo):
        dst = tuple(slice(int(a - s), int(b - s)) for a, b, s in zip(lo, hi, start))
        out[dst] = _read_inside(volume, lo.tolist(), hi.tolist())
    return out


def view_window(shape_zyx, center_yx=None, max_yx=VIEW_MAX_YX) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of a slice window of at most ``max_yx`` voxels around ``center_yx``, inside the volume.

    The whole slice when it fits (a bbox); around the volume's centre when ``center_yx`` is None.

    >>> view_window((10, 4000, 3000), (100, 2900), max_yx=(512, 512))
    (0, 512, 2488, 3000)
    >>> view_window((10, 200, 300))
    (0, 200, 0, 300)
    """
    ny, nx = int(shape_zyx[1]), int(shape_zyx[2])
    cy, cx = (ny // 2, nx // 2) if center_yx is None else (int(center_yx[0]), int(center_yx[1]))
    out = []
    for c, n, m in ((cy, ny, int(max_yx[0])), (cx, nx, int(max_yx[1]))):
        size = min(n, m)
        lo = min(max(0, c - size // 2), n - size)
        out += [lo, lo + size]
    return tuple(out)


def read_slice(volume, z: int, window) -> np.ndarray:
    """The ``(y0, y1, x0, x1)`` window of slice ``z`` (2-D, rows = y); only that window is read."""
    y0, y1, x0, x1 = (int(v) for v in window)
    return read_box(volume, (int(z), y0, x0), (int(z) + 1, y1, x1))[0]


def point_values(volume, points_zyx: np.ndarray) -> np.ndarray:
    """Values of ``volume`` at integer points ``points_zyx`` (N, 3; z, y, x voxel indices), as int64.

    Zarr arrays decode each touched chunk once (``vindex``); HDF5 datasets are read point by point
    through their chunk cache; a :class:`~synapse_core.data.volumes.VolumeSource` is opened first.
    """
    if isinstance(volume, VolumeSource):
        volume = volume.open()
    pts = np.asarray(points_zyx, dtype=np.int64).reshape(-1, 3)
    if not len(pts):
        return np.zeros(0, np.int64)
    if hasattr(volume, "vindex"):
        return np.asarray(volume.vindex[pts[:, 0], pts[:, 1], pts[:, 2]]).astype(np.int64)
    return np.array([volume[z, y, x] for z, y, x in pts], dtype=np.int64)


def reuse_freed_memory(trim_threshold_bytes: int = 1 << 30) -> bool:
    """Keep freed large arrays in this process's heap instead of returning them to the OS (glibc).

    Every crop allocates a few dozen arrays of 0.5–2 MB. glibc serves such sizes with ``mmap`` and
    unmaps them on free, so each new crop pays a page fault per 4 KiB touched (about 500 per
    float32 80³ array; costly in a VM). Raising the mmap/trim thresholds lets later crops reuse the
    same pages; the process keeps its peak heap. Process-wide, so it is opt-in: call it once in a
    worker or batch process. Returns False where it does not apply (non-glibc platforms).
    ``python benchmarks/crops.py --reuse-freed-memory`` measures the gain.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's maximum on 64-bit
    ok &= libc.mallopt(m_trim_threshold, int(trim_threshold_bytes))
    ok &= libc.mallopt(m_top_pad, 64 << 20)
    return bool(ok)
