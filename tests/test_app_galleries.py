"""Galleries page (AppTest): cluster galleries, selection gallery, detail view, link-outs."""

from __future__ import annotations

import pytest
from app_helpers import (
    image_captions,
    markdown_texts,
    open_page,
)

GALLERIES = "app_pages/galleries.py"

pytestmark = pytest.mark.usefixtures("demo_app")


def galleries_page(morph_features, clusters, **state):
    return open_page(GALLERIES, state={"features": morph_features, "clusters": clusters, **state})


def gif_captions(at) -> list[str]:
    return [c for c in image_captions(at) if " / " in c and not c.startswith("Orthogonal")]


def test_without_clusters_the_page_points_to_clustering():
    at = open_page(GALLERIES)
    assert any("run an extraction and a clustering first" in i.value for i in at.info)


@pytest.mark.slow  # runs the real pipeline behind the page
def test_cluster_gallery_shows_the_representatives_closest_to_the_centre(morph_features, clusters_k3):
    at = galleries_page(morph_features, clusters_k3)
    at.selectbox(key="w_g_cluster").set_value(1).run()
    at.slider(key="g_n_reps").set_value(3).run()
    at.slider(key="g_n_sample").set_value(0).run()
    expected = clusters_k3.representatives
    expected = expected[expected["cluster"] == 1].head(3)
    shown = gif_captions(at)[:3]
    assert shown == [f"{b} / {v}" for b, v in zip(expected["bbox_name"], expected["Var1"])]


def test_random_sample_is_the_same_for_the_same_seed_and_changes_with_it(morph_features, clusters_k3):
    at = galleries_page(morph_features, clusters_k3)
    at.slider(key="g_n_reps").set_value(1).run()
    at.slider(key="g_n_sample").set_value(4).run()
    first = gif_captions(at)
    at.run()
    assert gif_captions(at) == first
    at.number_input(key="w_g_seed").set_value(7).run()
    assert gif_captions(at) != first


def test_selection_gallery_shows_each_selected_synapse_with_its_cluster(morph_features, clusters_k3):
    selection = ["bbox1|syn_003", "bbox2|syn_010"]
    at = galleries_page(morph_features, clusters_k3, selection=selection)
    assert "**2 selected synapses**" in markdown_texts(at)
    table = clusters_k3.table.set_index(["bbox_name", "Var1"])["cluster"]
    for sid in selection:
        bbox, var1 = sid.split("|")
        assert f"{bbox} / {var1} — cluster {table[(bbox, var1)]}" in image_captions(at)


def test_detail_view_shows_gif_slices_measurements_and_neighbours(morph_features, clusters_k3):
    at = galleries_page(morph_features, clusters_k3)
    at.selectbox(key="w_g_detail").set_value("bbox2|syn_005").run()
    captions = image_captions(at)
    assert "z sweep through the synapse" in captions
    assert any(c.startswith("Centre slices: (y, x) | (z, x) | (z, y)") for c in captions)
    assert "#### bbox2 / syn_005" in markdown_texts(at) and "**Measurements**" in markdown_texts(at)
    tables = [d.value for d in at.dataframe]
    words = next(t for t in tables if "measurement" in t.columns)
    assert "cleft thickness" in set(words["measurement"]) and words["value"].str.contains(" nm").any()
    nn = next(t for t in tables if "distance" in t.columns)
    assert len(nn) == 6 and "bbox2 / syn_005" not in set(nn["synapse"])
    assert "GIF" in [b.label for b in at.get("download_button")]


def test_details_button_opens_that_synapse_in_the_detail_view(morph_features, clusters_k3):
    at = galleries_page(morph_features, clusters_k3, selection=["bbox1|syn_009"])
    at.button(key="sel_detail_bbox1|syn_009").click().run()
    assert at.selectbox(key="w_g_detail").value == "bbox1|syn_009"


def test_link_out_opens_the_synapse_at_its_global_position(morph_features, clusters_k3, demo_dataset):
    at = galleries_page(morph_features, clusters_k3, selection=["bbox2|syn_001"])
    row = demo_dataset.synapse("bbox2", "syn_001")
    # Demo config: bbox2 offset (2000, 2000, 3000) voxels added to the centre (x, y, z).
    expected = (f"https://webknossos.example.org/datasets/demo/view#{row['central_coord_1'] + 2000},"
                f"{row['central_coord_2'] + 2000},{row['central_coord_3'] + 3000},0,1.0")
    assert expected in [b.proto.url for b in at.get("link_button")]


def test_cluster_zip_holds_one_gif_per_member(morph_features, clusters_k3):
    import io
    import zipfile

    at = galleries_page(morph_features, clusters_k3)
    at.selectbox(key="w_g_cluster").set_value(2).run()
    n_members = int((clusters_k3.table["cluster"] == 2).sum())
    at.button(key="g_cluster_zip_make").click().run()
    cluster, data, discarded = at.session_state["g_cluster_zip"]
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names[-1] == "manifest.csv"
    assert cluster == 2 and len(names) - 1 + len(discarded) == n_members
    assert all(name.endswith(".gif") for name in names[:-1])
    assert "Download cluster GIFs (ZIP)" in [b.label for b in at.get("download_button")]


def test_selection_zip_holds_the_selected_gifs(morph_features, clusters_k3):
    import io
    import zipfile

    at = galleries_page(morph_features, clusters_k3, selection=["bbox1|syn_003", "bbox2|syn_010"])
    at.button(key="g_sel_zip_make").click().run()
    assert not at.exception
    data, discarded = at.session_state["g_sel_zip"]
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["bbox1_syn_003.gif", "bbox2_syn_010.gif", "manifest.csv"]
    assert "Download selection GIFs (ZIP)" in [b.label for b in at.get("download_button")]


def test_results_of_an_untrained_network_carry_the_warning_banner(morph_features, clusters_k3):
    from synapse_core.features.settings import ExtractSettings

    at = galleries_page(morph_features, clusters_k3, extract_settings=ExtractSettings(features="vgg3d", seed=3))
    assert any("**untrained network** (random weights, seed 3)" in w.value for w in at.warning)
