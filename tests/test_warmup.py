"""The map's compile warm-up (synapse_core.cluster.warmup), in a fresh process as when a server starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: A fresh process: start the background warm-up twice, wait for it, print its status and the cache's files.
SCRIPT = """
import json, sys
from synapse_core.cluster import warmup
started = [warmup.start_in_background(sys.argv[1]), warmup.start_in_background(sys.argv[1])]
print(json.dumps({"started": started, "status": warmup.wait(600)}))
"""


@pytest.fixture(scope="module")
def warmed(tmp_path_factory):
    """(what the fresh process printed, its cache folder) after a background warm-up."""
    cache = tmp_path_factory.mktemp("warmup-cache")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "SYNAPSE_WARMUP")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(cache)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=900, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), cache


@pytest.mark.slow  # compiles UMAP in a fresh process (tens of seconds)
def test_the_background_warm_up_starts_once_per_process_and_finishes(warmed):
    printed, _ = warmed
    assert printed["started"] == [True, False]
    assert printed["status"]["state"] == "done" and printed["status"]["seconds"] > 0


@pytest.mark.slow  # compiles UMAP in a fresh process (tens of seconds)
def test_the_warm_up_leaves_umaps_compiled_layout_in_the_numba_disk_cache(warmed):
    _, cache = warmed
    names = {p.name.split("-")[0] for p in (cache / "numba").rglob("*.nbi")}
    # the layout optimisation (the longest compile) and the neighbour graph's weights; the graph itself is
    # scikit-learn's (projection.exact_knn), so UMAP's own all-pairs kNN is not compiled
    assert {"layouts._optimize_layout_euclidean_single_epoch", "umap_.smooth_knn_dist",
            "umap_.compute_membership_strengths"} <= names
    assert "utils.fast_knn_indices" not in names


def test_warm_up_is_off_when_the_operator_says_so(monkeypatch, tmp_path):
    from synapse_core.cluster import warmup

    monkeypatch.setenv(warmup.WARMUP_ENV, "0")
    assert warmup.start_in_background(tmp_path) is False
    assert not (tmp_path / "numba").exists()
