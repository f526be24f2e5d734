"""Another git revision of this repository, exported beside the checkout for before/after benchmarks.

Used by ``benchmarks/startup.py`` and ``benchmarks/page_rerun.py`` (``--before REV``): both trees are
measured in the same run, so the before and after columns share the machine's load.
"""

from __future__ import annotations

import os
import subprocess

#: The repository root (this file is in ``benchmarks/``).
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export_revision(rev: str, tmp: str) -> str:
    """The files of git revision ``rev`` in a new folder under ``tmp`` (``git archive``; the checkout,
    its index and its working tree are not touched). Returns the folder's path."""
    dest = os.path.join(tmp, f"tree-{rev.replace('~', '_').replace('^', '_').replace('/', '_')}")
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", dest], input=archive.stdout, check=True)
    return dest
