"""Shared fixtures: the demo dataset (written once per session) and small on-disk datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MEDULLA_H5 = SHARED_DATA / "flyem-medulla-fib25" / "training_sample2.h5"
MEDULLA_SITES_CSV = SHARED_DATA / "flyem-medulla-fib25" / "contact_sites.csv"
MEDULLA_SITES_XLSX = SHARED_DATA / "flyem-medulla-fib25" / "contact_sites.xlsx"


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


def write_stack(folder: Path, volume: np.ndarray, names=None) -> list[Path]:
    """Write ``volume`` (z, y, x[, c]) as ``slice_<z>.tif`` files (or the given names)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for z in range(volume.shape[0]):
        p = folder / (names[z] if names else f"slice_{z}.tif")
        tifffile.imwrite(p, volume[z])
        paths.append(p)
    return paths


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
    from synapse_core.features.extract import ExtractSettings, extract_features

    settings = ExtractSettings(features="morphology", workers=0)
    return extract_features(demo_dataset, settings, demo_cache, bboxes=["bbox1", "bbox2"]).features


@pytest.fixture(scope="session")
def clusters_k3(morph_features):
    """Three k-means clusters of :func:`morph_features` (no map, no stability: fast)."""
    from synapse_core.cluster.run import run_clustering
    from synapse_core.cluster.settings import ClusterSettings

    settings = ClusterSettings(k=3, projection="none", n_stability=0, nan_policy="drop")
    return run_clustering(morph_features, settings)
