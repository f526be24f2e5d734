"""Feature matrix → standardised (optionally PCA-reduced) matrix: one policy for every later stage.

The original tool clustered raw features while plotting standardised ones (notes §7, §14.2).
Here every consumer (projection, clustering, k selection, diagnostics) receives the same
matrix, produced by :func:`preprocess_features`, and the policy is recorded in a
:class:`PreprocessRecord` that the run writes out.

Feature columns of the extraction table are ``feat_1..feat_N`` (deep features) and
``morph_*`` (morphology measurements). Rows are synapses, keyed by (``bbox_name``, ``Var1``).

NaN policy, in two steps (:func:`feature_matrix`):

1. **Absent structures, always.** A morphology value of a structure that is not in the crop (the
   distance to a mitochondrion when there is none; see :mod:`synapse_core.features.morphology`) is
   NaN by design, and its ``morph_has_<structure>`` column is 0. Such a NaN is replaced by the
   column's median over the synapses that have the structure, so it sits in the middle of that
   column and the ``morph_has_*`` column (a feature too) carries the absence. A column whose
   structure is absent from every synapse becomes constant 0 (it then adds nothing after scaling).
   Counts per column go to :attr:`PreprocessRecord.absent_structure_imputed`. This happens under
   every ``nan_policy``: a synapse without a mitochondrion is normal data, not an error.
2. **Any other NaN/inf** (a broken value, or a table without ``morph_has_*`` columns) follows
   ``nan_policy``: ``"error"`` names the row and column, ``"drop"`` skips the row, ``"impute"``
   puts the column median (recorded in :attr:`PreprocessRecord.imputed_values`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from synapse_core.cluster.settings import FEATURE_SETS, NAN_POLICIES, SCALERS
from synapse_core.features.morphology import absence_indicators

_FEAT = re.compile(r"^feat_\d+$")


@dataclass(frozen=True)
class PreprocessRecord:
    """What was done to the features; written with every clustering run.

    Attributes
    ----------
    feature_set : str
        ``"feat"``, ``"morph"`` or ``"both"`` (after resolving ``"auto"``).
    columns : tuple of str
        Feature columns used, in matrix column order.
    scaler : str
        ``"standard"`` (zero mean, unit variance per column), ``"robust"`` (median, IQR) or ``"none"``.
    pca_components : int or None
        Number of PCA components kept (None: no PCA).
    pca_explained_variance : float or None
        Fraction of the scaled variance the kept components explain.
    n_rows_in, n_rows_used : int
        Rows given and rows kept (rows with NaN are dropped only with ``nan_policy="drop"``).
    dropped_rows : tuple of (str, object)
        (``bbox_name``, ``Var1``) of dropped rows.
    imputed_values : tuple of (str, int)
        (column, number of values replaced by the column median) with ``nan_policy="impute"``.
    space : str
        Human-readable name of the output space, e.g. ``"standard-scaled feat_* (192 d) → PCA 50"``.
    """

    feature_set: str
    columns: tuple[str, ...]
    scaler: str
    pca_components: int | None
    pca_explained_variance: float | None
    n_rows_in: int
    n_rows_used: int
    dropped_rows: tuple[tuple[str, object], ...]
    imputed_values: tuple[tuple[str, int], ...]
    space: str
    #: (column, number of NaNs of an absent structure replaced by the median over synapses that have
    #: it; the whole column when none has it: then 0). Done under every ``nan_policy`` (module docstring).
    absent_structure_imputed: tuple[tuple[str, int], ...] = ()

    def as_dict(self) -> dict:
        d = asdict(self)
        d["columns"] = list(self.columns)
        d["dropped_rows"] = [list(r) for r in self.dropped_rows]
        d["imputed_values"] = dict(self.imputed_values)
        d["absent_structure_imputed"] = dict(self.absent_structure_imputed)
        return d


def feature_columns(df: pd.DataFrame, feature_set: str = "auto") -> list[str]:
    """Names of the feature columns of an extraction table.

    Parameters
    ----------
    df : DataFrame
        Extraction table (one row per synapse).
    feature_set : {"auto", "feat", "morph", "both"}
        ``"feat"``: deep features ``feat_<i>`` (sorted by i); ``"morph"``: ``morph_*`` columns
        (table order); ``"both"``: both; ``"auto"``: ``feat_*`` when present, else ``morph_*``.

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        Unknown ``feature_set`` or no matching columns.
    """
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"feature_set={feature_set!r} is not one of {', '.join(FEATURE_SETS)}")
    feat = sorted((c for c in df.columns if _FEAT.match(str(c))), key=lambda c: int(str(c)[5:]))
    morph = [c for c in df.columns if str(c).startswith("morph_")]
    feature_set = resolve_feature_set(df, feature_set)
    chosen = {"feat": feat, "morph": morph, "both": feat + morph}[feature_set]
    if not chosen:
        wanted = {"feat": "feat_1..feat_N", "morph": "morph_*", "both": "feat_* and morph_*"}[feature_set]
        raise ValueError(
            f"feature_set={feature_set!r}: the table has no {wanted} columns "
            f"(columns present: {', '.join(map(str, df.columns[:12]))}{' ...' if len(df.columns) > 12 else ''}); "
            "run `python -m synapse_core extract` first or choose another --feature-set"
        )
    return chosen


#: The extraction table's ``feature_set`` column (what the run extracted) → the columns to cluster on.
EXTRACTED_SETS = {"vgg3d": "feat", "morphology": "morph", "both": "both"}


def resolve_feature_set(df: pd.DataFrame, feature_set: str) -> str:
    """``"auto"`` → what the extraction run chose (its ``feature_set`` column: vgg3d → ``"feat"``,
    morphology → ``"morph"``, both → ``"both"``), else ``"feat"`` when ``feat_*`` columns exist,
    else ``"morph"``. Other values are returned unchanged."""
    if feature_set != "auto":
        return feature_set
    if "feature_set" in df.columns:
        extracted = set(df["feature_set"].dropna().astype(str))
        if len(extracted) == 1 and next(iter(extracted)) in EXTRACTED_SETS:
            return EXTRACTED_SETS[next(iter(extracted))]
    return "feat" if any(_FEAT.match(str(c)) for c in df.columns) else "morph"


def _row_name(df: pd.DataFrame, i: int) -> str:
    if "bbox_name" in df.columns and "Var1" in df.columns:
        return f"row {i} ({df['bbox_name'].iloc[i]}, Var1={df['Var1'].iloc[i]})"
    return f"row {i}"


def impute_absent_structures(df: pd.DataFrame, columns: list[str], X: np.ndarray) -> dict[str, int]:
    """Replace, in place, the NaNs of ``X`` that mean "structure absent" (step 1 of the NaN policy).

    A value of column ``c`` is such a NaN when one of ``c``'s ``morph_has_*`` columns
    (:func:`synapse_core.features.morphology.absence_indicators`) is 0 in that row. It becomes the
    median of ``c`` over the rows where every indicator is 1 and ``c`` is finite (0 when there is no
    such row). Columns without indicator columns in ``df`` are left alone.

    Returns
    -------
    dict column → number of values replaced.
    """
    done = {}
    for j, c in enumerate(columns):
        indicators = absence_indicators(c)
        if not indicators or not all(i in df.columns for i in indicators):
            continue
        present = np.ones(len(df), dtype=bool)
        for i in indicators:
            present &= pd.to_numeric(df[i], errors="coerce").to_numpy() == 1
        missing = ~present & ~np.isfinite(X[:, j])
        if missing.any():
            good = present & np.isfinite(X[:, j])
            X[missing, j] = np.median(X[good, j]) if good.any() else 0.0
            done[c] = int(missing.sum())
    return done


def feature_matrix(
    df: pd.DataFrame, feature_set: str = "auto", nan_policy: str = "error"
) -> tuple[np.ndarray, list[str], np.ndarray, dict[str, int], dict[str, int]]:
    """Read the feature matrix from an extraction table, checking it.

    Parameters
    ----------
    df : DataFrame
        One row per synapse.
    feature_set : {"auto", "feat", "morph", "both"}
        See :func:`feature_columns`.
    nan_policy : {"error", "drop", "impute"}
        What to do with rows that have NaN/inf features other than those of an absent structure
        (which are always replaced, see the module docstring): raise, naming row and column; drop
        them; or replace each missing value by its column's median.

    Returns
    -------
    X : ndarray, float64 (float32 above ``LARGE_ROWS`` rows), shape (n_rows_kept, n_features)
    columns : list of str
    kept : ndarray of bool, shape (len(df),)
        Which input rows are in ``X``.
    imputed : dict column → int
        Number of values replaced per column (``nan_policy="impute"`` only).
    absent : dict column → int
        Number of absent-structure NaNs replaced per column (:func:`impute_absent_structures`).

    Raises
    ------
    ValueError
        Non-numeric feature column, NaN/inf with ``nan_policy="error"``, or no rows.
    """
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy={nan_policy!r} is not one of {', '.join(NAN_POLICIES)}")
    if len(df) == 0:
        raise ValueError("the feature table has no rows (0 synapses); nothing to cluster")
    columns = feature_columns(df, feature_set)
    block = df[columns]
    for c in columns:
        if not pd.api.types.is_numeric_dtype(block[c]):
            bad = pd.to_numeric(block[c], errors="coerce").isna() & block[c].notna()
            i = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
            raise ValueError(
                f"feature column {c!r} is not numeric: {_row_name(df, i)} has {block[c].iloc[i]!r}; "
                "fix or remove that column"
            )
    from synapse_core.cluster.settings import LARGE_ROWS

    # written to below (pandas may hand out a read-only view); float32 on the large-data path (half the memory)
    X = block.to_numpy(dtype=np.float32 if len(df) > LARGE_ROWS else np.float64, copy=True)
    absent = impute_absent_structures(df, columns, X)
    finite = np.isfinite(X)
    kept = finite.all(axis=1)
    if not kept.all() and nan_policy == "error":
        bad_rows = np.flatnonzero(~kept)
        i = int(bad_rows[0])
        bad_cols = [columns[j] for j in np.flatnonzero(~finite[i])]
        raise ValueError(
            f"{len(bad_rows)} row(s) have NaN/inf features; first: {_row_name(df, i)} in column(s) "
            f"{', '.join(bad_cols[:5])}{' ...' if len(bad_cols) > 5 else ''}. "
            "(NaNs of a structure absent from the crop are imputed already; these are not.) "
            "Re-extract those synapses, choose another --feature-set, or pass --nan-policy drop (skip the rows) "
            "or --nan-policy impute (column median)"
        )
    imputed = {}
    if not kept.all() and nan_policy == "impute":
        for j in np.flatnonzero(~finite.all(axis=0)):
            good = finite[:, j]
            if not good.any():
                raise ValueError(f"feature column {columns[j]!r} has no finite value; cannot impute it "
                                 "(remove the column or choose another --feature-set)")
            X[~good, j] = np.median(X[good, j])
            imputed[columns[j]] = int((~good).sum())
        kept = np.ones(len(X), dtype=bool)
    if not kept.all():
        X = X[kept]
    if len(X) == 0:
        raise ValueError("every row has NaN/inf features; nothing to cluster (check the extraction output)")
    return X, columns, kept, imputed, absent


def preprocess_features(
    X: np.ndarray,
    scaler: str = "standard",
    pca_components: int | None = None,
    seed: int = 0,
    column_weights: np.ndarray | None = None,
    *,
    copy: bool = True,
) -> tuple[np.ndarray, float | None]:
    """Scale columns, then optionally project onto the first principal components.

    Parameters
    ----------
    X : ndarray, shape (n_synapses, n_features)
    scaler : {"standard", "robust", "none"}
        ``"standard"``: (x − mean) / std per column (constant columns become 0);
        ``"robust"``: (x − median) / IQR; ``"none"``: unchanged.
    pca_components : int or None
        Keep this many components (capped at min(n_synapses, n_features)); None: no PCA.
    seed : int
        Seed for the randomized PCA solver used on large matrices.
    column_weights : ndarray, shape (n_features,), optional
        Multiplies each scaled column before PCA (used to give feature blocks equal weight).
    copy : bool
        False: above ``LARGE_ROWS`` rows a float32 ``X`` may be scaled in place (saves one copy).

    Returns
    -------
    Z : ndarray, float32, shape (n_synapses, n_features or n_components)
    explained : float or None
        Fraction of variance of the scaled matrix kept by PCA (None without PCA).
    """
    from sklearn.preprocessing import RobustScaler, StandardScaler

    if scaler not in SCALERS:
        raise ValueError(f"scaler={scaler!r} is not one of {', '.join(SCALERS)}")
    from synapse_core.cluster.settings import LARGE_ROWS

    if len(X) > LARGE_ROWS:  # large data: float32 throughout, bounded memory (issue 15)
        return _preprocess_large(X, scaler, pca_components, seed, column_weights, copy)
    X = np.asarray(X, dtype=np.float64)
    if scaler == "standard":
        Z = StandardScaler().fit_transform(X)
    elif scaler == "robust":
        Z = RobustScaler().fit_transform(X)
    else:
        Z = X.copy()
    if column_weights is not None:
        Z = Z * np.asarray(column_weights, dtype=np.float64)[None, :]
    return _reduce(Z, pca_components, seed, "auto")


def _preprocess_large(X, scaler, pca_components, seed, column_weights, copy=True):
    """:func:`preprocess_features` above ``LARGE_ROWS`` rows: float32, scaled in place, PCA from the covariance.

    Same statistics as the small path (column mean/std, median/IQR) in float32; PCA by
    :func:`pca_by_covariance` (exact, one pass over the rows, no random step). Peak memory is one
    float32 copy of ``X`` plus the reduced matrix (``copy=False`` with a float32 ``X``: no copy).
    """

    Z = np.array(X, dtype=np.float32, copy=copy or np.asarray(X).dtype != np.float32)
    if scaler == "standard":
        centre = Z.mean(axis=0, dtype=np.float64)
        spread = Z.std(axis=0, dtype=np.float64)
        spread[spread == 0] = 1.0  # constant columns become 0, as StandardScaler does
    elif scaler == "robust":
        centre = np.median(Z, axis=0)
        q1, q3 = np.percentile(Z, [25, 75], axis=0)
        spread = (q3 - q1).astype(np.float64)
        spread[spread == 0] = 1.0
    else:
        centre, spread = np.zeros(Z.shape[1]), np.ones(Z.shape[1])
    scale = 1.0 / spread
    if column_weights is not None:
        scale = scale * np.asarray(column_weights, dtype=np.float64)
    Z -= centre.astype(np.float32)
    Z *= scale.astype(np.float32)
    if pca_components is None or int(pca_components) < 1:
        return _reduce(Z, pca_components, seed, "randomized")  # no PCA (or the error for a bad value)
    n = min(int(pca_components), Z.shape[0], Z.shape[1])
    if n >= Z.shape[1]:
        return np.ascontiguousarray(Z, dtype=np.float32), 1.0
    return pca_by_covariance(Z, n)


def pca_by_covariance(Z: np.ndarray, n_components: int, chunk: int = 65536) -> tuple[np.ndarray, float]:
    """Principal-component scores of ``Z`` (n_rows, d) from its d × d covariance, built in row chunks.

    For many rows and few columns (10⁶ × 192) this is exact and cheaper than a randomized SVD:
    one pass in float64 to accumulate the covariance, one eigendecomposition, one pass to project.
    Signs follow scikit-learn's convention (the largest-magnitude loading of each component is
    positive), so the scores equal ``PCA(n_components).fit_transform(Z)`` up to rounding.

    Returns
    -------
    scores : ndarray, float32, shape (n_rows, n_components)
    explained : float
        Fraction of the total variance the kept components explain.
    """
    n_rows, d = Z.shape
    mean = Z.mean(axis=0, dtype=np.float64)
    cov = np.zeros((d, d))
    for start in range(0, n_rows, chunk):
        part = Z[start:start + chunk].astype(np.float64) - mean
        cov += part.T @ part
    cov /= max(n_rows - 1, 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:n_components]
    components = vectors[:, order]  # (d, n_components)
    biggest = np.argmax(np.abs(components), axis=0)
    components *= np.sign(components[biggest, np.arange(n_components)])
    scores = np.empty((n_rows, n_components), dtype=np.float32)
    for start in range(0, n_rows, chunk):
        scores[start:start + chunk] = (Z[start:start + chunk].astype(np.float64) - mean) @ components
    explained = float(values[order].sum() / max(values.sum(), np.finfo(float).tiny))
    return scores, explained


def _reduce(Z, pca_components, seed, svd_solver: str):
    """``(Z as float32, explained variance fraction)`` after PCA to ``pca_components`` (None: no PCA)."""
    from sklearn.decomposition import PCA

    explained = None
    if pca_components is not None:
        if int(pca_components) < 1:
            raise ValueError(f"pca_components={pca_components!r} must be a positive integer or None")
        n = min(int(pca_components), Z.shape[0], Z.shape[1])
        if n < Z.shape[1]:
            pca = PCA(n_components=n, random_state=seed, svd_solver=svd_solver)
            Z = pca.fit_transform(Z)
            explained = float(pca.explained_variance_ratio_.sum())
        else:
            explained = 1.0
    return np.ascontiguousarray(Z, dtype=np.float32), explained


def block_weights(columns: list[str]) -> np.ndarray:
    """Per-column weights giving the ``feat_*`` block and the ``morph_*`` block equal total variance.

    Without them 192 deep columns would outvote 16 morphology columns 12:1 after standardisation.
    Each column of a block of width n gets ``sqrt(total / (2 n))``, so the mean column variance stays 1.
    """
    is_feat = np.array([bool(_FEAT.match(str(c))) for c in columns])
    n_feat, n_morph = int(is_feat.sum()), int((~is_feat).sum())
    if not n_feat or not n_morph:
        return np.ones(len(columns))
    total = len(columns)
    return np.where(is_feat, np.sqrt(total / (2 * n_feat)), np.sqrt(total / (2 * n_morph)))


def indicator_weights(columns: list[str], X: np.ndarray) -> np.ndarray | None:
    """Per-column weights that undo standard scaling on the ``morph_has_*`` 0/1 columns (None: there are none).

    Standardising a rare indicator would put its few synapses 1/sqrt(p) standard deviations away
    (an absent mitochondrion in 4 of 60 crops: 3.7 SD) and let it drive the clusters, as the
    censored distance it replaces did. Multiplying the scaled column by its standard deviation
    leaves it centred with steps of 1: present vs absent weighs as one standard deviation of a
    measured column. (The robust scaler and ``"none"`` already leave such a column 0/1.)
    """
    flags = np.array([str(c).startswith("morph_has_") for c in columns])
    if not flags.any():
        return None
    sd = X.std(axis=0)
    return np.where(flags & (sd > 0), sd, 1.0)


def describe_space(feature_set: str, n_features: int, scaler: str, pca_components: int | None, n_out: int) -> str:
    """Readable name of the preprocessed space, e.g. ``"standard-scaled feat_* (192 d) → PCA 50"``."""
    sets = {"feat": "feat_*", "morph": "morph_*", "both": "feat_*+morph_*"}
    s = f"{scaler}-scaled {sets.get(feature_set, feature_set)} ({n_features} d)"
    if scaler == "none":
        s = f"unscaled {sets.get(feature_set, feature_set)} ({n_features} d)"
    if pca_components is not None and n_out < n_features:
        s += f" → PCA {n_out}"
    return s


def prepare(
    df: pd.DataFrame,
    feature_set: str = "auto",
    scaler: str = "standard",
    pca_components: int | None = None,
    nan_policy: str = "error",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, PreprocessRecord]:
    """Extraction table → (preprocessed matrix, kept-row mask, record). The one entry point for all stages.

    Returns
    -------
    Z : ndarray, float32, shape (n_kept, d)
    kept : ndarray of bool, shape (len(df),)
    record : PreprocessRecord
    """
    resolved = resolve_feature_set(df, feature_set)
    X, columns, kept, imputed, absent = feature_matrix(df, resolved, nan_policy)
    weights = block_weights(columns) if resolved == "both" and scaler != "none" else None
    indicators = indicator_weights(columns, X) if scaler == "standard" else None
    if indicators is not None:
        weights = indicators if weights is None else weights * indicators
    Z, explained = preprocess_features(X, scaler, pca_components, seed, weights, copy=False)  # X is ours
    dropped = ()
    if not kept.all() and {"bbox_name", "Var1"} <= set(df.columns):
        sub = df.loc[~kept, ["bbox_name", "Var1"]]
        dropped = tuple((str(b), v.item() if hasattr(v, "item") else v) for b, v in sub.itertuples(index=False))
    record = PreprocessRecord(
        feature_set=resolved,
        columns=tuple(columns),
        scaler=scaler,
        pca_components=None if pca_components is None else int(pca_components),
        pca_explained_variance=explained,
        n_rows_in=len(df),
        n_rows_used=int(kept.sum()),
        dropped_rows=dropped,
        imputed_values=tuple(imputed.items()),
        absent_structure_imputed=tuple(absent.items()),
        space=describe_space(resolved, len(columns), scaler, pca_components, Z.shape[1])
        + (", feat_*/morph_* blocks weighted equally" if resolved == "both" and scaler != "none" else "")
        + (", morph_has_* kept as 0/1 (not standardised)" if indicators is not None else ""),
    )
    return Z, kept, record
