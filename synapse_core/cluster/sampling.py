"""Seeded row samples: the one way every clustering step draws a subset of synapses."""

from __future__ import annotations

import numpy as np


def cap_rows(n: int, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices: all ``n`` rows up to ``max_rows``, else a sample of ``max_rows`` drawn with ``rng``."""
    return np.arange(n) if n <= max_rows else np.sort(rng.choice(n, size=max_rows, replace=False))
