"""What a first visit of the dashboard waits for, and what the compile warm-up saves (issues 12, 16).

Usage::

    python benchmarks/first_visit.py            # demo dataset (60 synapses), morphology features
    python benchmarks/first_visit.py --browser  # the same first visit, and a second one, in a real browser

``--browser`` starts a real dashboard server (empty cache, demo data) and drives headless Chromium
as a lab user would: open the app, extraction (morphology) on the Extraction page, Run clustering
on the Clustering page until the map is drawn; then a second visit (new browser context, same
server: everything cached). It prints seconds per step of both visits.

Every step runs in a fresh Python process with its own empty cache folder (no ``NUMBA_CACHE_DIR``
from outside), as a first visit of a new server does:

1. the demo dataset written, opened, and its 60 synapses' morphology features extracted (cold cache);
2. the page's default clustering of those features (``ClusterSettings(nan_policy="drop")``: k swept
   2–12, stability, 2-D seeded UMAP) in a process with a **cold** numba cache;
3. :func:`synapse_core.cluster.warmup.warm_up` alone in a fresh process (what the server's background
   thread does), then the same clustering in **another** fresh process that finds the compiled code
   in ``<cache>/numba`` (the CLI after a server ran, or a restarted server);
4. warm-up and clustering in **one** process (the dashboard: the warm-up thread finished before the
   user's clustering job runs in the same process).

Wall seconds are printed next to CPU seconds of the process (the machine is shared: the load average
is printed too; the extraction's CPU is spent in its worker processes and not shown) and the clustering's own timings of the map (``projection_s``) and of the k sweep
(``cluster_s``). Ratios are against step 2.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
step, cache, features_path = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cluster():
    import pandas as pd
    from synapse_core.cluster.run import run_clustering
    from synapse_core.cluster.settings import ClusterSettings

    features = pd.read_parquet(features_path)
    t, c = time.perf_counter(), cpu()
    result = run_clustering(features, ClusterSettings(nan_policy="drop"), cache_dir=cache)
    out.update(cluster_wall=time.perf_counter() - t, cluster_cpu=cpu() - c,
               projection_s=result.diagnostics["timings"].get("projection_s"),
               sweep_s=result.diagnostics["timings"].get("cluster_s"), k=result.diagnostics["k"])


def warm():
    from synapse_core.cluster.warmup import warm_up

    t, c = time.perf_counter(), cpu()
    warm_up(cache)
    out.update(warm_wall=time.perf_counter() - t, warm_cpu=cpu() - c)


if __name__ == "__main__":
    if step == "extract":
        from synapse_core.data.dataset import open_dataset
        from synapse_core.data.demo import demo_data_root
        from synapse_core.features.extract import extract_features
        from synapse_core.features.settings import ExtractSettings

        t, c = time.perf_counter(), cpu()
        root = demo_data_root(cache)
        out.update(demo_wall=time.perf_counter() - t, demo_cpu=cpu() - c)
        t, c = time.perf_counter(), cpu()
        ds = open_dataset(root, cache_dir=cache)
        out.update(open_wall=time.perf_counter() - t, open_cpu=cpu() - c)
        t, c = time.perf_counter(), cpu()
        result = extract_features(ds, ExtractSettings(features="morphology"), cache)
        # the work runs in the extraction's worker processes, whose CPU time this process cannot see
        out.update(extract_wall=time.perf_counter() - t, extract_cpu=None, n=len(result.features))
        result.features.to_parquet(features_path)
    elif step == "cluster":
        cluster()
    elif step == "warm":
        warm()
    elif step == "warm+cluster":
        warm()
        cluster()
    out["process_wall"] = time.perf_counter() - t0
    print(json.dumps(out))
"""


def child(step: str, cache: str, features: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "SYNAPSE_CACHE_DIR")}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", CHILD, step, cache, features], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="first-visit-") as tmp:
        features = os.path.join(tmp, "features.parquet")
        caches = {name: os.path.join(tmp, name) for name in ("extract", "cold", "disk", "same")}
        for path in caches.values():
            os.makedirs(path)
        t = time.perf_counter()
        ex = child("extract", caches["extract"], features)
        cold = child("cluster", caches["cold"], features)
        warm = child("warm", caches["disk"], features)
        disk = child("cluster", caches["disk"], features)
        same = child("warm+cluster", caches["same"], features)
        total = time.perf_counter() - t
    load1 = os.getloadavg()

    rows = [
        ("demo dataset written (first start)", ex["demo_wall"], ex["demo_cpu"], None, None),
        ("demo dataset opened", ex["open_wall"], ex["open_cpu"], None, None),
        (f"morphology extraction, {ex['n']} synapses (cold cache)", ex["extract_wall"], ex["extract_cpu"], None, None),
        ("clustering, fresh process, cold numba cache", cold["cluster_wall"], cold["cluster_cpu"],
         cold["projection_s"], cold["sweep_s"]),
        ("warm_up() alone, fresh process, cold numba cache", warm["warm_wall"], warm["warm_cpu"], None, None),
        ("clustering, fresh process, numba cache from warm_up", disk["cluster_wall"], disk["cluster_cpu"],
         disk["projection_s"], disk["sweep_s"]),
        ("clustering after warm_up in the same process (server)", same["cluster_wall"], same["cluster_cpu"],
         same["projection_s"], same["sweep_s"]),
    ]
    base = cold["cluster_wall"]
    print(f"First visit of the demo pipeline; load average {load0[0]:.1f} at start, {load1[0]:.1f} at the end "
          f"({os.cpu_count()} CPUs); {total:.0f} s in all")
    print(f"{'step':<56} {'wall s':>7} {'CPU s':>7} {'map s':>7} {'k sweep s':>9} {'vs cold':>8}")
    def number(value, width):
        return f"{value:>{width}.1f}" if value is not None else f"{'–':>{width}}"

    for name, wall, cpu_s, proj, sweep in rows:
        ratio = f"{wall / base:.2f}x" if name.startswith("clustering") else ""
        print(f"{name:<56} {number(wall, 7)} {number(cpu_s, 7)} {number(proj, 7)} {number(sweep, 9)} {ratio:>8}")
    print(f"(k = {cold['k']} in every clustering; map = seeded 2-D UMAP of the page's defaults)")


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 600_000


def _visit(browser, url: str) -> dict:
    """One visit: open the app, extract, cluster until the map is drawn; seconds per step."""
    from playwright.sync_api import expect

    def idle(page):  # the script run that drew what we waited for is over
        expect(page.locator('[data-testid="stApp"]')).to_have_attribute("data-test-script-state", "notRunning",
                                                                        timeout=TIMEOUT_MS)

    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    times = {}
    t0 = t = time.perf_counter()
    page.goto(f"{url}/extraction?x_features=morphology")
    expect(page.get_by_role("button", name="Run extraction")).to_be_enabled(timeout=TIMEOUT_MS)
    idle(page)
    times["open (Extraction page)"] = time.perf_counter() - t
    t = time.perf_counter()
    page.get_by_role("button", name="Run extraction").click()
    expect(page.get_by_text("Synapses with features")).to_be_visible(timeout=TIMEOUT_MS)
    idle(page)
    times["extraction"] = time.perf_counter() - t
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Clustering", exact=True).click()
    expect(page.get_by_role("button", name="Run clustering")).to_be_enabled(timeout=TIMEOUT_MS)
    idle(page)
    t = time.perf_counter()
    page.get_by_role("button", name="Run clustering").click()
    expect(page.locator(".st-key-cluster_map .js-plotly-plot")).to_be_visible(timeout=TIMEOUT_MS)
    idle(page)
    times["clustering (map drawn)"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    context.close()
    return times


def browser_visits(warmup: bool = True) -> None:
    """First and second visit of a fresh server in headless Chromium; one table."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="first-visit-browser-") as cache, \
            open(os.path.join(cache, "server.log"), "w") as log:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNAPSE_") and k != "NUMBA_CACHE_DIR"}
        env.update(SYNAPSE_CACHE_DIR=cache, SYNAPSE_WARMUP="1" if warmup else "0")
        t_server = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port), "--server.address", "127.0.0.1"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            import urllib.request

            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None:
                        raise SystemExit("the server exited; see its log") from None
                    time.sleep(0.3)
            started = time.perf_counter() - t_server
            load0 = os.getloadavg()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                first = _visit(browser, url)
                second = _visit(browser, url)
                browser.close()
            load1 = os.getloadavg()
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"Dashboard in headless Chromium, demo data, empty cache, compile warm-up {'on' if warmup else 'off'}; "
          f"server up in {started:.1f} s; load average {load0[0]:.1f} at start, {load1[0]:.1f} at the end "
          f"({os.cpu_count()} CPUs)")
    print(f"{'step (s)':<28} {'first visit':>12} {'second visit':>13}")
    for step in first:
        print(f"{step:<28} {first[step]:>12.1f} {second[step]:>13.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browser", action="store_true", help="first and second visit in headless Chromium")
    parser.add_argument("--no-warmup", action="store_true", help="with --browser: the server without the warm-up")
    args = parser.parse_args()
    if args.browser:
        browser_visits(warmup=not args.no_warmup)
    else:
        main()
