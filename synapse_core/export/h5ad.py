"""AnnData ``.h5ad`` files (scanpy, cellxgene) written with h5py, following the AnnData on-disk format.

The file holds ``obs`` (one row per synapse: the synapse table, clusters, annotations and
measurements), ``var`` (one row per feature), ``X`` (synapses × features, float32), ``obsm``
(per-synapse matrices such as the 2-D map ``X_umap``) and ``uns`` (the run's settings as JSON).
Written with h5py following the AnnData on-disk specification (encoding-type/-version attributes,
https://anndata.readthedocs.io/en/latest/fileformat-prose.html) because ``anndata`` itself pins
``pandas < 3``; ``anndata.read_h5ad`` reads the result (``tests/test_export.py``).

Text columns with few distinct values or missing values become categoricals (missing = code −1,
never an invented category); numbers stay numbers with NaN for absent values.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

#: Prefixes of the feature columns of an extraction table (network features, morphology in nm).
FEATURE_PREFIXES = ("feat_", "morph_")


def _attrs(node, encoding_type: str, version: str = "0.2.0") -> None:
    node.attrs["encoding-type"] = encoding_type
    node.attrs["encoding-version"] = version


def _strings(group, name: str, values) -> None:
    import h5py

    data = np.array([str(v) for v in values], dtype=object)
    ds = group.create_dataset(name, data=data, dtype=h5py.string_dtype("utf-8"))
    _attrs(ds, "string-array")


def _array(group, name: str, values: np.ndarray) -> None:
    ds = group.create_dataset(name, data=values)
    _attrs(ds, "array")


def _categorical(group, name: str, column: pd.Series) -> None:
    cat = column.astype("category")
    sub = group.create_group(name)
    _attrs(sub, "categorical")
    sub.attrs["ordered"] = bool(cat.cat.ordered)
    categories = cat.cat.categories
    if pd.api.types.is_numeric_dtype(categories):
        _array(sub, "categories", np.asarray(categories))
    else:
        _strings(sub, "categories", categories)
    _array(sub, "codes", cat.cat.codes.to_numpy())


def _column(group, name: str, column: pd.Series) -> None:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return _categorical(group, name, column)
    if pd.api.types.is_bool_dtype(column) and not column.isna().any():
        return _array(group, name, column.to_numpy(bool))
    if pd.api.types.is_numeric_dtype(column):
        if column.isna().any() and pd.api.types.is_integer_dtype(column):
            return _array(group, name, column.to_numpy(np.float64, na_value=np.nan))
        return _array(group, name, column.to_numpy())
    if column.isna().any() or column.nunique() <= max(1, len(column) // 2):
        return _categorical(group, name, column.astype(object).where(column.notna(), None).astype("category"))
    return _strings(group, name, column)


def _dataframe(parent, key: str, df: pd.DataFrame, index) -> None:
    import h5py

    group = parent.create_group(key)
    _attrs(group, "dataframe")
    group.attrs["_index"] = "_index"
    group.attrs["column-order"] = np.array([str(c) for c in df.columns], dtype=h5py.string_dtype("utf-8"))
    _strings(group, "_index", index)
    for c in df.columns:
        _column(group, str(c), df[c].reset_index(drop=True))


def _dict(parent, key: str, arrays: dict | None = None) -> None:
    group = parent.create_group(key)
    _attrs(group, "dict", "0.1.0")
    for name, value in (arrays or {}).items():
        _array(group, name, np.asarray(value))


def write_h5ad(path: str | os.PathLike, obs: pd.DataFrame, X: np.ndarray, var_names, obsm: dict | None = None,
               uns: dict | None = None, obs_names=None) -> str:
    """Write an AnnData ``.h5ad`` file.

    Parameters
    ----------
    path : file name ending in ``.h5ad``
    obs : DataFrame, one row per synapse
    X : (n_obs, n_vars) array, stored as float32
    var_names : n_vars feature names
    obsm : dict name → (n_obs, k) array, optional (e.g. ``{"X_umap": map_xy}``)
    uns : dict of JSON-serialisable values, optional; stored as JSON text under ``uns/<key>``
    obs_names : n_obs unique row names; default ``"<bbox_name>/<Var1>"`` when those columns exist,
        else the row number

    Returns
    -------
    The path written (written to a temporary name and moved, so a reader never sees half a file).
    """
    import h5py

    path = Path(path)
    X = np.asarray(X, dtype=np.float32)
    var_names = [str(v) for v in var_names]
    if X.ndim != 2 or X.shape != (len(obs), len(var_names)):
        raise ValueError(f"X has shape {X.shape}; expected ({len(obs)} synapses, {len(var_names)} features)")
    if obs_names is None:
        if {"bbox_name", "Var1"} <= set(obs.columns):
            obs_names = (obs["bbox_name"].astype(str) + "/" + obs["Var1"].astype(str)).tolist()
        else:
            obs_names = [str(i) for i in range(len(obs))]
    if len(set(obs_names)) != len(obs_names):
        raise ValueError("synapse names (bbox_name/Var1) are not unique; AnnData needs one name per row")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        _array(f, "X", X)
        _dataframe(f, "obs", obs, obs_names)
        _dataframe(f, "var", pd.DataFrame(index=range(len(var_names))), var_names)
        _dict(f, "obsm", obsm)
        for key in ("varm", "obsp", "varp", "layers"):
            _dict(f, key)
        uns_group = f.create_group("uns")
        _attrs(uns_group, "dict", "0.1.0")
        for key, value in (uns or {}).items():
            ds = uns_group.create_dataset(key, data=json.dumps(value, default=str),
                                          dtype=h5py.string_dtype("utf-8"))
            _attrs(ds, "string")
    tmp.replace(path)
    return str(path)


def _feature_columns(df: pd.DataFrame) -> list[str]:
    feat = [c for c in df.columns if str(c).startswith("feat_")]
    return feat or [c for c in df.columns if str(c).startswith("morph_") and pd.api.types.is_numeric_dtype(df[c])]


def features_to_h5ad(features: pd.DataFrame, path: str | os.PathLike, uns: dict | None = None) -> str:
    """An extraction table as ``.h5ad``: ``X`` = the network features ``feat_*`` (else the numeric
    ``morph_*`` measurements), ``obs`` = every other column (synapse table, morphology in nm, run)."""
    cols = _feature_columns(features)
    if not cols:
        raise ValueError("the table has no feat_* or morph_* columns to store as X")
    return write_h5ad(path, features.drop(columns=cols), features[cols].to_numpy(np.float32), cols, uns=uns)


def clusters_to_h5ad(result, path: str | os.PathLike) -> str:
    """A clustering run (:class:`~synapse_core.cluster.run.ClusterResult`) as ``.h5ad``.

    ``X`` = the clustering space (``result.features``; var names are the preprocessed columns, or
    ``pc_1..`` after PCA); ``obs`` = the clustered table without the raw ``feat_*`` columns, with
    ``cluster`` as a categorical of text labels (``"-1"`` = noise); ``obsm["X_<projection>"]`` =
    the map (``proj_*``) and ``obsm["feat"]`` = the raw ``feat_*`` values; ``uns`` = diagnostics.
    """
    table = result.table.reset_index(drop=True)
    X = np.asarray(result.features, np.float32)
    record = result.preprocess
    names = list(record.columns) if X.shape[1] == len(record.columns) else [f"pc_{i + 1}" for i in range(X.shape[1])]
    proj = [c for c in table.columns if str(c).startswith("proj_")]
    feat = [c for c in table.columns if str(c).startswith("feat_")]
    obsm = {}
    if proj:
        method = str(getattr(result.settings, "projection", "map") or "map").lower()
        obsm[f"X_{method}"] = table[proj].to_numpy(np.float64)
    if feat:
        obsm["feat"] = table[feat].to_numpy(np.float32)
    obs = table.drop(columns=proj + feat)
    obs["cluster"] = pd.Categorical(obs["cluster"].astype(int).astype(str))
    return write_h5ad(path, obs, X, names, obsm=obsm, uns={"synapse_core_diagnostics": result.diagnostics})
