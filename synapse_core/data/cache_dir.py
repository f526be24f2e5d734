"""Where cached data products live (the feature store, picture and map caches, converted volumes, the demo dataset)."""

from __future__ import annotations

import os
from pathlib import Path

#: The project's ``cache/`` folder; ``SYNAPSE_CACHE_DIR`` overrides it (e.g. a lab's shared disk).
PROJECT_CACHE = Path(__file__).resolve().parents[2] / "cache"


def default_cache_dir() -> Path:
    """``$SYNAPSE_CACHE_DIR`` if set, else the project's ``cache/`` folder; created if missing."""
    path = Path(os.environ.get("SYNAPSE_CACHE_DIR") or PROJECT_CACHE)
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """``cache_dir`` as a created Path, or :func:`default_cache_dir` when None."""
    if cache_dir is None:
        return default_cache_dir()
    path = Path(cache_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path
