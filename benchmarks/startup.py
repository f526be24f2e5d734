"""What a user waits for (issue 16), measured side by side in one run and printed as one table.

Usage::

    python benchmarks/startup.py                     # everything (~3-6 min on 2 busy cores)
    python benchmarks/startup.py --skip cluster vgg  # only the fast sections
    python benchmarks/startup.py --json out.json
    python benchmarks/startup.py --before 8e39417 --skip cluster vgg morphology  # before/after columns

``--before REV`` exports that git revision (``git archive``: the working tree and its git state are
not touched) and runs the ``help``, ``crop`` and ``rerun`` sections with both trees in the same run,
so the table has a before and an after column with the same load; ``cluster``, ``vgg`` and
``morphology`` are measured with the current tree only.

Sections (every CLI measurement is a fresh ``python -m synapse_core`` subprocess; peak RSS is that
process's own, from ``wait4``):

* ``help``: ``<command> --help`` wall time and peak RSS per command;
* ``crop``: one synapse cropped end to end (``crop --out x.npy`` on a 24-synapse demo dataset), best
  wall and best CPU of 5 fresh processes, with bytecode written (what an installed package does) and
  with ``PYTHONDONTWRITEBYTECODE=1`` (our modules compiled every run), in turns;
* ``rerun``: ``extract`` of the 24 demo synapses (untrained VGG3D, stage4), then the same command
  again (the cached rerun); and in a fresh process of the tree measured, the cached rerun of a
  10⁴-synapse table (the demo volumes with the table repeated to 10⁴ rows: the stored result is
  written directly, not computed; then ``open_dataset`` + ``extract_features`` are timed, with
  ``open_dataset``'s share on its own line);
* ``cluster``: a fresh ``cluster`` process at 10⁴ synthetic 192-d rows with an empty numba cache
  (cold), then again with the cache the first run left (warm), then warm with the map in the same
  process after the k sweep (``SYNAPSE_MAP_PROCESS=0``, the path before the map process), each with
  its k sweep / map / diagnostics wall seconds (from the run's ``c_diagnostics.json``); compile
  time = cold − warm on its own line;
* ``vgg``: per-layer GFLOP/s of the VGG3D trunk (one forward at batch 2, 80³ input, best of 2 × 2
  in turns), fp32 eager and fused (the extraction path: BN folded, oneDNN conv with ReLU post-op)
  and bf16, next to the same run's square-matmul peak in each precision, with the first stage's
  total on its own line; then fp32 eager and fused again on one thread in that thread's CPU
  seconds, next to a one-thread matmul peak in CPU seconds (robust to other users' load); and that
  once more (2 threads wall, and 1 thread CPU time) in a fresh process whose glibc malloc keeps freed
  memory (:func:`synapse_core.features.heap.keep_freed_memory`, what ``extract`` does at its start: no
  page faults and zero-filling of each new 80³ activation);
* ``morphology``: ms per synapse of :func:`morphology_features` on the demo crops.

Timings are wall-clock on a shared machine: the load average is printed; read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

# benchmarks/ is on the path when a benchmark runs as a script
from revisions import export_revision

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The tree measured: this checkout, or (inner runs of ``--before``) the exported revision.
ROOT = os.environ.get("SYNAPSE_BENCH_TREE") or HERE
sys.path.insert(0, ROOT)

COMMANDS = ("demo", "validate", "crop", "gif", "train", "extract", "cluster")
ROWS: list[tuple[str, str, float | str, str]] = []  # (section, what, value, unit)
#: Label of the tree being measured ("after" = this checkout, "before" = the --before revision).
TREE = {"label": "after", "root": ROOT}


def add(section: str, what: str, value, unit: str) -> None:
    ROWS.append((section, what, value, unit, TREE["label"]))
    shown = f"{value:.3g}" if isinstance(value, float) else value
    print(f"  [{section}] ({TREE['label']}) {what}: {shown} {unit}", file=sys.stderr, flush=True)


def run_cli_rss(args: list[str], env: dict | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """As :func:`run_cli`, with the peak RSS of this process alone (reaped with ``wait4``)."""
    t = time.perf_counter()
    tree = TREE["root"]
    proc = subprocess.Popen([sys.executable, "-m", "synapse_core", *args], cwd=tree, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": tree, **(env or {})})
    # Read the pipes ourselves so wait4 (not communicate) reaps the child and returns its rusage.
    import threading

    chunks = {"out": b"", "err": b""}

    def drain(name, stream):
        chunks[name] = stream.read()

    threads = [threading.Thread(target=drain, args=("out", proc.stdout)),
               threading.Thread(target=drain, args=("err", proc.stderr))]
    for th in threads:
        th.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    result = subprocess.CompletedProcess(args, code, chunks["out"].decode(), chunks["err"].decode())
    result.cpu_s = usage.ru_utime + usage.ru_stime  # CPU seconds: what the process cost, whatever the load
    if code != 0:
        print(f"command {' '.join(args)} failed:\n{result.stderr[-2000:]}", file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, result


def section_help() -> None:
    for name in COMMANDS:
        wall, peak, res = run_cli_rss([name, "--help"])
        add("help", f"{name} --help (CPU s)", res.cpu_s, f"CPU s ({wall:.2f} s wall, peak {peak:.0f} MB)")


def make_demo(tmp: str) -> str:
    data = os.path.join(tmp, "demo24")
    _, _, res = run_cli_rss(["demo", "--out", data, "--n-synapses", "24", "--seed", "0"])
    if res.returncode != 0:
        raise SystemExit("demo dataset could not be written")
    return data


#: Fresh ``crop`` processes measured after the first (cache-filling) one.
CROP_REPEATS = 5


def section_crop(data: str, tmp: str) -> None:
    import csv  # not pandas: a child's peak RSS would include this process's size at fork

    with open(os.path.join(data, "truth.csv"), newline="") as f:
        first = next(csv.DictReader(f))
    b, v = first["bbox_name"], first["Var1"]
    cache = os.path.join(tmp, f"cache-crop-{TREE['label']}")
    args = ["crop", "--data", data, "--cache-dir", cache, "--synapse", f"{b}/{v}", "--out",
            os.path.join(tmp, "one.npy")]
    # What a user sees: an installed package has bytecode (__pycache__), so a run does not compile
    # our modules. The other mode is a copy of the package without __pycache__ run with
    # PYTHONDONTWRITEBYTECODE=1 (as in a fresh checkout in an environment that sets it): our modules
    # are compiled every run (installed libraries keep their bytecode). In turns: the load hits both alike.
    tree = TREE["root"]
    bare = os.path.join(tmp, f"no-bytecode-{TREE['label']}")
    shutil.copytree(os.path.join(tree, "synapse_core"), os.path.join(bare, "synapse_core"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    modes = {"with bytecode (as installed)": (tree, {"PYTHONDONTWRITEBYTECODE": ""}),
             "compiled every run (no __pycache__)": (bare, {"PYTHONDONTWRITEBYTECODE": "1"})}
    wall, peak, res = run_cli_rss(args, env={"PYTHONDONTWRITEBYTECODE": ""})  # volumes converted, bytecode written
    add("crop", "one synapse, first run (volume cache filled) (CPU s)", res.cpu_s,
        f"CPU s ({wall:.2f} s wall, peak {peak:.0f} MB)")
    runs: dict[str, list] = {m: [] for m in modes}
    try:
        for _ in range(CROP_REPEATS):  # best of a few: one run is noise at a high load
            for mode, (root, env) in modes.items():
                TREE["root"] = root  # run_cli_rss runs the package of this folder
                runs[mode].append(run_cli_rss(args, env=env))
    finally:
        TREE["root"] = tree
    for mode, got in runs.items():
        walls = [r[0] for r in got]
        cpus = [r[2].cpu_s for r in got]
        add("crop", f"one synapse, end to end, {mode}, best wall of {CROP_REPEATS} (s)", min(walls),
            "s wall (runs " + ", ".join(f"{w:.2f}" for w in walls) + ")")
        add("crop", f"one synapse, end to end, {mode}, best CPU of {CROP_REPEATS} (CPU s)", min(cpus),
            f"CPU s (peak {max(r[1] for r in got):.0f} MB; runs " + ", ".join(f"{c:.2f}" for c in cpus) + ")")
    # The first crop after the dataset changed (its table touched): the dataset is opened fully again.
    table = os.path.join(data, "excel", f"{b}.xlsx")
    changed = []
    for _ in range(3):
        os.utime(table)
        changed.append(run_cli_rss(args, env={"PYTHONDONTWRITEBYTECODE": ""}))
    wall, peak, res = min(changed, key=lambda r: r[2].cpu_s)
    add("crop", "one synapse, table changed since the last crop, with bytecode, best CPU of 3 (CPU s)", res.cpu_s,
        f"CPU s ({wall:.2f} s wall, peak {peak:.0f} MB)")


def section_rerun(data: str, tmp: str) -> None:
    cache = os.path.join(tmp, f"cache-extract-{TREE['label']}")
    out = os.path.join(tmp, "features.csv")
    # VGG3D explicitly (the default feature set without a checkpoint changed): the same work before and after
    args = ["extract", "--data", data, "--cache-dir", cache, "--out", out, "--no-progress", "--workers", "1",
            "--features", "vgg3d"]
    wall, peak, res = run_cli_rss(args)
    add("rerun", "extract 24 synapses, first run (computes) (CPU s)", res.cpu_s,
        f"CPU s ({wall:.1f} s wall, peak {peak:.0f} MB)")
    wall, peak, res = run_cli_rss(args)
    add("rerun", "extract 24 synapses, cached rerun (CLI, fresh process) (CPU s)", res.cpu_s,
        f"CPU s ({wall:.1f} s wall, peak {peak:.0f} MB)")
    inner("rerun", data, tmp)


def inner(section: str, data: str, tmp: str) -> None:
    """Run the in-process part of ``section`` in a fresh process of the measured tree; collect its rows."""
    out = os.path.join(tmp, f"inner-{TREE['label']}-{section}.json")
    env = {**os.environ, "SYNAPSE_BENCH_TREE": TREE["root"], "SYNAPSE_BENCH_LABEL": TREE["label"],
           "PYTHONPATH": TREE["root"]}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--inner", section, "--data", data,
                           "--tmp", tmp, "--json", out], env=env, cwd=TREE["root"], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        add(section, f"in-process part of {section}", "failed", "(see stderr)")
        return
    with open(out) as f:
        for sec, what, value, unit, _ in json.load(f):
            add(sec, what, value, unit)


def _inner_rerun(data: str, tmp: str) -> None:
    cache = os.path.join(tmp, f"cache-extract-{TREE['label']}")
    _rerun_in_process(data, cache, 24)
    _rerun_10k(data, tmp)


def _rerun_in_process(data: str, cache: str, n: int) -> None:
    from synapse_core.data.dataset import open_dataset
    from synapse_core.features.extract import extract_features
    from synapse_core.features.settings import ExtractSettings

    ds = open_dataset(data, cache_dir=cache)
    settings = ExtractSettings(workers=1, features="vgg3d")
    extract_features(ds, settings, cache_dir=cache)  # fill (or confirm) the cache
    t = time.perf_counter()
    r = extract_features(ds, settings, cache_dir=cache)
    wall = time.perf_counter() - t
    add("rerun", f"extract_features {n} synapses, cached rerun (in process, imports done)", wall,
        f"s ({r.n_cached} from cache)")


def _rerun_10k(data: str, tmp: str, n: int = 10_000) -> None:
    """A dataset whose table repeats the demo rows to ``n`` rows (same volumes, new Var1)."""
    try:
        from synapse_core.features import rerun
    except ImportError:
        add("rerun", f"{n} synapses cached rerun", "n/a", "(no rerun fast path in this version: per-synapse "
            "cache checks, see the 24-synapse in-process row × n/24)")
        return
    import numpy as np
    import pandas as pd

    from synapse_core.data.dataset import open_dataset
    from synapse_core.features.extract import extract_features
    from synapse_core.features.settings import ExtractSettings

    big = os.path.join(tmp, f"demo10k-{TREE['label']}")
    shutil.copytree(data, big, symlinks=True)
    excel = os.path.join(big, "excel")
    for name in os.listdir(excel):
        path = os.path.join(excel, name)
        if name.endswith(".csv"):
            t = pd.read_csv(path)
            reps = int(np.ceil(n / 24))
            t = pd.concat([t.assign(Var1=[f"{v}_r{r}" for v in t["Var1"]]) for r in range(reps)], ignore_index=True)
            t.to_csv(path, index=False)
        elif name.endswith(".xlsx"):
            t = pd.read_excel(path)
            reps = int(np.ceil(n / 24))
            t = pd.concat([t.assign(Var1=[f"{v}_r{r}" for v in t["Var1"]]) for r in range(reps)], ignore_index=True)
            t.to_excel(path, index=False)
    cache = os.path.join(tmp, f"cache-10k-{TREE['label']}")
    ds = open_dataset(big, cache_dir=cache)
    settings = ExtractSettings(workers=1, features="vgg3d")
    rows = len(ds.synapses)
    # Store a result for this dataset without computing 10⁴ crops (24 computed rows repeated).
    small = extract_features(open_dataset(data, cache_dir=cache), settings, cache_dir=cache).features
    feats = pd.concat([small.assign(Var1=[f"{v}_r{r}" for v in small["Var1"]]) for r in range(int(np.ceil(n / 24)))],
                      ignore_index=True)
    key = rerun.run_key(ds, settings, bboxes=None, synapses=None)
    rerun.store(cache, key, feats, small.iloc[:0][["bbox_name", "Var1"]].assign(reason=[]))
    t, c = time.perf_counter(), time.process_time()
    ds = open_dataset(big, cache_dir=cache)
    t_open = time.perf_counter() - t
    r = extract_features(ds, settings, cache_dir=cache)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    add("rerun", f"{rows} synapses cached rerun: open_dataset + extract_features (in process, imports done; CPU s)",
        cpu, f"CPU s ({wall:.2f} s wall, of which open_dataset {t_open:.2f} s; {len(r.features)} rows returned; "
        "stored result written directly)")
    add("rerun", f"  of which open_dataset of the {rows}-row table (wall s)", t_open, "s wall")


def synthetic_features(n: int, d: int = 192, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(8, 20))
    latent = centres[rng.integers(0, 8, n)] + rng.normal(size=(n, 20))
    mix = rng.normal(size=(20, d)) / np.sqrt(20)
    return (latent @ mix + 0.5 * rng.normal(size=(n, d))).astype(np.float32)


def section_cluster(tmp: str, n: int, trees=(("after", HERE),)) -> None:
    """A fresh ``cluster`` process at ``n`` rows: cold and warm numba cache, the in-process map, and with
    ``trees`` [("before", root), ("after", root)] the warm run of each tree in turns (twice), with whether
    their written tables are identical (byte for byte, and without the map's columns)."""
    import filecmp

    import pandas as pd

    X = synthetic_features(n)
    df = pd.DataFrame(X, columns=[f"feat_{j + 1}" for j in range(X.shape[1])])
    df.insert(0, "Var1", [f"syn_{i}" for i in range(n)])
    df.insert(0, "bbox_name", [f"bbox{i % 7 + 1}" for i in range(n)])
    path = os.path.join(tmp, f"features{n}.csv")
    df.to_csv(path, index=False)
    numba_dir = os.path.join(tmp, "numba-cache")
    env = {"NUMBA_CACHE_DIR": numba_dir}  # the same empty folder for before/after code: cold is cold
    walls, tables = [], {}
    after = trees[-1]
    runs = [("cold: empty numba cache", {}, after)]
    runs += [(f"warm: numba cache of the cold run, turn {turn}", {}, tree) for turn in (1, 2) for tree in trees]
    # the previous path, side by side: the map after the k sweep, in the same process
    runs += [("warm, map after the k sweep in the same process: SYNAPSE_MAP_PROCESS=0", {"SYNAPSE_MAP_PROCESS": "0"},
              after)]
    for label, extra, (tree_label, root) in runs:
        TREE.update(label=tree_label, root=root)
        cache = tempfile.mkdtemp(dir=tmp, prefix="cluster-cache-")  # no projection cache hit
        env_run = {**env, "SYNAPSE_NUMBA_CACHE_DIR": numba_dir, **extra}
        load = os.getloadavg()[0]
        wall, peak, res = run_cli_rss(["cluster", "--features", path, "--out", os.path.join(cache, "c.csv"),
                                       "--no-figures", "--cache-dir", cache], env=env_run)
        walls.append(res.cpu_s)
        tables.setdefault(tree_label, os.path.join(cache, "c.csv"))
        add("cluster", f"cluster {n} rows, fresh process, {label}", wall,
            f"s wall, {res.cpu_s:.1f} s CPU (map process included), peak {peak:.0f} MB, load {load:.1f}")
        try:  # the run's own stage timings (wall s): where the seconds went
            with open(os.path.join(cache, "c_diagnostics.json")) as f:
                stages = json.load(f)["timings"]
            side = "in this process"
            if "projection_wait_s" in stages:
                child = stages.get("projection_process_cpu_s")
                side = ("in a child process beside the sweep; waited for after the sweep and diagnostics "
                        f"{stages['projection_wait_s']:.1f} s" + (
                            f"; CPU s: map process {child:.1f}, cluster process {res.cpu_s - child:.1f}"
                            if child is not None else ""))
            add("cluster", f"  {label.split(':')[0]}: of which k sweep / map / diagnostics (wall s)",
                stages.get("cluster_s", 0),
                f"/ {stages.get('projection_s', 0):.1f} / {stages.get('diagnostics_s', 0):.1f} s wall (map {side})")
        except (OSError, KeyError, ValueError):
            pass
    TREE.update(label="after", root=HERE)
    add("cluster", "numba compile time (CPU s, cold − warm)", walls[0] - walls[len(trees)], "s")
    if "before" in tables:
        same = filecmp.cmp(tables["before"], tables["after"], shallow=False)
        add("cluster", "written table identical to the before tree's (c.csv, byte for byte)", "yes" if same else "no", "")
        old, new = pd.read_csv(tables["before"]), pd.read_csv(tables["after"])
        maps = [c for c in new.columns if c.startswith("proj_")]
        add("cluster", "  the same, without the map's columns (features, clusters, distances)",
            "yes" if old.drop(columns=maps).equals(new.drop(columns=maps)) else "NO", "")


def _vgg_matmul_peak(dtype, n=2048, reps=5, clock=time.perf_counter) -> float:
    import torch

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g).to(dtype), torch.randn(n, n, generator=g).to(dtype)
    a @ b
    best = 0.0
    for _ in range(reps):
        t = clock()
        a @ b
        best = max(best, 2 * n**3 / (clock() - t) / 1e9)
    return best


def _vgg_paths(tag: str, precision: str, paths, one_thread: bool) -> None:
    """Per-layer rows of the FeatureNet ``paths`` ((label, fuse_relu), ...) next to the same run's matmul peak.

    The paths are timed step by step in turns so they see the same load; the peak is the best of the
    matmuls measured before, between and after them. ``one_thread``: on one thread, in that thread's
    CPU seconds (``time.thread_time``; other users' load takes wall time from the matmul and the
    network unevenly, CPU time of a single thread is what the kernels cost).
    """
    import torch

    from synapse_core.features.net import FeatureNet
    from synapse_core.features.vgg3d import Vgg3DConfig, parse_layers, untrained_vgg3d

    model = untrained_vgg3d(Vgg3DConfig(), seed=0)
    layers = parse_layers("stage4")
    x0 = torch.randn(2, 1, 80, 80, 80, generator=torch.Generator().manual_seed(0))
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    clock, n_peak = (time.thread_time, 1024) if one_thread else (time.perf_counter, 2048)
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if one_thread else threads)
    try:
        nets = {label: FeatureNet(model, layers, "avg", "cpu", precision, fuse_relu=fuse) for label, fuse in paths}
        peak = _vgg_matmul_peak(dtype, n_peak, clock=clock)
        steps = {}
        for _ in range(2):
            for label, net in nets.items():
                got = _timed_steps(net, x0, clock)
                steps[label] = got if label not in steps else [(n, min(t, t2), f) for (n, t, f), (_, t2, _) in
                                                               zip(steps[label], got)]
                peak = max(peak, _vgg_matmul_peak(dtype, n_peak, reps=3, clock=clock))
    finally:
        torch.set_num_threads(threads)
    add("vgg", f"{tag} square matmul peak (same run, best of the runs between the paths)", peak, "GFLOP/s")
    for label, got in steps.items():
        name_of = f"{tag}{' ' + label if label else ''}"
        if label == "fused" and not nets[label].fused:
            add("vgg", f"{name_of}: fused conv+ReLU unavailable here, eager modules ran", "-", "")
        total_t = sum(t for _, t, _ in got)
        total_f = sum(f for _, _, f in got)
        stage1_t, stage1_f = 0.0, 0.0
        for name, t, flops in got:
            if stage1_t is not None:
                stage1_t, stage1_f = stage1_t + t, stage1_f + flops
                if name == "MaxPool3d":
                    add("vgg", f"{name_of} first stage (4 convs at 80^3 with ReLUs and max-pool)", stage1_f / stage1_t / 1e9,
                        f"GFLOP/s ({stage1_f / stage1_t / 1e9 / peak:.0%} of peak, {stage1_t * 1e3:.0f} ms, "
                        f"{stage1_t / total_t:.0%} of forward)")
                    stage1_t = None
            if flops:
                add("vgg", f"{name_of} {name}", flops / t / 1e9,
                    f"GFLOP/s ({flops / t / 1e9 / peak:.0%} of peak, {t * 1e3:.0f} ms, {t / total_t:.0%} of forward)")
        add("vgg", f"{name_of} whole trunk (convs' FLOPs / forward time)", total_f / total_t / 1e9,
            f"GFLOP/s ({total_f / total_t / 1e9 / peak:.0%} of peak, forward {total_t * 1e3:.0f} ms for 2 crops)")
        if label == "fused":
            eager_t = sum(t for _, t, _ in steps["eager"])
            add("vgg", f"{tag} fused forward time / eager forward time", total_t / eager_t, "")


def section_vgg(tmp: str) -> None:
    paths32 = (("eager", False), ("fused", True))
    _vgg_paths("fp32", "fp32", paths32, one_thread=False)
    _vgg_paths("bf16", "bf16", (("", True),), one_thread=False)
    _vgg_paths("fp32 1-thread CPU-time", "fp32", paths32, one_thread=True)
    # The same in a fresh process whose malloc keeps freed memory (no page faults for new activations), as
    # `extract` sets it (features.heap.keep_freed_memory).
    out = os.path.join(tmp, "inner-vgg-heap.json")
    env = {**os.environ, "PYTHONPATH": HERE}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--inner", "vgg_heap", "--json", out],
                          env=env, cwd=HERE, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        add("vgg", "fp32, malloc keeps freed memory (extract's setting)", "failed", "(see stderr)")
        return
    with open(out) as f:
        for section, what, value, unit, label in json.load(f):
            add(section, what, value, unit)


def _inner_vgg_heap(data, tmp) -> None:
    from synapse_core.features.heap import keep_freed_memory

    if not keep_freed_memory():
        add("vgg", "malloc keeps freed memory: not glibc here, nothing set", "-", "")
        return
    paths = (("eager", False), ("fused", True))
    _vgg_paths("fp32 heap kept (extract's setting)", "fp32", paths, one_thread=False)
    _vgg_paths("fp32 1-thread CPU-time, heap kept (extract's setting)", "fp32", paths, one_thread=True)


def _timed_steps(net, x0, clock=time.perf_counter):
    """[(name, seconds of ``clock``, flops)] per layer of a FeatureNet, best of 2, in its precision.

    A convolution's row includes the ReLU after it (a separate in-place module on the eager path, a
    post-op of the fused one), so eager and fused rows time the same work.
    """
    import torch
    from torch import nn

    from synapse_core.features.net import ConvReLU

    out = []
    x = x0.contiguous(memory_format=torch.channels_last_3d) if net.channels_last else x0
    conv_i = 0
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=net.precision == "bf16"):
        for module, idx in net._steps:
            best = float("inf")
            for _ in range(2):
                xin = x.clone() if isinstance(module, nn.ReLU) else x  # in place: keep x for the next try
                t = clock()
                if isinstance(module, nn.MaxPool3d):
                    with torch.autocast("cpu", enabled=False):
                        y = module(xin)
                else:
                    y = module(xin)
                best = min(best, clock() - t)
            conv = module.conv if isinstance(module, ConvReLU) else module if isinstance(module, nn.Conv3d) else None
            if isinstance(module, nn.ReLU) and out and out[-1][2]:  # the eager ReLU joins its convolution's row
                name, t_conv, flops = out.pop()
                out.append((name, t_conv + best, flops))
            elif conv is not None:
                conv_i += 1
                flops = 2 * conv.in_channels * conv.out_channels * 27 * y.shape[0] * y[0, 0].numel()
                out.append((f"conv{conv_i} {conv.in_channels}->{conv.out_channels} at {y.shape[2]}^3 (+ReLU)", best,
                            flops))
            else:
                out.append((type(module).__name__, best, 0))
            x = y
    return out


def section_morphology(data: str, n: int = 24) -> None:
    import numpy as np

    from synapse_core.crops.build import build_crop, read_context
    from synapse_core.crops.settings import CropSettings
    from synapse_core.data.dataset import open_dataset
    from synapse_core.features.morphology import (
        morphology_features,
        valid_mask_from_box,
    )

    ds = open_dataset(data, cache_dir=None)
    s = CropSettings()
    crops = []
    for _, r in ds.synapses.iloc[:n].iterrows():
        c = build_crop(read_context(ds.bboxes[r.bbox_name], r, s), s)
        if hasattr(c, "raw"):
            crops.append(c)
    voxel = tuple(float(v) for v in ds.voxel_size_nm) if ds.voxel_size_nm is not None else None
    voxel = crops[0].voxel_size_nm if crops and crops[0].voxel_size_nm is not None else voxel
    best, best_cpu = float("inf"), float("inf")
    for _ in range(3):
        t, c0 = time.perf_counter(), time.process_time()
        for c in crops:
            morphology_features(c.structures, c.raw, voxel, valid_mask_from_box(c.raw.shape, c.valid_box_zyx))
        best = min(best, (time.perf_counter() - t) / len(crops))
        best_cpu = min(best_cpu, (time.process_time() - c0) / len(crops))
    add("morphology", f"morphology_features, {len(crops)} demo crops 80^3", best * 1e3,
        f"ms/synapse wall, best of 3 ({best_cpu * 1e3:.1f} ms CPU)")
    _ = np


def print_table(before: str | None) -> None:
    print(f"\nwhat a user waits for; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared)\n")
    order: list[tuple[str, str]] = []
    cells: dict[tuple[str, str], dict[str, tuple]] = {}
    for section, what, value, unit, label in ROWS:
        key = (section, what)
        if key not in cells:
            order.append(key)
            cells[key] = {}
        cells[key][label] = (value, unit)

    def shown(v) -> str:
        return f"{v:9.3g}" if isinstance(v, float) else f"{v!s:>9}"

    if before:
        print(f"{'section':<10} | {'measurement':<86} | {'before':>9} | {'after':>9} | {'after/before':>12} | unit (after)")
        print("-" * 170)
    else:
        print(f"{'section':<10} | {'measurement':<86} | {'value':>9} | unit")
        print("-" * 150)
    for key in order:
        got = cells[key]
        after = got.get("after", ("", ""))
        if before:
            b = got.get("before", ("", ""))
            ratio = (f"{after[0] / b[0]:12.2f}" if isinstance(after[0], float) and isinstance(b[0], float) and b[0]
                     else f"{'':>12}")
            print(f"{key[0]:<10} | {key[1]:<86} | {shown(b[0])} | {shown(after[0])} | {ratio} | {after[1] or b[1]}")
        else:
            print(f"{key[0]:<10} | {key[1]:<86} | {shown(after[0])} | {after[1]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip", nargs="*", default=[], choices=["help", "crop", "rerun", "cluster", "vgg", "morphology"])
    ap.add_argument("--cluster-rows", type=int, default=10_000)
    ap.add_argument("--before", default=None, metavar="REV",
                    help="also measure git revision REV (help, crop, rerun, warm cluster) for a before/after table")
    ap.add_argument("--json", default=None)
    ap.add_argument("--inner", default=None, help=argparse.SUPPRESS)  # in-process part, run in a fresh process
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        TREE["label"] = os.environ.get("SYNAPSE_BENCH_LABEL", "after")
        {"rerun": _inner_rerun, "vgg_heap": _inner_vgg_heap}[args.inner](args.data, args.tmp)
        with open(args.json, "w") as f:
            json.dump(ROWS, f)
        return 0
    tmp = tempfile.mkdtemp(prefix="bench-startup-")
    print(f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared)", file=sys.stderr)
    trees = [("after", HERE)]
    if args.before:
        trees.insert(0, ("before", export_revision(args.before, tmp)))
    try:
        for label, root in trees:  # first, while this process is small (children's peak RSS includes it at fork)
            TREE.update(label=label, root=root)
            if "help" not in args.skip:
                section_help()
        TREE.update(label="after", root=HERE)
        # one demo dataset (written by the current tree) for both trees
        data = make_demo(tmp) if {"crop", "rerun", "morphology"} - set(args.skip) else None
        for label, root in trees:
            TREE.update(label=label, root=root)
            if "crop" not in args.skip:
                section_crop(data, tmp)
            if "rerun" not in args.skip:
                section_rerun(data, tmp)
        TREE.update(label="after", root=HERE)
        if "cluster" not in args.skip:
            section_cluster(tmp, args.cluster_rows, trees)
        if "vgg" not in args.skip:
            section_vgg(tmp)
        if "morphology" not in args.skip:
            section_morphology(data)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(args.before)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(ROWS, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
