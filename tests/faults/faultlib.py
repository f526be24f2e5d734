"""Small synthetic datasets and helpers shared by the fault tests (tests/faults/test_*.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import REPO, small_volumes, synapse_rows, write_small_dataset, write_stack

__all__ = ["REPO", "SECRET", "cli", "small_volumes", "synapse_rows", "tables_root", "write_h5", "write_outside_secret",
           "write_small_dataset", "write_stack"]

#: Unique content of a file outside the data roots: it must never appear in any output.
SECRET = "TOP-SECRET-7f3a9c-outside-the-roots"


def write_outside_secret(folder: Path) -> dict[str, Path]:
    """Files outside the data roots: a CSV table, an HDF5 volume and a slice folder, each holding :data:`SECRET`."""
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    rows = synapse_rows()
    rows["note"] = SECRET
    rows.to_csv(folder / "secret.csv", index=False)
    raw, seg, _ = small_volumes()
    with h5py.File(folder / "secret.h5", "w") as f:
        f["raw"], f["seg"] = raw, seg
        f.attrs["note"] = SECRET
    write_stack(folder / "slices", np.full_like(raw, 77))
    return {"csv": folder / "secret.csv", "h5": folder / "secret.h5", "slices": folder / "slices"}


def write_h5(path: Path, **arrays) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v
    return path


def tables_root(tmp_path: Path, write) -> Path:
    """A small TIFF dataset whose bbox1 table is written by ``write(folder)`` instead of excel/bbox1.xlsx."""
    root = write_small_dataset(tmp_path / "DATA")
    (root / "excel" / "bbox1.xlsx").unlink()
    write(root / "excel")
    return root


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120):
    """``python -m synapse_core ARGS`` in a subprocess: ``(exit code, stdout, stderr)``."""
    import os

    full_env = {**os.environ, **(env or {})}
    r = subprocess.run([sys.executable, "-m", "synapse_core", *args], capture_output=True, text=True,
                       cwd=cwd or REPO, env=full_env, timeout=timeout, check=False)
    return r.returncode, r.stdout, r.stderr
