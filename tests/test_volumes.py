"""Window reads: padding keeps the point in place; memory does not grow with the volume."""

from __future__ import annotations

import tracemalloc

import h5py
import numpy as np
import pytest
import zarr

from synapse_core.data.volumes import natural_key, read_window


def test_window_inside_the_volume_is_a_plain_slice():
    vol = np.arange(10 * 10 * 10, dtype=np.int32).reshape(10, 10, 10)
    np.testing.assert_array_equal(read_window(vol, (2, 3, 4), (5, 6, 7)), vol[2:5, 3:6, 4:7])


def test_window_over_the_start_border_is_padded_in_front():
    vol = np.ones((10, 10, 10), np.uint8)
    w = read_window(vol, (-2, 0, 0), (3, 2, 2), fill=7)
    assert w.shape == (5, 2, 2)
    assert (w[:2] == 7).all() and (w[2:] == 1).all()


def test_window_over_the_end_border_is_padded_behind():
    vol = np.ones((10, 10, 10), np.uint8)
    w = read_window(vol, (0, 0, 8), (1, 1, 12))
    assert w[0, 0].tolist() == [1, 1, 0, 0]


def test_window_entirely_outside_is_all_fill():
    vol = np.ones((4, 4, 4), np.uint8)
    assert (read_window(vol, (10, 10, 10), (12, 12, 12), fill=3) == 3).all()


def test_window_with_stop_before_start_is_rejected():
    with pytest.raises(ValueError, match="must be 3 \\(z, y, x\\) ints with stop >= start"):
        read_window(np.zeros((4, 4, 4)), (2, 2, 2), (1, 3, 3))


def test_natural_key_orders_numbers_numerically():
    names = ["slice_10.tif", "slice_2.tif", "slice_1.tif"]
    assert sorted(names, key=natural_key) == ["slice_1.tif", "slice_2.tif", "slice_10.tif"]


def _peak_bytes_of_window_read(vol) -> int:
    read_window(vol, (40, 40, 40), (104, 104, 104))  # warm-up: open metadata, codecs
    tracemalloc.start()
    read_window(vol, (40, 40, 40), (104, 104, 104))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The same chunked volume layout at 128³ and 384³ (27× more voxels), in Zarr and HDF5."""
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
        out[("zarr", n)] = zarr.open_array(str(tmp / f"v{n}.zarr"), mode="r")
        out[("hdf5", n)] = h5py.File(tmp / f"v{n}.h5", "r")["raw"]
    return out


@pytest.mark.parametrize("kind", ["zarr", "hdf5"])
def test_peak_memory_of_a_window_read_does_not_grow_with_volume_size(stores, kind):
    small = _peak_bytes_of_window_read(stores[(kind, 128)])
    large = _peak_bytes_of_window_read(stores[(kind, 384)])
    window = 64 ** 3
    assert large < 1.25 * small + 64 * 1024
    assert large < 32 * window  # a few chunk buffers (8 MB), never the 384³ (56.6 MB) volume
