"""``python -m synapse_core cluster``: CSV in, clustered CSV + side files + figures out; errors exit 2."""

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from sklearn.datasets import make_blobs

from synapse_core.cli.parser import main
from synapse_core.viz.figures import bbox_composition_figure, k_curves_figure, map_figure


def write_features(path, n=90, centers=3, seed=0):
    X, y = make_blobs(n_samples=n, n_features=16, centers=centers, random_state=seed)
    df = pd.DataFrame(X, columns=[f"feat_{i + 1}" for i in range(16)])
    df.insert(0, "Var1", np.arange(n) + 1)
    df.insert(0, "bbox_name", [f"bbox{i % 2 + 1}" for i in range(n)])
    df["morph_cleft_area_vox2"] = y * 10.0 + np.random.default_rng(seed).normal(size=n)
    df.to_csv(path, index=False)
    return df, y


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One CLI run with k chosen automatically, stability, a t-SNE map and every figure (~5 s: tests are slow)."""
    folder = tmp_path_factory.mktemp("cli")
    df, y = write_features(folder / "features.csv")
    code = main(["cluster", "--features", str(folder / "features.csv"), "--out", str(folder / "out" / "clusters.csv"),
                 "--k", "auto", "--projection", "tsne", "--perplexity", "10", "--seed", "1", "--n-stability", "3",
                 "--cache-dir", str(folder / "cache")])
    return folder, code, df, y


@pytest.mark.slow
def test_cli_writes_clusters_with_map_and_distance(cli_run):
    folder, code, df, y = cli_run
    assert code == 0
    out = pd.read_csv(folder / "out" / "clusters.csv")
    assert len(out) == len(df)
    assert {"cluster", "proj_1", "proj_2", "distance_to_centroid"} <= set(out.columns)
    assert out["cluster"].nunique() == 3


@pytest.mark.slow
def test_cli_writes_curves_diagnostics_and_side_tables_of_the_clustering(cli_run):
    out = cli_run[0] / "out"
    d = json.loads((out / "clusters_diagnostics.json").read_text())
    assert d["k"] == 3 and d["cluster_space"] == "standard-scaled feat_* (16 d)" and d["settings"]["seed"] == 1
    clusters = pd.read_csv(out / "clusters.csv")
    sizes = clusters["cluster"].value_counts().sort_index()
    assert pd.read_csv(out / "clusters_k_curves.csv")["k"].tolist() == list(range(2, 13))
    summary = pd.read_csv(out / "clusters_summary.csv")
    assert summary["cluster"].tolist() == sizes.index.tolist() and summary["size"].tolist() == sizes.tolist()
    effects = pd.read_csv(out / "clusters_effect_sizes.csv")
    assert effects["cluster"].tolist() == sizes.index.tolist()
    assert set(effects["column"]) == {"morph_cleft_area_vox2"}  # the table's one morphology column
    composition = pd.read_csv(out / "clusters_bbox_composition.csv", index_col="cluster")
    pd.testing.assert_frame_equal(composition, pd.crosstab(clusters["cluster"], clusters["bbox_name"]),
                                  check_names=False)


@pytest.mark.slow
def test_cli_writes_readable_figures_of_the_map_curves_and_composition(cli_run):
    from PIL import Image

    out = cli_run[0] / "out"
    for name in ("map_cluster", "map_bbox", "k_curves", "bbox_composition"):
        with Image.open(out / f"clusters_{name}.png") as im:
            assert im.format == "PNG" and min(im.size) >= 300, name
    html = (out / "clusters_map_cluster.html").read_text()
    counts = pd.read_csv(out / "clusters.csv")["cluster"].value_counts()
    assert all(f'"name":"cluster {c} ({n})"' in html for c, n in counts.items())
    assert '"name":"bbox1 (45)"' in (out / "clusters_map_bbox.html").read_text()


def test_cli_accepts_the_original_flag_spellings(tmp_path):
    write_features(tmp_path / "f.csv")
    code = main(["cluster", "--features", str(tmp_path / "f.csv"), "--out", str(tmp_path / "c.csv"),
                 "--n_clusters", "2", "--clustering_algorithm", "KMeans", "--projection", "none", "--no-figures",
                 "--n-stability", "0"])
    assert code == 0 and pd.read_csv(tmp_path / "c.csv")["cluster"].nunique() == 2


def test_cli_nan_feature_exits_2_naming_row_and_column(tmp_path, capsys):
    df, _ = write_features(tmp_path / "f.csv")
    df.loc[5, "feat_3"] = np.nan
    df.to_csv(tmp_path / "f.csv", index=False)
    code = main(["cluster", "--features", str(tmp_path / "f.csv"), "--out", str(tmp_path / "c.csv")])
    assert code == 2
    assert "row 5 (bbox2, Var1=6) in column(s) feat_3" in capsys.readouterr().err


def test_cli_bad_k_exits_2_naming_k(tmp_path, capsys):
    write_features(tmp_path / "f.csv")
    assert main(["cluster", "--features", str(tmp_path / "f.csv"), "--out", str(tmp_path / "c.csv"),
                 "--k", "lots"]) == 2
    assert "--k='lots'" in capsys.readouterr().err


def test_cli_missing_features_file_exits_2(tmp_path, capsys):
    assert main(["cluster", "--features", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "c.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_map_figure_carries_synapse_keys_in_customdata(cli_run):
    table = pd.read_csv(cli_run[0] / "out" / "clusters.csv")
    fig = map_figure(table, "cluster")
    assert isinstance(fig, go.Figure) and len(fig.data) == 3
    rows = {tuple(map(str, row)) for trace in fig.data for row in trace.customdata}
    assert rows == {(f"{b}|{v}", b, str(v), str(c)) for b, v, c in zip(table["bbox_name"], table["Var1"], table["cluster"])}
    assert {t.name for t in map_figure(table, "bbox").data} == {"bbox1 (45)", "bbox2 (45)"}


def test_map_figure_uses_webgl_for_many_points():
    n = 3000
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"bbox_name": "bbox1", "Var1": np.arange(n), "cluster": rng.integers(-1, 3, n),
                          "proj_1": rng.normal(size=n), "proj_2": rng.normal(size=n)})
    fig = map_figure(table)
    assert all(isinstance(t, go.Scattergl) for t in fig.data)
    n_noise = int((table["cluster"] == -1).sum())
    assert fig.data[0].name == f"noise (−1) ({n_noise})" and fig.data[0].marker.symbol == "x"


@pytest.mark.slow
def test_k_curves_and_composition_figures(cli_run):
    out = cli_run[0] / "out"
    curves = pd.read_csv(out / "clusters_k_curves.csv")
    fig = k_curves_figure(curves, chosen_k=3)
    assert [a.text for a in fig.layout.annotations][:2] == ["silhouette vs null (higher is better)",
                                                           "subsample stability (ARI) vs null"]
    assert len(fig.data) == 6 + 2 * 2  # one curve per panel; null line and ±2 sd band for silhouette, stability
    comp = pd.read_csv(out / "clusters_bbox_composition.csv", index_col=0)
    fig = bbox_composition_figure(comp)
    assert [t.name for t in fig.data] == ["bbox1", "bbox2"] and fig.data[0].marker.color == "#FF0000"


def test_cli_says_when_there_is_no_clear_cluster_structure(tmp_path, capsys):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(40, 8)), columns=[f"feat_{i + 1}" for i in range(8)])
    df.insert(0, "Var1", np.arange(40) + 1)
    df.insert(0, "bbox_name", "bbox1")
    df.to_csv(tmp_path / "f.csv", index=False)
    assert main(["cluster", "--features", str(tmp_path / "f.csv"), "--out", str(tmp_path / "c.csv"), "--k", "auto",
                 "--k-range", "2-6", "--projection", "none", "--no-figures", "--n-stability", "0"]) == 0
    assert "--k auto: no clear cluster structure (k = 1)" in capsys.readouterr().out
    assert set(pd.read_csv(tmp_path / "c.csv")["cluster"]) == {0}
