"""The result store: entries that never unpickle, heal when damaged, and claims that name a job."""

import json
import multiprocessing
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from synapse_core.features.store import ResultStore, entry_name, read_entry


class _Planted:
    """Unpickling this creates the file named by ``marker``: the proof that a pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_values_of_every_kept_type_round_trip_with_their_types(tmp_path):
    value = {"discarded": None, "ok": True, "name": "syn_001", "n": 3, "x": float("nan"),
             "side": np.int64(2), "area": np.float32(1.5), "pair": (1, "a"), "list": [1.0, None],
             "vec": np.arange(4, dtype=np.float32), "nested": {"m": {"k": np.zeros((2, 3), np.uint8)}}}
    store = ResultStore(tmp_path)
    store.put("crop:0a1b", value)
    got = ResultStore(tmp_path).get("crop:0a1b")
    assert got["discarded"] is None and got["ok"] is True and got["name"] == "syn_001" and np.isnan(got["x"])
    assert type(got["side"]) is np.int64 and got["side"] == 2 and type(got["area"]) is np.float32
    assert got["pair"] == (1, "a") and got["list"] == [1.0, None]
    assert got["vec"].dtype == np.float32 and np.array_equal(got["vec"], np.arange(4))
    assert np.array_equal(got["nested"]["m"]["k"], np.zeros((2, 3), np.uint8))


def test_a_value_that_needs_pickle_is_refused_naming_its_type(tmp_path):
    with pytest.raises(TypeError, match="cannot keep a set"):
        ResultStore(tmp_path).put("crop:01", {"a": {1, 2}})
    with pytest.raises(TypeError, match="no object arrays"):
        ResultStore(tmp_path).put("crop:01", np.array([None, 1], dtype=object))


def test_a_planted_pickle_is_never_executed_and_reads_as_missing(tmp_path):
    store = ResultStore(tmp_path)
    marker = tmp_path / "PWNED"
    path = store.path("deep:feed")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_Planted(marker)))
    assert store.get("deep:feed") is None
    assert not marker.exists()
    assert not path.exists() and len(list((tmp_path / "corrupt").iterdir())) == 1  # moved aside


def test_a_pickled_object_array_inside_an_npz_entry_is_never_executed(tmp_path):
    store = ResultStore(tmp_path)
    marker = tmp_path / "PWNED"
    meta = json.dumps({"format": "synapse-store-1", "key": "deep:feed", "value": {"t": "array", "v": 0}}).encode()
    path = store.path("deep:feed")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, __meta__=np.frombuffer(meta, np.uint8), a0=np.array([_Planted(marker)], dtype=object))
    assert store.get("deep:feed") is None
    assert not marker.exists()


def test_a_truncated_entry_reads_as_missing_and_is_moved_aside(tmp_path, caplog):
    store = ResultStore(tmp_path)
    store.put("deep:beef", np.arange(100, dtype=np.float32))
    path = store.path("deep:beef")
    path.write_bytes(path.read_bytes()[:60])
    assert store.get("deep:beef") is None
    assert "could not be read" in caplog.text and path.name in caplog.text
    store.put("deep:beef", np.arange(100, dtype=np.float32))  # recomputed and stored again
    assert np.array_equal(store.get("deep:beef"), np.arange(100))


def test_an_entry_renamed_to_another_key_is_refused(tmp_path):
    store = ResultStore(tmp_path)
    store.put("deep:aa", np.ones(3, np.float32))
    store.path("deep:bb").parent.mkdir(parents=True, exist_ok=True)
    os.replace(store.path("deep:aa"), store.path("deep:bb"))
    assert store.get("deep:bb") is None


def test_contains_many_lists_each_shard_once(tmp_path):
    store = ResultStore(tmp_path)
    keys = [f"crop:{i:04x}" for i in range(300)]
    for k in keys[::3]:
        store.put(k, 1)
    assert store.contains_many(keys) == set(keys[::3])
    assert all((k in store) == (i % 3 == 0) for i, k in enumerate(keys))


def test_two_jobs_in_one_process_split_the_claims(tmp_path):
    store = ResultStore(tmp_path)
    a, b = store.for_job("job-a"), store.for_job("job-b")
    assert a.claim("deep:01") and not b.claim("deep:01")
    assert b.claim("deep:02") and not a.claim("deep:02")
    assert a.claim("deep:01")  # a job re-enters its own claim (a retried task of the same run)
    b.release("deep:01")  # another job's release leaves the claim alone
    assert not b.claim("deep:01")
    a.release("deep:01")
    assert b.claim("deep:01")


def test_a_claim_older_than_the_ttl_is_taken_over(tmp_path):
    old = ResultStore(tmp_path, job="old")
    assert old.claim("deep:01")
    path = tmp_path / "claims" / f"{entry_name('deep:01')}.claim"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "host": "elsewhere", "time": time.time() - 7200}))
    assert ResultStore(tmp_path, claim_ttl_s=3600, job="new").claim("deep:01")
    assert json.loads(path.read_text())["job"] == "new"


def test_an_old_diskcache_database_is_not_opened(tmp_path):
    (tmp_path / "cache.db").write_bytes(b"SQLite format 3\x00 not really")
    store = ResultStore(tmp_path)
    store.put("deep:01", np.zeros(2, np.float32))
    assert (tmp_path / "cache.db").read_bytes() == b"SQLite format 3\x00 not really"


def _write_many(folder, start, n, value_seed):
    store = ResultStore(folder)
    for i in range(start, start + n):
        store.put(f"deep:{i:04x}", np.full(64, i, np.float32) + 0 * value_seed)


def test_two_processes_write_one_store_at_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(tmp_path, start, 150, s)) for s, start in enumerate((0, 75))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    store = ResultStore(tmp_path)
    for i in range(225):  # 75 keys written by both
        assert np.array_equal(store.get(f"deep:{i:04x}"), np.full(64, i, np.float32)), i
    leftovers = [p for p in Path(tmp_path, "results").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [] and not (tmp_path / "corrupt").exists()


def test_read_entry_refuses_a_plain_npy_file(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(3))
    with pytest.raises(ValueError, match="not an .npz entry"):
        read_entry(tmp_path / "x.npy")


def test_a_planted_pickle_in_the_gallery_or_projection_cache_never_runs(tmp_path):
    from synapse_core.cluster.projection import projection_cache
    from synapse_core.viz.gallery import gallery_cache

    marker = tmp_path / "PWNED"
    for cache in (gallery_cache(tmp_path / "c"), projection_cache(tmp_path / "c")):
        path = cache._store.path("0123abcd")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(_Planted(marker)))
        assert cache.get("0123abcd") is None and list(cache) == []
    assert not marker.exists()


def test_file_cache_keeps_bytes_and_arrays(tmp_path):
    from synapse_core.features.store import FileCache

    cache = FileCache(tmp_path)
    cache.set("gif", b"GIF89a\x00\x01")
    cache.set("map", np.arange(6, dtype=np.float32).reshape(3, 2))
    assert cache.get("gif") == b"GIF89a\x00\x01"
    np.testing.assert_array_equal(cache["map"], np.arange(6, dtype=np.float32).reshape(3, 2))
    assert sorted(cache) == ["gif", "map"] and cache.get("absent", "no") == "no"
