"""WebKnossos: a skeleton (NML) with one node per synapse, grouped by cluster, that WebKnossos imports.

Drop the ``.nml`` file on a WebKnossos annotation of the same dataset (or "Import NML"): each
synapse is a one-node tree named ``<bbox>/<Var1>`` in the tree group ``cluster <k>``
(``noise`` for −1), with the comment ``cluster <k>`` on its node. Node positions are voxels of the
link-out grid (the finest level of a whole volume; bbox offset + table voxel for bboxes), the
same coordinates as the dataset's ``link_template``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

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
    root = ET.Element("things")
    params = ET.SubElement(root, "parameters")
    ET.SubElement(params, "experiment", name=str(name))
    ET.SubElement(params, "scale", x=f"{voxel[2]:g}", y=f"{voxel[1]:g}", z=f"{voxel[0]:g}")
    labels = rows[cluster_column].astype(int).to_numpy() if cluster_column else np.zeros(len(rows), int)
    groups = {k: i + 1 for i, k in enumerate(sorted(set(labels.tolist())))}
    comments = []
    for i, (b, v) in enumerate(zip(rows["bbox_name"].astype(str), rows["Var1"].astype(str))):
        thing = ET.SubElement(root, "thing", id=str(i + 1), name=f"{b}/{v}", groupId=str(groups[labels[i]]))
        nodes_el = ET.SubElement(thing, "nodes")
        x, y, z = (int(c) for c in nodes[i])
        ET.SubElement(nodes_el, "node", id=str(i + 1), x=str(x), y=str(y), z=str(z), radius="10")
        ET.SubElement(thing, "edges")
        if cluster_column:
            comments.append((i + 1, _group_name(labels[i])))
    ET.SubElement(root, "branchpoints")
    comments_el = ET.SubElement(root, "comments")
    for node, text in comments:
        ET.SubElement(comments_el, "comment", node=str(node), content=text)
    groups_el = ET.SubElement(root, "groups")
    for k, gid in groups.items():
        ET.SubElement(groups_el, "group", id=str(gid), name=_group_name(k) if cluster_column else "synapses")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
    return str(path)
