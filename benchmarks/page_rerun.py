"""What a click costs on the Clustering and Galleries pages with a 10⁶-synapse result (issue 16).

Every Streamlit interaction reruns the page script. This benchmark builds one clustering result of
``--rows`` synthetic synapses (the extraction table of ``benchmarks/cluster_scale.py``: ``--feature-columns``
float32 ``feat_*`` columns, 12 bboxes; plus ``cluster``, ``proj_1``, ``proj_2``, ``distance_to_centroid``
and ``cluster_space`` as a real result has) and times, in a fresh process per tree:

* the pure functions a page run calls: ``annotations.result_key`` (first call on a table, and again on
  the same table), ``annotations.apply`` with 0, 1 and 3 saved selections, ``annotations.new_cluster``,
  the selected rows of the table, ``viz.figures.map_figure`` (by cluster with and without a selection,
  by bbox, by a number), the row of the synapse shown in detail (``synapse_rows`` and ``row_positions``);
* real page runs with ``streamlit.testing.v1.AppTest`` (``app.py``, switched to the page, the result put
  into the session as the Clustering page's ``?clusters=`` link does): the first run with the result,
  then reruns where nothing changed (median), then reruns with 3 saved selections and 1000 selected
  synapses. Galleries runs need a dataset: the 24-synapse demo dataset is written, and the result's
  first rows are its synapses (the closest to every cluster centre, so the page's representatives have
  pictures; random sample 0, 2 representatives; the selection shown there is the demo's synapses).

Usage::

    python benchmarks/page_rerun.py --before c800c3c~1        # before/after columns in one run
    python benchmarks/page_rerun.py --rows 100000 --skip apptest

``--before REV`` exports that git revision (``git archive``; the checkout is not touched, as in
``benchmarks/startup.py``) and measures it in its own process first, then this tree. Timings are wall
seconds on a shared machine: the load average is printed; read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# benchmarks/ is on the path when a benchmark runs as a script
from revisions import export_revision

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS: list[tuple[str, str, float, str]] = []  # (section, what, seconds, tree label)


def timed(fn, repeat: int) -> float:
    """Median wall seconds of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def add(section: str, what: str, seconds: float, label: str) -> None:
    ROWS.append((section, what, seconds, label))
    print(f"  [{section}] ({label}) {what}: {seconds:.3f} s", file=sys.stderr, flush=True)


# --- inner: one tree, one process ---------------------------------------------------------------

def build_result(n: int, d: int, demo_keys: list[tuple[str, str]], seed: int = 0):
    """A ClusterResult of ``n`` synthetic synapses (see the module docstring); the first rows are ``demo_keys``."""
    import numpy as np
    from cluster_scale import synthetic_table

    from synapse_core.cluster import diagnostics, summary
    from synapse_core.cluster.k_selection import assign_nearest
    from synapse_core.cluster.run import ClusterResult, run_clustering
    from synapse_core.cluster.settings import ClusterSettings

    table = synthetic_table(n, d, seed=seed)
    if demo_keys:  # the demo's synapses first (object columns: their names are not the synthetic ones)
        table["bbox_name"] = table["bbox_name"].astype(object)
        table["Var1"] = table["Var1"].astype(str).astype(object)  # one type per column, as read from a table
        table.loc[: len(demo_keys) - 1, "bbox_name"] = [b for b, _ in demo_keys]
        table.loc[: len(demo_keys) - 1, "Var1"] = [v for _, v in demo_keys]
    Z = table[[f"feat_{i + 1}" for i in range(min(d, 20))]].to_numpy(np.float32)  # the clustering space
    settings = ClusterSettings(k=8, projection="none", n_stability=0)
    sample = np.sort(np.random.default_rng(seed).choice(n, size=3000, replace=False))
    fitted = run_clustering(table.iloc[sample], settings)
    labels_s = fitted.table["cluster"].to_numpy()
    centres = np.stack([Z[sample][labels_s == c].mean(0) for c in range(8)])
    labels = assign_nearest(Z, centres)
    distance = summary.distance_to_centroid(Z, labels)[0]
    if demo_keys:  # every cluster's closest synapses are demo synapses (the galleries' representatives)
        labels[: len(demo_keys)] = np.arange(len(demo_keys)) % 8
        distance[: len(demo_keys)] = 0.0
    table = table.assign(cluster=labels, proj_1=Z[:, 0], proj_2=Z[:, 1], distance_to_centroid=distance,
                         cluster_space=fitted.preprocess.space)
    return ClusterResult(
        table=table, k_curves=None, diagnostics={**fitted.diagnostics, "n_synapses": n},
        summary=summary.summarise_clusters(table), representatives=summary.representatives(table),
        effect_sizes=summary.morphology_effect_sizes(table),
        composition=diagnostics.bbox_composition(labels, table["bbox_name"].to_numpy()), features=Z,
        settings=settings, preprocess=fitted.preprocess)


def selections_of(result, n_assigned: int = 1000, n_named: int = 100_000, seed: int = 1):
    """Three saved selections: 10⁴ synapses assigned, 10⁵ named only, 1000 assigned to a new cluster."""
    import numpy as np

    from synapse_core.app import annotations
    from synapse_core.data.synapse_keys import synapse_ids

    ids = synapse_ids(result.table).to_numpy()
    rng = np.random.default_rng(seed)

    def pick(k):
        return tuple(ids[np.sort(rng.choice(len(ids), size=min(k, len(ids)), replace=False))])

    made = "2026-11-30T12:00:00Z"
    first = annotations.NamedSelection("wide", pick(10_000), cluster=1, author="ana", created=made)
    named = annotations.NamedSelection("vesicle rich", pick(n_named), author="bo", created=made)
    new = annotations.NamedSelection("odd ones", pick(n_assigned), cluster=annotations.new_cluster(result.table),
                                     author="ana", created=made)
    return [first, named, new], list(pick(1000))


def inner(args) -> None:
    label = os.environ["PAGE_RERUN_LABEL"]
    sys.path.insert(0, os.path.join(HERE, "benchmarks"))
    import cluster_scale  # noqa: F401  (puts HERE on sys.path: the tree measured goes before it)

    sys.path.insert(0, args.tree)
    import synapse_core

    assert synapse_core.__file__.startswith(args.tree), synapse_core.__file__
    from synapse_core.app import annotations
    from synapse_core.viz.figures import map_figure

    demo_keys = []
    if args.demo:
        import pandas as pd

        demo_table = pd.read_csv(os.path.join(args.demo, "truth.csv"))
        demo_keys = [(str(b), str(v)) for b, v in zip(demo_table["bbox_name"], demo_table["Var1"])]
    args.demo_keys = demo_keys
    t = time.perf_counter()
    result = build_result(args.rows, args.feature_columns, demo_keys)
    print(f"  ({label}) result of {args.rows} synapses built in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    table, settings_key, r = result.table, result.diagnostics.get("settings_key"), args.repeat
    named, selected = selections_of(result)
    fn = "functions"
    add(fn, "result_key, first call on a table", timed(lambda: annotations.result_key(table.copy(deep=False),
                                                                                     settings_key), r), label)
    annotations.result_key(table, settings_key)
    add(fn, "result_key, the same table again (every page run)",
        timed(lambda: annotations.result_key(table, settings_key), r), label)
    for k in (0, 1, 3):
        chosen = named[-k:] if k else []
        annotations.apply(table, chosen)
        add(fn, f"apply, {k} saved selection{'s' if k != 1 else ''}"
                + (" (1000 assigned)" if k == 1 else " (10⁴ + 1000 assigned, 10⁵ named)" if k == 3 else ""),
            timed(lambda chosen=chosen: annotations.apply(table, chosen), r), label)
    annotated = annotations.apply(table, named)
    add(fn, "new_cluster (3 selections)", timed(lambda: annotations.new_cluster(annotated, named), r), label)
    if hasattr(annotations, "row_positions"):
        rows = lambda: annotated.iloc[annotations.row_positions(table, selected)]
    else:
        from synapse_core.data.synapse_keys import synapse_rows

        rows = lambda: synapse_rows(annotated, selected, missing="ignore")
    add(fn, "rows of 1000 selected synapses", timed(rows, r), label)
    map_figure(annotated.head(10))  # plotly imported and its template loaded: not timed below
    add(fn, "map_figure (1000 selected, 1 shown)",
        timed(lambda: map_figure(annotated, "cluster", point_size=8, selected_ids=selected,
                                 highlight_ids=[selected[0]]), max(1, r // 2)), label)
    add(fn, "map_figure, nothing selected", timed(lambda: map_figure(annotated, "cluster"), max(1, r // 2)), label)
    add(fn, "map_figure by bbox (1000 selected, 1 shown)",
        timed(lambda: map_figure(annotated, "bbox", selected_ids=selected, highlight_ids=[selected[0]]),
              max(1, r // 2)), label)
    add(fn, "map_figure by a number (distance_to_centroid)",
        timed(lambda: map_figure(annotated, "distance_to_centroid"), max(1, r // 2)), label)
    from synapse_core.data.synapse_keys import synapse_rows

    # the synapse detail's row: synapse_rows builds every id (before), row_positions looks them up (after)
    add(fn, "row of the shown synapse: synapse_rows", timed(lambda: synapse_rows(table, selected[:1]), r), label)
    if hasattr(annotations, "row_positions"):
        add(fn, "row of the shown synapse: row_positions (same table)",
            timed(lambda: table.iloc[annotations.row_positions(table, selected[:1])[0]], r), label)
    if not args.skip_apptest:
        apptest(result, named, selected, label, args, settings_key)
    with open(args.json, "w") as f:
        json.dump(ROWS, f)


def apptest(result, named, selected, label: str, args, settings_key) -> None:
    from streamlit.testing.v1 import AppTest

    from synapse_core.app import annotations

    app = os.path.join(args.tree, "app.py")
    cache = os.environ["SYNAPSE_CACHE_DIR"]

    def open_page(page: str, state: dict) -> AppTest:
        at = AppTest.from_file(app, default_timeout=600)
        at.run()
        for key, value in state.items():
            at.session_state[key] = value
        at.switch_page(page)
        return at

    def run(at: AppTest) -> float:
        t = time.perf_counter()
        at.run()
        seconds = time.perf_counter() - t
        if at.exception:
            raise SystemExit(f"({label}) the page failed: {at.exception[0].value}\n{at.exception[0].stack_trace}")
        return seconds

    def reruns(at: AppTest) -> float:
        return statistics.median(run(at) for _ in range(args.repeat))

    base = {"features": result.table, "clusters": result, "cluster_settings": result.settings}
    sec = "Clustering page"
    at = open_page("app_pages/clustering.py", base)
    add(sec, "first run with the result", run(at), label)
    add(sec, "rerun, nothing changed (median)", reruns(at), label)
    key = annotations.result_key(result.table, settings_key)
    annotations.save(cache, key, named)
    at.session_state["selection"] = selected
    add(sec, "first run with 3 saved selections and 1000 selected", run(at), label)
    add(sec, "rerun, 3 saved selections and 1000 selected (median)", reruns(at), label)
    if args.demo:
        sec = "Galleries page"
        at = open_page("app_pages/galleries.py", {**base, "g_n_reps": 2, "g_n_sample": 0})
        add(sec, "first run with the result (3 saved selections)", run(at), label)
        add(sec, "rerun, nothing changed (median)", reruns(at), label)
        # the selection's gallery draws every selected synapse (up to 60): the demo's, which have pictures
        at.session_state["selection"] = [f"{b}|{v}" for b, v in args.demo_keys]
        add(sec, f"rerun, {len(args.demo_keys)} selected (median)", reruns(at), label)


# --- outer: trees, demo data, table ------------------------------------------------------------


def print_table(labels: list[str], rows: int, d: int) -> None:
    print(f"\nA page run with a {rows}-synapse clustering result ({d} feature columns); load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared). Seconds per call (median).\n")
    cells: dict[tuple[str, str], dict[str, float]] = {}
    for section, what, seconds, label in ROWS:
        cells.setdefault((section, what), {})[label] = seconds
    head = f"| {'section':<15} | {'what':<56} | " + " | ".join(f"{lab:>8}" for lab in labels)
    print(head + (" | after/before |" if len(labels) == 2 else " |"))
    print("|" + "---|" * (len(labels) + 2 + (len(labels) == 2)))
    for (section, what), got in cells.items():
        line = f"| {section:<15} | {what:<56} | " + " | ".join(
            f"{got[lab]:8.3f}" if lab in got else f"{'–':>8}" for lab in labels)
        if len(labels) == 2:
            b, a = got.get(labels[0]), got.get(labels[1])
            line += f" | {a / b:12.3f} |" if a is not None and b else f" | {'–':>12} |"
        print(line + ("" if len(labels) == 2 else " |"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--feature-columns", type=int, default=192)
    ap.add_argument("--repeat", type=int, default=3, help="calls per measurement (median)")
    ap.add_argument("--before", default=None, metavar="REV", help="also measure git revision REV")
    ap.add_argument("--skip", nargs="*", default=[], choices=["apptest", "galleries"])
    ap.add_argument("--json", default=None)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", default=HERE, help=argparse.SUPPRESS)
    ap.add_argument("--demo", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--skip-apptest", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(args)
        return 0
    tmp = tempfile.mkdtemp(prefix="bench-page-rerun-")
    print(f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared)", file=sys.stderr)
    trees = [("after", HERE)]
    if args.before:
        trees.insert(0, ("before", export_revision(args.before, tmp)))
    try:
        demo = None
        if "apptest" not in args.skip and "galleries" not in args.skip:
            sys.path.insert(0, HERE)
            from synapse_core.data.demo import write_demo_dataset

            demo = str(write_demo_dataset(os.path.join(tmp, "demo24"), seed=0, n_synapses=24))
        for label, root in trees:
            out = os.path.join(tmp, f"{label}.json")
            cache, empty = os.path.join(tmp, f"cache-{label}"), os.path.join(tmp, "empty")
            os.makedirs(empty, exist_ok=True)
            env = {**os.environ, "PYTHONPATH": root, "PAGE_RERUN_LABEL": label, "SYNAPSE_CACHE_DIR": cache,
                   "SYNAPSE_DATA_ROOTS": f"demo={demo}" if demo else f"empty={empty}", "SYNAPSE_WARMUP": "0"}
            env.pop("SYNAPSE_DATA_ROOTS_FILE", None)
            cmd = [sys.executable, os.path.abspath(__file__), "--inner", "--tree", root, "--json", out,
                   "--rows", str(args.rows), "--feature-columns", str(args.feature_columns),
                   "--repeat", str(args.repeat)]
            cmd += ["--demo", demo] if demo else []
            cmd += ["--skip-apptest"] if "apptest" in args.skip else []
            subprocess.run(cmd, cwd=root, env=env, check=True)
            with open(out) as f:
                ROWS.extend(tuple(row) for row in json.load(f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table([label for label, _ in trees], args.rows, args.feature_columns)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(ROWS, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
