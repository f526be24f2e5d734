"""WebKnossos: a skeleton (NML) with one node per synapse, grouped by cluster, that WebKnossos imports.

Drop the ``.nml`` file on a WebKnossos annotation of the same dataset (or "Import NML"): each
synapse is a one-node tree named ``<bbox>/<Var1>`` in the tree group ``cluster <k>``
(``noise`` for −1), with the comment ``cluster <k>`` on its node. Node positions are voxels of the
link-out grid (the finest level of a whole volume; bbox offset + table voxel for bboxes), the
same coordinates as the dataset's ``link_template``.
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from synapse_core.export.positions import link_voxel_size_nm, positions_nm


def _group_name(k) -> str:
    return "noise" if int(k) == -1 else f"cluster {int(k)}"


def write_nml(path: str | os.PathLike, dataset, rows: pd.DataFrame, cluster_column: str | None = "cluster",
              name: str = "synapse clusters") -> str:
    """Write ``rows`` (synapses, optionally with ``cluster_column``) as a WebKnossos NML skeleton.

    Parameters
    ----------
    path : file name ending in ``.nml``
    dataset : an opened dataset (its voxel size and offsets place the nodes)
    rows : DataFrame with ``bbox_name``, ``Var1`` and the ``central_coord_1..3`` columns
    cluster_column : column with integer cluster labels, or None (one group "synapses")
    name : the experiment (dataset) name written in the file

    Returns
    -------
    The path written.
    """
    rows = rows.reset_index(drop=True)
    voxel = np.asarray(link_voxel_size_nm(dataset))
    nodes = np.floor(positions_nm(dataset, rows) / voxel).astype(np.int64)[:, ::-1]  # x, y, z voxels
    labels = rows[cluster_column].astype(int).to_numpy() if cluster_column else np.zeros(len(rows), int)
    groups = {k: i + 1 for i, k in enumerate(sorted(set(labels.tolist())))}
    names = (rows["bbox_name"].astype(str) + "/" + rows["Var1"].astype(str)).tolist()
    # Written as text, line by line: ElementTree objects for 10⁵ trees cost ~10x the time.
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<things>", "  <parameters>",
             f"    <experiment name={quoteattr(str(name))}/>",
             f'    <scale x="{voxel[2]:g}" y="{voxel[1]:g}" z="{voxel[0]:g}"/>', "  </parameters>"]
    for i, (tree, (x, y, z), k) in enumerate(zip(names, nodes.tolist(), labels.tolist())):
        lines.append(f'  <thing id="{i + 1}" name={quoteattr(tree)} groupId="{groups[k]}"><nodes>'
                     f'<node id="{i + 1}" x="{x}" y="{y}" z="{z}" radius="10"/></nodes><edges/></thing>')
    lines.append("  <branchpoints/>")
    lines.append("  <comments>")
    if cluster_column:
        lines += [f'    <comment node="{i + 1}" content="{_group_name(k)}"/>' for i, k in enumerate(labels.tolist())]
    lines.append("  </comments>")
    lines.append("  <groups>")
    lines += [f'    <group id="{gid}" name="{_group_name(k) if cluster_column else "synapses"}"/>'
              for k, gid in groups.items()]
    lines += ["  </groups>", "</things>", ""]
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(path)
    return str(path)
