"""End to end: the real Streamlit server driven in headless Chromium.

Starts ``streamlit run app.py`` on a free port with an empty cache (so the demo dataset is
written on first start, as on a fresh machine), walks the four pages, runs the default demo
pipeline (VGG3D features, k-means with automatic k, UMAP map), box-selects on the map, sees the
selection gallery and downloads the clusters CSV. A second browser session repeats the run to
measure the cached visit. Screenshots go to ``test-artifacts/``.

Needs Debian's Chromium at /usr/bin/chromium (``.ci/install_browser.sh``); skipped without it.
"""

from __future__ import annotations

import os
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
#: The first run writes the demo dataset and extracts 60 synapses with the 80³ VGG3D on CPU.
PIPELINE_TIMEOUT_MS = 400_000

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: run .ci/install_browser.sh"),
    pytest.mark.timeout(900),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real dashboard server with an empty cache and no configured data roots (demo mode)."""
    cache = tmp_path_factory.mktemp("e2e-cache")
    log_path = cache / "server.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNAPSE_")}
    env["SYNAPSE_CACHE_DIR"] = str(cache)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--client.showErrorDetails", "full"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def shot(page, name: str) -> None:
    """Screenshot of the whole page: Streamlit scrolls inside its main block, so grow the viewport to it."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], [data-testid=\"stAppViewContainer\"]')]"
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height), size["height"]), 6000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size(size)


def go_to(page, title: str) -> None:
    """Navigate inside the app (keeps the session) with the sidebar's page list."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script run finishes (the 'running' status widget is gone)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout_ms)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (a searchable combobox)."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.press("ArrowDown")  # opens the list (a click only focuses it)
    page.get_by_role("option", name=option, exact=True).click(timeout=15_000)
    wait_idle(page)


def assert_no_exception(page, log_path) -> None:
    n = page.locator('[data-testid="stException"]').count()
    assert n == 0, f"the page shows {n} exception(s); server log:\n{log_path.read_text()[-3000:]}"


def run_pipeline(page, url: str, log_path, name: str, while_extracting=None, cancel_after: int = 0) -> dict:
    """Open the app, extract (defaults) and cluster (defaults); return seconds per step.

    ``while_extracting()`` is called right after the extraction starts. With ``cancel_after``,
    the extraction is cancelled once that many synapses are done, then resumed with Run.
    """
    times = {}
    t0 = time.perf_counter()
    page.goto(url)
    page.get_by_text("Valid synapses").wait_for(timeout=PIPELINE_TIMEOUT_MS)
    wait_idle(page)
    times["open"] = time.perf_counter() - t0
    assert_no_exception(page, log_path)
    shot(page, f"{name}_1_data")

    go_to(page, "Extraction")
    wait_idle(page)
    shot(page, f"{name}_2_extraction_settings")
    t = time.perf_counter()
    page.get_by_role("button", name="Run extraction").click()
    if while_extracting is not None:
        while_extracting()
    if cancel_after:
        page.wait_for_function(
            "n => [...document.querySelectorAll('[data-testid=\"stProgress\"]')]"
            ".some(e => { const m = e.textContent.match(/(\\d+) \\/ 60 synapses/); return m && +m[1] >= n; })",
            arg=cancel_after, timeout=PIPELINE_TIMEOUT_MS,
        )
        page.get_by_role("button", name="Cancel").click()
        page.get_by_text("Extraction cancelled").wait_for(timeout=60_000)
        wait_idle(page)
        assert page.get_by_text("Synapses with features").count() == 0
        shot(page, f"{name}_3_extraction_cancelled")
        page.get_by_role("button", name="Run extraction").click()
    page.get_by_text("Synapses with features").wait_for(timeout=PIPELINE_TIMEOUT_MS)
    wait_idle(page, PIPELINE_TIMEOUT_MS)
    times["extraction"] = time.perf_counter() - t
    assert_no_exception(page, log_path)
    counts = page.locator('[data-testid="stMetric"]').filter(has_text="From cache / computed")
    times["cache_counts"] = counts.locator('[data-testid="stMetricValue"]').text_content()
    shot(page, f"{name}_3_extraction_done")

    go_to(page, "Clustering")
    t = time.perf_counter()
    page.get_by_role("button", name="Run clustering").click()
    page.get_by_role("heading", name="Map").wait_for(timeout=PIPELINE_TIMEOUT_MS)
    page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for(timeout=60_000)
    wait_idle(page, PIPELINE_TIMEOUT_MS)
    times["clustering"] = time.perf_counter() - t
    assert_no_exception(page, log_path)
    times["total"] = time.perf_counter() - t0
    return times


def test_demo_pipeline_in_the_browser(server, browser, tmp_path):
    url, log_path = server
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    other_user = {}

    def another_user_opens_the_app():
        """While this session extracts, a second user's page loads and works."""
        page.locator('[data-testid="stProgress"]').first.wait_for(timeout=60_000)
        other = browser.new_context(viewport={"width": 1500, "height": 1000})
        other_page = other.new_page()
        t = time.perf_counter()
        other_page.goto(url)
        other_page.get_by_text("Valid synapses").wait_for(timeout=120_000)
        other_user["seconds"] = time.perf_counter() - t
        other_user["first_still_running"] = page.get_by_text("Synapses with features").count() == 0
        other.close()

    first = run_pipeline(page, url, log_path, "e2e", while_extracting=another_user_opens_the_app, cancel_after=12)
    assert other_user["first_still_running"], "the extraction finished before the second user's page loaded"
    shot(page, "e2e_4_clustering")

    # Box selection over the upper half of the plot area.
    drag = page.locator('[data-testid="stPlotlyChart"] .nsewdrag').first
    drag.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    box = drag.bounding_box()
    page.mouse.move(box["x"] + 3, box["y"] + 3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 4, steps=8)
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    heading = page.get_by_role("heading", name="Selection (")
    page.wait_for_function(
        "() => [...document.querySelectorAll('h3')].some(h => /Selection \\(([1-9]\\d*) synapses\\)/.test(h.textContent))",
        timeout=60_000,
    )
    wait_idle(page)
    n_selected = int(heading.first.text_content().split("(")[1].split()[0])
    assert n_selected >= 1
    shot(page, "e2e_5_selection")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download clusters CSV").click()
    csv_path = tmp_path / "clusters.csv"
    download.value.save_as(csv_path)
    clusters = pd.read_csv(csv_path)
    assert len(clusters) == 60  # every demo synapse is clustered
    assert {"bbox_name", "Var1", "cluster", "proj_1", "proj_2"} <= set(clusters.columns)
    assert set(clusters["bbox_name"]) == {"bbox1", "bbox2", "bbox3", "bbox4"}
    assert clusters["cluster"].nunique() >= 2

    go_to(page, "Galleries")
    wait_idle(page)
    page.get_by_role("tab", name="Selection").click()
    page.get_by_text(f"{n_selected} selected synapses").wait_for(timeout=60_000)
    wait_idle(page)
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
    wait_idle(page)
    shot(page, "e2e_7_gallery_clusters")
    context.close()

    # A second visit (new session, same server and cache): everything comes from the caches.
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    second = run_pipeline(page, url, log_path, "e2e_cached")
    check_run_configuration_round_trip(page, log_path, tmp_path)
    context.close()

    lines = ["", f"Second user's Data page during the first extraction: {other_user['seconds']:.1f} s",
             f"First visit, extraction cancelled then resumed: from cache / computed = {first['cache_counts']}",
             f"Cached visit: from cache / computed = {second['cache_counts']}",
             "Dashboard timings (s)   first visit   cached visit"]
    for step in ("open", "extraction", "clustering", "total"):
        lines.append(f"  {step:<20} {first[step]:>11.1f}   {second[step]:>12.1f}")
    print("\n".join(lines))
    (ARTIFACTS / "e2e_timings.txt").write_text("\n".join(lines) + "\n")
    # Cancelled after ≥ 12 synapses, then resumed: what was finished came from the cache.
    n_cached, n_computed = (int(v) for v in first["cache_counts"].split(" / "))
    assert n_cached >= 8 and n_cached + n_computed == 60
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
    assert config.extraction["features"] == "vgg3d" and config.extraction["crop"]["segmentation_type"] == 10
    assert config.clustering["method"] == "kmeans"

    changed = tmp_path / "changed.json"
    text = saved.read_text().replace('"segmentation_type": 10', '"segmentation_type": 5')
    changed.write_text(text)
    uploader = page.locator('[data-testid="stSidebar"] [data-testid="stFileUploaderDropzoneInput"]')
    uploader.set_input_files(str(changed))
    page.get_by_text("Loaded changed.json").wait_for(timeout=30_000)
    go_to(page, "Extraction")
    page.get_by_text("Type 5 — Sides + vesicles + cleft").wait_for(timeout=30_000)
    assert_no_exception(page, log_path)

    import pickle

    evil = tmp_path / "evil.json"
    evil.write_bytes(pickle.dumps({"format": run_config.FORMAT}))
    page.locator('[data-testid="stSidebar"] [data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(evil))
    page.get_by_text("evil.json: not UTF-8 text").wait_for(timeout=30_000)
    shot(page, "e2e_cached_5_run_config")

    # An uploaded "checkpoint" holding a Python object is refused, never unpickled into code.
    choose(page, "Checkpoint", "uploaded file")
    evil_checkpoint = tmp_path / "evil.pth"
    evil_checkpoint.write_bytes(pickle.dumps(os.getcwd))
    page.locator('[data-testid="stMain"] [data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        str(evil_checkpoint))
    page.get_by_text("Checkpoint cannot be used: checkpoint evil.pth cannot be read safely").wait_for(timeout=30_000)
    wait_idle(page)
    assert page.get_by_role("button", name="Run extraction").is_disabled()
    shot(page, "e2e_cached_6_bad_checkpoint")
