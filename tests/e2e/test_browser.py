"""End to end: the real Streamlit server driven in headless Chromium.

Starts ``streamlit run app.py`` on a free port with an empty cache (so the demo dataset is
written on first start, as on a fresh machine), walks the four pages, runs the default demo
pipeline with the page's defaults (features "auto": morphology without a checkpoint, k-means with
automatic k, UMAP map), box-selects on the map, sees the selection gallery and downloads the
clusters CSV. A second browser session repeats the run to measure the cached visit. Cancel and
resume of an extraction, and jobs shared between users, are in ``test_jobs_e2e.py``. Screenshots go to ``test-artifacts/``.

Needs Debian's Chromium at /usr/bin/chromium (``.ci/install_browser.sh``); skipped without it.

No fixed sleeps: every step waits for a condition in the page (an element, a text, Streamlit's
script-run state on the app root) or polls a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: The first run writes the demo dataset; VGG3D extractions in test_jobs_e2e run the 80³ network on CPU.
PIPELINE_TIMEOUT_MS = 400_000

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: run .ci/install_browser.sh"),
    pytest.mark.timeout(900),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing: pip install -r requirements-dev.txt")
expect = sync_api.expect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    """A real dashboard server with an empty cache and no configured data roots (demo mode).

    A test module that never clusters sets ``WARMUP = False`` to spare the CPU of the server's
    UMAP compile warm-up.
    """
    cache = tmp_path_factory.mktemp("e2e-cache")
    log_path = cache / "server.log"
    env = {"SYNAPSE_CACHE_DIR": str(cache)}
    if not getattr(request.module, "WARMUP", True):
        env["SYNAPSE_WARMUP"] = "0"
    with dashboard_server(log_path, env) as (url, wait_until_up):
        wait_until_up()
        yield url, log_path


@contextlib.contextmanager
def dashboard_server(log_path: Path, env_updates: dict):
    """``streamlit run app.py`` on a free local port, its output in ``log_path``; yields
    ``(url, wait_until_up)``: call ``wait_until_up()`` (after any work done while it starts) before
    the first request. The server sees none of our SYNAPSE_* variables, only ``env_updates``, and is
    stopped on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNAPSE_")} | env_updates
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--client.showErrorDetails", "full"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def wait_until_up() -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start within 60 s:\n{log_path.read_text()}")
            try:
                proc.wait(timeout=0.5)  # returns before the timeout only if the server exited
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"server exited with code {proc.returncode}:\n{log_path.read_text()}")

    try:
        yield url, wait_until_up
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


#: The app root carries Streamlit's script-run state: "running", "rerunRequested", "notRunning", ...
APP_ROOT = '[data-testid="stApp"]'

#: Records on ``window`` whether a script run started since it was installed (see :func:`rerun`).
WATCH_RUNS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    window.__runSeen = false;
    if (window.__runWatch) window.__runWatch.disconnect();
    window.__runWatch = new MutationObserver(() => {
        if (app.getAttribute('data-test-script-state') !== 'notRunning') window.__runSeen = true;
    });
    window.__runWatch.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
RUN_SEEN_AND_OVER = """() => window.__runSeen &&
    document.querySelector('[data-testid="stApp"]').getAttribute('data-test-script-state') === 'notRunning'"""

#: Resolves once the element's box is the same in two consecutive animation frames (layout settled).
BOX_SETTLED = """el => new Promise(resolve => {
    let last = '';
    const tick = () => {
        const r = el.getBoundingClientRect();
        const now = [r.x, r.y, r.width, r.height].join();
        if (now === last) resolve(true); else { last = now; requestAnimationFrame(tick); }
    };
    tick();
})"""


def script_finished(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script run that drew what we waited for is over (call it after such a wait)."""
    expect(page.locator(APP_ROOT)).to_have_attribute("data-test-script-state", "notRunning", timeout=timeout_ms)


def rerun(page, action, timeout_ms: int = 60_000) -> None:
    """Do ``action`` (an interaction that reruns the script) and wait until that run is over.

    The run's start is recorded by a MutationObserver installed before the action, so a run that
    ends before we look is still seen, and the idle state from before the action never counts.
    """
    page.evaluate(WATCH_RUNS)
    action()
    page.wait_for_function(RUN_SEEN_AND_OVER, timeout=timeout_ms)


def settled(locator) -> None:
    """Wait until ``locator``'s element stops moving (after a scroll or a viewport change)."""
    locator.evaluate(BOX_SETTLED)


def shot(page, name: str) -> None:
    """Screenshot of the whole page: Streamlit scrolls inside its main block, so grow the viewport to it."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], [data-testid=\"stAppViewContainer\"]')]"
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height), size["height"]), 6000)})
    settled(page.locator(APP_ROOT))
    page.wait_for_function(  # images drawn in the viewport have loaded
        "() => [...document.images].filter(img => { const r = img.getBoundingClientRect();"
        " return r.width > 0 && r.bottom > 0 && r.top < innerHeight; }).every(img => img.complete)")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size(size)


def go_to(page, title: str) -> None:
    """Navigate inside the app (keeps the session) with the sidebar's page list; wait for the page's run."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=60_000)
    script_finished(page)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (a searchable combobox) and wait for the rerun."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.press("ArrowDown")  # opens the list (a click only focuses it)
    rerun(page, lambda: page.get_by_role("option", name=option, exact=True).click(timeout=15_000))


def metric_value(page, label: str) -> str:
    """The value shown by the ``st.metric`` labelled exactly ``label``."""
    metric = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(label, exact=True))
    return metric.locator('[data-testid="stMetricValue"]').text_content().strip()


def map_box_in_data_units(page, drag_box: dict, corners_px) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) in map coordinates of a rectangle given in page pixels.

    ``drag_box`` is the bounding box of the plot area (Plotly's drag layer); Plotly's own axis
    conversion (``p2d``) maps pixels inside it to data units.
    """
    (x0, y0), (x1, y1) = corners_px
    xs, ys = page.evaluate(
        """([xs, ys]) => {
            const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            return [xs.map(p => xa.p2d(p)), ys.map(p => ya.p2d(p))];
        }""",
        [[x0 - drag_box["x"], x1 - drag_box["x"]], [y0 - drag_box["y"], y1 - drag_box["y"]]],
    )
    return min(xs), max(xs), min(ys), max(ys)


def assert_no_exception(page, log_path) -> None:
    n = page.locator('[data-testid="stException"]').count()
    assert n == 0, f"the page shows {n} exception(s); server log:\n{log_path.read_text()[-3000:]}"


def run_pipeline(page, url: str, log_path, name: str) -> dict:
    """Open the app, extract and cluster with the pages' defaults (what a first visit does); return
    seconds per step and the extraction's cache counts."""
    times = {}
    t0 = time.perf_counter()
    page.goto(url)
    expect(page.get_by_text("Valid synapses")).to_be_visible(timeout=PIPELINE_TIMEOUT_MS)
    script_finished(page)
    times["open"] = time.perf_counter() - t0
    assert_no_exception(page, log_path)
    shot(page, f"{name}_1_data")

    go_to(page, "Extraction")
    shot(page, f"{name}_2_extraction_settings")
    t = time.perf_counter()
    page.get_by_role("button", name="Run extraction").click()
    expect(page.get_by_text("Synapses with features")).to_be_visible(timeout=PIPELINE_TIMEOUT_MS)
    script_finished(page, PIPELINE_TIMEOUT_MS)
    times["extraction"] = time.perf_counter() - t
    assert_no_exception(page, log_path)
    times["cache_counts"] = metric_value(page, "From cache / computed")
    shot(page, f"{name}_3_extraction_done")

    go_to(page, "Clustering")
    t = time.perf_counter()
    page.get_by_role("button", name="Run clustering").click()
    expect(page.get_by_role("heading", name="Map")).to_be_visible(timeout=PIPELINE_TIMEOUT_MS)
    expect(page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first).to_be_visible(timeout=60_000)
    script_finished(page, PIPELINE_TIMEOUT_MS)
    times["clustering"] = time.perf_counter() - t
    assert_no_exception(page, log_path)
    times["total"] = time.perf_counter() - t0
    return times


def test_demo_pipeline_in_the_browser(server, browser, tmp_path):
    url, log_path = server
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    first = run_pipeline(page, url, log_path, "e2e")
    shot(page, "e2e_4_clustering")
    k_shown = int(metric_value(page, "Clusters"))

    # Box selection from the top-left corner of the plot area to the middle of its right edge (a drag
    # pans the map until Box Select is chosen in its toolbar; a click opens the synapse's detail).
    page.locator('[data-testid="stPlotlyChart"] .modebar-btn[data-val="select"]').first.click()
    drag = page.locator('[data-testid="stPlotlyChart"] .nsewdrag').first
    drag.scroll_into_view_if_needed()
    settled(drag)
    box = drag.bounding_box()
    start = (box["x"] + 3, box["y"] + 3)
    end = (box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)

    def drag_a_box():
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 4, steps=8)
        page.mouse.move(*end, steps=8)
        page.mouse.up()

    rerun(page, drag_a_box)
    heading = page.get_by_role("heading", name=re.compile(r"Selection \([1-9]\d* synapses\)"))
    expect(heading).to_be_visible(timeout=60_000)
    n_selected = int(re.search(r"\((\d+) synapses\)", heading.first.text_content()).group(1))
    # The points inside the dragged box, in map units (a 2-pixel margin either way for rounding).
    inner = map_box_in_data_units(page, box, ((start[0] + 2, start[1] + 2), (end[0] - 2, end[1] - 2)))
    outer = map_box_in_data_units(page, box, ((start[0] - 2, start[1] - 2), (end[0] + 2, end[1] + 2)))
    shot(page, "e2e_5_selection")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download clusters CSV").click()
    csv_path = tmp_path / "clusters.csv"
    download.value.save_as(csv_path)
    clusters = pd.read_csv(csv_path)
    assert len(clusters) == 60  # every demo synapse is clustered
    assert {"bbox_name", "Var1", "cluster", "proj_1", "proj_2"} <= set(clusters.columns)
    assert set(clusters["bbox_name"]) == {"bbox1", "bbox2", "bbox3", "bbox4"}
    assert clusters["cluster"].nunique() == k_shown and k_shown >= 2

    def n_inside(x_min, x_max, y_min, y_max):
        return int((clusters["proj_1"].between(x_min, x_max) & clusters["proj_2"].between(y_min, y_max)).sum())

    assert n_inside(*inner) <= n_selected <= n_inside(*outer)

    go_to(page, "Galleries")
    page.get_by_role("tab", name="Selection").click()
    expect(page.get_by_text(f"{n_selected} selected synapses")).to_be_visible(timeout=60_000)
    # One GIF per selected synapse (at most 60 shown), each captioned "bbox / Var1 — cluster k".
    expected = min(n_selected, 60)
    page.wait_for_function(
        "n => [...document.querySelectorAll('[data-testid=\"stImageCaption\"], [data-testid=\"caption\"]')]"
        ".filter(e => e.offsetParent !== null && e.textContent.includes(' — cluster ')).length >= n",
        arg=expected, timeout=120_000,
    )
    assert_no_exception(page, log_path)
    shot(page, "e2e_6_gallery_selection")
    page.get_by_role("tab", name="Clusters").click()
    expect(page.get_by_role("combobox", name="Cluster", exact=True)).to_be_visible(timeout=60_000)
    shot(page, "e2e_7_gallery_clusters")
    context.close()

    # A second visit (new session, same server and cache): everything comes from the caches.
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    second = run_pipeline(page, url, log_path, "e2e_cached")
    check_run_configuration_round_trip(page, log_path, tmp_path)
    context.close()

    lines = ["", f"First visit: from cache / computed = {first['cache_counts']}",
             f"Cached visit: from cache / computed = {second['cache_counts']}",
             "Dashboard timings (s)   first visit   cached visit"]
    for step in ("open", "extraction", "clustering", "total"):
        lines.append(f"  {step:<20} {first[step]:>11.1f}   {second[step]:>12.1f}")
    print("\n".join(lines))
    (ARTIFACTS / "e2e_timings.txt").write_text("\n".join(lines) + "\n")
    assert first["cache_counts"] == "0 / 60"
    assert second["cache_counts"] == "60 / 0"


def check_run_configuration_round_trip(page, log_path, tmp_path) -> None:
    """Save the run configuration, load a changed copy, see it applied; a pickle is refused."""
    from synapse_core.app import run_config

    page.get_by_text("Run configuration (JSON)").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Save configuration").click()
    saved = tmp_path / "run_config.json"
    download.value.save_as(saved)
    config = run_config.loads(saved.read_text())
    assert config.data.root == "demo" and config.data.bboxes == ("bbox1", "bbox2", "bbox3", "bbox4")
    assert config.extraction["features"] == "auto" and config.extraction["crop"]["segmentation_type"] == 10
    assert config.clustering["method"] == "kmeans"

    changed = tmp_path / "changed.json"
    text = saved.read_text().replace('"segmentation_type": 10', '"segmentation_type": 5')
    changed.write_text(text)
    uploader = page.locator('[data-testid="stSidebar"] [data-testid="stFileUploaderDropzoneInput"]')
    uploader.set_input_files(str(changed))
    expect(page.get_by_text("Loaded changed.json")).to_be_visible(timeout=30_000)
    go_to(page, "Extraction")
    expect(page.get_by_text("Type 5 — Sides + vesicles + cleft")).to_be_visible(timeout=30_000)
    assert_no_exception(page, log_path)

    import pickle

    evil = tmp_path / "evil.json"
    evil.write_bytes(pickle.dumps({"format": run_config.FORMAT}))
    page.locator('[data-testid="stSidebar"] [data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(evil))
    expect(page.get_by_text("evil.json: not UTF-8 text")).to_be_visible(timeout=30_000)
    shot(page, "e2e_cached_5_run_config")

    # An uploaded "checkpoint" holding a Python object is refused, never unpickled into code.
    choose(page, "Checkpoint", "uploaded file")
    evil_checkpoint = tmp_path / "evil.pth"
    evil_checkpoint.write_bytes(pickle.dumps(os.getcwd))
    page.locator('[data-testid="stMain"] [data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        str(evil_checkpoint))
    expect(page.get_by_text("Checkpoint cannot be used: checkpoint evil.pth cannot be read safely")).to_be_visible(
        timeout=30_000)
    expect(page.get_by_role("button", name="Run extraction")).to_be_disabled()
    shot(page, "e2e_cached_6_bad_checkpoint")
