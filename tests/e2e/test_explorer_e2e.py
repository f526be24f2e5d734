"""End to end: the Clustering page as a synapse explorer, in the real server and headless Chromium.

One module-scoped server (demo dataset, empty cache) and one pipeline run with morphology features
(fast: no network), then each behaviour of issue 12 in its own test, in file order:
hovering a point shows the synapse's picture; clicking a point opens its detail beside the map;
a named selection is a column of the downloaded clusters CSV; the page's link opened in a new
browser context shows the same map; ``/data`` opens the Data page. Screenshots go to
``test-artifacts/explorer_*.png``.
"""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest
from test_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    assert_no_exception,
    expect,
    go_to,
    rerun,
    script_finished,
    server,  # noqa: F401  (module-scoped fixture)
    shot,
    sync_api,
)

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: run .ci/install_browser.sh"),
    pytest.mark.timeout(900),
]
MAP = ".st-key-cluster_map .js-plotly-plot"
TIMEOUT_MS = 400_000

#: Page pixels of the first point of the first map trace, and its synapse id.
FIRST_POINT = """() => {
    const gd = document.querySelector('.st-key-cluster_map .js-plotly-plot');
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const r = gd.querySelector('.nsewdrag').getBoundingClientRect(), c = gd.calcdata[0][0];
    return [r.x + xa.c2p(c.x), r.y + ya.c2p(c.y), gd.data[0].customdata[0][0]];
}"""


@pytest.fixture(scope="module")
def explorer(server):  # noqa: F811
    """A browser page on the Clustering page after a morphology extraction and a default clustering."""
    url, log_path = server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        times = {}
        t = time.perf_counter()
        page.goto(f"{url}/extraction?x_features=morphology")
        expect(page.get_by_role("button", name="Run extraction")).to_be_enabled(timeout=TIMEOUT_MS)
        script_finished(page)
        page.get_by_role("button", name="Run extraction").click()
        expect(page.get_by_text("Synapses with features")).to_be_visible(timeout=TIMEOUT_MS)
        script_finished(page, TIMEOUT_MS)
        times["extraction"] = time.perf_counter() - t
        go_to(page, "Clustering")
        t = time.perf_counter()
        page.get_by_role("button", name="Run clustering").click()
        expect(page.locator(MAP)).to_be_visible(timeout=TIMEOUT_MS)
        script_finished(page, TIMEOUT_MS)
        times["clustering"] = time.perf_counter() - t
        assert_no_exception(page, log_path)
        yield browser, page, url, log_path, times
        (ARTIFACTS / "explorer_timings.txt").write_text(
            "".join(f"{k}: {v:.1f} s\n" for k, v in times.items()))
        context.close()
        browser.close()


def first_point(page):
    page.locator(".st-key-cluster_map").scroll_into_view_if_needed()
    page.wait_for_function("() => { const gd = document.querySelector('.st-key-cluster_map .js-plotly-plot');"
                           " return gd && gd.calcdata && gd.calcdata[0]; }")
    return page.evaluate(FIRST_POINT)


def test_hovering_a_point_shows_its_synapse_picture(explorer):
    _, page, _, _, _ = explorer
    x, y, _ = first_point(page)
    page.mouse.move(x - 15, y - 15)
    page.mouse.move(x, y, steps=5)
    picture = page.locator("#synapse-hover-thumb img")
    expect(picture).to_be_visible(timeout=15_000)
    assert picture.get_attribute("src").startswith("data:image/png;base64,")
    assert picture.evaluate("img => img.complete && img.naturalWidth") == 96
    hovered = page.locator("#synapse-hover-thumb").get_attribute("data-synapse")
    assert re.fullmatch(r"bbox\d\|syn_\d{3}", hovered)
    box = page.locator("#synapse-hover-thumb").bounding_box()  # beside the point, not on it
    dx = max(box["x"] - x, x - box["x"] - box["width"], 0)
    dy = max(box["y"] - y, y - box["y"] - box["height"], 0)
    assert (dx, dy) != (0, 0) and max(dx, dy) < 60, (x, y, box)
    page.screenshot(path=str(ARTIFACTS / "explorer_1_hover.png"))


def test_clicking_a_point_opens_its_detail_beside_the_map(explorer):
    _, page, _, log_path, _ = explorer
    x, y, sid = first_point(page)
    page.mouse.move(x - 10, y - 10)
    page.mouse.move(x, y, steps=4)
    rerun(page, lambda: page.mouse.click(x, y))
    bbox, var1 = sid.split("|")
    expect(page.get_by_role("heading", name=f"{bbox} / {var1}")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Nearest neighbours", exact=True)).to_be_visible()
    expect(page.get_by_text("z sweep through the synapse")).to_be_visible()
    # The detail synapse is starred on the map.
    assert page.evaluate("() => document.querySelector('.st-key-cluster_map .js-plotly-plot').data"
                         ".at(-1).name") == f"shown: {bbox} / {var1}"
    assert_no_exception(page, log_path)
    shot(page, "explorer_2_detail")


def test_a_named_selection_is_a_column_of_the_clusters_csv(explorer, tmp_path):
    _, page, _, log_path, _ = explorer
    page.locator('.st-key-cluster_map .modebar-btn[data-val="select"]').first.click()
    drag = page.locator(".st-key-cluster_map .nsewdrag").first
    box = drag.bounding_box()

    def drag_a_box():
        page.mouse.move(box["x"] + 3, box["y"] + 3)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=10)
        page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] - 3, steps=10)
        page.mouse.up()

    rerun(page, drag_a_box)
    heading = page.get_by_role("heading", name=re.compile(r"Selection \([1-9]\d* synapses\)"))
    expect(heading).to_be_visible(timeout=60_000)
    n_selected = int(re.search(r"\((\d+) synapses\)", heading.first.text_content()).group(1))
    page.get_by_label("Name", exact=True).fill("docked pool")
    rerun(page, lambda: page.get_by_role("button", name="Save", exact=True).click())
    # Save reruns the script once more (st.rerun); the download holds the new column only after it.
    expect(page.get_by_text("Saved selections (1)")).to_be_visible(timeout=60_000)
    script_finished(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download clusters CSV").click()
    path = tmp_path / "clusters.csv"
    download.value.save_as(path)
    clusters = pd.read_csv(path)
    assert "selection_docked_pool" in clusters.columns
    assert int(clusters["selection_docked_pool"].sum()) == n_selected
    assert_no_exception(page, log_path)


def test_the_page_link_opened_in_a_new_browser_shows_the_same_map(explorer):
    browser, page, _, log_path, times = explorer
    link = page.url
    assert "view=" in link
    mine = page.evaluate("() => document.querySelector('.st-key-cluster_map .js-plotly-plot').data"
                         ".map(t => [t.name, t.customdata.length])")
    other = browser.new_context(viewport={"width": 1500, "height": 1000})
    colleague = other.new_page()
    t = time.perf_counter()
    colleague.goto(link)
    expect(colleague.locator(MAP)).to_be_visible(timeout=TIMEOUT_MS)
    script_finished(colleague, TIMEOUT_MS)
    times["linked view in a new browser"] = time.perf_counter() - t
    theirs = colleague.evaluate("() => document.querySelector('.st-key-cluster_map .js-plotly-plot').data"
                                ".map(t => [t.name, t.customdata.length])")

    def traces(spec):  # (legend name without the selection count, number of points), the starred synapse aside
        return [(re.sub(r", \d+ selected", "", name), n) for name, n in spec if not name.startswith("shown:")]

    assert traces(theirs) == traces(mine) and len(traces(mine)) >= 2
    assert_no_exception(colleague, log_path)
    shot(colleague, "explorer_3_linked_view")
    other.close()


def test_the_data_route_opens_the_data_page(explorer):
    browser, _, url, log_path, _ = explorer
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{url}/data")
    expect(page.get_by_text("Valid synapses")).to_be_visible(timeout=60_000)
    assert page.get_by_text("Page not found").count() == 0
    assert_no_exception(page, log_path)
    context.close()
