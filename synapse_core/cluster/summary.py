"""Per-cluster description for the report and the gallery.

* size and share of each cluster;
* representative synapses: the members closest to the cluster centre in the clustering space;
* which morphology measurements (``morph_*`` columns) set the cluster apart: Cohen's d of the
  cluster against all other clustered synapses, d = (mean_in − mean_out) / pooled SD
  (|d| ≈ 0.2 small, 0.5 medium, ≥ 0.8 large). Noise (label −1) is described but excluded from "rest".
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def distance_to_centroid(Z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Euclidean distance of every synapse to the mean of its cluster in the clustering space.

    Returns
    -------
    distances : ndarray, float64, shape (n_synapses,)
        NaN for noise (label −1).
    centroids : dict cluster → ndarray (d,)
    """
    dist = np.full(len(Z), np.nan)
    centroids = {}
    for c in np.unique(labels):
        if c < 0:
            continue
        m = labels == c
        centroids[int(c)] = Z[m].mean(axis=0)
        dist[m] = np.linalg.norm(Z[m] - centroids[int(c)], axis=1)
    return dist, centroids


def representatives(table: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The ``n`` synapses closest to each cluster centre.

    Parameters
    ----------
    table : DataFrame
        Clustered rows with ``bbox_name``, ``Var1``, ``cluster``, ``distance_to_centroid``.

    Returns
    -------
    DataFrame with columns ``cluster``, ``rank`` (1 = closest), ``bbox_name``, ``Var1``, ``distance_to_centroid``.
    """
    rows = table[table["cluster"] >= 0].sort_values(["cluster", "distance_to_centroid"], kind="stable")
    top = rows.groupby("cluster", sort=True).head(n).copy()
    top["rank"] = top.groupby("cluster").cumcount() + 1
    return top[["cluster", "rank", "bbox_name", "Var1", "distance_to_centroid"]].reset_index(drop=True)


def morphology_effect_sizes(table: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Cohen's d of every ``morph_*`` column, each cluster against the other clustered synapses.

    NaNs (a structure absent from the crop) are left out of both means. Columns that are constant
    over the clustered synapses within floating-point noise (peak-to-peak ≤ 1e-9 × their largest
    magnitude, e.g. ``morph_has_pre`` when every crop has a presynaptic neuron) are skipped: their
    d would be 0/0 or rounding noise blown up. The skipped names are in ``result.attrs["constant_columns"]``.

    Parameters
    ----------
    table : DataFrame
        Rows with ``cluster`` and morphology columns.
    columns : list of str, optional
        Columns to describe (default: every numeric ``morph_*`` column).

    Returns
    -------
    DataFrame with columns ``cluster``, ``column``, ``cluster_mean``, ``rest_mean``, ``effect_size``,
    sorted by cluster then |effect_size| descending; empty when there are no morphology columns.
    """
    if columns is None:
        columns = [c for c in table.columns if str(c).startswith("morph_") and pd.api.types.is_numeric_dtype(table[c])]
    out_cols = ["cluster", "column", "cluster_mean", "rest_mean", "effect_size"]
    clustered = table[table["cluster"] >= 0]
    if not columns or clustered["cluster"].nunique() < 2:
        return pd.DataFrame(columns=out_cols)
    constant = [col for col in columns if _is_constant(clustered[col])]
    columns = [col for col in columns if col not in constant]
    rows = []
    for c in sorted(clustered["cluster"].unique()):
        inside = clustered["cluster"] == c
        for col in columns:
            a = clustered.loc[inside, col].astype(float).dropna().to_numpy()
            b = clustered.loc[~inside, col].astype(float).dropna().to_numpy()
            if len(a) == 0 or len(b) == 0:
                continue
            va = a.var(ddof=1) if len(a) > 1 else 0.0
            vb = b.var(ddof=1) if len(b) > 1 else 0.0
            dof = max(len(a) + len(b) - 2, 1)
            pooled = np.sqrt(((len(a) - 1) * va + (len(b) - 1) * vb) / dof)
            diff = a.mean() - b.mean()
            d = diff / pooled if pooled > 0 else (0.0 if diff == 0 else np.sign(diff) * np.inf)
            rows.append({"cluster": int(c), "column": col, "cluster_mean": float(a.mean()),
                         "rest_mean": float(b.mean()), "effect_size": float(d)})
    df = pd.DataFrame(rows, columns=out_cols)
    if not df.empty:
        df["_abs"] = df["effect_size"].abs()
        df = df.sort_values(["cluster", "_abs"], ascending=[True, False], kind="stable").drop(columns="_abs")
        df = df.reset_index(drop=True)
    df.attrs["constant_columns"] = constant
    return df


def _is_constant(values: pd.Series, rtol: float = 1e-9) -> bool:
    """True when the finite values differ by at most ``rtol`` × their largest magnitude (or none are finite)."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return True
    return float(v.max() - v.min()) <= rtol * float(np.abs(v).max())


def summarise_clusters(table: pd.DataFrame, n_representatives: int = 5, n_top_morph: int = 3) -> pd.DataFrame:
    """One row per cluster: size, share, representatives and the most distinctive morphology.

    Parameters
    ----------
    table : DataFrame
        Clustered rows (``bbox_name``, ``Var1``, ``cluster``, ``distance_to_centroid``, ``morph_*``).

    Returns
    -------
    DataFrame with columns ``cluster``, ``size``, ``fraction``, ``n_bboxes``, ``representatives``
    (``"bbox:Var1; ..."`` closest first), ``top_morphology`` (``"morph_x (d=+1.2); ..."``).
    """
    reps = representatives(table, n_representatives)
    effects = morphology_effect_sizes(table)
    n = len(table)
    rows = []
    for c, group in table.groupby("cluster", sort=True):
        r = reps[reps["cluster"] == c]
        e = effects[effects["cluster"] == c].head(n_top_morph) if not effects.empty else effects
        rows.append({
            "cluster": int(c),
            "size": int(len(group)),
            "fraction": float(len(group) / n),
            "n_bboxes": int(group["bbox_name"].nunique()) if "bbox_name" in group else None,
            "representatives": "; ".join(f"{b}:{v}" for b, v in zip(r["bbox_name"], r["Var1"])),
            "top_morphology": "; ".join(f"{col} (d={d:+.2f})" for col, d in zip(e["column"], e["effect_size"])),
        })
    return pd.DataFrame(rows)
