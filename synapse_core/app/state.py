"""Plain-data helpers behind the dashboard: synapse ids, selections, shareable query strings.

No Streamlit here: these functions take and return strings, lists and DataFrames, so they
are tested without a server and a script can use them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

#: Separator of bbox name and Var1 in a synapse id ("bbox1|syn_003"); never in a bbox name.
ID_SEP = "|"


def synapse_id(bbox_name: str, var1) -> str:
    """The id of one synapse, ``"<bbox_name>|<Var1>"``: stable across runs and tables."""
    return f"{bbox_name}{ID_SEP}{var1}"


def synapse_ids(table: pd.DataFrame) -> pd.Series:
    """Ids of every row of a table with ``bbox_name`` and ``Var1`` columns (same index)."""
    return table["bbox_name"].astype(str) + ID_SEP + table["Var1"].astype(str)


def split_synapse_id(sid: str) -> tuple[str, str]:
    """``(bbox_name, Var1)`` of an id; Var1 comes back as a string."""
    if ID_SEP not in sid:
        raise ValueError(f"synapse id {sid!r} must look like 'bbox1{ID_SEP}Var1'")
    bbox, var1 = sid.split(ID_SEP, 1)
    return bbox, var1


def rows_for_ids(table: pd.DataFrame, ids: Iterable[str]) -> pd.DataFrame:
    """The rows of ``table`` whose synapse id is in ``ids``, in table order."""
    wanted = set(ids)
    return table[synapse_ids(table).isin(wanted)]


def ids_from_plotly_selection(selection: Mapping | None) -> list[str]:
    """Synapse ids of the points in a Plotly selection event (``st.plotly_chart(on_select=...)``).

    Each point's ``customdata`` carries its synapse id as the first element; point indices are
    per trace and are therefore not used.
    """
    if not selection:
        return []
    points = selection.get("selection", selection).get("points", []) if isinstance(selection, Mapping) else []
    ids: list[str] = []
    for point in points:
        custom = point.get("customdata") if isinstance(point, Mapping) else None
        if custom is None:
            continue
        sid = custom[0] if isinstance(custom, (list, tuple)) else custom
        if isinstance(sid, str) and sid not in ids:
            ids.append(sid)
    return ids


def sample_per_cluster(clusters: pd.DataFrame, n: int, seed: int, cluster_col: str = "cluster") -> dict:
    """Up to ``n`` random synapse ids per cluster, reproducible for a given ``seed``.

    Returns ``{cluster: [ids]}``; rows are drawn without replacement and listed in table order.
    """
    rng = np.random.default_rng(seed)
    ids = synapse_ids(clusters)
    out: dict = {}
    for label in sorted(clusters[cluster_col].unique()):
        members = np.flatnonzero(clusters[cluster_col].to_numpy() == label)
        take = np.sort(rng.choice(members, size=min(n, len(members)), replace=False))
        out[label] = ids.iloc[take].tolist()
    return out


def representatives(clusters: pd.DataFrame, n: int, cluster_col: str = "cluster") -> dict:
    """The ``n`` synapse ids closest to each cluster's centroid (``distance_to_centroid``)."""
    ids = synapse_ids(clusters)
    out: dict = {}
    for label in sorted(clusters[cluster_col].unique()):
        part = clusters[clusters[cluster_col] == label]
        order = part["distance_to_centroid"].sort_values(kind="stable").index[:n]
        out[label] = ids.loc[order].tolist()
    return out


def nearest_neighbours(features: pd.DataFrame, sid: str, n: int, columns: list[str]) -> pd.DataFrame:
    """The ``n`` synapses nearest to ``sid`` in feature space (Euclidean on standardised ``columns``).

    Returns the neighbours' rows with a ``feature_distance`` column, nearest first (``sid`` excluded).
    """
    ids = synapse_ids(features)
    if sid not in set(ids):
        raise ValueError(f"synapse {sid!r} is not in the feature table")
    x = features[columns].to_numpy(np.float64)
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    i = int(np.flatnonzero(ids.to_numpy() == sid)[0])
    d = np.linalg.norm(x - x[i], axis=1)
    d[i] = np.inf
    order = np.argsort(d, kind="stable")[: min(n, len(d) - 1)]
    out = features.iloc[order].copy()
    out.insert(0, "feature_distance", d[order])
    return out


# --- shareable URL query ------------------------------------------------------------------

def encode_list(values: Iterable) -> str:
    """A list as one query value: comma-separated."""
    return ",".join(str(v) for v in values)


def decode_list(text: str | None, allowed: Iterable[str]) -> list[str]:
    """Comma-separated query value → items that are in ``allowed`` (others dropped, order kept)."""
    if not text:
        return []
    allowed_set = set(allowed)
    return [item for item in text.split(",") if item in allowed_set]


def decode_number(text: str | None, lo: float, hi: float, default, kind=float):
    """A query value as ``kind`` within [lo, hi]; anything else gives ``default``."""
    try:
        value = kind(text)
    except (TypeError, ValueError):
        return default
    return value if lo <= value <= hi else default


def decode_choice(text: str | None, allowed: Iterable, default):
    """A query value if it is one of ``allowed`` (compared as strings), else ``default``."""
    for option in allowed:
        if str(option) == text:
            return option
    return default
