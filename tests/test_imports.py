"""Start-up cost: building a command's flags (what ``--help`` does) imports no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys

#: Libraries costing 0.3-2 s of import each, needed only when a command runs.
HEAVY = ("torch", "pandas", "scipy", "zarr", "tensorstore", "h5py", "sklearn", "numba", "umap", "openpyxl",
         "tifffile", "pyarrow", "streamlit", "plotly", "matplotlib")


def _imported_by(code: str) -> list[str]:
    """Heavy top-level packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return sorted(set(json.loads(out.splitlines()[-1])) & set(HEAVY))


def test_every_commands_flags_are_built_without_heavy_imports():
    assert _imported_by("from synapse_core.cli.parser import build_parser\nbuild_parser(None)") == []


def test_importing_the_crop_and_cluster_command_modules_imports_no_heavy_library():
    assert _imported_by("import synapse_core.cli.crop, synapse_core.cli.cluster, synapse_core.cli.extract") == []
