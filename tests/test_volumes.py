"""Window reads (data.windows.read_box): the point stays in place, every format reads exactly what its
library reads, nothing stale, nothing silently zero, memory does not grow with the volume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numcodecs
import numpy as np
import pytest
import zarr

from synapse_core.data.volumes import VolumeError, VolumeSource, natural_key, source_from_spec
from synapse_core.data.windows import clear_chunk_cache, read_box

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------- numpy windows


def test_window_inside_the_volume_is_a_plain_slice():
    vol = np.arange(10 * 10 * 10, dtype=np.int32).reshape(10, 10, 10)
    np.testing.assert_array_equal(read_box(vol, (2, 3, 4), (5, 6, 7)), vol[2:5, 3:6, 4:7])


def test_window_is_a_fresh_array_never_a_view_of_the_volume():
    vol = np.zeros((10, 10, 10), np.uint8)
    read_box(vol, (2, 2, 2), (5, 5, 5))[:] = 9
    assert vol.sum() == 0


def test_window_over_the_start_border_is_padded_in_front():
    vol = np.ones((10, 10, 10), np.uint8)
    w = read_box(vol, (-2, 0, 0), (3, 2, 2), fill=7)
    assert w.shape == (5, 2, 2)
    assert (w[:2] == 7).all() and (w[2:] == 1).all()


def test_window_over_the_end_border_is_padded_behind():
    vol = np.ones((10, 10, 10), np.uint8)
    w = read_box(vol, (0, 0, 8), (1, 1, 12))
    assert w[0, 0].tolist() == [1, 1, 0, 0]


def test_window_entirely_outside_is_all_fill():
    vol = np.ones((4, 4, 4), np.uint8)
    assert (read_box(vol, (10, 10, 10), (12, 12, 12), fill=3) == 3).all()


def test_window_with_stop_before_start_is_rejected():
    with pytest.raises(ValueError, match="must be 3 \\(z, y, x\\) ints with stop >= start"):
        read_box(np.zeros((4, 4, 4)), (2, 2, 2), (1, 3, 3))


def test_natural_key_orders_numbers_numerically():
    names = ["slice_10.tif", "slice_2.tif", "slice_1.tif"]
    assert sorted(names, key=natural_key) == ["slice_1.tif", "slice_2.tif", "slice_10.tif"]


# ----------------------------------------------------------- Zarr and HDF5: exactly the library's values

#: (start, stop) z, y, x of a 40 x 36 x 44 volume with 16³ chunks: inside one chunk, across chunk
#: borders, over the start border, over the end border (partly outside), entirely outside.
WINDOWS = [((1, 2, 3), (9, 10, 11)), ((5, 9, 13), (38, 30, 40)), ((-4, -1, 3), (12, 20, 17)),
           ((30, 20, 35), (47, 41, 50)), ((50, 0, 0), (55, 4, 4))]
SHAPE = (40, 36, 44)


def _volume(dtype, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=SHAPE).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, SHAPE, dtype=dtype, endpoint=True)


def _expected(reference, start, stop) -> np.ndarray:
    """``reference[start:stop]`` read by the format's own library, zeros outside the volume."""
    out = np.zeros([b - a for a, b in zip(start, stop)], dtype=reference.dtype)
    lo = np.clip(start, 0, reference.shape)
    hi = np.clip(stop, 0, reference.shape)
    if np.all(hi > lo):
        out[tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))] = \
            reference[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    return out


ZARR_LAYOUTS = {
    "v3 zstd uint8": dict(dtype="uint8"),
    "v3 blosc uint16": dict(dtype="uint16", compressors=zarr.codecs.BloscCodec()),
    "v3 gzip uint32": dict(dtype="uint32", compressors=zarr.codecs.GzipCodec()),
    "v3 uncompressed float32": dict(dtype="float32", compressors=None),
    "v3 big-endian uint64": dict(dtype="uint64", serializer=zarr.codecs.BytesCodec(endian="big")),
    "v3 sharded uint16": dict(dtype="uint16", shards=(32, 32, 32)),
    "v2 default uint32": dict(dtype="uint32", zarr_format=2),
    "v2 gzip int16": dict(dtype="int16", zarr_format=2, compressors=numcodecs.GZip()),
}


@pytest.mark.parametrize("layout", list(ZARR_LAYOUTS))
def test_zarr_windows_equal_zarr_reads_inside_across_chunks_and_outside(tmp_path, layout):
    options = dict(ZARR_LAYOUTS[layout])
    vol = _volume(options["dtype"])
    z = zarr.create_array(str(tmp_path / "v.zarr"), shape=SHAPE, chunks=(16, 16, 16), fill_value=7, **options)
    z[:30] = vol[:30]  # chunks starting at z = 32 are never written: the fill value, by the format
    z = zarr.open_array(str(tmp_path / "v.zarr"), mode="r")
    for start, stop in WINDOWS:
        got = read_box(z, start, stop)
        assert got.dtype == z.dtype
        np.testing.assert_array_equal(got, _expected(z, start, stop), err_msg=f"{layout} {start}..{stop}")


def test_zarr_window_from_a_group_member_source_equals_zarr(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    a = group.create_array("raw", shape=SHAPE, chunks=(16, 16, 16), dtype="uint8")
    a[:] = _volume("uint8")
    source = VolumeSource("zarr", str(tmp_path / "g.zarr"), "raw")
    np.testing.assert_array_equal(read_box(source, (5, 9, 13), (38, 30, 40)), a[5:38, 9:30, 13:40])


def test_zarr_array_in_memory_is_read_through_zarr(tmp_path):
    z = zarr.create_array(zarr.storage.MemoryStore(), shape=SHAPE, chunks=(16, 16, 16), dtype="uint16")
    z[:] = _volume("uint16")
    for start, stop in WINDOWS:
        np.testing.assert_array_equal(read_box(z, start, stop), _expected(z, start, stop))


HDF5_LAYOUTS = {
    "gzip uint8": dict(dtype="uint8", chunks=(16, 16, 16), compression="gzip"),
    "lzf uint16": dict(dtype="uint16", chunks=(16, 16, 16), compression="lzf"),
    "shuffle gzip float32": dict(dtype="float32", chunks=(16, 16, 16), compression="gzip", shuffle=True),
    "chunked uncompressed uint64": dict(dtype="uint64", chunks=(16, 16, 16)),
    "contiguous int32": dict(dtype="int32"),
}


@pytest.mark.parametrize("layout", list(HDF5_LAYOUTS))
def test_hdf5_windows_equal_h5py_reads_inside_across_chunks_and_outside(tmp_path, layout):
    options = HDF5_LAYOUTS[layout]
    vol = _volume(options["dtype"])
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.create_dataset("raw", shape=SHAPE, fillvalue=7, **options)[:30] = vol[:30]
    volume = source_from_spec(str(tmp_path / "v.h5"), "raw").open()  # as crops open it (chunk cache set)
    with h5py.File(tmp_path / "v.h5", "r") as f:
        for start, stop in WINDOWS:
            got = read_box(volume, start, stop)
            assert got.dtype == f["raw"].dtype
            np.testing.assert_array_equal(got, _expected(f["raw"], start, stop), err_msg=f"{layout} {start}..{stop}")


# ------------------------------------------------------------------- cache: used, never stale


def _chunks_decoded() -> int:
    """Chunks TensorStore read and decoded in this process (not those revalidated as unchanged)."""
    import tensorstore as ts

    (metric,) = ts.experimental_collect_matching_metrics("/tensorstore/cache/kvs_cache_read")
    return next(v["value"] for v in metric["values"] if v["category"] == "changed")


def _zarr_store(path, vol, chunks=(16, 16, 16)):
    z = zarr.open_array(str(path), mode="w", shape=vol.shape, chunks=chunks, dtype=vol.dtype)
    z[:] = vol
    return zarr.open_array(str(path), mode="r")


def test_a_second_read_of_a_zarr_window_decodes_no_chunk_again(tmp_path):
    vol = _volume("uint16")
    z = _zarr_store(tmp_path / "v.zarr", vol)
    clear_chunk_cache()
    first = _chunks_decoded()
    read_box(z, (3, 5, 7), (35, 33, 29))
    assert _chunks_decoded() - first == 3 * 3 * 2 + 1  # the chunks the window touches, and zarr.json
    second = _chunks_decoded()
    np.testing.assert_array_equal(read_box(z, (3, 5, 7), (35, 33, 29)), vol[3:35, 5:33, 7:29])
    assert _chunks_decoded() == second


def test_a_zarr_array_written_again_at_the_same_path_is_re_read(tmp_path):
    read_box(_zarr_store(tmp_path / "v.zarr", _volume("uint8", seed=1)), (0, 0, 0), (20, 20, 20))
    again = _volume("uint8", seed=2)
    np.testing.assert_array_equal(read_box(_zarr_store(tmp_path / "v.zarr", again), (0, 0, 0), (20, 20, 20)),
                                  again[:20, :20, :20])


def test_a_zarr_chunk_overwritten_in_place_is_re_read(tmp_path):
    z = _zarr_store(tmp_path / "v.zarr", _volume("uint8"))
    read_box(z, (0, 0, 0), (20, 20, 20))
    zarr.open_array(str(tmp_path / "v.zarr"), mode="r+")[0:16, 0:16, 0:16] = 3
    assert (read_box(z, (0, 0, 0), (16, 16, 16)) == 3).all()


def test_a_deleted_zarr_chunk_reads_as_the_fill_value_the_format_defines(tmp_path):
    # Zarr v3 spec: "if a chunk is not stored, its elements have the array's fill_value".
    z = zarr.create_array(str(tmp_path / "v.zarr"), shape=(32, 32, 32), chunks=(16, 16, 16), dtype="uint16",
                          fill_value=7)
    z[:] = 1
    read_box(z, (0, 0, 0), (32, 32, 32))
    os.remove(tmp_path / "v.zarr" / "c" / "0" / "0" / "1")
    window = read_box(z, (0, 0, 0), (32, 32, 32))
    assert (window[:16, :16, 16:] == 7).all() and window.sum() == 7 * 16 ** 3 + 1 * (32 ** 3 - 16 ** 3)


def test_a_corrupt_zarr_chunk_raises_naming_the_chunk_file(tmp_path):
    z = _zarr_store(tmp_path / "v.zarr", _volume("uint16"))
    (tmp_path / "v.zarr" / "c" / "0" / "0" / "1").write_bytes(b"not a zstd frame" * 8)
    with pytest.raises(ValueError, match="c/0/0/1"):
        read_box(z, (0, 0, 0), (20, 20, 20))


def test_a_zarr_array_tensorstore_cannot_read_is_an_error_naming_the_store(tmp_path):
    z = zarr.create_array(str(tmp_path / "v.zarr"), shape=(32, 32, 32), chunks=(16, 16, 16), dtype="int32",
                          zarr_format=2, filters=[numcodecs.Delta(dtype="int32")])
    with pytest.raises(VolumeError, match=r"v\.zarr: TensorStore cannot open.*filters are not supported.*write the"):
        read_box(z, (0, 0, 0), (4, 4, 4))


def test_an_unwritten_hdf5_chunk_reads_as_the_fill_value_the_format_defines(tmp_path):
    # HDF5: chunks never written are not allocated and read as the dataset's fill value.
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.create_dataset("raw", shape=(32, 32, 32), chunks=(16, 16, 16), dtype="uint16", fillvalue=7)[:16] = 1
    window = read_box(source_from_spec(str(tmp_path / "v.h5"), "raw"), (0, 0, 0), (32, 32, 32))
    assert (window[:16] == 1).all() and (window[16:] == 7).all()


def test_a_corrupt_hdf5_chunk_raises(tmp_path):
    with h5py.File(tmp_path / "v.h5", "w") as f:
        ds = f.create_dataset("raw", data=_volume("uint16")[:32, :32, :32], chunks=(16, 16, 16), compression="gzip")
        chunk = ds.id.get_chunk_info(1)
    with open(tmp_path / "v.h5", "r+b") as f:
        f.seek(chunk.byte_offset)
        f.write(b"\xff" * chunk.size)
    with pytest.raises(OSError, match="filter returned failure"):
        read_box(source_from_spec(str(tmp_path / "v.h5"), "raw"), (0, 0, 0), (20, 20, 20))


def test_an_hdf5_file_replaced_is_re_read_through_a_new_source(tmp_path):
    for seed in (1, 2):
        vol = _volume("uint8", seed=seed)
        with h5py.File(tmp_path / "new.h5", "w") as f:
            f.create_dataset("raw", data=vol, chunks=(16, 16, 16))
        os.replace(tmp_path / "new.h5", tmp_path / "v.h5")  # HDF5 refuses to truncate a file open for reading
        source = source_from_spec(str(tmp_path / "v.h5"), "raw")
        np.testing.assert_array_equal(read_box(source, (0, 0, 0), (20, 20, 20)), vol[:20, :20, :20])


# ---------------------------------------------------------------------- processes


def test_a_process_forked_after_tensorstore_started_gets_an_error_not_an_abort(tmp_path):
    z = _zarr_store(tmp_path / "v.zarr", _volume("uint8"))
    read_box(z, (0, 0, 0), (8, 8, 8))  # TensorStore's threads run in this process now
    pid = os.fork()
    if pid == 0:  # child: exit 0 only when read_box raises the explanatory error
        try:
            read_box(z, (0, 0, 0), (8, 8, 8))
        except RuntimeError as exc:
            os._exit(0 if "forkserver" in str(exc) else 2)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.slow
def test_extraction_workers_read_zarr_windows_after_the_parent_used_tensorstore(tmp_path):
    from synapse_core.features.extract import _executor

    vol = _volume("uint16")
    z = _zarr_store(tmp_path / "v.zarr", vol)
    read_box(z, (0, 0, 0), (8, 8, 8))  # the dashboard reads crops before it extracts
    pool = _executor(1)
    try:
        window = pool.submit(read_box, VolumeSource("zarr", str(tmp_path / "v.zarr")), (5, 9, 13), (38, 30, 40))
        np.testing.assert_array_equal(window.result(timeout=120), vol[5:38, 9:30, 13:40])
    finally:
        pool.shutdown()


# ------------------------------------------------------------------------------- memory

_PEAK_OF_A_CROP_READ = """
import json, sys
from synapse_core.crops import build
from synapse_core.data.volumes import source_from_spec

def status(field):  # bytes
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(field))

volume = source_from_spec(sys.argv[1], sys.argv[2] or None).open()
build._read(volume, (0, 0, 0), (1, 1, 1))  # warm-up: metadata, codecs, threads
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current resident size
before = status("VmRSS")
build._read(volume, (40, 40, 40), (104, 104, 104))  # the call crops make
print(json.dumps(status("VmHWM") - before))
"""


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The same chunked uint8 volume layout at 128³ and 384³ (27× more voxels), in Zarr and HDF5."""
    tmp = tmp_path_factory.mktemp("vols")
    out = {}
    for n in (128, 384):
        z = zarr.open_array(str(tmp / f"v{n}.zarr"), mode="w", shape=(n, n, n), chunks=(64, 64, 64), dtype=np.uint8)
        with h5py.File(tmp / f"v{n}.h5", "w") as f:
            d = f.create_dataset("raw", shape=(n, n, n), chunks=(64, 64, 64), dtype=np.uint8, compression="gzip")
            for z0 in range(0, n, 64):
                block = np.random.default_rng(z0).integers(0, 255, (64, n, n), dtype=np.uint8)
                z[z0:z0 + 64] = block
                d[z0:z0 + 64] = block
        out[("zarr", n)] = (str(tmp / f"v{n}.zarr"), "")
        out[("hdf5", n)] = (str(tmp / f"v{n}.h5"), "raw")
    return out


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc to reset the peak resident size")
@pytest.mark.parametrize("kind", ["zarr", "hdf5"])
def test_peak_memory_of_a_crop_window_read_does_not_grow_with_volume_size(stores, kind):
    """Peak resident memory of one 64³ read in a fresh process: every allocation (numpy, TensorStore's and
    HDF5's chunk caches), which tracemalloc would miss."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = {n: subprocess.Popen([sys.executable, "-c", _PEAK_OF_A_CROP_READ, *stores[(kind, n)]], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (128, 384)}
    peak = {}
    for n, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        peak[n] = json.loads(out)
    window = 64 ** 3  # bytes (uint8); the read decodes 2³ chunks of that size
    assert peak[384] < 1.5 * peak[128] + 4 * window  # ~2–4 MiB each; a whole-volume read peaks at 88–136 MiB
    assert peak[384] < 32 * window


def test_a_conversion_that_fails_on_a_slice_leaves_nothing_in_the_cache(tmp_path):
    import tifffile

    from synapse_core.data.volumes import convert_tiff_stack

    folder = tmp_path / "raw"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"slice_{i}.tif", np.full((64, 64), i, np.uint8))
    data = (folder / "slice_2.tif").read_bytes()
    (folder / "slice_2.tif").write_bytes(data[:-2000])  # header intact, pixels truncated
    files = sorted(folder.iterdir())
    with pytest.raises(VolumeError, match="slice_2.tif: unreadable TIFF"):
        convert_tiff_stack(files, tmp_path / "volumes", is_raw=True)
    assert list((tmp_path / "volumes").iterdir()) == []  # no temporary folder, no store
