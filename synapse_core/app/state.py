"""Plain-data helpers behind the dashboard: selections, samples, neighbours, shareable query strings.

Synapse ids and row lookup are :mod:`synapse_core.data.synapse_keys`.

No Streamlit here: these functions take and return strings, lists and DataFrames, so they
are tested without a server and a script can use them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from synapse_core.app.annotations import row_positions
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


#: Rows of the clustering space converted to float64 at a time by :func:`nearest_neighbours`.
_NEIGHBOUR_BLOCK = 65_536


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
    space = np.asarray(space)
    if space.ndim != 2 or len(space) != len(table):
        raise ValueError(f"the clustering space has shape {space.shape}; it must have one row per table row "
                         f"({len(table)}): pass ClusterResult.features with ClusterResult.table")
    hits = row_positions(table, [sid])  # the table's ids are built once per table
    if len(hits) == 0:
        raise UnknownSynapseError(f"synapse {sid.replace(ID_SEP, '/')} is not in the clustered table")
    i = int(hits[0])
    # float64 distances, computed in blocks of rows (no float64 copy of a 10⁶-row space); each row's
    # value is the same as np.linalg.norm over the whole array
    here = space[i].astype(np.float64)
    d = np.empty(len(space))
    for start in range(0, len(space), _NEIGHBOUR_BLOCK):
        block = space[start:start + _NEIGHBOUR_BLOCK].astype(np.float64)
        d[start:start + len(block)] = np.linalg.norm(block - here, axis=1)
    d[i] = np.inf
    k = min(n, len(d) - 1)
    if k <= 0:
        order = np.zeros(0, dtype=np.intp)
    else:
        # the k nearest in the order of a stable sort of every distance (ties: table order), without sorting 10⁶
        candidates = np.flatnonzero(d <= np.partition(d, k - 1)[k - 1])
        order = candidates[np.argsort(d[candidates], kind="stable")][:k]
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


# --- map events ---------------------------------------------------------------------------

def map_event(selection: Mapping | None) -> tuple[str, list[str]]:
    """What a map event (``st.plotly_chart(on_select=...)``) was, and the synapse ids it names.

    Returns ``("box", ids)`` for a box or lasso drag, ``("click", [id])`` for a click on one point,
    ``("none", [])`` for an emptied selection (a double click, or a click beside the points).
    """
    ids = ids_from_plotly_selection(selection)
    inner = selection.get("selection", selection) if isinstance(selection, Mapping) else {}
    dragged = bool(inner.get("box")) or bool(inner.get("lasso"))
    if dragged:
        return "box", ids
    if len(ids) == 1:
        return "click", ids
    return ("box", ids) if ids else ("none", [])


def add_to_selection(current: Iterable[str], new: Iterable[str]) -> list[str]:
    """``current`` followed by the ids of ``new`` not in it (order kept, no duplicates)."""
    out = list(dict.fromkeys(current))
    seen = set(out)
    out += [s for s in dict.fromkeys(new) if s not in seen]
    return out


# --- measurements in words ----------------------------------------------------------------

#: Unit suffixes of morphology columns and how they are written.
_UNITS = {"_um3": "µm³", "_um2": "µm²", "_nm3": "nm³", "_nm2": "nm²", "_nm": "nm", "_um": "µm"}
#: Structure names in the words a biologist uses.
_WORDS = {"pre": "presynaptic neuron", "post": "postsynaptic neuron", "mito": "mitochondria",
          "vesicle_cloud": "vesicle cloud", "cleft": "cleft"}


def plain_measurements(row: Mapping) -> list[tuple[str, str]]:
    """The ``morph_*`` measurements of one synapse as ``(what, value with unit)`` in plain words.

    ``morph_has_<s>`` flags are folded into the sentence of their structure: an absent structure
    reads "not in the crop" (its measurements are NaN, never zero). Intensities are the crop's
    normalised gray values (0–1).

    >>> plain_measurements({"morph_cleft_area_um2": 0.0412, "morph_has_mito": 0.0, "morph_mito_volume_um3": float("nan")})
    [('cleft area', '0.0412 µm²'), ('mitochondria volume', 'not in the crop')]
    """
    absent = {str(k).removeprefix("morph_has_") for k, v in row.items()
              if str(k).startswith("morph_has_") and v is not None and not _isnan(v) and float(v) == 0}
    out = []
    for key, value in row.items():
        key = str(key)
        if not key.startswith("morph_") or key.startswith("morph_has_"):
            continue
        name, unit = key.removeprefix("morph_"), ""
        for suffix, text in _UNITS.items():
            if name.endswith(suffix):
                name, unit = name.removesuffix(suffix), text
                break
        structure = next((s for s in sorted(_WORDS, key=len, reverse=True) if name.startswith(s + "_")), None)
        words = name
        if structure:
            words = _WORDS[structure] + " " + name.removeprefix(structure + "_")
        words = words.replace("_to_", " to ").replace("_", " ")
        if "intensity" in words:
            unit = "(normalised gray, 0–1)"
        if value is None or _isnan(value):
            text = "not in the crop" if structure and structure in absent else "not measured"
        else:
            text = f"{float(value):.3g} {unit}".strip()
        out.append((words, text))
    return out


def _isnan(value) -> bool:
    try:
        return bool(np.isnan(float(value)))
    except (TypeError, ValueError):
        return False


# --- links that reproduce a view -------------------------------------------------------------

def save_view(cache_dir, config_text: str) -> str:
    """Store a run configuration (:func:`synapse_core.app.run_config.dumps` text) under its hash.

    Returns the key that a link carries (``?view=<key>``); the JSON file is
    ``cache_dir/views/<key>.json``, written atomically, shared by every user of the server.
    """
    import hashlib
    from pathlib import Path

    from synapse_core.data.atomic import write_text_atomically

    key = hashlib.blake2b(config_text.encode("utf-8"), digest_size=8).hexdigest()
    path = Path(cache_dir) / "views" / f"{key}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, config_text)
    return key


def load_view(cache_dir, key: str) -> str | None:
    """The run configuration text stored by :func:`save_view` under ``key`` (None when unknown)."""
    from pathlib import Path

    if not isinstance(key, str) or len(key) != 16 or any(c not in "0123456789abcdef" for c in key):
        return None  # a link's value: never a path
    path = Path(cache_dir) / "views" / f"{key}.json"
    return path.read_text(encoding="utf-8") if path.exists() else None
