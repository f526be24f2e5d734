"""Window reads for cropping, with a per-process cache of decoded chunks (Zarr and HDF5).

A crop reads an evidence window and then the crop window, which share most chunks, and nearby
synapses share chunks too. Chunked stores decode whole chunks anyway, so reading the
chunk-aligned box once and keeping the decoded chunks (LRU, capped in bytes) turns repeated
decoding into array copies. Arrays without ``.chunks`` (numpy) are sliced directly.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import numpy as np

from synapse_core.data.volumes import read_window

#: Upper bound of decoded chunk bytes kept per process.
CHUNK_CACHE_BYTES = 256 << 20


class ChunkCache:
    """LRU cache of decoded chunks, keyed by (store identity, chunk index); thread-safe."""

    def __init__(self, max_bytes: int = CHUNK_CACHE_BYTES):
        self.max_bytes = int(max_bytes)
        self._chunks: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._bytes = 0
            self.hits = self.misses = 0

    def _put(self, key, block: np.ndarray) -> None:
        self._chunks[key] = block
        self._bytes += block.nbytes
        while self._bytes > self.max_bytes and self._chunks:
            _, old = self._chunks.popitem(last=False)
            self._bytes -= old.nbytes

    def read(self, volume, start, stop) -> np.ndarray:
        """``volume[start:stop]`` (z, y, x, all inside the volume) assembled from cached chunks."""
        chunks = tuple(int(c) for c in volume.chunks[:3])
        ident = _identity(volume)
        lo = [a // c for a, c in zip(start, chunks)]
        hi = [(b - 1) // c for b, c in zip(stop, chunks)]
        idx = [(i, j, k) for i in range(lo[0], hi[0] + 1) for j in range(lo[1], hi[1] + 1)
               for k in range(lo[2], hi[2] + 1)]
        with self._lock:
            have = {i: self._chunks.get((ident, i)) for i in idx}
            for i, v in have.items():
                if v is not None:
                    self._chunks.move_to_end((ident, i))
        missing = [i for i, v in have.items() if v is None]
        direct = _direct_decoder(volume) if missing else None
        if direct is not None:
            with self._lock:
                for i in missing:
                    have[i] = direct(i)
                    self._put((ident, i), have[i])
                self.misses += len(missing)
        elif missing:
            # One read of the chunk-aligned box around the missing chunks (the store decodes in parallel).
            mlo = [min(i[a] for i in missing) for a in range(3)]
            mhi = [max(i[a] for i in missing) for a in range(3)]
            shape = volume.shape[:3]
            b0 = [l * c for l, c in zip(mlo, chunks)]
            b1 = [min((h + 1) * c, n) for h, c, n in zip(mhi, chunks, shape)]
            block = np.asarray(volume[b0[0]:b1[0], b0[1]:b1[1], b0[2]:b1[2]])
            with self._lock:
                for i in missing:
                    sl = tuple(slice(i[a] * chunks[a] - b0[a], min((i[a] + 1) * chunks[a], shape[a]) - b0[a])
                               for a in range(3))
                    have[i] = block[sl].copy()
                    self._put((ident, i), have[i])
                self.misses += len(missing)
        with self._lock:
            self.hits += len(idx) - len(missing)
        out = np.empty(tuple(b - a for a, b in zip(start, stop)), volume.dtype)
        for i, blk in have.items():
            c0 = [i[a] * chunks[a] for a in range(3)]
            lo_hi = [(max(start[a], c0[a]), min(stop[a], c0[a] + blk.shape[a])) for a in range(3)]
            src = tuple(slice(a - c, b - c) for (a, b), c in zip(lo_hi, c0))
            dst = tuple(slice(a - s, b - s) for (a, b), s in zip(lo_hi, start))
            out[dst] = blk[src]
        return out


def _identity(volume) -> tuple:
    """A key naming the stored array and its modification time (a rewritten store is not served stale)."""
    store = getattr(volume, "store_path", None)
    if store is not None:  # zarr
        path = str(store)
        meta = path[len("file://"):] if path.startswith("file://") else None
        return ("zarr", path, _mtime(os.path.join(meta, "zarr.json")) if meta else 0, tuple(volume.shape),
                str(volume.dtype))
    file = getattr(volume, "file", None)
    if file is not None:  # h5py
        return ("hdf5", str(file.filename), _mtime(file.filename), str(volume.name), tuple(volume.shape),
                str(volume.dtype))
    return ("id", id(volume))


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _direct_decoder(volume):
    """A function chunk index → decoded chunk for a local Zarr v3 array with plain codecs, else None.

    Zarr's generic read path costs ~1 ms of overhead per chunk; for the common local layout
    (``bytes`` + optional ``zstd``/``gzip``/``blosc``, no sharding) the chunk file is read and
    decoded directly with numcodecs, which is 2–3x faster. Anything else uses Zarr itself.
    """
    meta = getattr(volume, "metadata", None)
    path = str(getattr(volume, "store_path", ""))
    if meta is None or getattr(meta, "zarr_format", None) != 3 or not path.startswith("file://"):
        return None
    try:
        import numcodecs

        codecs = list(meta.codecs)
        if not codecs or type(codecs[0]).__name__ != "BytesCodec":
            return None
        endian = "<" if str(getattr(codecs[0].endian, "value", codecs[0].endian)) == "little" else ">"
        decompress = None
        if len(codecs) == 2:
            name = type(codecs[1]).__name__
            if name == "ZstdCodec":
                decompress = numcodecs.Zstd().decode
            elif name == "GzipCodec":
                decompress = numcodecs.GZip().decode
            elif name == "BloscCodec":
                decompress = numcodecs.Blosc().decode
            else:
                return None
        elif len(codecs) > 2:
            return None
        dtype = np.dtype(volume.dtype)
        dtype = dtype.newbyteorder(endian) if dtype.itemsize > 1 else dtype
        chunk_shape = tuple(int(c) for c in volume.chunks)
        shape = tuple(int(n) for n in volume.shape)
        root = path[len("file://"):]
        fill = meta.fill_value
    except Exception:  # an unexpected metadata layout: let Zarr read it
        return None

    def decode(index):
        fn = os.path.join(root, *meta.encode_chunk_key(tuple(index)).split("/"))
        try:
            with open(fn, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            block = np.full(chunk_shape, fill, dtype=volume.dtype)
        else:
            raw = decompress(data) if decompress else data
            block = np.frombuffer(raw, dtype=dtype).reshape(chunk_shape).astype(volume.dtype, copy=False)
        # Edge chunks are stored full size: keep the part inside the array.
        return block[tuple(slice(0, min(c, n - i * c)) for i, c, n in zip(index, chunk_shape, shape))]

    return decode


#: The process-wide cache used by :func:`read_box`.
CHUNK_CACHE = ChunkCache()


def read_box(volume, start, stop) -> np.ndarray:
    """A fresh array of ``volume[start:stop]`` (z, y, x voxel indices); parts outside the volume are 0.

    Chunked arrays (Zarr, chunked HDF5) go through :data:`CHUNK_CACHE`; numpy arrays are copied.
    """
    start = [int(v) for v in start]
    stop = [int(v) for v in stop]
    shape = volume.shape[:3]
    inside = all(0 <= a and b <= n for a, b, n in zip(start, stop, shape))
    if getattr(volume, "chunks", None) and len(volume.chunks) >= 3:
        if inside:
            return CHUNK_CACHE.read(volume, start, stop)
        out = np.zeros(tuple(b - a for a, b in zip(start, stop)), volume.dtype)
        lo = [max(a, 0) for a in start]
        hi = [min(b, n) for b, n in zip(stop, shape)]
        if all(h > l for l, h in zip(lo, hi)):
            dst = tuple(slice(l - a, h - a) for l, h, a in zip(lo, hi, start))
            out[dst] = CHUNK_CACHE.read(volume, lo, hi)
        return out
    if inside:
        return np.array(volume[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]])
    return read_window(volume, start, stop, fill=0)


def reuse_freed_memory(trim_threshold_bytes: int = 1 << 30) -> bool:
    """Keep freed large arrays in this process's heap instead of returning them to the OS (glibc).

    Every crop allocates a few dozen arrays of 0.5–2 MB. glibc serves such sizes with ``mmap`` and
    unmaps them on free, so each new crop pays a page fault per 4 KiB touched (about 500 per
    float32 80³ array; costly in a VM). Raising the mmap/trim thresholds lets later crops reuse the
    same pages: crops get ~1.5x faster; the process keeps its peak heap. Process-wide, so it is
    opt-in: call it once in a worker or batch process. Returns False where it does not apply
    (non-glibc platforms).
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
