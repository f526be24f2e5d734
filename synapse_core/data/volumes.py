"""Open EM volumes lazily (Zarr, HDF5, TIFF stacks converted once to Zarr).

Every volume is indexed ``[z, y, x]``. Nothing here loads a whole volume into memory: a
volume is an array-like (``zarr.Array``, ``h5py.Dataset``, or for a converted TIFF stack a
TensorStore-backed :class:`WindowedArray`) and callers read windows with
:func:`synapse_core.data.windows.read_box`.

A converted TIFF stack carries a manifest (``.manifest.json``: every chunk file with its size,
modification time and sha256). Each time the stack is opened the chunk files are compared with it
(a ``stat`` per file, no reading); a missing, truncated or rewritten chunk makes the store be
moved aside and converted again, with a warning naming it (:func:`check_converted`;
``full=True`` also compares the checksums).

Slice stacks are checked before conversion: every slice must have the first slice's shape,
dtype and channel count (the message names the slice); segmentation and mask slices must be
single-channel (or RGB with equal channels) with integer ids ≥ 0.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from synapse_core.data.atomic import atomic_folder, discard_folder
from synapse_core.data.hashing import stat_fingerprint
from synapse_core.data.paths import confine

log = logging.getLogger(__name__)

#: File in a converted store listing every chunk file with its size, mtime and sha256 (written at conversion).
MANIFEST = ".manifest.json"
#: Marker of a finished conversion.
COMPLETE = ".complete"


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
        again); HDF5 files get a chunk cache of :data:`HDF5_CHUNK_CACHE_BYTES` per dataset. A TIFF
        stack converted by :func:`convert_tiff_stack` (its ``.complete`` marker present) opens as a
        :class:`WindowedArray` over TensorStore, without importing zarr.
        """
        if self.kind == "zarr" and self.key is None and os.path.isfile(os.path.join(self.path, COMPLETE)):
            return _open_converted(self.path)
        return _open_cached(self.kind, self.path, self.key, self.fingerprint)


def _open_converted(path: str) -> WindowedArray:
    """A TIFF stack converted by :func:`convert_tiff_stack`, read by TensorStore (the reader
    :func:`~synapse_core.data.windows.read_box` already used for it) without importing zarr
    (≈ 0.3 s of a one-synapse ``crop``)."""
    return WindowedArray(local_zarr_tensorstore(path))


# ------------------------------------------------------------------ TensorStore (see data/windows.py)

#: Upper bound, in bytes, of decoded Zarr chunks kept per process (TensorStore cache pool).
CACHE_BYTES = 256 << 20

#: pid of the process that started TensorStore in this address space (None: not started).
_TENSORSTORE_PID: int | None = None


@functools.lru_cache(maxsize=1)
def _context(pid: int):
    """The TensorStore context (decoded-chunk cache pool) of process ``pid``."""
    import tensorstore as ts

    global _TENSORSTORE_PID
    _TENSORSTORE_PID = pid
    return ts.Context({"cache_pool": {"total_bytes_limit": CACHE_BYTES}})


@functools.lru_cache(maxsize=64)
def _tensorstore_array(pid: int, folder: str, zarr_format: int, metadata_stat: tuple):
    """An open TensorStore of the Zarr array in ``folder``; ``metadata_stat`` makes a rewritten array a new key."""
    import tensorstore as ts

    spec = {"driver": "zarr3" if zarr_format == 3 else "zarr",
            "kvstore": {"driver": "file", "path": folder.rstrip("/") + "/"},
            "recheck_cached_data": True}
    try:
        return ts.open(spec, read=True, context=_context(pid)).result()
    except ValueError as exc:  # TensorStore's error for metadata or a codec it does not support
        raise VolumeError(f"{folder}: TensorStore cannot open this Zarr array ({exc}). It reads Zarr v2 without "
                          f"filters and v3 with the bytes, zstd, blosc, gzip, crc32c, transpose and sharding "
                          f"codecs: write the array again with those") from exc


def check_not_forked() -> int:
    """This process's pid; raises :class:`RuntimeError` when TensorStore was started in a parent this
    process was forked from (TensorStore would abort the process)."""
    pid = os.getpid()
    if _TENSORSTORE_PID is not None and _TENSORSTORE_PID != pid:
        raise RuntimeError(f"this process (pid {pid}) was forked from process {_TENSORSTORE_PID} after TensorStore "
                           f"started there; TensorStore cannot run in a forked process. Start worker processes with "
                           f"multiprocessing.get_context('forkserver') or 'spawn'.")
    return pid


def tensorstore_context():
    """This process's TensorStore context: one pool of decoded chunks (:data:`CACHE_BYTES`) for every store.

    Raises :class:`RuntimeError` in a process forked after TensorStore started (see the module notes).
    """
    return _context(check_not_forked())


def clear_tensorstore_cache() -> None:
    """Drop this process's open TensorStore arrays and their decoded chunks (the next read decodes again)."""
    _tensorstore_array.cache_clear()
    _context.cache_clear()


#: Metadata file of a Zarr array per format version.
_ZARR_METADATA = {3: "zarr.json", 2: ".zarray"}


def local_zarr_tensorstore(folder: str, zarr_format: int | None = None):
    """The TensorStore of the Zarr array in a local ``folder``, opened without zarr.

    ``zarr_format`` 3 or 2, or None to look for a v3 array, then a v2 one. One store per process,
    folder (symlinks resolved) and state of the metadata file (modification time, size, inode: an
    array written again at the same path is opened again); every store shares this process's
    chunk cache (:func:`tensorstore_context`). Raises :class:`RuntimeError` in a process forked
    after TensorStore started, :class:`VolumeError` when ``folder`` holds no Zarr array of that format.
    """
    pid = check_not_forked()
    folder = os.path.realpath(folder)
    for fmt in (3, 2) if zarr_format is None else (int(zarr_format),):
        try:
            st = os.stat(os.path.join(folder, _ZARR_METADATA[fmt]))
        except FileNotFoundError:
            continue
        return _tensorstore_array(pid, folder, fmt, (st.st_mtime_ns, st.st_size, st.st_ino))
    wanted = " or ".join(_ZARR_METADATA[f] for f in ((3, 2) if zarr_format is None else (int(zarr_format),)))
    raise VolumeError(f"{folder}: not a Zarr array (no {wanted})")


class WindowedArray:
    """A TensorStore volume seen as ``[z, y, x]`` from index 0; every read is a fresh numpy array.

    ``shape``/``dtype``/``ndim`` as numpy; ``a[z0:z1, y0:y1, x0:x1]`` and :meth:`read_window`
    read only that window; ``a.vindex[zs, ys, xs]`` reads points (each touched chunk once).
    """

    def __init__(self, store):
        self._store = store
        self.shape = tuple(int(n) for n in store.shape)
        self.dtype = np.dtype(store.dtype.numpy_dtype)
        self.ndim = 3

    def read_window(self, lo, hi) -> np.ndarray:
        """``[lo:hi]`` (z, y, x voxel indices inside the volume) as a new array."""
        return self._store[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].read().result()

    def __getitem__(self, index) -> np.ndarray:
        return np.asarray(self._store[index].read().result())

    @property
    def vindex(self):
        store = self._store

        class _Points:
            def __getitem__(self, index):
                return store.vindex[index].read().result()

        return _Points()

    def __repr__(self) -> str:
        return f"WindowedArray(shape_zyx={self.shape}, dtype={self.dtype})"




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


def _is_slice_name(name: str) -> bool:
    """``slice*.tif``/``.tiff``, any case."""
    lower = name.lower()
    return lower.startswith("slice") and lower.endswith((".tif", ".tiff"))


def list_slices(folder: Path, roots=None) -> list[Path]:
    """``slice_*.tif``/``.tiff`` files of ``folder`` in natural (numeric) order.

    With ``roots`` (allowed data roots, :func:`synapse_core.data.paths.allowed_roots`) the folder
    and every slice are resolved (symlinks followed) and a :class:`VolumeError` names any that lies
    outside them.
    """
    folder = Path(folder)
    if roots is not None:
        confine(folder, roots, what="slice folder", error=VolumeError)
    files, links = [], []
    with os.scandir(folder) as entries:  # file types from the listing: no stat per plain file
        for e in entries:
            if _is_slice_name(e.name) and e.is_file():
                files.append(folder / e.name)
                if e.is_symlink():
                    links.append(files[-1])
    if roots is not None:
        # A slice that is not a symlink lies in the (already confined) folder itself: only
        # symlinked slices need resolving (one path resolution per slice was most of the cost
        # of opening a dataset of long stacks).
        for p in links:
            confine(p, roots, what="slice file", error=VolumeError)
    return sorted(files, key=lambda p: natural_key(p.name))


def stray_files(folder: Path) -> list[str]:
    """Names of files in a slice folder that are not ``slice*.tif`` slices (hidden files left out)."""
    try:
        return sorted((p.name for p in Path(folder).iterdir() if not p.name.startswith(".") and not _is_slice_name(p.name)),
                      key=natural_key)
    except OSError:
        return []


def slice_number(name: str) -> int | None:
    """The number of a slice file name (``slice_012.tif`` → 12), or None when it has none."""
    digits = re.findall(r"\d+", Path(name).stem)
    return int(digits[-1]) if digits else None


def unmatched_slices(stacks: dict[str, list[Path]]) -> dict[str, list[str]]:
    """Per stack, the slice files whose number occurs in some other stack's but not in every stack."""
    numbers = {k: {slice_number(p.name): p.name for p in files} for k, files in stacks.items()}
    common = set.intersection(*(set(n) for n in numbers.values())) if numbers else set()
    return {k: sorted((name for n, name in nums.items() if n not in common), key=natural_key)
            for k, nums in numbers.items() if set(nums) - common}


def _slice_to_2d(img: np.ndarray, is_raw: bool, path: Path | str = "slice") -> np.ndarray:
    """Gray 2-D slice: RGB(A) raw → luminance (keeping uint8/uint16).

    Labels (``is_raw=False``) must be one channel, or RGB(A) whose colour channels are equal
    (a gray image saved as RGB); colour-coded labels are a :class:`VolumeError` naming the file.
    """
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        if not is_raw:
            rgb = img[..., :3]
            if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                raise VolumeError(
                    f"{path}: an RGB label slice with different colour channels; segmentation and mask slices "
                    "must hold one integer id per voxel (one channel). Save the labels as single-channel "
                    "(grayscale) integer TIFFs, not as colour-coded images")
            return rgb[..., 0]
        gray = img[..., :3].astype(np.float32) @ np.asarray(RGB_WEIGHTS, np.float32)
        if np.issubdtype(img.dtype, np.integer):
            return np.clip(np.rint(gray), 0, np.iinfo(img.dtype).max).astype(img.dtype)
        return gray.astype(np.float32)
    if img.ndim != 2:
        raise VolumeError(f"{path}: a slice of shape {img.shape}; expected one 2-D image (rows, columns), "
                          "gray or RGB; save one z-slice per file")
    return img


def tiff_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of a TIFF slice from its header (shape (rows, columns[, channels])); VolumeError naming the file."""
    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            shape, dtype = tuple(int(v) for v in page.shape), np.dtype(page.dtype)
    except Exception as exc:
        raise VolumeError(f"{path}: unreadable TIFF ({exc.__class__.__name__}: {exc}); replace or remove the file") from exc
    return shape, dtype


def tiff_header_shape(path: Path) -> tuple[int, int]:
    """(rows, columns) of a TIFF slice from its header; raises VolumeError naming the file."""
    return tiff_header(path)[0][:2]


def check_slice_headers(files: list[Path]) -> None:
    """Every slice must have the first slice's shape, channel count and dtype; VolumeError naming the first that differs.

    Mixed dtypes would be cast to the first slice's (uint16 values wrap in uint8); mixed shapes
    or channel counts cannot form one volume.
    """
    if not files:
        return
    shape0, dtype0 = tiff_header(files[0])
    for p in files[1:]:
        shape, dtype = tiff_header(p)
        if shape[:2] != shape0[:2]:
            raise VolumeError(f"{p}: slice shape {shape[:2]} differs from {files[0].name} {shape0[:2]} "
                              "(rows, columns); every slice of a stack must have the same size")
        if shape[2:] != shape0[2:]:
            def channels(s):
                return f"{s[2]} channels" if len(s) > 2 else "1 channel"

            raise VolumeError(f"{p}: {channels(shape)} but {files[0].name} has {channels(shape0)}; save every "
                              "slice of the stack the same way (all gray or all RGB)")
        if dtype != dtype0:
            raise VolumeError(f"{p}: pixel type {dtype} differs from {files[0].name} ({dtype0}); values would be "
                              f"converted and could wrap. Save every slice of the stack as {dtype0} (or all as {dtype})")


def _read_slice(path: Path, is_raw: bool) -> np.ndarray:
    try:
        img = tifffile.imread(path)
    except Exception as exc:
        raise VolumeError(f"{path}: unreadable TIFF ({exc.__class__.__name__}: {exc}); replace or remove the file") from exc
    img = _slice_to_2d(np.asarray(img), is_raw, path)
    if not is_raw:
        _check_label_slice(img, path)
    return img


def _check_label_slice(img: np.ndarray, path: Path) -> None:
    """Label ids must be integers ≥ 0 (0 = background): a −1 background would wrap to 65535."""
    if img.dtype.kind == "f":
        if not np.isfinite(img).all() or not np.array_equal(img, np.round(img)):
            raise VolumeError(f"{path}: a label slice with non-integer or NaN values; segmentation and mask slices "
                              "must hold integer ids (0 = background)")
    elif img.dtype.kind not in "iub":
        raise VolumeError(f"{path}: label slice of type {img.dtype}; save integer ids (0 = background)")
    if img.size and img.dtype.kind in "if" and img.min() < 0:
        n = int(np.count_nonzero(img < 0))
        raise VolumeError(f"{path}: {n} voxels have negative label ids (smallest {img.min():g}); ids must be ≥ 0 "
                          "with 0 = background. If −1 marks background here, replace it by 0 "
                          "(e.g. numpy: seg[seg < 0] = 0) and save the slices again")


def stack_fingerprint(files: list[Path]) -> str:
    """Hash of the names, sizes and modification times of a slice stack."""
    return stat_fingerprint(files)


def _chunk_names(store: str | os.PathLike) -> list[str]:
    """Paths (relative, ``/``-separated, sorted) of the files of a store but its manifest and marker.

    Files in sub-folders too; symlinked folders are not entered (as ``Path.rglob``)."""
    names, todo = [], [(os.fspath(store), "")]
    while todo:
        folder, prefix = todo.pop()
        with os.scandir(folder) as entries:
            for e in entries:
                if e.is_dir():
                    if not e.is_symlink():
                        todo.append((e.path, f"{prefix}{e.name}/"))
                elif e.is_file() and e.name not in (MANIFEST, COMPLETE):
                    names.append(prefix + e.name)
    return sorted(names)


def _chunk_files(store: Path) -> list[Path]:
    return [store / rel for rel in _chunk_names(store)]


def write_manifest(store: Path) -> dict:
    """Write ``store/.manifest.json``: every file of the store with size (bytes), mtime (ns) and sha256."""
    entries = {}
    for p in _chunk_files(store):
        st = p.stat()
        entries[p.relative_to(store).as_posix()] = {
            "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
    (store / MANIFEST).write_text(json.dumps({"files": entries}, sort_keys=True))
    return entries


def check_converted(store: str | os.PathLike, full: bool = False) -> list[str]:
    """Problems of a converted store against its manifest (empty list: intact).

    By default only sizes and modification times are compared (one ``stat`` per chunk file);
    ``full=True`` also compares every file's sha256. A store without manifest or marker is damaged.
    """
    store = Path(store)
    if not (store / COMPLETE).exists():
        return [f"{store}: conversion not finished (no {COMPLETE} marker)"]
    try:
        entries = json.loads((store / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{store / MANIFEST}: missing or unreadable manifest"]
    problems = []
    folder = os.fspath(store)
    for rel, meta in entries.items():
        path = os.path.join(folder, rel)
        try:
            st = os.stat(path)
        except OSError:
            problems.append(f"chunk {rel} is missing")
            continue
        if st.st_size != meta["size"]:
            problems.append(f"chunk {rel} has {st.st_size} bytes, {meta['size']} were written")
        elif full:
            if hashlib.sha256(Path(path).read_bytes()).hexdigest() != meta["sha256"]:
                problems.append(f"chunk {rel} does not match its checksum")
        elif st.st_mtime_ns != meta["mtime_ns"]:
            problems.append(f"chunk {rel} was changed after conversion")
    extra = sorted(set(_chunk_names(store)) - set(entries))
    problems += [f"unexpected file {rel}" for rel in extra]
    return problems


def convert_tiff_stack(files: list[Path], out_dir: Path, is_raw: bool, chunk_z: int = CHUNKS_ZYX[0]) -> VolumeSource:
    """Convert a TIFF slice stack once into a chunked Zarr array under ``out_dir`` and return it.

    Reuses an earlier conversion of the same files (same names, sizes, mtimes) after checking its
    chunk files against the manifest written at conversion; a damaged conversion (a chunk missing,
    truncated or changed) is moved aside and converted again, with a logged warning naming it.
    Memory stays at ``chunk_z`` slices whatever the stack size. Labels (``is_raw=False``) are
    stored in the smallest unsigned integer type that holds their maximum. Raises
    :class:`VolumeError` naming the file for an unreadable slice, a slice whose shape, channels
    or dtype differ from the first one, or labels that are colour-coded, negative or not integer.
    """
    if not files:
        raise VolumeError("empty slice stack")
    fp = stack_fingerprint(files)
    target = out_dir / f"{fp}.zarr"
    if (target / COMPLETE).exists():
        problems = check_converted(target)
        if not problems:
            return VolumeSource("zarr", str(target), None, fp)
        log.warning("%s: the converted volume of %s is damaged (%s%s); converting it again",
                    target, files[0].parent, "; ".join(problems[:3]),
                    f" and {len(problems) - 3} more" if len(problems) > 3 else "")
        discard_folder(target)
        _open_cached.cache_clear()
    elif target.exists():  # an unfinished or pre-manifest store
        discard_folder(target)
    check_slice_headers(files)
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
    shape = (len(files), *shape2d)
    chunks = tuple(min(c, s) for c, s in zip(CHUNKS_ZYX, shape))
    import zarr  # here: a converted stack is reused (and read) without it

    # Written in a hidden temporary folder and renamed into place: readers never see a partial store.
    # When another process converted the same stack first, its store (identical) is kept.
    with atomic_folder(target, replace=False) as tmp:
        arr = zarr.open_array(str(tmp), mode="w", shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
        for z0 in range(0, len(files), chunk_z):
            block = np.zeros((min(chunk_z, len(files) - z0), *shape2d), dtype)
            for i, p in enumerate(files[z0:z0 + chunk_z]):
                img = _read_slice(p, is_raw)
                if img.shape != shape2d:
                    raise VolumeError(f"{p}: slice shape {img.shape} differs from {files[0].name} {shape2d}")
                block[i] = img
            arr[z0:z0 + block.shape[0]] = block
        write_manifest(tmp)
        (tmp / COMPLETE).write_text(f"{len(files)} slices\n")
    return VolumeSource("zarr", str(target), None, fp)
