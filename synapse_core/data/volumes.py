"""Open EM volumes lazily (Zarr, HDF5, TIFF stacks converted once to Zarr).

Every volume is indexed ``[z, y, x]``. Nothing here loads a whole volume into memory: a
volume is an array-like (``zarr.Array`` or ``h5py.Dataset``) and callers read windows with
:func:`synapse_core.data.windows.read_box`.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from synapse_core.data.hashing import stat_fingerprint


#: Chunk shape (z, y, x) of converted TIFF stacks: a 160³ context window touches at most 4³ chunks.
CHUNKS_ZYX = (64, 64, 64)
#: HDF5 chunk cache per opened dataset (bytes of decoded chunks; h5py's default is 1 MiB): holds
#: the 27 chunks of 64³ uint32 a crop window can touch.
HDF5_CHUNK_CACHE_BYTES = 32 << 20
#: Hash slots of that cache: a prime well above the number of chunks it holds (HDF5's advice).
HDF5_CHUNK_CACHE_SLOTS = 10007
#: Luminance weights for RGB slices (ITU-R BT.601, as the original tool used).
RGB_WEIGHTS = (0.2989, 0.5870, 0.1140)


class VolumeError(ValueError):
    """A volume that cannot be read or does not match its partners; the message names the file."""


@dataclass(frozen=True)
class VolumeSource:
    """Where a volume lives, as plain picklable data a worker on another machine can open.

    ``kind`` is ``"zarr"`` (a Zarr array, or group + ``key``) or ``"hdf5"`` (file + dataset ``key``).
    ``fingerprint`` changes whenever the underlying data changes (for cache keys).
    """

    kind: str
    path: str
    key: str | None = None
    fingerprint: str = ""

    def open(self):
        """The volume as a lazily-read array-like indexed ``[z, y, x]`` (zarr.Array or h5py.Dataset).

        Opened once per process and fingerprint (a source made after the file changed opens it
        again); HDF5 files get a chunk cache of :data:`HDF5_CHUNK_CACHE_BYTES` per dataset.
        """
        return _open_cached(self.kind, self.path, self.key, self.fingerprint)


@functools.lru_cache(maxsize=64)
def _open_cached(kind: str, path: str, key: str | None, fingerprint: str = ""):
    if kind == "hdf5":
        import h5py

        try:
            f = h5py.File(path, "r", rdcc_nbytes=HDF5_CHUNK_CACHE_BYTES, rdcc_nslots=HDF5_CHUNK_CACHE_SLOTS)
        except OSError as exc:
            raise VolumeError(f"{path}: cannot open as HDF5 ({exc})") from exc
        if key is None:
            names = [k for k in f.keys() if isinstance(f[k], h5py.Dataset)]
            raise VolumeError(f"{path}: name the HDF5 dataset with key = ...; datasets here: {names}")
        if key not in f:
            raise VolumeError(f"{path}: no dataset {key!r}; datasets here: {list(f.keys())}")
        return f[key]
    if kind == "zarr":
        import zarr

        try:
            node = zarr.open(path, mode="r")
            return node[key] if key else node
        except (KeyError, FileNotFoundError, ValueError) as exc:
            raise VolumeError(f"{path}: cannot open Zarr {'dataset ' + repr(key) if key else 'array'} ({exc})") from exc
    raise VolumeError(f"{path}: unknown volume kind {kind!r}; use 'hdf5' or 'zarr'")


def source_from_spec(path: str, key: str | None) -> VolumeSource:
    """A :class:`VolumeSource` for an HDF5 file (``.h5``/``.hdf5``/``.hdf``) or a Zarr store."""
    p = Path(path)
    if not p.exists():
        raise VolumeError(f"{path}: file or folder not found")
    kind = "hdf5" if p.suffix.lower() in (".h5", ".hdf5", ".hdf") else "zarr"
    return VolumeSource(kind, str(p.resolve()), key, stat_fingerprint([p], extra=str(key)))


def natural_key(name: str) -> list:
    """Sort key that orders ``slice_2`` before ``slice_10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_slices(folder: Path) -> list[Path]:
    """``slice_*.tif``/``.tiff`` files of ``folder`` in natural (numeric) order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.name.lower().startswith("slice") and p.suffix.lower() in (".tif", ".tiff")]
    return sorted(files, key=lambda p: natural_key(p.name))


def _slice_to_2d(img: np.ndarray, is_raw: bool) -> np.ndarray:
    """Gray 2-D slice: RGB(A) raw → luminance (keeping uint8/uint16); multi-channel labels → channel 0."""
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        if not is_raw:
            return img[..., 0]
        gray = img[..., :3].astype(np.float32) @ np.asarray(RGB_WEIGHTS, np.float32)
        if np.issubdtype(img.dtype, np.integer):
            return np.clip(np.rint(gray), 0, np.iinfo(img.dtype).max).astype(img.dtype)
        return gray.astype(np.float32)
    return img


def tiff_header_shape(path: Path) -> tuple[int, int]:
    """(rows, columns) of a TIFF slice from its header; raises VolumeError naming the file."""
    try:
        with tifffile.TiffFile(path) as tf:
            shape = tf.pages[0].shape
    except Exception as exc:
        raise VolumeError(f"{path}: unreadable TIFF ({exc.__class__.__name__}: {exc}); replace or remove the file") from exc
    return tuple(shape[:2])


def _read_slice(path: Path, is_raw: bool) -> np.ndarray:
    try:
        img = tifffile.imread(path)
    except Exception as exc:
        raise VolumeError(f"{path}: unreadable TIFF ({exc.__class__.__name__}: {exc}); replace or remove the file") from exc
    return _slice_to_2d(np.asarray(img), is_raw)


def stack_fingerprint(files: list[Path]) -> str:
    """Hash of the names, sizes and modification times of a slice stack."""
    return stat_fingerprint(files)


def convert_tiff_stack(files: list[Path], out_dir: Path, is_raw: bool, chunk_z: int = CHUNKS_ZYX[0]) -> VolumeSource:
    """Convert a TIFF slice stack once into a chunked Zarr array under ``out_dir`` and return it.

    Reuses an earlier conversion of the same files (same names, sizes, mtimes). Memory stays at
    ``chunk_z`` slices whatever the stack size. Labels (``is_raw=False``) are stored in the smallest
    unsigned integer type that holds their maximum. Raises :class:`VolumeError` naming the file for
    an unreadable slice or a slice whose shape differs from the first one.
    """
    import zarr

    if not files:
        raise VolumeError("empty slice stack")
    fp = stack_fingerprint(files)
    target = out_dir / f"{fp}.zarr"
    if (target / ".complete").exists():
        return VolumeSource("zarr", str(target), None, fp)
    shape2d = tiff_header_shape(files[0])
    # Pass 1 (labels only): the maximum decides the dtype.
    first = _read_slice(files[0], is_raw)
    if is_raw:
        dtype = first.dtype
    else:
        vmax = 0
        for p in files:
            img = _read_slice(p, is_raw)
            if img.shape != shape2d:
                raise VolumeError(f"{p}: slice shape {img.shape} differs from {files[0].name} {shape2d}")
            vmax = max(vmax, int(img.max()) if img.size else 0)
        dtype = np.min_scalar_type(vmax)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"{fp}.zarr.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shape = (len(files), *shape2d)
    chunks = tuple(min(c, s) for c, s in zip(CHUNKS_ZYX, shape))
    arr = zarr.open_array(str(tmp), mode="w", shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
    for z0 in range(0, len(files), chunk_z):
        block = np.zeros((min(chunk_z, len(files) - z0), *shape2d), dtype)
        for i, p in enumerate(files[z0:z0 + chunk_z]):
            img = _read_slice(p, is_raw)
            if img.shape != shape2d:
                raise VolumeError(f"{p}: slice shape {img.shape} differs from {files[0].name} {shape2d}")
            block[i] = img
        arr[z0:z0 + block.shape[0]] = block
    (tmp / ".complete").write_text(f"{len(files)} slices\n")
    try:
        tmp.rename(target)
    except OSError:  # another process converted the same stack first; both copies are identical
        shutil.rmtree(tmp, ignore_errors=True)
    return VolumeSource("zarr", str(target), None, fp)
