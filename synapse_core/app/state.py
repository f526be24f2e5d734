"""Plain-data helpers behind the dashboard: selections, samples, neighbours, shareable query strings.

Synapse ids and row lookup are :mod:`synapse_core.data.synapse_keys`.

No Streamlit here: these functions take and return strings, lists and DataFrames, so they
are tested without a server and a script can use them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from synapse_core.data.synapse_keys import ID_SEP, UnknownSynapseError, synapse_ids


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


def nearest_neighbours(table: pd.DataFrame, space: np.ndarray, sid: str, n: int) -> pd.DataFrame:
    """The ``n`` synapses nearest to ``sid`` in the clustering space (Euclidean).

    Parameters
    ----------
    table : DataFrame
        Clustered rows with ``bbox_name`` and ``Var1`` (``ClusterResult.table``).
    space : ndarray, shape (len(table), d)
        The clustering space, row-aligned with ``table`` (``ClusterResult.features``: the scaled,
        weighted and optionally PCA-reduced features the clusters were computed in).
    sid : str
        Synapse id ``"bbox|Var1"``.
    n : int
        Number of neighbours (fewer when the table is smaller).

    Returns
    -------
    DataFrame
        The neighbours' rows of ``table``, nearest first (``sid`` excluded), with a first column
        ``clustering_space_distance``.
    """
    space = np.asarray(space, dtype=np.float64)
    if space.ndim != 2 or len(space) != len(table):
        raise ValueError(f"the clustering space has shape {space.shape}; it must have one row per table row "
                         f"({len(table)}): pass ClusterResult.features with ClusterResult.table")
    ids = synapse_ids(table).to_numpy()
    hits = np.flatnonzero(ids == sid)
    if len(hits) == 0:
        raise UnknownSynapseError(f"synapse {sid.replace(ID_SEP, '/')} is not in the clustered table")
    i = int(hits[0])
    d = np.linalg.norm(space - space[i], axis=1)
    d[i] = np.inf
    order = np.argsort(d, kind="stable")[: min(n, len(d) - 1)]
    out = table.iloc[order].copy()
    out.insert(0, "clustering_space_distance", d[order])
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
