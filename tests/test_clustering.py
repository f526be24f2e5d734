"""run_clustering: clusters in feature space, noise −1, k chosen from data, bad input named."""

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from synapse_core.cluster.run import run_clustering, write_result
from synapse_core.cluster.settings import ClusterSettings


def blob_table(n=120, centers=4, n_feat=12, seed=0, std=1.0):
    X, y = make_blobs(n_samples=n, n_features=n_feat, centers=centers, cluster_std=std, random_state=seed)
    df = pd.DataFrame(X, columns=[f"feat_{i + 1}" for i in range(n_feat)])
    df.insert(0, "Var1", [f"syn{i}" for i in range(n)])
    df.insert(0, "bbox_name", [f"bbox{i % 3 + 1}" for i in range(n)])
    rng = np.random.default_rng(seed)
    df["morph_vesicle_cloud_volume_vox"] = 100.0 * (y == 0) + rng.normal(0, 5, n)
    df["morph_cleft_area_vox2"] = rng.normal(50, 5, n)
    return df, y


FAST = dict(projection="none", n_stability=3)


@pytest.fixture(scope="module")
def blobs():
    return blob_table()


@pytest.fixture(scope="module")
def auto_result(blobs):
    return run_clustering(blobs[0], ClusterSettings(**FAST))


def test_default_kmeans_with_auto_k_recovers_planted_groups(blobs, auto_result):
    assert auto_result.diagnostics["k"] == 4
    assert adjusted_rand_score(blobs[1], auto_result.table["cluster"]) == 1.0


def test_table_keeps_input_rows_and_adds_cluster_outputs(blobs, auto_result):
    t = auto_result.table
    assert t["Var1"].tolist() == blobs[0]["Var1"].tolist()
    assert {"cluster", "distance_to_centroid", "cluster_space"} <= set(t.columns)
    assert (t["distance_to_centroid"] >= 0).all()


def test_every_output_names_the_clustering_space(auto_result):
    assert auto_result.diagnostics["cluster_space"] == "standard-scaled feat_* (12 d)"
    assert set(auto_result.table["cluster_space"]) == {"standard-scaled feat_* (12 d)"}


def test_distance_to_centroid_is_measured_in_the_clustering_space(auto_result):
    t, Z = auto_result.table, auto_result.features
    row = 7
    members = Z[t["cluster"] == t["cluster"][row]]
    assert t["distance_to_centroid"][row] == pytest.approx(np.linalg.norm(Z[row] - members.mean(axis=0)), rel=1e-5)


def test_summary_lists_representatives_closest_to_the_centre(auto_result):
    reps = auto_result.representatives
    first = reps[reps["cluster"] == 0]
    assert first["rank"].tolist() == [1, 2, 3, 4, 5]
    assert first["distance_to_centroid"].is_monotonic_increasing
    t = auto_result.table
    assert first["distance_to_centroid"].iloc[0] == t.loc[t["cluster"] == 0, "distance_to_centroid"].min()


def test_effect_sizes_point_at_the_morphology_that_differs(blobs, auto_result):
    t, y = auto_result.table, blobs[1]
    planted = int(pd.Series(t["cluster"][y == 0]).mode()[0])  # cluster holding the big-vesicle group
    eff = auto_result.effect_sizes
    top = eff[eff["cluster"] == planted].iloc[0]
    assert top["column"] == "morph_vesicle_cloud_volume_vox" and top["effect_size"] > 5
    row = auto_result.summary.set_index("cluster").loc[planted]
    assert row["top_morphology"].startswith("morph_vesicle_cloud_volume_vox (d=+")


def test_k_curves_cover_the_range_and_the_rule_is_recorded(auto_result):
    assert auto_result.k_curves["k"].tolist() == list(range(2, 13))
    assert "silhouette > Gaussian null" in auto_result.diagnostics["k_rule"]
    assert auto_result.diagnostics["cluster_structure"].startswith("cluster structure at k = 4")


def test_diagnostics_report_stability_and_bbox_effect(auto_result):
    d = auto_result.diagnostics
    assert d["stability"]["ari_min"] == 1.0
    assert abs(d["bbox_effect"]["batch_effect_score"]) < 0.2  # bboxes are assigned round-robin
    assert d["noise_label"] == -1


def test_fixed_k_is_used(blobs):
    r = run_clustering(blobs[0], ClusterSettings(k=3, **FAST))
    assert r.table["cluster"].nunique() == 3 and r.k_curves is None and r.diagnostics["k"] == 3


@pytest.mark.parametrize("method", ["hdbscan", "agglomerative", "dbscan"])
def test_other_methods_recover_separated_groups(method):
    df, y = blob_table(std=0.5)
    r = run_clustering(df, ClusterSettings(method=method, **FAST))
    clustered = r.table["cluster"] >= 0
    assert clustered.mean() > 0.8
    assert adjusted_rand_score(y[clustered], r.table["cluster"][clustered]) > 0.95


def test_density_methods_label_outliers_as_minus_one_not_999():
    df, _ = blob_table(std=0.5)
    outlier = df.iloc[[0]].copy()
    outlier[[c for c in df.columns if c.startswith("feat_")]] = 60.0
    outlier["Var1"] = "far_away"
    r = run_clustering(pd.concat([df, outlier], ignore_index=True), ClusterSettings(method="hdbscan", **FAST))
    far = r.table[r.table["Var1"] == "far_away"].iloc[0]
    assert far["cluster"] == -1 and np.isnan(far["distance_to_centroid"])
    assert 999 not in set(r.table["cluster"])


def test_map_columns_come_from_the_projection(blobs):
    r = run_clustering(blobs[0], ClusterSettings(k=4, projection="tsne", dims=3, tsne_perplexity=10, n_stability=0))
    assert r.projection_columns == ["proj_1", "proj_2", "proj_3"]
    assert r.diagnostics["map_knn_overlap"] > r.diagnostics["map_knn_overlap_random"]


def test_pca_option_clusters_in_the_reduced_space(blobs):
    r = run_clustering(blobs[0], ClusterSettings(k=4, pca_components=3, **FAST))  # fixed k: no sweep
    assert r.features.shape == (120, 3)
    assert r.diagnostics["cluster_space"].endswith("→ PCA 3")


def test_too_few_synapses_for_k_names_k():
    df, _ = blob_table(n=5, centers=2)
    with pytest.raises(ValueError, match=r"k=6 is too large for 5 synapses.*--k"):
        run_clustering(df, ClusterSettings(k=6, **FAST))


def test_a_single_synapse_is_refused_with_a_clear_error():
    df, _ = blob_table(n=5, centers=2)
    with pytest.raises(ValueError, match="cannot cluster 1 synapse: at least 3"):
        run_clustering(df.iloc[:1], ClusterSettings(**FAST))


def test_nan_feature_error_names_the_synapse_and_column():
    df, _ = blob_table(n=20, centers=2)
    df.loc[4, "feat_7"] = np.nan
    with pytest.raises(ValueError, match=r"row 4 \(bbox2, Var1=syn4\) in column\(s\) feat_7"):
        run_clustering(df, ClusterSettings(**FAST))


def test_nan_rows_can_be_dropped_and_are_recorded():
    df, _ = blob_table(n=20, centers=2)
    df.loc[4, "feat_7"] = np.nan
    r = run_clustering(df, ClusterSettings(k=2, nan_policy="drop", **FAST))  # fixed k: no sweep
    assert len(r.table) == 19 and "syn4" not in set(r.table["Var1"])
    assert r.diagnostics["preprocess"]["dropped_rows"] == [["bbox2", "syn4"]]


def test_missing_synapse_key_column_is_named():
    df, _ = blob_table(n=20, centers=2)
    with pytest.raises(ValueError, match="lacks column.*Var1"):
        run_clustering(df.drop(columns="Var1"), ClusterSettings(**FAST))


@pytest.mark.parametrize("field, value", [("method", "spectral"), ("k", 1), ("k", "many"), ("k_range", (1, 5)),
                                          ("projection", "pca"), ("scaler", "minmax"), ("feature_set", "deep")])
def test_bad_settings_name_the_parameter(field, value):
    with pytest.raises(ValueError, match=re.escape(f"{field}={value!r} must be")):
        ClusterSettings(**{field: value})


def test_settings_are_hashable_cache_keys():
    a, b = ClusterSettings(k=4), ClusterSettings(k=4)
    assert hash(a) == hash(b) and a.key() == b.key() != ClusterSettings(k=5).key()


def test_write_result_puts_side_files_next_to_the_table(tmp_path, auto_result):
    paths = write_result(auto_result, tmp_path / "run" / "clusters.csv")
    assert set(paths) == {"table", "k_curves", "diagnostics", "summary", "representatives", "effect_sizes",
                          "bbox_composition"}
    back = pd.read_csv(paths["table"])
    assert back["cluster"].tolist() == auto_result.table["cluster"].tolist()
    assert pd.read_csv(paths["k_curves"])["k"].tolist() == list(range(2, 13))


def test_auto_k_on_one_gaussian_cloud_puts_every_synapse_in_one_cluster_and_says_so():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(40, 16)), columns=[f"feat_{i + 1}" for i in range(16)])
    df.insert(0, "Var1", [f"syn{i}" for i in range(40)])
    df.insert(0, "bbox_name", "bbox1")
    r = run_clustering(df, ClusterSettings(k_range=(2, 6), **FAST))
    d = r.diagnostics
    assert d["k"] == 1 and d["n_clusters"] == 1 and set(r.table["cluster"]) == {0}
    assert d["cluster_structure"].startswith("no clear cluster structure")
    assert d["k_decision"]["structure"] is False and d["stability"] is None
    assert r.k_curves["k"].tolist() == [2, 3, 4, 5, 6]


def test_diagnostics_warn_when_clusters_follow_the_presynaptic_side(blobs):
    df, y = blobs
    df = df.assign(presynaptic_side=np.where(y % 2 == 0, 1, 2))
    d = run_clustering(df, ClusterSettings(k=4, **FAST)).diagnostics
    assert d["alignment"]["aligned"] == ["presynaptic_side"]
    assert any("presynaptic_side" in w for w in d["warnings"])
