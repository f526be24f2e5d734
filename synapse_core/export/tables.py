"""Feature and cluster tables as CSV (small runs) or Parquet (any size), chosen by the file suffix.

``.h5ad`` is an AnnData file (:mod:`synapse_core.export.h5ad`); the commands that write tables
(``extract``/``cluster --out``) call :func:`check_table_suffix` before any work.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

TABLE_SUFFIXES = (".csv", ".parquet", ".h5ad")


def check_table_suffix(path: str | os.PathLike, flag: str = "--out", suffixes=TABLE_SUFFIXES) -> str:
    """The suffix of ``path`` (``.csv``, ``.parquet`` or ``.h5ad``); ``ValueError`` naming ``flag`` otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in suffixes:
        raise ValueError(f"{flag} {path}: give a file name ending in {', '.join(suffixes)} "
                         f"(CSV for small runs, Parquet for large ones, .h5ad for scanpy/cellxgene)")
    return suffix


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> str:
    """Write ``df`` as CSV or Parquet by the suffix of ``path`` (written to a temporary name, then moved).

    Parquet keeps column types (ids stay text, integers stay integers) and is read back column by
    column; CSV is what spreadsheets open. Returns the path written.
    """
    path = Path(path)
    suffix = check_table_suffix(path, "table file", (".csv", ".parquet"))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    else:
        df.to_csv(tmp, index=False)
    tmp.replace(path)
    return str(path)


def read_table(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a feature/cluster table written by :func:`write_table` (``.csv`` or ``.parquet``)."""
    path = Path(path)
    suffix = check_table_suffix(path, "table file", (".csv", ".parquet"))
    if suffix == ".parquet":
        return pd.read_parquet(path, columns=columns)
    return pd.read_csv(path, usecols=columns)


def write_features(features: pd.DataFrame, path: str | os.PathLike) -> str:
    """An extraction table as ``.csv``, ``.parquet`` or ``.h5ad`` (:func:`~synapse_core.export.h5ad.features_to_h5ad`)."""
    if check_table_suffix(path) == ".h5ad":
        from synapse_core.export.h5ad import features_to_h5ad

        return features_to_h5ad(features, path)
    return write_table(features, path)


def write_clusters(result, path: str | os.PathLike) -> str:
    """A clustering run's table as ``.csv``, ``.parquet`` or ``.h5ad`` (:func:`~synapse_core.export.h5ad.clusters_to_h5ad`)."""
    if check_table_suffix(path) == ".h5ad":
        from synapse_core.export.h5ad import clusters_to_h5ad

        return clusters_to_h5ad(result, path)
    return write_table(result.table, path)


def read_features(path: str | os.PathLike) -> pd.DataFrame:
    """A feature table from ``extract`` (``.csv`` or ``.parquet``); ``ValueError`` naming the file otherwise."""
    return read_table(path) if Path(path).suffix.lower() in (".csv", ".parquet") else _refuse(path)


def _refuse(path) -> pd.DataFrame:
    raise ValueError(f"--features {path}: give the .csv or .parquet table written by extract (an .h5ad file is "
                     f"for scanpy/cellxgene)")
