"""Neuroglancer: a full viewer state (link) per synapse and a precomputed annotation layer of all synapses.

:func:`synapse_state` builds the JSON state of one synapse from the dataset's volumes (EM image
layer, the neuron segmentation with the synapse's two partner neurons selected, the semantic
mask hidden, a point annotation at the synapse), centred on it; :func:`state_url` turns it into
a link. Neuroglancer reads OME-Zarr (``zarr://``), N5 (``n5://``), precomputed
(``precomputed://``) and zarr3 (``zarr3://``) over http(s), ``gs://`` and ``s3://``: local
volumes need to be served (``local_base_url``, e.g. ``"http://localhost:9000/"`` for a server
with CORS at the data root) and are otherwise written as ``file://`` URLs.

:func:`write_annotation_layer` writes all synapses as a Neuroglancer precomputed annotation layer
(a folder a lab can serve) with ``cluster`` as a property: the ``neuroglancer`` package's
:class:`~neuroglancer.write_annotations.AnnotationWriter` encodes the annotations and TensorStore
writes the ``by_id`` index sharded (a few files instead of one per synapse).
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd

from synapse_core.data.windows import point_values
from synapse_core.export.positions import link_voxel_size_nm, positions_nm

DEFAULT_VIEWER = "https://neuroglancer-demo.appspot.com/"
_PREFIX = {"precomputed": "precomputed://", "ome-zarr": "zarr://", "zarr": "zarr://", "n5": "n5://",
           "webknossos": "zarr3://"}


def _url(path: str, data_root: str | None, local_base_url: str | None) -> str:
    if "://" in path:
        return path.rstrip("/")
    if local_base_url and data_root:
        rel = os.path.relpath(path, data_root)
        if not rel.startswith(".."):
            return local_base_url.rstrip("/") + "/" + urllib.parse.quote(rel.replace(os.sep, "/"))
    return "file://" + os.path.abspath(path)


def neuroglancer_source(spec, format: str, data_root: str | None = None, local_base_url: str | None = None) -> str:
    """The Neuroglancer data-source URL of one volume of a whole-volume dataset.

    ``spec`` is a :class:`~synapse_core.data.whole_volume.ChunkedSpec` (path, key); ``format`` its
    format. OME-Zarr points at the image (Neuroglancer picks the level); N5 at the group or array
    ``key``; WebKnossos at the layer's finest mag (``<layer>/1``).
    """
    if format not in _PREFIX:
        raise ValueError(f"{spec.path}: Neuroglancer cannot read {format!r} volumes; convert them to OME-Zarr "
                         f"or precomputed to view them there")
    url = _url(spec.path, data_root, local_base_url)
    key = (spec.key or "").strip("/")
    if format == "webknossos":
        layer, _, mag = key.partition("/")
        url += f"/{layer}/{mag or '1'}" if layer else ""
    elif format == "ome-zarr":
        if key and not key.isdigit():  # a sub-image such as labels/cells, not a level
            url += "/" + key
    elif key:
        url += "/" + key
    return _PREFIX[format] + url


def _sources(dataset, local_base_url):
    wv = getattr(dataset, "whole_volume", None)
    if wv is None:
        raise ValueError(f"{dataset.root}: Neuroglancer links need a chunked volume (a whole-volume dataset with "
                         f"OME-Zarr, N5, precomputed or WebKnossos zarr3 sources); TIFF/HDF5 bboxes cannot be "
                         f"streamed to Neuroglancer")
    name = next(iter(dataset.bboxes))
    b = dataset.bboxes[name]
    formats = {"raw": b.raw.kind, "seg": b.seg.kind, "mask": b.mask.kind if b.mask is not None else None}
    root = str(Path(dataset.config_file).parent)
    return {k: neuroglancer_source(spec, formats[k], root, local_base_url) for k, spec in wv.specs.items()}


def _dimensions(voxel_zyx) -> dict:
    return {axis: [float(voxel_zyx[i]) * 1e-9, "m"] for axis, i in (("x", 2), ("y", 1), ("z", 0))}


def synapse_state(dataset, bbox_name: str, var1: str, cluster=None, local_base_url: str | None = None) -> dict:
    """The Neuroglancer viewer state (JSON-ready dict) centred on synapse ``bbox_name/var1``.

    Layers: ``em`` (image), ``neurons`` (segmentation, the two partner neurons' ids at the table's
    side points selected; id 0 = background is never selected), ``mask`` (hidden, when the dataset
    has one) and ``synapse`` (a point annotation at the synapse centre, described as
    ``"<bbox>/<Var1> cluster <k>"``). Coordinates are voxels of the finest level (``dimensions``
    gives their size in metres, as Neuroglancer stores it); ``position`` is the centre of the
    synapse's voxel.
    """
    sources = _sources(dataset, local_base_url)
    row = dataset.synapse(bbox_name, var1)
    rows = pd.DataFrame([row])
    voxel = np.asarray(link_voxel_size_nm(dataset))
    centre = positions_nm(dataset, rows)[0] / voxel  # z, y, x in finest voxels
    b = dataset.bboxes[str(bbox_name)]
    sides = np.array([[row[f"{s}_coord_3"], row[f"{s}_coord_2"], row[f"{s}_coord_1"]] for s in ("side_1", "side_2")],
                     dtype=np.int64)
    ids = [int(v) for v in point_values(b.seg, sides)]
    segments = [str(i) for i in dict.fromkeys(ids) if i != 0]
    text = f"{bbox_name}/{var1}" + (f" cluster {cluster}" if cluster is not None else "")
    layers = [{"type": "image", "name": "em", "source": sources["raw"]},
              {"type": "segmentation", "name": "neurons", "source": sources["seg"], "segments": segments}]
    if "mask" in sources:
        layers.append({"type": "segmentation", "name": "mask", "source": sources["mask"], "visible": False})
    layers.append({"type": "annotation", "name": "synapse", "source": {"url": "local://annotations"},
                   "annotations": [{"type": "point", "id": "synapse", "point": [float(v) for v in centre[::-1]],
                                    "description": text}]})
    return {"dimensions": _dimensions(voxel), "position": [float(v) for v in centre[::-1]],
            "crossSectionScale": 1.0, "projectionScale": 512.0, "layers": layers,
            "selectedLayer": {"layer": "synapse", "visible": True}, "layout": "4panel"}


def state_url(state: dict, viewer: str = DEFAULT_VIEWER) -> str:
    """A Neuroglancer link holding ``state`` (``<viewer>#!<url-encoded JSON>``)."""
    text = json.dumps(state, separators=(",", ":"))
    return viewer.rstrip("/") + "/#!" + urllib.parse.quote(text, safe="~@#$&()*!+=:;,?/'")


def write_annotation_layer(folder: str | os.PathLike, dataset, rows: pd.DataFrame,
                           cluster_column: str | None = "cluster") -> str:
    """Write every row of ``rows`` as a point of a Neuroglancer precomputed annotation layer in ``folder``.

    Points are synapse centres in nm (coordinate space x, y, z with unit nm); annotation ids are
    the row positions (0..N-1, the order of ``rows``); properties are ``cluster`` (int32, −1 =
    noise; absent when ``cluster_column`` is None). Serve ``folder`` and add it in Neuroglancer as
    ``precomputed://<url>``. Returns the folder.
    """
    import neuroglancer
    from neuroglancer.write_annotations import AnnotationWriter

    rows = rows.reset_index(drop=True)
    pts = positions_nm(dataset, rows)[:, ::-1]  # x, y, z nm
    props = []
    if cluster_column is not None:
        if cluster_column not in rows.columns:
            raise ValueError(f"no column {cluster_column!r} in the table; columns: {list(rows.columns)[:20]}")
        props = [neuroglancer.AnnotationPropertySpec(id="cluster", type="int32",
                                                     description="cluster label (-1 = noise)")]
    space = neuroglancer.CoordinateSpace(names=["x", "y", "z"], units="nm", scales=[1.0, 1.0, 1.0])
    writer = AnnotationWriter(coordinate_space=space, annotation_type="point", properties=props)
    # The package's record layout, filled for all synapses at once (add_point costs ~0.1 ms per point).
    records = np.zeros(len(rows), dtype=writer.get_dtype())
    records["geometry"] = pts.astype(np.float32)
    if props:
        records["property0"] = rows[cluster_column].astype(int).to_numpy()
    _write_sharded(writer, records, Path(folder))
    return str(folder)


def _sharding(n: int) -> dict:
    """A ``neuroglancer_uint64_sharded_v1`` spec with about 10⁴ annotations per shard file."""
    shard_bits = max(0, int(np.ceil(np.log2(max(n, 1) / 10_000))))
    return {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0, "hash": "murmurhash3_x86_128",
            "minishard_bits": 6, "shard_bits": shard_bits, "minishard_index_encoding": "gzip",
            "data_encoding": "gzip"}


def _write_sharded(writer, records: np.ndarray, folder: Path) -> None:
    """Write point ``records`` (``writer.get_dtype()``; annotation id = position) as a precomputed
    annotation layer with a sharded ``by_id`` index.

    The ``neuroglancer`` package writes one file per annotation (10⁶ synapses: 10⁶ files); here
    ``by_id`` goes through TensorStore's ``neuroglancer_uint64_sharded`` key-value store (one file
    per ~10⁴ annotations) and the spatial index is one chunk, as the package writes it.
    """
    import struct

    import tensorstore as ts

    n = len(records)
    pts = records["geometry"].astype(np.float64)
    lower = pts.min(axis=0) if n else np.zeros(3)
    upper = pts.max(axis=0) if n else np.zeros(3)
    sharding = _sharding(n)
    info = {"@type": "neuroglancer_annotations_v1", "dimensions": writer.coordinate_space.to_json(),
            "lower_bound": lower.tolist(), "upper_bound": upper.tolist(), "annotation_type": "point",
            "properties": [p.to_json() for p in writer.properties], "relationships": [],
            "by_id": {"key": "by_id", "sharding": sharding},
            "spatial": [{"key": "spatial0", "grid_shape": [1, 1, 1],
                         "chunk_size": [max(1.0, float(v)) for v in upper - lower], "limit": n}]}
    (folder / "spatial0").mkdir(parents=True, exist_ok=True)
    ids = np.arange(n, dtype="<u8")
    (folder / "spatial0" / "0_0_0").write_bytes(struct.pack("<Q", n) + records.tobytes() + ids.tobytes())
    store = ts.KvStore.open({"driver": "neuroglancer_uint64_sharded", "metadata": sharding,
                             "base": f"file://{folder.resolve()}/by_id/"}).result()
    raw = records.tobytes()
    size = records.dtype.itemsize
    with ts.Transaction() as txn:
        staged = store.with_transaction(txn)
        for i in range(n):
            staged[struct.pack(">Q", i)] = raw[i * size:(i + 1) * size]
    (folder / "info").write_text(json.dumps(info))
