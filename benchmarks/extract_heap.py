"""End-to-end ``extract`` of VGG3D features, this tree against an earlier revision, in turns (issue 16).

Measures what ``extract``'s malloc setting (:func:`synapse_core.features.heap.keep_freed_memory`) does for
a user: wall and CPU seconds and peak memory of a fresh ``python -m synapse_core extract --features vgg3d
--no-cache`` on the demo dataset (60 synapses, untrained fmaps-24 network at 80³, 2 threads), each tree
``--turns`` times, alternating so both see the same load; and whether the two trees wrote the same features.

    python benchmarks/extract_heap.py --before bce3454

CPU seconds and peak memory are those of the extracting process and the crop workers it waited for
(``os.wait4``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from revisions import REPO, export_revision


def _run(tree: str, data: str, out: str) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB) of one fresh extract process with the package of ``tree``."""
    env = {**os.environ, "PYTHONPATH": tree}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "synapse_core", "extract", "--data", data, "--out", out,
                             "--features", "vgg3d", "--no-cache", "--no-progress"], env=env, cwd=tree,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"extract with {tree} failed:\n{err[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision to compare with (e.g. the last release)")
    ap.add_argument("--turns", type=int, default=3)
    args = ap.parse_args()
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "demo")
        subprocess.run([sys.executable, "-m", "synapse_core", "demo", "--out", data], cwd=REPO, check=True,
                       env={**os.environ, "PYTHONPATH": REPO}, stdout=subprocess.DEVNULL)
        trees = {"before": export_revision(args.before, tmp), "after": REPO}
        got = {name: [] for name in trees}
        for turn in range(args.turns):
            for name, tree in trees.items():
                got[name].append(_run(tree, data, os.path.join(tmp, f"{name}.csv")))
                w, c, m = got[name][-1]
                print(f"turn {turn + 1} {name}: {w:.1f} s wall, {c:.1f} CPU s, peak {m:.0f} MB", flush=True)
        feats = {name: pd.read_csv(os.path.join(tmp, f"{name}.csv")).filter(like="feat_") for name in trees}
        same = feats["before"].shape == feats["after"].shape and (feats["before"].to_numpy()
                                                                  == feats["after"].to_numpy()).all()
    load = os.getloadavg()[0]
    print(f"\nextract --features vgg3d --no-cache, demo (60 synapses), {args.turns} turns each; load {load:.1f}")
    print(f"{'measurement':<26}| {'before':>9} | {'after':>9} | after/before")
    for i, what in enumerate(("wall s (median)", "CPU s (median)", "peak MB (median)")):
        b = statistics.median(r[i] for r in got["before"])
        a = statistics.median(r[i] for r in got["after"])
        print(f"{what:<26}| {b:9.1f} | {a:9.1f} | {a / b:.2f}")
    print(f"{'features identical':<26}| {'':>9} | {'yes' if same else 'NO':>9} |")


if __name__ == "__main__":
    main()
