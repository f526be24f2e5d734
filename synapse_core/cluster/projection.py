"""Preprocessed features → 2D/3D map (UMAP or openTSNE), cached on disk.

The map is for looking at; clustering runs in feature space (see :mod:`synapse_core.cluster.run`).
Both methods take a seed. UMAP with a seed is single-threaded (umap-learn disables parallelism
when ``random_state`` is set); ``reproducible=False`` lets it use every core but the layout then
changes from run to run. t-SNE is openTSNE: FFT-accelerated gradients for large 2D maps,
Barnes–Hut for small N (faster there) and for 3D (which FFT does not support).

Projections are cached with :mod:`diskcache` under ``<cache_dir>/projections`` (:func:`projection_cache`),
keyed by :func:`cache_key`: the content hash of the input matrix and the :class:`ProjectionSettings`.
The dashboard and the CLI pass the same ``cache_dir`` (:func:`synapse_core.data.cache_dir.resolve_cache_dir`),
so a map computed by one is a cache hit for the other.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from synapse_core.cluster.settings import ProjectionSettings
from synapse_core.data.hashing import content_hash

log = logging.getLogger(__name__)

#: From this many synapses on, 2D t-SNE uses the FFT-accelerated gradient.
TSNE_FFT_ROWS = 5000
#: Folder of the projection cache inside the cache directory.
CACHE_FOLDER = "projections"
#: Bytes of cached projections kept before the least recently used are evicted.
CACHE_BYTES = 2**30


def _n_jobs(reproducible: bool) -> int:
    return 1 if reproducible else (os.cpu_count() or 1)


def run_umap(Z: np.ndarray, s: ProjectionSettings) -> np.ndarray:
    """UMAP of ``Z`` (n_synapses, d) → (n_synapses, s.dims) float32."""
    import umap  # slow import (numba); only when a UMAP is actually computed

    n = len(Z)
    kwargs = dict(
        n_components=s.dims,
        n_neighbors=int(min(s.n_neighbors, n - 1)),
        min_dist=s.min_dist,
        metric=s.metric,
        # spectral init needs more points than dimensions + 1
        init="spectral" if n > s.dims + 2 else "random",
    )
    if s.reproducible:
        reducer = umap.UMAP(random_state=s.seed, n_jobs=1, **kwargs)
    else:
        reducer = umap.UMAP(n_jobs=_n_jobs(False), **kwargs)
    return np.asarray(reducer.fit_transform(Z), dtype=np.float32)


def run_tsne(Z: np.ndarray, s: ProjectionSettings) -> np.ndarray:
    """openTSNE of ``Z`` (n_synapses, d) → (n_synapses, s.dims) float32."""
    from openTSNE import TSNE

    n = len(Z)
    perplexity = float(min(s.perplexity, max(1.0, (n - 1) / 3.0 - 1.0)))
    tsne = TSNE(
        n_components=s.dims,
        perplexity=perplexity,
        metric=s.metric,
        negative_gradient_method=tsne_gradient_method(n, s.dims),
        random_state=s.seed,
        n_jobs=_n_jobs(s.reproducible),
        verbose=False,
    )
    return np.asarray(tsne.fit(np.asarray(Z, dtype=np.float64)), dtype=np.float32)


def tsne_gradient_method(n_synapses: int, dims: int) -> str:
    """openTSNE gradient: FFT interpolation for ≥ ``TSNE_FFT_ROWS`` synapses in 2D, else Barnes–Hut.

    FFT has a fixed per-iteration cost (slower than Barnes–Hut on small N) and supports at most
    2 output dimensions.
    """
    return "fft" if dims <= 2 and n_synapses >= TSNE_FFT_ROWS else "bh"


def cache_key(Z: np.ndarray, s: ProjectionSettings) -> str:
    """Key of one projection: content hash of the float32 feature matrix and the settings."""
    return content_hash({"kind": "projection", "features": np.asarray(Z, dtype=np.float32), "settings": s})


def projection_cache(cache_dir: str | os.PathLike):
    """The projection store under ``<cache_dir>/projections`` (a :class:`diskcache.Cache`; close it after use)."""
    import diskcache

    return diskcache.Cache(os.path.join(os.fspath(cache_dir), CACHE_FOLDER), size_limit=CACHE_BYTES)


def project(Z: np.ndarray, settings: ProjectionSettings, cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Map the rows of ``Z`` to ``settings.dims`` coordinates.

    Parameters
    ----------
    Z : ndarray, shape (n_synapses, d)
        Preprocessed features (output of :func:`synapse_core.cluster.preprocess.prepare`).
    settings : ProjectionSettings
    cache_dir : path or None
        The cache directory (the store is its ``projections`` folder, :func:`projection_cache`);
        None: no caching.

    Returns
    -------
    ndarray, float32, shape (n_synapses, settings.dims)
        Columns are map axes ``proj_1..proj_dims`` (arbitrary units).

    Raises
    ------
    ValueError
        Fewer than 4 synapses (no meaningful neighbourhood graph).
    """
    Z = np.asarray(Z, dtype=np.float32)
    if Z.ndim != 2:
        raise ValueError(f"features must be a 2-D array (n_synapses, n_features); got shape {Z.shape}")
    if len(Z) < 4:
        raise ValueError(f"a {settings.method} projection needs at least 4 synapses; got {len(Z)}")
    run = run_umap if settings.method == "umap" else run_tsne
    if cache_dir is None:
        return run(Z, settings)
    key = cache_key(Z, settings)
    with projection_cache(cache_dir) as cache:
        hit = cache.get(key)
        if hit is not None:
            log.info("projection %s %dD: cache hit", settings.method, settings.dims)
            return hit
        Y = run(Z, settings)
        cache.set(key, Y)
    return Y
