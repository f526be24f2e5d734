"""The map in a child process beside the k sweep (issue 16): same coordinates, same results, stops with the run."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from synapse_core.cluster import map_process
from synapse_core.cluster.projection import project
from synapse_core.cluster.run import run_clustering, write_result
from synapse_core.cluster.settings import ClusterSettings, ProjectionSettings

needs_two_cpus = pytest.mark.skipif(map_process._cpus() < 2, reason="the map process is used with 2 CPUs or more")


def _table(n=240, seed=0):
    X, _ = make_blobs(n_samples=n, n_features=12, centers=3, random_state=seed)
    df = pd.DataFrame(X.astype(np.float32), columns=[f"feat_{j + 1}" for j in range(X.shape[1])])
    df.insert(0, "Var1", [f"syn_{i}" for i in range(n)])
    df.insert(0, "bbox_name", [f"bbox{i % 3 + 1}" for i in range(n)])
    return df


SETTINGS = ClusterSettings(k="auto", k_range=(2, 4), n_stability=2)


def test_few_synapses_parallel_maps_and_the_switch_keep_the_map_in_this_process(monkeypatch, tmp_path):
    seeded = ProjectionSettings("umap", 2, seed=0)
    monkeypatch.delenv(map_process.ENV, raising=False)
    assert not map_process.wanted(map_process.MIN_ROWS - 1, seeded, tmp_path)
    assert not map_process.wanted(10**5, ProjectionSettings("umap", 2, seed=0, reproducible=False), tmp_path)
    assert not map_process.wanted(10**5, None, tmp_path)
    monkeypatch.setenv(map_process.ENV, "0")
    assert not map_process.wanted(10**5, seeded, tmp_path)


def test_a_umap_without_a_numba_disk_cache_stays_in_this_process(monkeypatch):
    """Else every child would compile UMAP again; this process compiles once for all its maps."""
    monkeypatch.delenv(map_process.ENV, raising=False)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert not map_process.wanted(10**5, ProjectionSettings("umap", 2, seed=0), None)


@needs_two_cpus
def test_many_synapses_of_a_seeded_map_use_the_child_process(monkeypatch, tmp_path):
    monkeypatch.delenv(map_process.ENV, raising=False)
    assert map_process.wanted(map_process.MIN_ROWS, ProjectionSettings("umap", 2, seed=0), tmp_path)


@pytest.mark.slow  # two UMAPs of 300 synapses
def test_the_neighbour_graph_computed_here_gives_the_child_the_same_map(tmp_path):
    """This process computes the exact neighbour graph for the child, which maps with it."""
    X, _ = make_blobs(n_samples=300, n_features=6, centers=5, random_state=2)
    Z = X.astype(np.float32)
    s = ProjectionSettings("umap", 2, seed=1, n_neighbors=4)
    pending = map_process.start(s, tmp_path)
    assert pending.send(Z)
    assert (Path(pending.folder) / "knn_indices.npy").is_file()
    Y_child, seconds = pending.result()
    assert seconds > 0
    np.testing.assert_array_equal(Y_child, project(Z, s, None))
    assert os.listdir(tmp_path / map_process.FOLDER) == []  # the exchange folder is removed


@pytest.mark.slow  # a small UMAP in this process
def test_a_map_in_the_projection_cache_is_not_computed_again_by_a_child(tmp_path):
    X, _ = make_blobs(n_samples=60, n_features=5, centers=2, random_state=3)
    Z = X.astype(np.float32)
    s = ProjectionSettings("umap", 2, seed=0)
    project(Z, s, tmp_path)
    pending = map_process.start(s, tmp_path)
    assert not pending.send(Z)
    assert pending.proc.poll() is not None
    assert not Path(pending.folder).exists()


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory):
    """run_clustering with the map in this process and in the child process (stages recorded)."""
    mp = pytest.MonkeyPatch()
    df = _table()
    runs = {}
    try:
        for name, min_rows in (("here", 10**9), ("child", 10)):
            mp.setattr(map_process, "MIN_ROWS", min_rows)
            stages = []
            result = run_clustering(df, SETTINGS, cache_dir=tmp_path_factory.mktemp(name),
                                    stage_done=lambda stage, _s, stages=stages: stages.append(stage),
                                    render_csv=True)
            runs[name] = (result, stages)
    finally:
        mp.undo()
    return runs


@pytest.mark.slow
@needs_two_cpus
def test_clustering_with_the_map_in_a_child_process_writes_the_same_table(both_paths):
    here, child = both_paths["here"][0], both_paths["child"][0]
    assert "projection_wait_s" in child.diagnostics["timings"]  # the child path was taken
    assert "projection_wait_s" not in here.diagnostics["timings"]
    pd.testing.assert_frame_equal(child.table, here.table)
    pd.testing.assert_frame_equal(child.k_curves, here.k_curves)
    assert child.diagnostics["map_knn_overlap"] == here.diagnostics["map_knn_overlap"]


@pytest.mark.slow
@needs_two_cpus
def test_the_table_rendered_while_the_child_maps_is_written_byte_for_byte(both_paths, tmp_path):
    child = both_paths["child"][0]
    assert "csv_ahead_s" in child.diagnostics["timings"]  # rendering ran while the child worked
    expected = child.table.to_csv(index=False)
    write_result(child, tmp_path / "c.csv")
    assert (tmp_path / "c.csv").read_text() == expected


@pytest.mark.slow
@needs_two_cpus
def test_clustering_stages_are_reported_in_the_same_order_with_the_map_in_a_child(both_paths):
    expected = ["preprocess", "cluster", "projection", "diagnostics", "summary"]
    assert both_paths["here"][1] == expected
    assert both_paths["child"][1] == expected


@pytest.mark.slow  # a k sweep and a child process (~2 s)
@needs_two_cpus
def test_a_cancelled_clustering_stops_the_map_process(tmp_path, monkeypatch):
    monkeypatch.setattr(map_process, "MIN_ROWS", 10)
    started = []
    real_start = map_process.start

    def start(*args):
        started.append(real_start(*args))
        return started[-1]

    monkeypatch.setattr(map_process, "start", start)

    class Cancelled(Exception):
        pass

    def cancel(stage, _seconds):
        if stage == "cluster":
            raise Cancelled  # what a dashboard job's raise_if_cancelled does between stages

    with pytest.raises(Cancelled):
        run_clustering(_table(), SETTINGS, cache_dir=tmp_path, stage_done=cancel)
    assert started and started[0].proc.poll() is not None  # the child ended
    assert os.listdir(tmp_path / map_process.FOLDER) == []


@pytest.mark.slow
@needs_two_cpus
def test_a_failed_map_process_falls_back_to_the_map_in_this_process(tmp_path, monkeypatch, both_paths):
    monkeypatch.setattr(map_process, "MIN_ROWS", 10)
    # a child that fails once it has its features
    monkeypatch.setattr(map_process, "_CHILD", "import sys; sys.stdin.readline(); sys.exit(3)")
    result = run_clustering(_table(), SETTINGS, cache_dir=tmp_path)
    assert "projection_wait_s" in result.diagnostics["timings"]
    pd.testing.assert_frame_equal(result.table, both_paths["here"][0].table)


@pytest.mark.slow  # ~3 s (scikit-learn imports, summaries)
def test_a_table_built_column_by_column_is_clustered_without_fragmentation_warnings():
    import warnings

    base = _table(n=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(120):  # a wide table built one column at a time (pandas fragments it)
            base[f"morph_extra_{j}"] = np.arange(len(base), dtype=float) % (j + 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        result = run_clustering(base, ClusterSettings(k=3, projection="none", n_stability=0))
    assert list(result.table.columns[-3:]) == ["cluster", "distance_to_centroid", "cluster_space"]


def test_the_overlap_from_feature_neighbours_computed_before_the_map_is_the_same():
    from synapse_core.cluster.diagnostics import feature_neighbours, knn_overlap

    rng = np.random.default_rng(0)
    Z, Y = rng.normal(size=(300, 8)), rng.normal(size=(300, 2))
    Z[:, :2] += 3 * Y  # a map that keeps part of the neighbourhoods
    before = feature_neighbours(Z, k=7, seed=2, max_queries=120, max_rows=250)
    assert knn_overlap(Z, Y, k=7, seed=2, max_queries=120, max_rows=250, features=before) == \
        knn_overlap(Z, Y, k=7, seed=2, max_queries=120, max_rows=250)
