"""Shared test fixtures and helpers, defined once for every test file.

* Paths: the repository (:data:`REPO`) and the real FIB-SEM data in ``../shared/data``
  (:data:`SHARED_DATA`); tests marked ``shared_data`` are skipped with the reason when it is absent.
* The demo dataset (written once per session), its morphology features and a k = 3 clustering.
* Synthetic volumes and synapse-table rows: in memory (:func:`two_neuron_volumes`,
  :func:`synapse_row`) and on disk (:func:`write_small_dataset`).
* torch on one thread for a test module (:func:`one_torch_thread`).
* A tiny VGG3D and a seeded batch-norm randomiser (:func:`tiny_vgg3d_config`, :func:`trained_like_vgg3d`).

Markers (declared in pyproject.toml): ``slow`` (over ~2 s), ``e2e`` (every test in tests/e2e, set
here), ``shared_data``. ``python -m pytest -m "not slow and not e2e"`` is the fast suite.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

REPO = Path(__file__).resolve().parents[1]
E2E = REPO / "tests" / "e2e"
#: Real FIB-SEM data, ``../shared/data`` from the repository root (see its README.md).
SHARED_DATA = REPO.parent / "shared" / "data"
MEDULLA_H5 = SHARED_DATA / "flyem-medulla-fib25" / "training_sample2.h5"
MEDULLA_SITES_CSV = SHARED_DATA / "flyem-medulla-fib25" / "contact_sites.csv"
MEDULLA_SITES_XLSX = SHARED_DATA / "flyem-medulla-fib25" / "contact_sites.xlsx"
_SHARED_FILES = (MEDULLA_H5, MEDULLA_SITES_CSV, MEDULLA_SITES_XLSX)


def pytest_configure(config):
    """One numba disk cache for the whole run: this process, the dashboard servers and the CLI
    processes it starts inherit ``NUMBA_CACHE_DIR``, so UMAP's code is compiled once per run, not once
    per process (a user's own ``NUMBA_CACHE_DIR`` is kept; tests of a cold cache remove it)."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"synapse-tests-numba-{os.getuid()}"))


def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/e2e ``e2e``; skip ``shared_data`` tests when the real data is absent."""
    missing = [str(p) for p in _SHARED_FILES if not p.is_file()]
    skip_shared = pytest.mark.skip(
        reason=f"needs the real FIB-SEM data in ../shared/data (next to the repository): {missing[0] if missing else ''} "
               "is missing")
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.e2e)
        if missing and item.get_closest_marker("shared_data"):
            item.add_marker(skip_shared)


@pytest.fixture(autouse=True)
def _shared_data_is_a_data_root(request, monkeypatch):
    """Tests marked ``shared_data`` read ../shared/data from configs in tmp folders: allow it as a data root
    (a dataset may read only inside its own folder and ``SYNAPSE_DATA_ROOTS``, see synapse_core.data.paths)."""
    if request.node.get_closest_marker("shared_data"):
        import os

        roots = [p for p in (os.environ.get("SYNAPSE_DATA_ROOTS", ""), str(SHARED_DATA)) if p]
        monkeypatch.setenv("SYNAPSE_DATA_ROOTS", os.pathsep.join(roots))


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for the module (tiny tensors: faster than two, and much faster on a busy machine).

    Use as ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; restores the thread count after.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_medulla_config(folder: Path, table: Path = MEDULLA_SITES_CSV) -> Path:
    """A ``synapse_dataset.toml`` in ``folder`` for the shared medulla HDF5 (raw, gt_bodies; 10 nm voxels)."""
    cfg = folder / "synapse_dataset.toml"
    cfg.write_text(
        "voxel_size_nm = [10, 10, 10]\n"
        "[bboxes.medulla]\n"
        f'raw = {{ path = "{MEDULLA_H5}", key = "raw" }}\n'
        f'seg = {{ path = "{MEDULLA_H5}", key = "gt_bodies" }}\n'
        f'table = "{table}"\n'
    )
    return cfg


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A demo dataset (seed 0) written once per test session."""
    from synapse_core.data.demo import write_demo_dataset

    return write_demo_dataset(tmp_path_factory.mktemp("demo") / "DATA", seed=0)


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory) -> Path:
    """A cache folder shared by the tests that open the demo dataset (converted volumes are reused)."""
    return tmp_path_factory.mktemp("demo-cache")


@pytest.fixture(scope="session")
def demo_dataset(demo_root, demo_cache):
    """The demo dataset opened with :func:`synapse_core.data.dataset.open_dataset`."""
    from synapse_core.data.dataset import open_dataset

    return open_dataset(demo_root, cache_dir=demo_cache)


@pytest.fixture
def demo_app(monkeypatch, demo_root, demo_cache):
    """The dashboard configured with the demo dataset as its one data root and the shared test cache.

    A page's exception is shown in full (the lab config redacts it), so a failing test says what broke.
    """
    from app_helpers import configure
    from streamlit import config as st_config

    configure(monkeypatch, demo_root, demo_cache)
    shown = st_config.get_option("client.showErrorDetails")
    st_config.set_option("client.showErrorDetails", "full")
    yield
    st_config.set_option("client.showErrorDetails", shown)


def write_stack(folder: Path, volume: np.ndarray, names=None) -> list[Path]:
    """Write ``volume`` (z, y, x[, c]) as ``slice_<z>.tif`` files (or the given names)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for z in range(volume.shape[0]):
        p = folder / (names[z] if names else f"slice_{z}.tif")
        tifffile.imwrite(p, volume[z])
        paths.append(p)
    return paths


def two_neuron_volumes(shape=(60, 60, 60), split_x=30, seed=0, raw_range=(0, 255)):
    """In-memory (z, y, x) volumes: raw uint8 drawn from ``raw_range`` (seeded), seg uint32 with
    neuron 1 at x < ``split_x`` and neuron 2 at x >= ``split_x``, and an all-zero uint8 label mask."""
    raw = np.random.default_rng(seed).integers(*raw_range, shape, dtype=np.uint8)
    seg = np.zeros(shape, np.uint32)
    seg[:, :, :split_x] = 1
    seg[:, :, split_x:] = 2
    return raw, seg, np.zeros(shape, np.uint8)


def synapse_row(center_zyx, side1_zyx=None, side2_zyx=None, bbox_name="b", var1="s") -> dict:
    """One synapse-table row (a dict) for points given as (z, y, x) voxel indices.

    The table stores each point as x, y, z (``*_coord_1`` = x). Side points default to 5 voxels
    before and after the centre along x.
    """
    z, y, x = center_zyx
    points = {"central": center_zyx, "side_1": side1_zyx or (z, y, x - 5), "side_2": side2_zyx or (z, y, x + 5)}
    row = {"bbox_name": bbox_name, "Var1": var1}
    for name, (pz, py, px) in points.items():
        row.update({f"{name}_coord_1": px, f"{name}_coord_2": py, f"{name}_coord_3": pz})
    return row


def small_volumes(shape=(8, 24, 24), seed=0):
    """raw uint8, seg with two neurons split at x = 12 (ids 3 and 4) and a 1-voxel background border."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 255, shape, dtype=np.uint8)
    seg = np.zeros(shape, np.uint16)
    seg[:, 1:-1, 1:12] = 3
    seg[:, 1:-1, 12:-1] = 4
    mask = np.zeros(shape, np.uint8)
    mask[:, 5:9, 5:9] = 6
    return raw, seg, mask


def synapse_rows(n=3, overrides=None) -> pd.DataFrame:
    """``n`` valid rows for :func:`small_volumes` (centre x 12, side points in neurons 3 and 4).

    ``overrides`` maps ``(row_index, column)`` to a replacement value.
    """
    rows = []
    for i in range(n):
        rows.append({
            "Var1": f"syn_{i + 1}",
            "central_coord_1": 12, "central_coord_2": 10 + i, "central_coord_3": 4,
            "side_1_coord_1": 8, "side_1_coord_2": 10 + i, "side_1_coord_3": 4,
            "side_2_coord_1": 16, "side_2_coord_2": 10 + i, "side_2_coord_3": 4,
            "note": f"row {i + 1}",
        })
    df = pd.DataFrame(rows)
    for key, value in (overrides or {}).items():
        row, col = key
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
    return df


def write_small_dataset(root: Path, bboxes=("bbox1",), rows=None, shape=(8, 24, 24)) -> Path:
    """A TIFF-layout data root with :func:`small_volumes` per bbox and an excel/<bbox>.xlsx table each."""
    for i, name in enumerate(bboxes):
        raw, seg, mask = small_volumes(shape, seed=i)
        write_stack(root / "raw" / name, raw)
        write_stack(root / "seg" / name, seg)
        write_stack(root / "mask" / name, mask)
        (root / "excel").mkdir(parents=True, exist_ok=True)
        (rows if rows is not None else synapse_rows()).to_excel(root / "excel" / f"{name}.xlsx", index=False)
    return root


@pytest.fixture(scope="session")
def morph_features(demo_dataset, demo_cache):
    """Morphology features of bbox1 and bbox2 (30 synapses) from the real extraction stage."""
    from synapse_core.features.extract import extract_features
    from synapse_core.features.settings import ExtractSettings

    settings = ExtractSettings(features="morphology", workers=0)
    return extract_features(demo_dataset, settings, demo_cache, bboxes=["bbox1", "bbox2"]).features


@pytest.fixture(scope="session")
def clusters_k3(morph_features):
    """Three k-means clusters of :func:`morph_features` (no map, no stability: fast)."""
    from synapse_core.cluster.run import run_clustering
    from synapse_core.cluster.settings import ClusterSettings

    settings = ClusterSettings(k=3, projection="none", n_stability=0, nan_policy="drop")
    return run_clustering(morph_features, settings)


def tiny_vgg3d_config(**changes):
    """A VGG3D small enough for unit tests: 16³ input, 2 feature maps, stages of (2, 1, 1, 1) convolutions."""
    from synapse_core.features.vgg3d import Vgg3DConfig

    return Vgg3DConfig(**{"input_size": (16, 16, 16), "fmaps": 2, "n_convolutions": (2, 1, 1, 1),
                          "classifier_width": 32, **changes})


def randomise_batchnorm(model, seed=0):
    """Move every BatchNorm3d's running mean/variance and scale away from identity, as after training.

    Seeded with its own generator (the global torch RNG is untouched); returns ``model``.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.5, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
    return model


def trained_like_vgg3d(config=None, output_classes=6, seed=0):
    """A VGG3D (:func:`tiny_vgg3d_config` by default) with weights from ``seed`` and randomised batch norm."""
    from synapse_core.features.vgg3d import untrained_vgg3d

    model = untrained_vgg3d(config or tiny_vgg3d_config(), seed=seed, output_classes=output_classes)
    return randomise_batchnorm(model, seed)
