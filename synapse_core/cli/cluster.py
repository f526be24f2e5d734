"""``cluster``: feature table → clusters, map, k curves, diagnostics and figures.

Example::

    python -m synapse_core cluster --features features.csv --out out/clusters.csv --k auto

writes ``out/clusters.csv`` (input rows + ``cluster`` (−1 = noise), ``proj_1..proj_d``,
``distance_to_centroid``, ``cluster_space``) and next to it ``clusters_k_curves.csv``,
``clusters_diagnostics.json``, ``clusters_summary.csv``, ``clusters_representatives.csv``,
``clusters_effect_sizes.csv``, ``clusters_bbox_composition.csv`` and the figures
``clusters_*.html`` / ``clusters_*.png``.
"""

from __future__ import annotations

import os

import pandas as pd

from synapse_core.cluster.run import run_clustering, write_result
from synapse_core.cluster.settings import METHODS, PROJECTIONS, ClusterSettings
from synapse_core.cluster.preprocess import FEATURE_SETS, NAN_POLICIES, SCALERS

NAME = "cluster"
HELP = "cluster synapses from a feature table (k chosen from the data), project, diagnose, draw"


def _k(value: str):
    if value.strip().lower() == "auto":
        return "auto"
    try:
        k = int(value)
    except ValueError:
        raise ValueError(f"--k={value!r} must be 'auto' or an integer ≥ 2") from None
    return k


def _k_range(value: str) -> tuple[int, int]:
    parts = value.replace(",", "-").replace(":", "-").split("-")
    try:
        lo, hi = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--k-range={value!r} must look like 2-12 (smallest and largest k)") from None
    return lo, hi


def add_arguments(p) -> None:
    p.add_argument("--features", required=True, help="feature CSV from `extract` (columns feat_* and/or morph_*)")
    p.add_argument("--out", required=True, help="output CSV; side files are written next to it")
    p.add_argument("--method", "--clustering-algorithm", "--clustering_algorithm", dest="method", default="kmeans",
                   type=str.lower, choices=METHODS, help="clustering method (default kmeans; noise label is -1)")
    p.add_argument("--k", "--n-clusters", "--n_clusters", dest="k", default="auto",
                   help="number of clusters, or 'auto' to choose by silhouette over --k-range (default auto)")
    p.add_argument("--k-range", "--k_range", dest="k_range", default="2-12", help="k swept by --k auto (default 2-12)")
    p.add_argument("--projection", default="umap", type=str.lower, choices=PROJECTIONS, help="map method")
    p.add_argument("--dims", type=int, default=2, choices=(2, 3), help="map dimensions")
    p.add_argument("--seed", type=int, default=0, help="seed of every random step")
    p.add_argument("--feature-set", "--feature_set", dest="feature_set", default="auto", choices=FEATURE_SETS,
                   help="feat (deep), morph (morphology), both, or auto (feat if present)")
    p.add_argument("--scaler", default="standard", choices=SCALERS, help="column scaling before everything")
    p.add_argument("--pca", "--pca-components", dest="pca_components", type=int, default=None,
                   help="reduce to this many principal components after scaling")
    p.add_argument("--nan-policy", "--nan_policy", dest="nan_policy", default="error", choices=NAN_POLICIES,
                   help="rows with NaN features: stop with an error (default), drop them, or impute the column median")
    p.add_argument("--parallel", action="store_true",
                   help="multi-threaded projection (faster, but not identical between runs)")
    p.add_argument("--n-neighbors", "--n_neighbors", dest="umap_n_neighbors", type=int, default=15)
    p.add_argument("--min-dist", "--min_dist", dest="umap_min_dist", type=float, default=0.1)
    p.add_argument("--perplexity", dest="tsne_perplexity", type=float, default=30.0)
    p.add_argument("--min-cluster-size", dest="min_cluster_size", type=int, default=5, help="HDBSCAN")
    p.add_argument("--min-samples", "--dbscan_min_samples", dest="min_samples", type=int, default=5,
                   help="HDBSCAN/DBSCAN")
    p.add_argument("--eps", "--dbscan-eps", "--dbscan_eps", dest="dbscan_eps", type=float, default=None,
                   help="DBSCAN radius (default: median distance to the min-samples-th neighbour)")
    p.add_argument("--linkage", default="ward", choices=("ward", "average", "complete", "single"))
    p.add_argument("--n-stability", dest="n_stability", type=int, default=10,
                   help="subsamples for the stability diagnostic (0 to skip)")
    p.add_argument("--no-figures", dest="figures", action="store_false", help="skip HTML/PNG figures")
    p.add_argument("--cache-dir", "--cache_dir", dest="cache_dir", default=None,
                   help="projection cache (default: cache/ or $SYNAPSE_CACHE_DIR)")


def settings_from_args(args) -> ClusterSettings:
    """The ClusterSettings a command line asks for."""
    return ClusterSettings(
        method=args.method, k=_k(str(args.k)), k_range=_k_range(args.k_range), projection=args.projection,
        dims=args.dims, seed=args.seed, scaler=args.scaler, pca_components=args.pca_components,
        feature_set=args.feature_set, nan_policy=args.nan_policy, umap_n_neighbors=args.umap_n_neighbors,
        umap_min_dist=args.umap_min_dist, tsne_perplexity=args.tsne_perplexity, reproducible=not args.parallel,
        min_cluster_size=args.min_cluster_size, min_samples=args.min_samples, dbscan_eps=args.dbscan_eps,
        linkage=args.linkage, n_stability=args.n_stability,
    )


def run(args) -> int:
    from synapse_core.data.cache_dir import resolve_cache_dir
    from synapse_core.viz.figures import save_figures

    settings = settings_from_args(args)
    if not os.path.isfile(args.features):
        raise FileNotFoundError(f"--features {args.features}: no such file")
    df = pd.read_csv(args.features)
    result = run_clustering(df, settings, cache_dir=resolve_cache_dir(args.cache_dir))
    paths = write_result(result, args.out)
    if args.figures:
        stem = os.path.splitext(os.path.basename(args.out))[0]
        paths.update(save_figures(result, os.path.dirname(os.path.abspath(args.out)), stem))
    d = result.diagnostics
    k_text = f"k = {d['k']} ({d['k_rule']})" if d["k"] is not None else d["k_rule"]
    print(f"{d['n_synapses']} synapses clustered in {d['cluster_space']} with {d['method']}: "
          f"{d['n_clusters']} clusters, {d['n_noise']} noise (label -1); {k_text}")
    if d.get("cluster_structure"):
        print(f"--k auto: {d['cluster_structure']}")
    if d["silhouette"] is not None:
        print(f"silhouette {d['silhouette']:.3f}", end="")
        if d["stability"]:
            st = d["stability"]
            print(f"; stability ARI {st['ari_mean']:.3f} (min {st['ari_min']:.3f}", end="")
            print(f", Gaussian null {st['null_ari_mean']:.3f})" if st.get("null_ari_mean") is not None else ")", end="")
        be = d["bbox_effect"]
        if be.get("batch_effect_score") is not None:
            print(f"; bbox effect {be['batch_effect_score']:.2f} (AMI cluster~bbox {be['cluster_bbox_ami']:.2f})",
                  end="")
        if d["map_knn_overlap"] is not None:
            print(f"; map k-NN overlap {d['map_knn_overlap']:.2f}", end="")
        print()
    if d.get("stability") and d["stability"].get("verdict"):
        print(f"stability: {d['stability']['verdict']}")
    for warning in d.get("warnings", []):
        print(f"WARNING: {warning}")
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return 0
