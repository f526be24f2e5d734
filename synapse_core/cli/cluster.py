"""``cluster``: feature table → clusters, map, k curves, diagnostics and figures.

Example::

    python -m synapse_core cluster --features features.csv --out out/clusters.csv --k auto

writes ``out/clusters.csv`` (input rows + ``cluster`` (−1 = noise), ``proj_1..proj_d``,
``distance_to_centroid``, ``cluster_space``; ``--out clusters.parquet`` or ``clusters.h5ad`` for
large runs or scanpy/cellxgene, see :mod:`synapse_core.export`) and next to it ``clusters_k_curves.csv``,
``clusters_diagnostics.json``, ``clusters_summary.csv``, ``clusters_representatives.csv``,
``clusters_effect_sizes.csv``, ``clusters_bbox_composition.csv`` and the figures
``clusters_*.html`` / ``clusters_*.png``.
"""

from __future__ import annotations

import os

from synapse_core.cli.options import add_settings_arguments, settings_from_args

NAME = "cluster"
HELP = "cluster synapses from a feature table (k chosen from the data), project, diagnose, draw"

#: The original tool's and earlier releases' spellings of clustering flags (the first is shown in --help).
ALIASES: dict[str, tuple[str, ...]] = {
    "method": ("--method", "--clustering-algorithm", "--clustering_algorithm"),
    "k": ("--k", "--n-clusters", "--n_clusters"),
    "pca_components": ("--pca", "--pca-components"),
    "umap_n_neighbors": ("--n-neighbors", "--n_neighbors"),
    "umap_min_dist": ("--min-dist", "--min_dist"),
    "tsne_perplexity": ("--perplexity",),
    "min_samples": ("--min-samples", "--dbscan_min_samples"),
    "dbscan_eps": ("--eps", "--dbscan-eps", "--dbscan_eps"),
}
#: ``--parallel``: multi-threaded projection (faster, but not identical between runs).
NEGATIONS: dict[str, tuple[str, ...]] = {"reproducible": ("--parallel",)}


def add_arguments(p) -> None:
    from synapse_core.cluster.settings import ClusterSettings

    p.add_argument("--features", required=True, help="feature table from `extract`, .csv or .parquet (columns feat_* "
                   "and/or morph_*)")
    p.add_argument("--out", required=True, help="output table: .csv, .parquet or .h5ad (scanpy/cellxgene); side "
                   "files are written next to it")
    p.add_argument("--no-figures", dest="figures", action="store_false", help="skip HTML/PNG figures")
    p.add_argument("--cache-dir", "--cache_dir", dest="cache_dir", default=None,
                   help="projection cache (default: cache/ or $SYNAPSE_CACHE_DIR)")
    p.add_argument("--save", action="store_true", help="also keep the run in the cache folder and print its "
                   "dashboard link (Clustering page ?clusters=<key>): a large run opens there without recomputing")
    add_settings_arguments(p, ClusterSettings, aliases=ALIASES, negations=NEGATIONS, title="clustering settings")


def run(args) -> int:
    from synapse_core.cluster.run import run_clustering, write_result
    from synapse_core.cluster.settings import ClusterSettings
    from synapse_core.data.cache_dir import resolve_cache_dir
    from synapse_core.data.outputs import final_paths, output_set
    from synapse_core.export.tables import (
        check_table_suffix,
        read_features,
        write_clusters,
    )
    from synapse_core.viz.figures import save_figures

    settings = settings_from_args(ClusterSettings, args)
    suffix = check_table_suffix(args.out)  # before any work
    if not os.path.isfile(args.features):
        raise FileNotFoundError(f"--features {args.features}: no such file")
    df = read_features(args.features)
    result = run_clustering(df, settings, cache_dir=resolve_cache_dir(args.cache_dir), render_csv=True)
    # Tables, side files and figures are written as one set: a killed run leaves the previous set as it was.
    with output_set(args.out) as staged:
        paths = write_result(result, staged)  # the table as CSV and the side files next to it
        if suffix != ".csv":  # the table again, in the format asked for
            paths["table"] = write_clusters(result, staged)
        if args.figures:
            paths.update(save_figures(result, str(staged.parent), staged.stem))
    paths = final_paths(paths, staged, args.out)
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
    if args.save:
        from synapse_core.cluster.run import save_result

        key = save_result(result, resolve_cache_dir(args.cache_dir))
        print(f"saved for the dashboard (same cache folder): open the Clustering page with ?clusters={key}")
    return 0
