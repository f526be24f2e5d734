"""Preprocessed features → 2D/3D map (UMAP or openTSNE), cached on disk.

The map is for looking at; clustering runs in feature space (see :mod:`synapse_core.cluster.run`).
Both methods take a seed. UMAP with a seed is single-threaded (umap-learn disables parallelism
when ``random_state`` is set); ``reproducible=False`` lets it use every core but the layout then
changes from run to run. t-SNE is openTSNE: FFT-accelerated gradients for large 2D maps,
Barnes–Hut for small N (faster there) and for 3D (which FFT does not support).

Projections are cached as files (never unpickled) under ``<cache_dir>/projections`` (:func:`projection_cache`),
keyed by :func:`cache_key`: the content hash of the input matrix and the :class:`ProjectionSettings`.
The dashboard and the CLI pass the same ``cache_dir`` (:func:`synapse_core.data.cache_dir.resolve_cache_dir`),
so a map computed by one is a cache hit for the other.

First-map cost (issue 16): UMAP and pynndescent are compiled by numba in every new process (40 s of a
fresh ``cluster`` at 10⁴ rows). With a cache folder, numba's compiled code is kept on disk in
``<cache_dir>/numba`` (:func:`enable_numba_disk_cache`: ``NUMBA_CACHE_DIR`` and on-disk caching for
the library's compiled functions), and up to ``UMAP_EXACT_KNN_MAX_ROWS`` synapses the neighbour graph is
scikit-learn's exact k-nearest neighbours passed to UMAP as ``precomputed_knn`` (:func:`umap_knn`). Below
4096 rows UMAP would compute the same exact graph itself, but from every pairwise distance through a
Python loop over a numba function (7 of the 13 s of a 3000-row map) after compiling its own search; from
4096 rows it would use approximate nearest-neighbour descent (compiled, and approximate).
Measured in ``benchmarks/startup.py`` (cold and warm process, compile time on its own line).
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
#: Folder of numba's compiled code inside the cache directory.
NUMBA_FOLDER = "numba"
#: Up to this many rows UMAP's neighbour graph is exact, from scikit-learn (seconds at 10⁴ rows, no numba
#: compilation); above, UMAP's nearest-neighbour descent.
UMAP_EXACT_KNN_MAX_ROWS = 30000
_LIBRARY_CACHING = {"done": False}


def enable_numba_disk_cache(cache_dir: str | os.PathLike | None) -> str | None:
    """Keep numba's compiled code in ``<cache_dir>/numba`` so a new process loads instead of compiling.

    Sets ``NUMBA_CACHE_DIR`` (unless the user set it) before numba is imported; if numba is
    already imported its configuration is updated. Returns the folder used (None: no caching).
    """
    if cache_dir is None and not os.environ.get("NUMBA_CACHE_DIR"):
        return None
    folder = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.fspath(cache_dir), NUMBA_FOLDER)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None  # an unwritable cache only costs the compilation
    os.environ["NUMBA_CACHE_DIR"] = folder
    import sys

    if "numba" in sys.modules:
        sys.modules["numba"].config.CACHE_DIR = folder
    return folder


def _cache_library_functions() -> None:
    """Turn on numba's on-disk cache for UMAP's and pynndescent's compiled functions that do not ask for it.

    Functions whose code cannot be cached (closures over other compiled functions) are compiled
    as before; numba only warns, which is silenced here.
    """
    if _LIBRARY_CACHING["done"]:
        return
    import importlib
    import warnings

    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    for name in ("umap.umap_", "umap.layouts", "umap.distances", "umap.spectral", "umap.utils",
                 "pynndescent.pynndescent_", "pynndescent.utils", "pynndescent.distances", "pynndescent.rp_trees"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher) and isinstance(getattr(value, "_cache", None), NullCache):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        value.enable_caching()
                    except Exception as exc:  # noqa: BLE001 - a function numba cannot cache stays uncached
                        log.debug("numba cannot cache %s.%s: %s", name, value.__name__, exc)
    _LIBRARY_CACHING["done"] = True


def exact_knn(Z: np.ndarray, n_neighbors: int, metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray] | None:
    """Exact k nearest neighbours of every row of ``Z`` (itself first), UMAP's ``precomputed_knn`` format.

    Returns (indices int64 (n, k), distances float32 (n, k)), or None for a metric scikit-learn does not have.
    A row's distance to itself is exactly 0, as in UMAP's own graph: scikit-learn's |x|² + |y|² − 2x·y leaves
    ~1e-7, and UMAP takes the first non-zero distance as the distance to the nearest neighbour (ρ), so the
    residue would loosen every synapse's bond to its nearest neighbour (trustworthiness 0.964 instead of 0.966
    on 4 × 1500 synthetic rows).
    """
    from sklearn.neighbors import NearestNeighbors

    try:
        nn = NearestNeighbors(n_neighbors=n_neighbors, metric=metric, algorithm="brute").fit(Z)
    except ValueError:
        return None
    dist, ind = nn.kneighbors(Z)
    dist = dist.astype(np.float32)
    dist[ind == np.arange(len(Z))[:, None]] = 0.0
    return ind.astype(np.int64), dist


def _n_jobs(reproducible: bool) -> int:
    return 1 if reproducible else (os.cpu_count() or 1)


def import_umap(cache_dir: str | os.PathLike | None = None):
    """Import UMAP (seconds: numba) with numba's disk cache in ``<cache_dir>/numba`` turned on; returns the module."""
    if enable_numba_disk_cache(cache_dir) is not None:
        import umap  # slow import (numba); only when a UMAP is actually computed

        _cache_library_functions()
    else:
        import umap
    return umap


def umap_knn(Z: np.ndarray, s: ProjectionSettings) -> tuple[np.ndarray, np.ndarray] | None:
    """The neighbour graph :func:`run_umap` passes to UMAP as ``precomputed_knn`` for ``Z`` (float32), or None
    (UMAP searches itself: more than ``UMAP_EXACT_KNN_MAX_ROWS`` rows, fewer than 3, or a metric scikit-learn
    does not have)."""
    n = len(Z)
    if s.method != "umap" or not 3 <= n <= UMAP_EXACT_KNN_MAX_ROWS:
        return None
    return exact_knn(Z, int(min(s.n_neighbors, n - 1)), s.metric)


def run_umap(Z: np.ndarray, s: ProjectionSettings, cache_dir: str | os.PathLike | None = None,
             knn: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """UMAP of ``Z`` (n_synapses, d) → (n_synapses, s.dims) float32.

    ``cache_dir``: numba's compiled code is kept in ``<cache_dir>/numba`` (:func:`enable_numba_disk_cache`).
    ``knn``: :func:`umap_knn` of ``Z`` when already computed (e.g. by the process that started a map process).
    """
    umap = import_umap(cache_dir)
    n = len(Z)
    n_neighbors = int(min(s.n_neighbors, n - 1))
    kwargs = dict(
        n_components=s.dims,
        n_neighbors=n_neighbors,
        min_dist=s.min_dist,
        metric=s.metric,
        # spectral init needs more points than dimensions + 1
        init="spectral" if n > s.dims + 2 else "random",
    )
    from synapse_core.cluster.settings import FIT_ROWS, LARGE_ROWS

    fit_rows = None
    if n > LARGE_ROWS:  # large data: fit on a seeded subsample, place the others (synapse_core.cluster.placement)
        from synapse_core.cluster.sampling import cap_rows

        fit_rows = cap_rows(n, FIT_ROWS, np.random.default_rng([s.seed, 2]))
    else:
        knn = umap_knn(Z, s) if knn is None else knn
        if knn is not None:
            # below 4096 rows UMAP ignores a given graph unless told not to compute all pairwise distances
            kwargs.update(precomputed_knn=knn, force_approximation_algorithm=True)
    if s.reproducible:
        reducer = umap.UMAP(random_state=s.seed, n_jobs=1, **kwargs)
    else:
        reducer = umap.UMAP(n_jobs=_n_jobs(False), **kwargs)
    if fit_rows is None:
        import warnings

        with warnings.catch_warnings():
            # exact neighbours come without an NNDescent index: UMAP warns that `transform` is then
            # unavailable; this path never calls it
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
            return np.asarray(reducer.fit_transform(Z), dtype=np.float32)
    Y = np.empty((n, s.dims), dtype=np.float32)
    Y[fit_rows] = reducer.fit_transform(Z[fit_rows])
    rest = np.setdiff1d(np.arange(n), fit_rows, assume_unique=True)
    from synapse_core.cluster.placement import place_by_neighbours, umap_neighbour_query

    # the other synapses at the weighted mean of their fitted neighbours (transform without its SGD: ~13x cheaper)
    Y[rest] = place_by_neighbours(umap_neighbour_query(reducer, Z[fit_rows], s.seed), Y[fit_rows], Z[rest],
                                  n_neighbors)
    log.info("UMAP fitted on %d of %d synapses (seeded sample); the others placed among their fitted neighbours",
             len(fit_rows), n)
    return Y


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


#: Part of every projection's cache key: bumped when the same settings give another map (2: UMAP's exact
#: neighbour graph with self-distances of exactly 0, and from 3 rows on, not only from 4096).
MAP_VERSION = 2


def cache_key(Z: np.ndarray, s: ProjectionSettings) -> str:
    """Key of one projection: content hash of the float32 feature matrix, the settings and ``MAP_VERSION``."""
    return content_hash({"kind": "projection", "version": MAP_VERSION, "features": np.asarray(Z, dtype=np.float32),
                         "settings": s})


def projection_cache(cache_dir: str | os.PathLike):
    """The projection store under ``<cache_dir>/projections`` (a :class:`~synapse_core.features.store.FileCache`:
    files, never unpickled)."""
    from synapse_core.features.store import FileCache

    return FileCache(os.path.join(os.fspath(cache_dir), CACHE_FOLDER))


def project(Z: np.ndarray, settings: ProjectionSettings, cache_dir: str | os.PathLike | None = None,
            knn: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Map the rows of ``Z`` to ``settings.dims`` coordinates.

    Parameters
    ----------
    Z : ndarray, shape (n_synapses, d)
        Preprocessed features (output of :func:`synapse_core.cluster.preprocess.prepare`).
    settings : ProjectionSettings
    cache_dir : path or None
        The cache directory (the store is its ``projections`` folder, :func:`projection_cache`);
        None: no caching.
    knn : (indices int64 (n, k), distances float32 (n, k)) or None
        :func:`umap_knn` of ``Z`` if already computed (UMAP only; the map is the same either way).

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
    def run(Z_, s_):
        return run_umap(Z_, s_, cache_dir, knn) if s_.method == "umap" else run_tsne(Z_, s_)

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
