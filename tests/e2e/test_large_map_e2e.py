"""End to end: the Clustering page opens a saved 10⁶-synapse clustering and draws its map (issue 15).

The fixture writes the result with our own functions, as ``cluster --save`` does
(:func:`synapse_core.cluster.run.save_result` into the server's cache folder), instead of clustering
10⁶ rows inside the test: 10⁶ synthetic synapses in 12 bboxes with two feature columns (six groups),
preprocessed by :func:`synapse_core.cluster.preprocess.prepare`, clustered like the large-data path
(k-means fitted on a seeded sample, every synapse assigned to its nearest centre,
:func:`synapse_core.cluster.k_selection.assign_nearest`), described by the summary functions, and
diagnosed by a real :func:`synapse_core.cluster.run.run_clustering` of that sample. The map columns are
the 2-d clustering space itself (no UMAP of 10⁶ rows in a test). The browser opens
``/clustering?clusters=<key>``, waits for the map (the time to first map is printed and written to
``test-artifacts/large_map_timings.txt``), checks that it states "50000 of 1000000 points drawn",
box-selects and reads the selected synapse ids back from the downloaded selection CSV.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd
import pytest
from test_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    assert_no_exception,
    dashboard_server,
    expect,
    map_box_in_data_units,
    rerun,
    script_finished,
    settled,
    shot,
    sync_api,
)

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: run .ci/install_browser.sh"),
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(300),
]
N_SYNAPSES = 1_000_000
MAP = ".st-key-cluster_map .js-plotly-plot"
#: Page pixels of the first point of the first point trace.
FIRST_POINT = """() => {
    const gd = document.querySelector('.st-key-cluster_map .js-plotly-plot');
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const r = gd.querySelector('.nsewdrag').getBoundingClientRect(), t = gd._fullData[1];
    return [r.x + xa.c2p(t.x[0]), r.y + ya.c2p(t.y[0])];
}"""


def large_result(n: int = N_SYNAPSES, seed: int = 0):
    """A clustering result of ``n`` synthetic synapses (see the module docstring)."""
    from synapse_core.cluster import diagnostics, summary
    from synapse_core.cluster.k_selection import assign_nearest
    from synapse_core.cluster.preprocess import prepare
    from synapse_core.cluster.run import ClusterResult, run_clustering
    from synapse_core.cluster.settings import ClusterSettings

    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 6, n)
    xy = rng.normal(0, 6, size=(6, 2))[truth] + rng.normal(size=(n, 2))
    bboxes = np.array([f"synth{i}" for i in range(1, 13)])  # not the demo's bboxes: no hover pictures to build
    features = pd.DataFrame({"bbox_name": bboxes[np.arange(n) % 12], "Var1": np.arange(n) // 12,
                             "feat_1": xy[:, 0].astype(np.float32), "feat_2": xy[:, 1].astype(np.float32)})
    settings = ClusterSettings(k=6, projection="none", n_stability=0)
    Z, _, record = prepare(features, settings.feature_set, settings.scaler, None, settings.nan_policy, settings.seed)
    sample = np.sort(rng.choice(n, size=5000, replace=False))
    fitted = run_clustering(features.iloc[sample], settings)
    centres = np.stack([Z[sample][fitted.table["cluster"].to_numpy() == c].mean(0) for c in range(6)])
    labels = assign_nearest(Z, centres)
    table = features.assign(cluster=labels, proj_1=Z[:, 0], proj_2=Z[:, 1])
    table["distance_to_centroid"] = summary.distance_to_centroid(Z, labels)[0]
    table["cluster_space"] = record.space
    diag = {**fitted.diagnostics, "n_synapses": n, "cluster_sizes": {int(c): int(m) for c, m in
                                                                    zip(*np.unique(labels, return_counts=True))}}
    return ClusterResult(
        table=table, k_curves=None, diagnostics=diag, summary=summary.summarise_clusters(table),
        representatives=summary.representatives(table), effect_sizes=summary.morphology_effect_sizes(table),
        composition=diagnostics.bbox_composition(labels, table["bbox_name"].to_numpy()), features=Z,
        settings=settings, preprocess=record,
    )


@pytest.fixture
def server(tmp_path):
    """A real dashboard server whose only data root is an empty folder (no demo dataset to write, no
    pictures: the page says so) and without the UMAP warm-up, with a 10⁶-synapse result saved in its
    cache; yields (url, log path, result key, seconds to build and save the result)."""
    from synapse_core.cluster.run import save_result

    cache, data = tmp_path / "cache", tmp_path / "data"
    data.mkdir()
    log_path = tmp_path / "server.log"
    env = {"SYNAPSE_CACHE_DIR": str(cache), "SYNAPSE_DATA_ROOTS": f"empty={data}", "SYNAPSE_WARMUP": "0"}
    with dashboard_server(log_path, env) as (url, wait_until_up):
        t = time.perf_counter()  # built while the server starts
        key = save_result(large_result(), cache)
        written = time.perf_counter() - t
        wait_until_up()
        yield url, log_path, key, written


def test_the_clustering_page_opens_a_million_synapse_result_and_draws_its_map(server, tmp_path):
    url, log_path, key, written = server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        t = time.perf_counter()
        page.goto(f"{url}/clustering?clusters={key}")
        expect(page.locator(MAP)).to_be_visible(timeout=240_000)
        script_finished(page, 240_000)
        first_map = time.perf_counter() - t
        assert_no_exception(page, log_path)
        title = page.locator(MAP).locator(".gtitle").text_content()
        assert f"50000 of {N_SYNAPSES} points drawn" in title
        shot(page, "large_map_1")

        page.locator(".st-key-cluster_map .modebar-btn[data-val='select']").first.click()
        drag = page.locator(".st-key-cluster_map .nsewdrag").first
        drag.scroll_into_view_if_needed()
        settled(drag)
        box = drag.bounding_box()
        # a small box (60 px) around the first drawn point of the first cluster (trace 0 is the density)
        x, y = page.evaluate(FIRST_POINT)
        start, end = (x - 30, y - 30), (x + 30, y + 30)
        # in map units before the drag (the rerun redraws the map: its legend, so its plot area, changes)
        outer = map_box_in_data_units(page, box, ((start[0] - 2, start[1] - 2), (end[0] + 2, end[1] + 2)))

        def drag_a_box():
            page.mouse.move(*start)
            page.mouse.down()
            page.mouse.move(*end, steps=8)
            page.mouse.up()

        t = time.perf_counter()
        rerun(page, drag_a_box, timeout_ms=120_000)
        selected_s = time.perf_counter() - t
        heading = page.get_by_role("heading", name=re.compile(r"Selection \([1-9]\d* synapses\)"))
        expect(heading).to_be_visible(timeout=60_000)
        n_selected = int(re.search(r"\((\d+) synapses\)", heading.first.text_content()).group(1))
        with page.expect_download() as download:
            page.get_by_role("button", name="Download selection CSV").click()
        download.value.save_as(tmp_path / "selection.csv")
        chosen = pd.read_csv(tmp_path / "selection.csv")
        context.close()
        browser.close()
    (ARTIFACTS / "large_map_timings.txt").write_text(
        f"result written: {written:.1f} s\ntime to first map: {first_map:.1f} s\nbox selection: {selected_s:.1f} s\n")
    print(f"10^6-point result written in {written:.1f} s; first map after {first_map:.1f} s; "
          f"box selection {selected_s:.1f} s ({n_selected} synapses)")
    # The selection names drawn synapses by id, every one inside the dragged box.
    assert len(chosen) == n_selected and chosen["bbox_name"].str.fullmatch(r"synth\d+").all()
    x_min, x_max, y_min, y_max = outer
    assert chosen["proj_1"].between(x_min, x_max).all() and chosen["proj_2"].between(y_min, y_max).all()
