"""Where synapses are in physical space, for any dataset: nm (z, y, x) and the link-out voxel grid."""

from __future__ import annotations

import numpy as np
import pandas as pd

from synapse_core.data.tables import point_columns


def positions_nm(dataset, rows: pd.DataFrame, point: str = "central") -> np.ndarray:
    """(N, 3) positions (z, y, x) in nm of ``point`` of each row: the centre of its voxel.

    A whole-volume dataset maps voxels of the level read through its voxel size and offset; a bbox
    dataset adds the bbox's ``offset_xyz`` (config) and multiplies by the bbox's voxel size.
    Raises ``ValueError`` naming the bbox when its voxel size is unknown.
    """
    xyz = rows[list(point_columns(point))].to_numpy(np.float64)
    zyx = xyz[:, ::-1]
    if getattr(dataset, "whole_volume", None) is not None:
        if dataset.whole_volume.voxel_size_nm is None:
            raise ValueError("the volume's voxel size is unknown; give voxel_size_nm = [z, y, x] in the dataset config")
        return dataset.whole_volume.nm_zyx(zyx)
    out = np.empty_like(zyx)
    names = rows["bbox_name"].astype(str).to_numpy()
    for name in pd.unique(names):
        m = names == name
        b = dataset.bboxes[name]
        if b.voxel_size_nm is None:
            raise ValueError(f"{name}: voxel size unknown; give voxel_size_nm = [z, y, x] in the dataset config")
        offset = np.asarray(dataset.config.offset_for(name), float)[::-1]
        out[m] = (zyx[m] + offset + 0.5) * np.asarray(b.voxel_size_nm)
    return out


def link_voxel_size_nm(dataset) -> tuple[float, float, float]:
    """(z, y, x) nm of the voxel grid link-outs use: the finest level (whole volume) or the shared bbox size."""
    wv = getattr(dataset, "whole_volume", None)
    size = (wv.finest_voxel_size_nm or wv.voxel_size_nm) if wv is not None else dataset.voxel_size_nm
    if size is None:
        raise ValueError("the dataset has no single known voxel size; give voxel_size_nm = [z, y, x] in the config")
    return tuple(float(v) for v in size)
