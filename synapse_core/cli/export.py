"""``export``: clusters for Neuroglancer and WebKnossos.

Example::

    python -m synapse_core export --data DATA --clusters out/clusters.csv --out out/viewers \\
        --local-base-url http://localhost:9000/

writes into ``out/viewers``:

* ``clusters.nml``: a WebKnossos skeleton, one node per synapse, trees grouped by cluster;
* ``neuroglancer_annotations/``: a Neuroglancer precomputed annotation layer of every synapse
  (points in nm, ``cluster`` property); serve the folder and add ``precomputed://<url>``;
* ``neuroglancer_links.csv`` (whole-volume datasets): ``bbox_name``, ``Var1``, ``cluster`` and a
  Neuroglancer link with the full state per synapse, for the first ``--max-links`` rows (each
  link reads the two partner neurons' ids from the segmentation).
"""

from __future__ import annotations

from synapse_core.cli.options import add_data_arguments

NAME = "export"
HELP = "export clusters for Neuroglancer (annotation layer, links) and WebKnossos (NML)"


def add_arguments(p) -> None:
    add_data_arguments(p)
    p.add_argument("--clusters", required=True, help="cluster table from `cluster` (.csv or .parquet)")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--cluster-column", default="cluster", help="column with the cluster labels (default: cluster)")
    p.add_argument("--local-base-url", default=None,
                   help="URL where the data root is served (e.g. http://localhost:9000/) for the Neuroglancer links; "
                        "remote volumes keep their own URLs")
    p.add_argument("--viewer", default="https://neuroglancer-demo.appspot.com/", help="Neuroglancer instance of the links")
    p.add_argument("--max-links", type=int, default=1000, help="Neuroglancer links for at most this many rows")


def run(args) -> int:
    from pathlib import Path

    import pandas as pd

    from synapse_core.data.dataset import open_dataset
    from synapse_core.export.neuroglancer import (
        state_url,
        synapse_state,
        write_annotation_layer,
    )
    from synapse_core.export.tables import read_features
    from synapse_core.export.webknossos import write_nml

    if args.max_links < 0:
        raise ValueError(f"--max-links {args.max_links}: give 0 or more")
    clusters = read_features(args.clusters)
    missing = [c for c in ("bbox_name", "Var1", args.cluster_column) if c not in clusters.columns]
    if missing:
        raise ValueError(f"--clusters {args.clusters}: column(s) {missing} missing; give the table `cluster` wrote")
    ds = open_dataset(args.data, cache_dir=args.cache_dir)
    keys = pd.DataFrame({"bbox_name": clusters["bbox_name"].astype(str), "Var1": clusters["Var1"].astype(str),
                         "cluster": clusters[args.cluster_column].astype(int)})
    rows = keys.merge(ds.synapses.drop(columns=["cluster"], errors="ignore"), on=["bbox_name", "Var1"], how="left",
                      indicator=True)  # the dataset's rows (coordinates) in the cluster table's order
    unknown = rows.loc[rows["_merge"] != "both", ["bbox_name", "Var1"]]
    if len(unknown):
        shown = ", ".join(f"{b}/{v}" for b, v in unknown.head(5).itertuples(index=False))
        raise ValueError(f"--clusters {args.clusters}: {len(unknown)} synapse(s) not among the valid rows of "
                         f"{args.data} ({shown}); was the table clustered from this dataset?")
    rows = rows.drop(columns="_merge")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    nml = write_nml(out / "clusters.nml", ds, rows, "cluster", name=Path(ds.root).name)
    layer = write_annotation_layer(out / "neuroglancer_annotations", ds, rows, "cluster")
    print(f"{len(rows)} synapses → {nml} (WebKnossos) and {layer} (Neuroglancer annotation layer)")
    if ds.whole_volume is None:
        print("no Neuroglancer links: they need a whole-volume dataset (OME-Zarr, N5, precomputed or WebKnossos "
              "zarr3 sources that Neuroglancer can stream)")
        return 0
    head = rows.head(args.max_links)
    links = [state_url(synapse_state(ds, b, v, cluster=int(k), local_base_url=args.local_base_url), args.viewer)
             for b, v, k in zip(head["bbox_name"], head["Var1"], head["cluster"])]
    table = pd.DataFrame({"bbox_name": head["bbox_name"], "Var1": head["Var1"], "cluster": head["cluster"],
                          "neuroglancer_url": links})
    table.to_csv(out / "neuroglancer_links.csv", index=False)
    more = f" (first {len(head)} of {len(rows)}; --max-links)" if len(head) < len(rows) else ""
    print(f"{len(head)} Neuroglancer links → {out / 'neuroglancer_links.csv'}{more}")
    return 0
