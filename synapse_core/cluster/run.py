"""Features → clusters (+ map, k curves, diagnostics, per-cluster summary): the clustering stage.

Entry point: :func:`run_clustering` (``python -m synapse_core cluster`` and the dashboard call it).

Policy
------
* One preprocessing for everything (:func:`synapse_core.cluster.preprocess.prepare`): scaling (standard by
  default), optional PCA. Clustering, k selection, diagnostics and the projection all use that
  matrix, the *clustering space*; clustering never runs on the 2D/3D map. The space is written in
  every output (column ``cluster_space``, ``diagnostics["cluster_space"]``).
* Methods: ``kmeans`` (default; MiniBatchKMeans above ``MINIBATCH_ROWS`` synapses), ``agglomerative``
  (Ward), ``hdbscan`` (``sklearn.cluster.HDBSCAN``), ``dbscan``.
* **Noise is labelled −1** (HDBSCAN/DBSCAN points in no cluster), not 999 as in the original tool;
  noise rows have ``distance_to_centroid`` NaN and are excluded from centroids and effect sizes.
* ``k="auto"`` sweeps ``k_range`` and picks k by the rule of :func:`synapse_core.cluster.k_selection.decide_k`
  (silhouette and stability against a structureless Gaussian null, minimum cluster size); k = 1
  ("no clear cluster structure", every synapse in cluster 0) when no k beats the null. HDBSCAN/DBSCAN find their own number of clusters and ignore ``k``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from synapse_core.cluster import diagnostics, k_selection, map_process
from synapse_core.cluster import summary as cluster_summary
from synapse_core.cluster.algorithms import fit_kmeans, fit_labels
from synapse_core.cluster.preprocess import PreprocessRecord, prepare
from synapse_core.cluster.projection import project
from synapse_core.cluster.settings import (
    AGGLOMERATIVE_MAX_ROWS,
    MINIBATCH_ROWS,
    NOISE,
    ClusterSettings,
)
from synapse_core.data.csv_ahead import RenderedAhead, render_ahead, write_csv
from synapse_core.data.hashing import content_hash

log = logging.getLogger(__name__)


@dataclass
class ClusterResult:
    """Output of :func:`run_clustering`.

    Attributes
    ----------
    table : DataFrame
        Input rows that were clustered (original order) plus ``cluster`` (int, −1 noise),
        ``proj_1..proj_<dims>`` (map coordinates; absent with ``projection="none"``),
        ``distance_to_centroid`` (Euclidean, clustering space; NaN for noise), ``cluster_space``.
    k_curves : DataFrame or None
        Per swept k: the data's and the null's silhouette, stability, gap, Calinski–Harabasz,
        inertia and the rule's checks (:func:`synapse_core.cluster.k_selection.decide_k`); None when
        k was not swept.
    diagnostics : dict
        JSON-serialisable: settings, preprocessing record, chosen k and rule, silhouette, stability,
        bbox effect, map faithfulness, timings.
    summary : DataFrame
        One row per cluster (:func:`synapse_core.cluster.summary.summarise_clusters`).
    representatives : DataFrame
        ``cluster``, ``rank``, ``bbox_name``, ``Var1``, ``distance_to_centroid``.
    effect_sizes : DataFrame
        ``cluster``, ``column``, ``cluster_mean``, ``rest_mean``, ``effect_size`` (Cohen's d, morph_*).
    composition : DataFrame
        Synapse counts, clusters × bboxes.
    features : ndarray, float32, shape (n_rows, d)
        The clustering space (preprocessed features), row-aligned with ``table``.
    settings : ClusterSettings
    preprocess : PreprocessRecord
    csv_ahead : RenderedAhead or None
        See :func:`run_clustering`'s ``render_csv``.
    """

    table: pd.DataFrame
    k_curves: pd.DataFrame | None
    diagnostics: dict
    summary: pd.DataFrame
    representatives: pd.DataFrame
    effect_sizes: pd.DataFrame
    composition: pd.DataFrame
    features: np.ndarray
    settings: ClusterSettings
    preprocess: PreprocessRecord
    #: The input columns' CSV lines, rendered while the map process worked (``render_csv``); used by
    #: :func:`write_result` and then dropped.
    csv_ahead: RenderedAhead | None = None

    @property
    def projection_columns(self) -> list[str]:
        return [c for c in self.table.columns if str(c).startswith("proj_")]


def _check_size(n: int, s: ClusterSettings) -> None:
    if n < 3:
        raise ValueError(
            f"cannot cluster {n} synapse{'s' if n != 1 else ''}: at least 3 are needed "
            "(check the feature table or the --nan-policy/--feature-set choice)"
        )
    if s.method in ("kmeans", "agglomerative") and s.k != "auto" and s.k > n - 1:
        raise ValueError(
            f"k={s.k} is too large for {n} synapses: k must be at most n−1 = {n - 1}; "
            "lower --k or use --k auto"
        )
    if s.method == "agglomerative" and n > AGGLOMERATIVE_MAX_ROWS:
        raise ValueError(
            f"method='agglomerative' needs O(N²) memory; {n} synapses is above {AGGLOMERATIVE_MAX_ROWS}. "
            "Use --method kmeans or hdbscan"
        )
    if s.projection != "none" and n < 4:
        raise ValueError(f"projection={s.projection!r} needs at least 4 synapses; got {n}. Use --projection none")


def _refit_sample(s: ClusterSettings, Z: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Labels of a refit on a sample (the k sweep's subsamples and nulls, the stability diagnostic).

    KMeans uses ``kmeans_n_init`` restarts when the user set it, else ``k_selection.SAMPLE_N_INIT`` (3;
    issue 16), for data and null alike; other methods are fitted as usual.
    """
    if s.method != "kmeans":
        return fit_labels(Z, s, k, seed)
    n_init = s.kmeans_n_init if s.kmeans_n_init is not None else k_selection.SAMPLE_N_INIT
    return fit_kmeans(Z, k, seed, s.kmeans_algorithm, n_init)[0]


#: Columns :func:`run_clustering` adds to the input rows (besides ``proj_*``).
_ADDED = ("cluster", "distance_to_centroid", "cluster_space")


def _with_columns(table: pd.DataFrame, columns: dict) -> pd.DataFrame:
    """``table`` with ``columns`` (name → values or scalar) set in this order, as one column at a time would
    (a column already there keeps its place, the others are appended), but appended in one step: one at a
    time fragments a table built column by column (pandas' "DataFrame is highly fragmented" warning)."""
    table = table.copy(deep=False)  # the caller's table never gets the new columns
    for name in [c for c in columns if c in table.columns]:
        table[name] = columns[name]
    new = {name: values for name, values in columns.items() if name not in table.columns}
    if not new:
        return table
    return pd.concat([table, pd.DataFrame(new, index=table.index)], axis=1)


def _json_ready(obj):
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def run_clustering(features_df: pd.DataFrame, settings: ClusterSettings = ClusterSettings(),
                   cache_dir: str | os.PathLike | None = None, stage_done=None,
                   render_csv: bool = False) -> ClusterResult:
    """Cluster the synapses of an extraction table and describe the result.

    Parameters
    ----------
    features_df : DataFrame
        One row per synapse with ``bbox_name``, ``Var1`` and ``feat_*`` and/or ``morph_*`` columns.
    settings : ClusterSettings
    cache_dir : path or None
        Projection cache directory (None: no cache).
    stage_done : callable (stage name, seconds) → None, optional
        Called after each stage (``preprocess``, ``cluster``, ``projection``, ``diagnostics``,
        ``summary``, in this order), e.g. for progress or to measure memory per stage
        (``benchmarks/cluster_scale.py``). An exception raised by it (a cancelled job) ends the run and
        the map process.
    render_csv : bool
        While waiting for a map process, render the input columns of the table as CSV text
        (``ClusterResult.csv_ahead``, :mod:`synapse_core.data.csv_ahead`), so that :func:`write_result`
        writes the CSV table seconds sooner after the map arrives (the ``cluster`` command; same bytes).

    Notes
    -----
    From ``map_process.MIN_ROWS`` synapses a seeded map is computed by a child process while this one
    sweeps k and computes the diagnostics that need no map (:mod:`synapse_core.cluster.map_process`;
    same coordinates; ``SYNAPSE_MAP_PROCESS=0`` turns it off). The ``projection`` stage is then
    reported when the map has arrived, and ``timings`` holds the child's map seconds
    (``projection_s``), this process's share of the map's preparation (``projection_send_s``: the exact
    neighbour graph), how long it waited for the child (``projection_wait_s``) and the child's CPU
    seconds (``projection_process_cpu_s``: its imports and the map).

    Returns
    -------
    ClusterResult

    Raises
    ------
    ValueError
        Missing key columns, bad features (named row/column), too few synapses for k.
    """
    import time

    s = settings
    timings = {}
    missing = [c for c in ("bbox_name", "Var1") if c not in features_df.columns]
    if missing:
        raise ValueError(f"the feature table lacks column(s) {', '.join(missing)} (the synapse key)")
    # --- the map (for looking at only) does not depend on the clusters: with enough synapses a child process
    # computes it beside the k sweep (issue 16; it imports UMAP while this process preprocesses)
    ps = s.projection_settings()
    pending = map_process.start(ps, cache_dir) if map_process.wanted(len(features_df), ps, cache_dir) else None
    try:
        t = time.perf_counter()
        Z, kept, record = prepare(features_df, s.feature_set, s.scaler, s.pca_components, s.nan_policy, s.seed)

        def done(stage, t0):
            timings[f"{stage}_s"] = time.perf_counter() - t0
            if stage_done is not None:
                stage_done(stage, timings[f"{stage}_s"])

        done("preprocess", t)
        # copy-on-write (pandas ≥ 3): the new columns below never reach the caller's table; no deep copy of 10⁶ rows
        table = (features_df if kept.all() else features_df.loc[kept]).reset_index(drop=True)
        n = len(Z)
        _check_size(n, s)
        if ps is not None and ps.reproducible and n > MINIBATCH_ROWS:
            # measured (benchmarks/cluster.py): seeded single-thread UMAP is ~4x slower than parallel
            log.warning("%d synapses: the reproducible (single-threaded) %s map is slow; "
                        "--parallel (reproducible=False) is ~4x faster but not repeatable", n, ps.method)
        if pending is not None:
            t = time.perf_counter()
            if not map_process.wanted(n, ps, cache_dir) or not pending.send(Z):  # rows dropped, or the map is cached
                pending.stop()
                pending = None
            else:
                timings["projection_send_s"] = time.perf_counter() - t  # incl. the exact neighbour graph
        if pending is None:
            return _cluster_map_describe(s, Z, table, record, n, ps, pending, cache_dir, timings, done, render_csv)
        from threadpoolctl import threadpool_limits

        # the child has the other core: a second BLAS/OpenMP thread here would mostly wait for it
        with threadpool_limits(1):
            return _cluster_map_describe(s, Z, table, record, n, ps, pending, cache_dir, timings, done, render_csv)
    finally:
        if pending is not None:  # an error or a cancelled job: the child stops too
            pending.stop()


def _cluster_map_describe(s, Z, table, record, n, ps, pending, cache_dir, timings, done,
                          render_csv=False) -> ClusterResult:
    """:func:`run_clustering` after preprocessing: clusters, map (in this process, or waiting for ``pending``),
    diagnostics, summary. ``done(stage, t0)`` records a stage that started at ``t0``; ``render_csv``: render
    the input columns' CSV lines while ``pending`` maps."""
    import time

    from sklearn.metrics import silhouette_score

    # --- clusters (in the clustering space)
    t = time.perf_counter()
    curves, chosen_rule, elbow, decision = None, None, None, None
    if s.method in ("kmeans", "agglomerative"):
        if s.k == "auto":
            def fit_k(Z_, k_):
                if s.method == "kmeans":
                    return fit_kmeans(Z_, k_, s.seed, s.kmeans_algorithm, s.kmeans_n_init)
                return fit_labels(Z_, s, k_, s.seed), None, None

            def sample_fit(Z_, k_):  # stability subsamples and null samples: fewer KMeans restarts (issue 16)
                return _refit_sample(s, Z_, k_, s.seed)

            sweep = k_selection.sweep_k(Z, s.k_range, fit_k, s.seed, s.silhouette_sample, sample_fit=sample_fit)
            decision = k_selection.decide_k(sweep.curves, s.k_tolerance)
            curves, k = decision.curves, decision.k
            # k = 1: no k beat the structureless null; every synapse is in cluster 0
            labels = sweep.labels[k] if k > 1 else np.zeros(n, dtype=np.int64)
            elbow = k_selection.elbow_k(curves)
            chosen_rule = decision.rule
        else:
            k = int(s.k)
            labels = fit_labels(Z, s, k, s.seed)
            chosen_rule = "fixed by the user"
    else:
        k = None
        labels = fit_labels(Z, s, None, s.seed)
        chosen_rule = f"found by {s.method} (k is not used)"
    done("cluster", t)
    labels = np.asarray(labels, dtype=np.int64)
    dist, centroids = cluster_summary.distance_to_centroid(Z, labels)
    n_clusters = int(len(centroids))

    Y = None
    if ps is not None and pending is None:  # the map in this process
        t = time.perf_counter()
        Y = project(Z, ps, cache_dir)
        done("projection", t)

    # --- diagnostics (those that need no map first: they run while a map process works)
    t = time.perf_counter()
    clustered = labels >= 0
    sil = None
    if len(np.unique(labels[clustered])) >= 2:
        sample = s.silhouette_sample if clustered.sum() > s.silhouette_sample > 0 else None
        sil = float(silhouette_score(Z[clustered], labels[clustered], sample_size=sample, random_state=s.seed))
    stab = None
    if s.n_stability > 0 and n_clusters >= 1 and k != 1:
        stab = diagnostics.stability(Z, labels, lambda Zs, seed_: _refit_sample(s, Zs, k, seed_), n_runs=s.n_stability, fraction=s.stability_fraction,
                                     seed=s.seed)
    bbox = table["bbox_name"].astype(str).to_numpy()
    composition = diagnostics.bbox_composition(labels, bbox)
    # each synapse's nearest others in the clustering space: for the bbox effect and the map's k-NN overlap
    wanted = n >= 3 and (ps is not None or len(np.unique(bbox)) > 1)
    feature_nn = diagnostics.feature_neighbours(Z, k=s.knn_k, seed=s.seed) if wanted else None
    effect = diagnostics.bbox_effect(Z, labels, bbox, k=s.knn_k, seed=s.seed, features=feature_nn)
    alignment = diagnostics.cluster_alignment(labels, diagnostics.nuisance_columns(table), seed=s.seed)
    diagnostics_s = time.perf_counter() - t

    ahead = None
    if pending is not None and render_csv and not any(c in _ADDED or str(c).startswith("proj_") for c in table.columns):
        t = time.perf_counter()  # the input columns keep their place and values in the written table
        ahead = render_ahead(table, keep_going=pending.running)
        timings["csv_ahead_s"] = time.perf_counter() - t
    if pending is not None:  # the map of the child process
        t = time.perf_counter()
        got = pending.result()
        timings["projection_wait_s"] = time.perf_counter() - t
        if pending.cpu_s is not None:
            timings["projection_process_cpu_s"] = pending.cpu_s
        if got is None:  # the child failed (warned): map here
            Y = project(Z, ps, cache_dir)
            done("projection", t)
        else:
            Y, map_s = got
            done("projection", time.perf_counter() - map_s)
    columns = {"cluster": labels}
    if Y is not None:
        columns.update({f"proj_{j + 1}": Y[:, j] for j in range(Y.shape[1])})
    columns.update(distance_to_centroid=dist, cluster_space=record.space)
    table = _with_columns(table, columns)

    t = time.perf_counter()
    faithful = None
    if Y is not None:
        faithful = diagnostics.knn_overlap(Z, Y, k=s.knn_k, seed=s.seed, features=feature_nn)
    # above LARGE_ROWS the whole-table diagnostics use a seeded sample (diagnostics.diagnostic_rows)
    n_knn = n if feature_nn is None or feature_nn["rows"] is None else len(feature_nn["rows"])
    done("diagnostics", t - diagnostics_s)

    t = time.perf_counter()
    summary = cluster_summary.summarise_clusters(table, s.n_representatives)
    reps = cluster_summary.representatives(table, s.n_representatives)
    effects = cluster_summary.morphology_effect_sizes(table)
    done("summary", t)

    diag = {
        "settings": asdict(s),
        "settings_key": content_hash(s, digest_size=8),
        "preprocess": record.as_dict(),
        "cluster_space": record.space,
        "projection_input_space": record.space if ps is not None else None,
        "method": s.method,
        "noise_label": NOISE,
        "k": k,
        "k_rule": chosen_rule,
        "elbow_k": elbow,
        "k_decision": decision.as_dict() if decision is not None else None,
        "cluster_structure": decision.verdict if decision is not None else None,
        "alignment": alignment,
        "warnings": list(alignment["warnings"]),
        "n_synapses": n,
        "n_clusters": n_clusters,
        "n_noise": int((labels == NOISE).sum()),
        "cluster_sizes": {int(c): int((labels == c).sum()) for c in np.unique(labels)},
        "silhouette": sil,
        "silhouette_sample": s.silhouette_sample if n > s.silhouette_sample > 0 else None,
        "stability": stab,
        "bbox_effect": effect,
        "map_knn_overlap": faithful,
        "map_knn_overlap_random": (min(s.knn_k, n_knn - 1) / (n_knn - 1)) if Y is not None else None,
        "map_knn_overlap_rows": n_knn if Y is not None else None,
        "timings": timings,
    }
    return ClusterResult(
        table=table, k_curves=curves, diagnostics=_json_ready(diag), summary=summary, representatives=reps,
        effect_sizes=effects, composition=composition, features=Z, settings=s, preprocess=record,
        csv_ahead=ahead,
    )


def write_result(result: ClusterResult, out_csv: str | os.PathLike, table_format: str = "csv") -> dict[str, str]:
    """Write a run next to ``out_csv``: the table, k curves, diagnostics and per-cluster description.

    Files (``<stem>`` = name of ``out_csv`` without suffix): ``out_csv`` (clustered table; with
    ``table_format="parquet"`` it is ``<stem>.parquet`` instead),
    ``<stem>_k_curves.csv`` (when k was swept), ``<stem>_diagnostics.json``, ``<stem>_summary.csv``,
    ``<stem>_representatives.csv``, ``<stem>_effect_sizes.csv``, ``<stem>_bbox_composition.csv``.

    Returns
    -------
    dict name → path of every file written.
    """
    out_csv = os.fspath(out_csv)
    folder = os.path.dirname(os.path.abspath(out_csv))
    os.makedirs(folder, exist_ok=True)
    stem = os.path.splitext(os.path.basename(out_csv))[0]
    if table_format == "parquet":
        paths = {"table": os.path.join(folder, f"{stem}.parquet")}
        result.table.to_parquet(paths["table"], index=False)
    else:
        paths = {"table": out_csv}
        write_csv(result.table, out_csv, result.csv_ahead)  # = to_csv(out_csv, index=False)
        result.csv_ahead = None

    def side(name):
        return os.path.join(folder, f"{stem}_{name}")

    if result.k_curves is not None:
        paths["k_curves"] = side("k_curves.csv")
        result.k_curves.to_csv(paths["k_curves"], index=False)
    paths["diagnostics"] = side("diagnostics.json")
    with open(paths["diagnostics"], "w") as f:
        json.dump(result.diagnostics, f, indent=2)
    for name, df in (("summary", result.summary), ("representatives", result.representatives),
                     ("effect_sizes", result.effect_sizes)):
        paths[name] = side(f"{name}.csv")
        df.to_csv(paths[name], index=False)
    paths["bbox_composition"] = side("bbox_composition.csv")
    result.composition.to_csv(paths["bbox_composition"])
    return paths


#: Folder of saved clustering results inside the cache directory (:func:`save_result`).
RESULTS_FOLDER = "cluster_results"
_RESULT_KEY_CHARS = frozenset("0123456789abcdef")


def result_folder(cache_dir: str | os.PathLike, key: str) -> str:
    """``<cache_dir>/cluster_results/<key>``; ValueError for a key that is not 16–40 lowercase hex characters
    (a key comes from a link: it never names another folder)."""
    if not isinstance(key, str) or not 16 <= len(key) <= 40 or not set(key) <= _RESULT_KEY_CHARS:
        raise ValueError(f"clustering result key {key!r} is not a result key (16–40 lowercase hex characters, "
                         "as printed by `cluster` or shown in the dashboard's link)")
    return os.path.join(os.fspath(cache_dir), RESULTS_FOLDER, key)


def save_result(result: ClusterResult, cache_dir: str | os.PathLike) -> str:
    """Keep a clustering run in the cache folder so that the dashboard opens it (``/clustering?clusters=<key>``).

    The run is written as by :func:`write_result`, but with the table as Parquet (``clusters.parquet``:
    a 10⁶-row table reads in seconds, a CSV in minutes) and the clustering space as
    ``clusters_space.npy``; the folder is written under a temporary name and renamed, so a reader
    never sees half a result. The key is the content hash of the settings and of the clustering
    space (equal runs share one folder).

    Returns
    -------
    str
        The key (16 hex characters) to pass to :func:`open_result`.
    """
    import tempfile

    key = content_hash({"settings": result.diagnostics.get("settings_key"), "space": result.features,
                        "n": len(result.table)}, digest_size=8)
    folder = result_folder(cache_dir, key)
    if os.path.isfile(os.path.join(folder, "clusters_diagnostics.json")):
        return key
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{key}-", dir=os.path.dirname(folder))
    write_result(result, os.path.join(tmp, "clusters.csv"), table_format="parquet")
    np.save(os.path.join(tmp, "clusters_space.npy"), np.ascontiguousarray(result.features, dtype=np.float32))
    try:
        os.rename(tmp, folder)
    except OSError:  # another writer won: its folder holds the same result
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return key


def open_result(cache_dir: str | os.PathLike, key: str) -> ClusterResult:
    """The clustering run saved by :func:`save_result` under ``key`` (files only: nothing is unpickled).

    Raises
    ------
    FileNotFoundError
        No saved result with that key in this cache folder.
    ValueError
        A malformed key, or files that do not make a result.
    """
    from synapse_core.cluster.preprocess import PreprocessRecord
    from synapse_core.settings_base import settings_from_dict

    folder = result_folder(cache_dir, key)
    diag_path = os.path.join(folder, "clusters_diagnostics.json")
    if not os.path.isfile(diag_path):
        raise FileNotFoundError(f"no saved clustering result {key} in {os.path.join(os.fspath(cache_dir), RESULTS_FOLDER)}"
                                " (another cache folder, or it was deleted): run `cluster` again")
    with open(diag_path) as f:
        diag = json.load(f)

    def side(name, **kwargs):
        path = os.path.join(folder, f"clusters_{name}.csv")
        return pd.read_csv(path, **kwargs) if os.path.isfile(path) else None

    table = pd.read_parquet(os.path.join(folder, "clusters.parquet"))
    features = np.load(os.path.join(folder, "clusters_space.npy"), allow_pickle=False)
    if len(features) != len(table):
        raise ValueError(f"saved clustering result {key}: {len(table)} table rows but {len(features)} rows of "
                         "the clustering space; delete the folder and run `cluster` again")
    record = diag["preprocess"]
    record = PreprocessRecord(**{**record, "columns": tuple(record["columns"]),
                                 "dropped_rows": tuple(tuple(r) for r in record["dropped_rows"]),
                                 "imputed_values": tuple(record["imputed_values"].items()),
                                 "absent_structure_imputed": tuple(record["absent_structure_imputed"].items())})
    return ClusterResult(
        table=table, k_curves=side("k_curves"), diagnostics=diag, summary=side("summary"),
        representatives=side("representatives"), effect_sizes=side("effect_sizes"),
        composition=side("bbox_composition", index_col=0), features=features,
        settings=settings_from_dict(ClusterSettings, diag["settings"], "saved clustering settings"), preprocess=record,
    )
