"""Results for other tools: Parquet tables, AnnData .h5ad, Neuroglancer states and annotation layers, WebKnossos NML."""

from __future__ import annotations

import json
import urllib.parse
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from test_formats import CENTRES, VOXEL, ome_dataset, precomputed_dataset

from synapse_core.data.dataset import open_dataset
from synapse_core.export.h5ad import clusters_to_h5ad, features_to_h5ad, write_h5ad
from synapse_core.export.neuroglancer import (
    state_url,
    synapse_state,
    write_annotation_layer,
)
from synapse_core.export.tables import check_table_suffix, read_table, write_table
from synapse_core.export.webknossos import write_nml

anndata = pytest.importorskip("anndata")  # reader only (requirements-readers.txt: anndata 0.12 declares pandas < 3)


def feature_table(n=12, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"bbox_name": ["bbox1"] * (n // 2) + ["bbox2"] * (n - n // 2),
                       "Var1": [f"{i:03d}" for i in range(n)],
                       "morph_cleft_area_nm2": rng.uniform(1e4, 1e5, n),
                       "morph_has_mito": rng.integers(0, 2, n),
                       "annotation": ["docked" if i % 3 else None for i in range(n)]})
    df.loc[2, "morph_cleft_area_nm2"] = np.nan  # absent structure stays NaN
    for j in range(4):
        df[f"feat_{j + 1}"] = rng.normal(size=n).astype(np.float32)
    return df


def test_table_round_trips_through_parquet_with_types_kept(tmp_path):
    df = feature_table()
    write_table(df, tmp_path / "features.parquet")
    back = read_table(tmp_path / "features.parquet")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert back["Var1"].tolist()[:2] == ["000", "001"]  # leading zeros kept


def test_an_unknown_table_suffix_is_refused_naming_the_flag():
    with pytest.raises(ValueError, match=r"--out features.txt: give a file name ending in .csv, .parquet, .h5ad"):
        check_table_suffix("features.txt")


def test_features_h5ad_round_trips_through_anndata(tmp_path):
    df = feature_table()
    features_to_h5ad(df, tmp_path / "features.h5ad", uns={"run": {"seed": 0}})
    ad = anndata.read_h5ad(tmp_path / "features.h5ad")
    assert ad.shape == (12, 4)
    assert list(ad.var_names) == ["feat_1", "feat_2", "feat_3", "feat_4"]
    np.testing.assert_array_equal(ad.X, df[[f"feat_{j}" for j in range(1, 5)]].to_numpy(np.float32))
    assert list(ad.obs_names[:2]) == ["bbox1/000", "bbox1/001"]
    assert np.isnan(ad.obs["morph_cleft_area_nm2"].iloc[2])
    assert ad.obs["morph_cleft_area_nm2"].iloc[3] == df["morph_cleft_area_nm2"].iloc[3]
    assert ad.obs["annotation"].isna().tolist() == df["annotation"].isna().tolist()  # missing stays missing
    assert json.loads(ad.uns["run"]) == {"seed": 0}


def test_obsm_maps_are_stored_per_synapse(tmp_path):
    xy = np.arange(24, dtype=np.float64).reshape(12, 2)
    write_h5ad(tmp_path / "m.h5ad", feature_table()[["bbox_name", "Var1"]], np.zeros((12, 1)), ["f"],
               obsm={"X_umap": xy})
    np.testing.assert_array_equal(anndata.read_h5ad(tmp_path / "m.h5ad").obsm["X_umap"], xy)


@pytest.mark.slow
def test_cluster_h5ad_holds_clusters_clustering_space_and_map(tmp_path):
    from synapse_core.cluster.run import run_clustering
    from synapse_core.cluster.settings import ClusterSettings

    rng = np.random.default_rng(0)
    df = feature_table(60).drop(columns=["morph_cleft_area_nm2"])
    for j in range(4):
        df[f"feat_{j + 1}"] = rng.normal(size=60) + 6 * (np.arange(60) % 3 == j % 3)
    result = run_clustering(df, ClusterSettings(k=3, projection="tsne", tsne_perplexity=10, feature_set="feat"))
    clusters_to_h5ad(result, tmp_path / "clusters.h5ad")
    ad = anndata.read_h5ad(tmp_path / "clusters.h5ad")
    np.testing.assert_allclose(ad.X, result.features, rtol=1e-6)
    assert ad.obs["cluster"].astype(int).tolist() == result.table["cluster"].tolist()
    np.testing.assert_allclose(ad.obsm["X_tsne"], result.table[["proj_1", "proj_2"]].to_numpy())
    assert ad.obsm["feat"].shape == (60, 4)


@pytest.fixture(scope="module")
def ome_ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("ome")
    return open_dataset(ome_dataset(root), cache_dir=root / "cache")


def test_neuroglancer_state_is_centred_on_the_synapse_with_both_neurons_selected(ome_ds):
    state = synapse_state(ome_ds, "volume", "syn_1", cluster=2, local_base_url="http://localhost:9000/")
    z, y, x = CENTRES["syn_1"]
    offset_vox = np.array([240.0, 160.0, 80.0]) / VOXEL  # OME-Zarr translation (x, y, z) in voxels
    want = (np.array([x, y, z]) + 0.5 + offset_vox).tolist()
    assert state["dimensions"] == {"x": [8e-9, "m"], "y": [8e-9, "m"], "z": [8e-9, "m"]}
    assert state["position"] == want
    em, neurons, mask, synapse = state["layers"]
    assert (em["type"], em["name"], em["source"]) == ("image", "em", "zarr://http://localhost:9000/raw.ome.zarr")
    assert (neurons["type"], neurons["source"]) == ("segmentation", "zarr://http://localhost:9000/seg.ome.zarr")
    assert neurons["segments"] == ["1", "2"]
    assert (mask["name"], mask["visible"]) == ("mask", False)
    assert synapse["type"] == "annotation"
    assert synapse["annotations"] == [{"type": "point", "id": "synapse", "point": want,
                                       "description": "volume/syn_1 cluster 2"}]
    assert state["selectedLayer"] == {"layer": "synapse", "visible": True}


def test_neuroglancer_link_parses_back_to_the_state(ome_ds):
    import neuroglancer

    state = synapse_state(ome_ds, "volume", "syn_2")
    url = state_url(state)
    assert url.startswith("https://neuroglancer-demo.appspot.com/#!")
    assert json.loads(urllib.parse.unquote(url.split("#!", 1)[1])) == state
    parsed = neuroglancer.parse_url(url)
    assert [layer.name for layer in parsed.layers] == ["em", "neurons", "mask", "synapse"]
    assert list(parsed.layers["neurons"].segments) == [1, 2]


def test_annotation_layer_reads_back_points_in_nm_and_clusters(ome_ds, tmp_path):
    from neuroglancer.read_precomputed_annotations import AnnotationReader

    rows = ome_ds.synapses.assign(cluster=[0, 1, -1])
    write_annotation_layer(tmp_path / "synapses", ome_ds, rows)
    reader = AnnotationReader(f"file://{tmp_path / 'synapses'}/")
    assert [p.id for p in reader.properties] == ["cluster"]
    for i, var1 in enumerate(rows["Var1"]):
        z, y, x = CENTRES[var1]
        a = reader.by_id[i]
        np.testing.assert_allclose(a.point, (np.array([x, y, z]) + 0.5) * VOXEL + [240.0, 160.0, 80.0])
        assert [int(v) for v in a.props] == [int(rows["cluster"][i])]  # the reader wraps numpy ints as text
    assert sorted(int(a.id) for a in reader.get_within_spatial_bounds()) == [0, 1, 2]  # the spatial index too


def test_nml_has_one_node_per_synapse_grouped_by_cluster(tmp_path):
    root = tmp_path / "pc"
    root.mkdir()
    ds = open_dataset(precomputed_dataset(root), cache_dir=tmp_path / "cache")
    rows = ds.synapses.assign(cluster=[1, 1, -1])
    write_nml(tmp_path / "clusters.nml", ds, rows)
    things = ET.parse(tmp_path / "clusters.nml").getroot()
    groups = {g.get("id"): g.get("name") for g in things.find("groups")}
    assert sorted(groups.values()) == ["cluster 1", "noise"]
    trees = things.findall("thing")
    assert [t.get("name") for t in trees] == ["volume/syn_1", "volume/syn_2", "volume/syn_3"]
    assert [groups[t.get("groupId")] for t in trees] == ["cluster 1", "cluster 1", "noise"]
    node = trees[0].find("nodes/node")
    z, y, x = CENTRES["syn_1"]
    assert (int(node.get("x")), int(node.get("y")), int(node.get("z"))) == (x + 16, y + 32, z + 8)  # + voxel_offset
    assert things.find("parameters/scale").attrib == {"x": "8", "y": "8", "z": "8"}
    assert [c.get("content") for c in things.find("comments")] == ["cluster 1", "cluster 1", "noise"]


def test_cluster_cli_reads_parquet_and_writes_parquet_by_suffix(tmp_path):
    from synapse_core.cli.parser import main

    df = feature_table(30).drop(columns=["morph_cleft_area_nm2", "annotation"])
    df.to_parquet(tmp_path / "features.parquet")
    code = main(["cluster", "--features", str(tmp_path / "features.parquet"), "--out", str(tmp_path / "c.parquet"),
                 "--k", "2", "--projection", "none", "--no-figures", "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    out = pd.read_parquet(tmp_path / "c.parquet")
    assert out["Var1"].tolist() == df["Var1"].tolist() and set(out["cluster"]) == {0, 1}


@pytest.mark.slow
def test_cluster_cli_writes_h5ad_that_anndata_reads(tmp_path):
    from synapse_core.cli.parser import main

    df = feature_table(30).drop(columns=["morph_cleft_area_nm2", "annotation"])
    df.to_csv(tmp_path / "features.csv", index=False)
    code = main(["cluster", "--features", str(tmp_path / "features.csv"), "--out", str(tmp_path / "c.h5ad"),
                 "--k", "2", "--projection", "none", "--no-figures", "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    ad = anndata.read_h5ad(tmp_path / "c.h5ad")
    assert ad.shape == (30, 4) and sorted(ad.obs["cluster"].cat.categories) == ["0", "1"]


def test_extract_cli_refuses_an_unknown_out_suffix_before_any_work(tmp_path, capsys):
    from synapse_core.cli.parser import main

    assert main(["extract", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "f.txt")]) == 2
    assert "give a file name ending in .csv, .parquet, .h5ad" in capsys.readouterr().err


def test_export_cli_writes_nml_annotation_layer_and_links(tmp_path):
    from synapse_core.cli.parser import main

    root = tmp_path / "DATA"
    root.mkdir()
    ome_dataset(root)
    pd.DataFrame({"bbox_name": "volume", "Var1": ["syn_3", "syn_1"], "cluster": [4, 0]}).to_csv(
        tmp_path / "clusters.csv", index=False)
    code = main(["export", "--data", str(root), "--clusters", str(tmp_path / "clusters.csv"),
                 "--out", str(tmp_path / "viewers"), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    links = pd.read_csv(tmp_path / "viewers" / "neuroglancer_links.csv")
    assert links[["Var1", "cluster"]].values.tolist() == [["syn_3", 4], ["syn_1", 0]]
    state = json.loads(urllib.parse.unquote(links["neuroglancer_url"][0].split("#!", 1)[1]))
    assert state["layers"][-1]["annotations"][0]["description"] == "volume/syn_3 cluster 4"
    trees = ET.parse(tmp_path / "viewers" / "clusters.nml").getroot().findall("thing")
    assert [t.get("name") for t in trees] == ["volume/syn_3", "volume/syn_1"]
    info = json.loads((tmp_path / "viewers" / "neuroglancer_annotations" / "info").read_text())
    assert info["@type"] == "neuroglancer_annotations_v1" and info["properties"][0]["id"] == "cluster"


def test_export_cli_names_synapses_the_dataset_does_not_have(tmp_path, capsys):
    from synapse_core.cli.parser import main

    root = tmp_path / "DATA"
    root.mkdir()
    ome_dataset(root)
    pd.DataFrame({"bbox_name": "volume", "Var1": ["syn_9"], "cluster": [1]}).to_csv(tmp_path / "c.csv", index=False)
    assert main(["export", "--data", str(root), "--clusters", str(tmp_path / "c.csv"),
                 "--out", str(tmp_path / "viewers"), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "1 synapse(s) not among the valid rows" in capsys.readouterr().err


def test_nml_tree_names_with_xml_characters_parse_back(tmp_path):
    root = tmp_path / "pc"
    root.mkdir()
    ds = open_dataset(precomputed_dataset(root), cache_dir=tmp_path / "cache")
    rows = ds.synapses.assign(Var1=['a&b', '<x>', 'q"t'], cluster=[0, 1, 2])
    write_nml(tmp_path / "c.nml", ds, rows)
    names = [t.get("name") for t in ET.parse(tmp_path / "c.nml").getroot().findall("thing")]
    assert names == ['volume/a&b', 'volume/<x>', 'volume/q"t']
