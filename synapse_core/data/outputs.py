"""Write a run's output files as one set: all or nothing next to ``--out``.

A run that writes a table and its side files (``clusters.csv``, ``clusters_summary.csv``,
figures ...) and is killed half-way must not leave new tables beside the previous run's figures.
:func:`output_set` gives the writer a private staging folder next to the output; only when every
file is written are they moved into place (one ``os.replace`` each, on the same disk), the files
of the previous set that this run does not write again are removed, and a small record of the set
(``.<stem>.outputs.json``) is written last. A killed or failed run leaves the previous set as it
was and its staging folder is removed (or, after ``kill -9``, ignored and cleared by the next run).

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "clusters.csv"
>>> with output_set(out) as staged:
...     _ = staged.write_text("a,b\\n")
...     _ = (staged.parent / "clusters_summary.csv").write_text("x\\n")
>>> sorted(p.name for p in out.parent.iterdir())
['.clusters.outputs.json', 'clusters.csv', 'clusters_summary.csv']
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

STAGING_PREFIX = ".staging-"


def _record(folder: Path, stem: str) -> Path:
    return folder / f".{stem}.outputs.json"


def previous_set(out: str | os.PathLike) -> list[str]:
    """File names of the set last written for ``out`` (empty when none was recorded)."""
    out = Path(out)
    try:
        names = json.loads(_record(out.parent, out.stem).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [n for n in names if isinstance(n, str) and Path(n).name == n]


@contextlib.contextmanager
def output_set(out: str | os.PathLike) -> Iterator[Path]:
    """Stage the files of one run and move them next to ``out`` together when the block succeeds.

    Yields the path ``out`` would have inside the staging folder: write ``out`` and every side file
    into ``staged.parent``. On success every staged file replaces its namesake next to ``out`` and
    files of the previous set that were not written again are deleted; on any exception (including
    Ctrl-C) nothing next to ``out`` changes.
    """
    out = Path(out).expanduser()
    folder = out.parent if str(out.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{STAGING_PREFIX}{out.stem}-*"):  # left by a killed run
        with contextlib.suppress(OSError, ValueError):
            pid = int(stale.name.rsplit("-", 1)[1])
            if pid != os.getpid() and not pid_alive(pid):
                shutil.rmtree(stale, ignore_errors=True)
    staging = folder / f"{STAGING_PREFIX}{out.stem}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging / out.name
        written = sorted(p.name for p in staging.iterdir() if p.is_file())
        old = previous_set(out)
        for name in written:
            os.replace(staging / name, folder / name)
        for name in set(old) - set(written):
            with contextlib.suppress(OSError):
                (folder / name).unlink()
        tmp = _record(folder, out.stem).with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"files": written}))
        tmp.replace(_record(folder, out.stem))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` of this host exists (or is another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def final_paths(paths: dict, staged_out: Path, out: str | os.PathLike) -> dict:
    """``paths`` (name → staged file) as the paths the files have after :func:`output_set` moved them."""
    folder = Path(out).expanduser().parent
    staged = os.path.abspath(staged_out.parent)  # the writers may give relative or absolute paths
    return {k: str(folder / Path(v).name) if os.path.abspath(Path(v).parent) == staged else v
            for k, v in paths.items()}
