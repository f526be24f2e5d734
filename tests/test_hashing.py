"""Content hashes behind every cache key: equal content, equal key; any change, another key."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synapse_core.data.hashing import array_digest, canonical, content_hash, stat_fingerprint

ROOT = Path(__file__).resolve().parents[1]


def test_array_digest_changes_with_content_only():
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert array_digest(X) == array_digest(X.copy()) == array_digest(np.asfortranarray(X))
    Y = X.copy()
    Y[0, 0] = 0.5
    assert array_digest(X) != array_digest(Y)


def test_array_digest_tells_dtype_and_shape_apart():
    X = np.zeros(12, np.uint8)
    assert len({array_digest(X), array_digest(X.reshape(3, 4)), array_digest(X.view(np.int8))}) == 3


def test_canonical_form_of_numpy_scalars_tuples_and_nan_is_plain_json():
    assert canonical({"a": (np.float64(2.5), np.int32(3)), 1: float("nan")}) == {"a": [2.5, 3], "1": "nan"}


def test_dataclasses_hash_by_type_and_fields():
    @dataclass(frozen=True)
    class A:
        x: int = 1

    @dataclass(frozen=True)
    class B:
        x: int = 1

    assert content_hash(A()) == content_hash(A(1)) != content_hash(A(2))
    assert content_hash(A()) != content_hash(B())


def test_content_hash_is_the_same_in_another_process():
    code = "import numpy as np; from synapse_core.data.hashing import content_hash; print(content_hash({'w': np.arange(8)}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.strip()
    assert out == content_hash({"w": np.arange(8)}) and len(out) == 40


def test_stat_fingerprint_changes_when_a_file_is_rewritten(tmp_path):
    f = tmp_path / "slice_0.tif"
    f.write_bytes(b"abc")
    first = stat_fingerprint([f], "raw")
    assert stat_fingerprint([f], "raw") == first and stat_fingerprint([f], "seg") != first
    f.write_bytes(b"abcd")
    assert stat_fingerprint([f], "raw") != first


def _old_stat_fingerprint(paths, extra=""):
    """The fingerprint as first written (Path.stat + Path.resolve per file): cache keys must not change."""
    parts = [extra]
    for p in paths:
        st = Path(p).stat()
        parts.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    return content_hash(parts, digest_size=8)


def test_stat_fingerprint_keeps_its_values_for_links_and_relative_paths(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    for i in range(3):
        (real / f"slice_{i}.tif").write_bytes(b"x" * i)
    (tmp_path / "linked_folder").symlink_to(real)
    (real / "slice_9.tif").symlink_to(real / "slice_1.tif")
    monkeypatch.chdir(tmp_path)
    cases = [
        sorted(real.iterdir()),                                   # plain files and one symlinked file
        sorted((tmp_path / "linked_folder").iterdir()),           # a symlinked folder
        ["real/slice_0.tif", "linked_folder/../real/slice_2.tif", "./real//slice_1.tif"],  # relative, .., //
    ]
    for paths in cases:
        assert stat_fingerprint(paths, "raw") == _old_stat_fingerprint(paths, "raw")


def test_stat_fingerprint_is_the_content_hash_of_its_parts(tmp_path):
    f = tmp_path / "slice_0.tif"
    f.write_bytes(b"abc")
    st = f.stat()
    parts = ["raw", [str(f.resolve()), st.st_size, st.st_mtime_ns]]
    assert stat_fingerprint([f], "raw") == content_hash(parts, digest_size=8)
