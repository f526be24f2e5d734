"""One synapse of a dataset opened before, without pandas: the remembered outcome of ``open_dataset``.

:func:`~synapse_core.data.dataset.open_dataset` reads every synapse table (pandas), checks every
row against the volumes and counts mask labels: about a third of a one-synapse ``crop`` (importing
pandas alone is ≈ 0.23 s). The ``crop`` command therefore remembers what a crop reads from that
outcome — each bbox's checked label ids and the valid rows' coordinates — in
``cache_dir/datasets/<key>.json``, under a key of everything the outcome depends on:

* the data root, the allowed data roots and the dataset config file (path, size, modification time);
* every bbox found (:func:`~synapse_core.data.bboxes.discover_bboxes`, which imports no pandas) with
  its volumes' fingerprints (a TIFF stack's: every slice file's name, size and modification time;
  an HDF5 file's: its size and modification time), shape, voxel size, and the discovery's messages;
* every synapse table (path, resolved path, size, modification time, inode);
* the source of the data modules and the installed pandas, numpy, pyarrow and openpyxl.

The next ``crop`` finds the bboxes again, computes the key and, when it is remembered and holds the
synapse, crops from it. Anything else — a changed file, a synapse or bbox not remembered, a
whole-volume dataset, volumes other than converted TIFF stacks and HDF5 files (a Zarr folder's
fingerprint does not see chunks rewritten in place) — goes through ``open_dataset``, which names
any problem. The remembered bboxes and rows equal ``open_dataset``'s (tests compare them, and the crops).
"""

from __future__ import annotations

import importlib.util
import json
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from synapse_core.data.atomic import write_text_atomically
from synapse_core.data.bboxes import (
    BboxSource,
    config_file_of,
    discover_bboxes,
    table_bbox_names,
)
from synapse_core.data.cache_dir import resolve_cache_dir
from synapse_core.data.config import load_dataset_config
from synapse_core.data.hashing import content_hash, source_fingerprint
from synapse_core.data.labels import LabelIds
from synapse_core.data.paths import allowed_roots
from synapse_core.data.synapse_keys import synapse_id
from synapse_core.data.tables import COORD_COLUMNS, dataset_tables

#: Bump when the remembered form changes (part of every key).
VERSION = 1
#: Folder of the cache holding the remembered datasets.
FOLDER = "datasets"
#: Modules whose code decides the outcome of ``open_dataset`` (part of every key).
CODE_MODULES = ("synapse_core.data.dataset", "synapse_core.data.bboxes", "synapse_core.data.validate",
                "synapse_core.data.tables", "synapse_core.data.labels", "synapse_core.data.config",
                "synapse_core.data.volumes", "synapse_core.data.voxel_size", "synapse_core.data.synapse_keys",
                "synapse_core.data.paths", "synapse_core.data.windows", "synapse_core.data.quick_open")
#: Installed libraries that read or check the tables (part of every key, by their files' state).
LIBRARIES = ("pandas", "numpy", "pyarrow", "openpyxl")
#: Columns of a remembered row: what a crop reads.
ROW_COLUMNS = ("bbox_name", "Var1", *COORD_COLUMNS)


@dataclass
class _Messages:
    """The ``report`` of :func:`discover_bboxes`: its problems, in order."""

    fatal: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


@dataclass(frozen=True)
class RememberedDataset:
    """What a one-synapse crop reads of an opened dataset: ``bboxes``, ``config_file``, :meth:`synapse`."""

    root: str
    bboxes: dict[str, BboxSource]
    config_file: str
    rows: dict[str, dict]

    def synapse(self, bbox_name: str, var1) -> dict:
        """The valid row of synapse ``bbox_name/var1`` (``bbox_name``, ``Var1`` and the nine coordinates)."""
        return self.rows[synapse_id(bbox_name, var1)]


def _file_state(path) -> list:
    """Path, resolved path, size, modification time (ns) and inode of a file; None parts when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), None]
    return [str(path), os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino]


def _library_state(name: str) -> list:
    """The installed library's ``__init__`` file state: changes when it is upgraded or reinstalled."""
    spec = importlib.util.find_spec(name)
    return _file_state(spec.origin) if spec is not None and spec.origin else [name, None]


def _remembers_volumes(b: BboxSource, volumes_dir: Path) -> bool:
    """True when every volume's fingerprint changes with its data: converted TIFF stacks and HDF5 files."""
    for src in (b.raw, b.seg, b.mask):
        if src is None:
            continue
        converted = src.kind == "zarr" and src.key is None and Path(src.path).parent.parent == volumes_dir
        if not (converted or src.kind == "hdf5") or not src.fingerprint:
            return False
    return True


def _may_be_whole_volume(config_file: str) -> bool:
    """True unless the config is a TOML file without ``[volume]``/``[synapses]`` sections."""
    if Path(config_file).suffix != ".toml":
        return True
    with open(config_file, "rb") as f:
        data = tomllib.load(f)
    return "volume" in data or "synapses" in data


@dataclass
class DatasetState:
    """The key of a data root's current state and the bboxes found (labels as configured, not yet checked)."""

    key: str
    file: Path
    root: str
    config_file: str
    bboxes: dict[str, BboxSource]
    tables: list
    messages: _Messages = field(default_factory=_Messages)

    @property
    def discovered(self) -> tuple:
        """``open_dataset(..., discovered=...)``: the bboxes and messages found, not found again."""
        return self.bboxes, self.messages.fatal, self.messages.warnings

    def remembered(self, bbox_name: str, var1) -> RememberedDataset | None:
        """The remembered dataset when this state was remembered and holds synapse ``bbox_name/var1``, else None."""
        try:
            data = json.loads(self.file.read_text())
            sid = synapse_id(bbox_name, var1)
            if data.get("version") != VERSION or sid not in data["rows"] or bbox_name not in self.bboxes:
                return None
            columns = data["columns"]
            rows = {sid: dict(zip(columns, data["rows"][sid]))}
            bboxes = {name: replace(b, labels=LabelIds(**data["bboxes"][name]["labels"]),
                                    labels_source=data["bboxes"][name]["labels_source"],
                                    mask_ids=tuple(int(i) for i in data["bboxes"][name]["mask_ids"]))
                      for name, b in self.bboxes.items()}
        except (OSError, ValueError, KeyError, TypeError):  # not remembered, or a damaged entry
            return None
        return RememberedDataset(self.root, bboxes, self.config_file, rows)

    def remember(self, dataset) -> bool:
        """Store what a crop reads of ``dataset`` (``open_dataset`` of this root, opened after this state
        was taken) under this state's key. Nothing is stored (False) when the dataset differs from the
        state (a file changed in between) or is a whole-volume dataset."""
        if getattr(dataset, "whole_volume", None) is not None or set(dataset.bboxes) != set(self.bboxes):
            return False
        for name, b in dataset.bboxes.items():
            found = self.bboxes[name]
            if replace(b, labels=found.labels, labels_source=found.labels_source, mask_ids=found.mask_ids) != found:
                return False
        if [_file_state(t[0]) for t in self.tables] != self.tables:
            return False
        table = dataset.synapses
        rows: dict[str, list] = {}
        for values in zip(*(table[c].tolist() for c in ROW_COLUMNS)):
            bbox, var1 = str(values[0]), str(values[1])
            rows.setdefault(synapse_id(bbox, var1), [bbox, var1, *(int(v) for v in values[2:])])  # first row wins
        data = {"version": VERSION, "columns": list(ROW_COLUMNS), "rows": rows,
                "bboxes": {name: {"labels": {k: None if v is None else int(v) for k, v in b.labels.as_dict().items()},
                                  "labels_source": b.labels_source, "mask_ids": [int(i) for i in b.mask_ids]}
                           for name, b in dataset.bboxes.items()}}
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(self.file, json.dumps(data))
        except OSError:  # a read-only cache: open the dataset fully next time
            return False
        return True


def dataset_state(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> DatasetState | None:
    """The state of data root ``root`` (see the module notes), or None when it cannot be remembered.

    Finds the bboxes like ``open_dataset`` (converting TIFF stacks on first use) without reading any
    synapse table. None for a whole-volume dataset, volumes other than converted TIFF stacks and HDF5
    files, and anything ``open_dataset`` would report as a problem of the root or its config (it
    gives the message).
    """
    root = Path(root).expanduser()
    if not root.exists():
        return None
    roots = allowed_roots(root)
    try:
        config = load_dataset_config(root, roots)
        if config.path and _may_be_whole_volume(config.path):
            return None
    except (OSError, ValueError):  # ConfigError is a ValueError: open_dataset raises it with its message
        return None
    cache = resolve_cache_dir(cache_dir)
    volumes_dir = cache / "volumes"
    messages = _Messages()
    bboxes = discover_bboxes(root, config, volumes_dir, messages, roots)
    if not bboxes or not all(_remembers_volumes(b, volumes_dir) for b in bboxes.values()):
        return None
    data_dir = root if root.is_dir() else root.parent
    per_bbox, combined = dataset_tables(data_dir, table_bbox_names(data_dir, bboxes), config)
    tables = [_file_state(p) for p in [*per_bbox.values(), *combined]]
    key = content_hash({
        "version": VERSION, "root": str(root), "roots": [str(r) for r in roots],
        "config": _file_state(config.path) if config.path else None,
        "bboxes": bboxes, "messages": [messages.fatal, messages.warnings],
        "tables": [list(per_bbox), tables, len(combined)],
        "code": source_fingerprint(CODE_MODULES), "libraries": [_library_state(n) for n in LIBRARIES],
    })
    return DatasetState(key, cache / FOLDER / f"{key}.json", str(root), config_file_of(root, config), bboxes, tables,
                        messages)
