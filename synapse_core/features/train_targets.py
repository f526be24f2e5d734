"""Morphology targets for training: each synapse's interpretable measurements, standardised.

With ``TrainSettings.morphology_weight > 0`` the trainer adds a linear head on the pooled trunk
features (the ``stage4``/``avg`` features ``extract`` reads) that must predict these targets from the
crop's image. The targets are the ``morph_*`` values of :mod:`synapse_core.features.morphology`,
measured on each training crop's own structures (pre/post neurons, cleft, vesicle cloud,
mitochondria) at the crop's voxel size, so they are right in nm at any anisotropy. No label of the
synapse's type is used: the segmentation the crops are cut from is the only source.

How a column becomes a target (one row per synapse, one column per measurement):

* volumes and areas (``_um3``/``_um2``, or ``_vox3``/``_vox2`` without a voxel size) are
  log-transformed, ``log(x + eps)`` with ``eps`` 1 % of the column's median positive value, so a
  bouton twice as large is one step whatever its size and an absent structure (0) is finite;
* every column is then standardised (mean 0, standard deviation 1 over the synapses that have it);
* an undefined value (NaN: a distance or intensity of an absent structure) stays NaN and is left out
  of the loss; a column that is constant (e.g. no mitochondrion label in the mask) or NaN everywhere
  is dropped.

Example
-------
>>> rows = [{"morph_pre_volume_um3": 0.1, "morph_has_mito": 0.0, "morph_mito_to_cleft_distance_nm": float("nan")},
...         {"morph_pre_volume_um3": 0.4, "morph_has_mito": 1.0, "morph_mito_to_cleft_distance_nm": 80.0},
...         {"morph_pre_volume_um3": 0.2, "morph_has_mito": 1.0, "morph_mito_to_cleft_distance_nm": 40.0}]
>>> t = morphology_targets(rows)
>>> t.columns
['morph_pre_volume_um3', 'morph_has_mito', 'morph_mito_to_cleft_distance_nm']
>>> t.values.shape, bool(np.isnan(t.values[0, 2]))
((3, 3), True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Column suffixes of the measurements that are log-transformed (volumes and areas).
LOG_SUFFIXES = ("_um3", "_um2", "_vox3", "_vox2")


@dataclass(frozen=True)
class MorphologyTargets:
    """Standardised morphology of N synapses.

    Attributes
    ----------
    values : (N, M) float32, NaN where a value is undefined (left out of the loss).
    columns : the M ``morph_*`` column names, in order.
    """

    values: np.ndarray
    columns: list[str]


def _transformed(column: str, x: np.ndarray) -> np.ndarray:
    if column.endswith(LOG_SUFFIXES):
        positive = x[np.isfinite(x) & (x > 0)]
        eps = 0.01 * float(np.median(positive)) if positive.size else 1.0
        return np.log(np.maximum(x, 0.0) + eps)
    return x


def morphology_targets(rows: Sequence[Mapping[str, float]]) -> MorphologyTargets:
    """Targets of the synapses whose ``morphology_features`` are ``rows`` (one dict per synapse, same keys).

    Raises ValueError when no column varies across the synapses (nothing to predict).
    """
    if not rows:
        raise ValueError("morphology targets need at least one synapse")
    names = [c for c in rows[0] if str(c).startswith("morph_")]
    kept, columns = [], []
    for name in names:
        x = _transformed(name, np.array([float(r.get(name, np.nan)) for r in rows], dtype=np.float64))
        finite = np.isfinite(x)
        if finite.sum() < 2:
            continue
        sd = float(x[finite].std())
        if not sd > 1e-9 * max(1.0, float(np.abs(x[finite]).max())):
            continue
        kept.append(np.where(finite, (x - x[finite].mean()) / sd, np.nan))
        columns.append(name)
    if not kept:
        raise ValueError("no morphology measurement varies across the training synapses (no mask labels for "
                         "cleft, vesicle cloud or mitochondria, and identical neurons?): train with "
                         "--morphology-weight 0")
    return MorphologyTargets(np.column_stack(kept).astype(np.float32), columns)


def masked_mse(prediction, target):
    """Mean squared error of a (B, M) torch prediction over the finite entries of the (B, M) ``target``.

    Returns 0 (with a gradient) when no entry is finite.
    """
    import torch

    finite = torch.isfinite(target)
    diff = torch.where(finite, prediction.float() - torch.nan_to_num(target), torch.zeros_like(prediction.float()))
    return diff.pow(2).sum() / finite.sum().clamp(min=1)
