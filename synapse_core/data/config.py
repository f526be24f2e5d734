"""The optional dataset config file at a data root (``synapse_dataset.toml`` or ``.yaml``).

Example (TOML; the YAML form has the same keys)::

    voxel_size_nm = [8, 8, 8]            # z, y, x; optional when the files store it
    link_template = "https://wk.example.org/annotations/ID#{x},{y},{z},0,0.905"

    [labels]                             # default label ids of the semantic mask, all bboxes
    mito = 5
    vesicle = 6
    cleft = 7
    cleft2 = 7                           # optional, defaults to cleft

    [bboxes.bbox1]
    offset_xyz = [14119, 10692, 15034]   # added to synapse coordinates for link-outs
    labels = { mito = 5, vesicle = 6, cleft = 7, cleft2 = 7 }

    [bboxes.sstem]                       # an anisotropic serial-section stack without mitochondria labels
    voxel_size_nm = [40, 4, 4]           # this bbox only (z, y, x)
    labels = { mito = "none", vesicle = 2, cleft = 1 }

    [bboxes.medulla]                     # volumes from HDF5 / Zarr instead of TIFF slices
    raw = { path = "training_sample2.h5", key = "raw" }
    seg = { path = "training_sample2.h5", key = "gt_bodies" }
    mask = { path = "masks.zarr", key = "medulla" }   # optional
    table = "contact_sites.csv"

Relative paths are relative to the config file. A label id ``"none"`` says the dataset has no such
class: segmentation types that need it are then unavailable. Without labels in the config, the
original per-bbox label table applies where the mask agrees with it (:mod:`synapse_core.data.labels`).
The voxel size comes from the bbox's ``voxel_size_nm``, else the top-level one, else the data files'
attributes or tags (:mod:`synapse_core.data.voxel_size`), else it is unknown (measurements in voxels).
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from synapse_core.data.labels import LabelIds, default_labels
from synapse_core.data.paths import allowed_roots, confine
from synapse_core.data.voxel_size import VoxelSizeError, check_voxel_size

CONFIG_NAMES = ("synapse_dataset.toml", "synapse_dataset.yaml", "synapse_dataset.yml")
_TOP_KEYS = {"voxel_size_nm", "link_template", "labels", "bboxes",
             "volume", "synapses"}  # whole-volume sections: parsed by synapse_core.data.whole_volume
_BBOX_KEYS = {"offset_xyz", "labels", "raw", "seg", "mask", "table", "voxel_size_nm"}
_LABEL_KEYS = {"mito", "vesicle", "cleft", "cleft2"}


class ConfigError(ValueError):
    """A dataset config file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class VolumeSpec:
    """Where one volume lives: an HDF5 file or Zarr store ``path`` and the dataset ``key`` inside it."""

    path: str
    key: str | None = None


@dataclass(frozen=True)
class BboxConfig:
    labels: LabelIds | None = None
    offset_xyz: tuple[int, int, int] = (0, 0, 0)
    raw: VolumeSpec | None = None
    seg: VolumeSpec | None = None
    mask: VolumeSpec | None = None
    table: str | None = None
    voxel_size_nm: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class DatasetConfig:
    """Parsed dataset config; ``path`` is None when the root has no config file."""

    path: str | None = None
    voxel_size_nm: tuple[float, float, float] | None = None
    link_template: str | None = None
    labels: LabelIds | None = None
    bboxes: dict[str, BboxConfig] = field(default_factory=dict)

    def labels_for(self, bbox_name: str) -> LabelIds:
        """Label ids for ``bbox_name``: the bbox's own, else the config default, else the original table."""
        return self.configured_labels(bbox_name)[0] or default_labels(bbox_name)

    def configured_labels(self, bbox_name: str) -> tuple[LabelIds | None, str]:
        """``(labels, where)`` the config gives for ``bbox_name``, or ``(None, "")`` when it gives none."""
        bbox = self.bboxes.get(bbox_name)
        if bbox is not None and bbox.labels is not None:
            return bbox.labels, f"{self._name} [bboxes.{bbox_name}] labels"
        if self.labels is not None:
            return self.labels, f"{self._name} [labels]"
        return None, ""

    def voxel_size_for(self, bbox_name: str) -> tuple[tuple[float, float, float] | None, str]:
        """``(voxel size (z, y, x) nm, where)`` the config gives for ``bbox_name``, or ``(None, "")``."""
        bbox = self.bboxes.get(bbox_name)
        if bbox is not None and bbox.voxel_size_nm is not None:
            return bbox.voxel_size_nm, f"{self._name} [bboxes.{bbox_name}] voxel_size_nm"
        if self.voxel_size_nm is not None:
            return self.voxel_size_nm, f"{self._name} voxel_size_nm"
        return None, ""

    @property
    def _name(self) -> str:
        return Path(self.path).name if self.path else "the dataset config"

    def offset_for(self, bbox_name: str) -> tuple[int, int, int]:
        bbox = self.bboxes.get(bbox_name)
        return bbox.offset_xyz if bbox is not None else (0, 0, 0)


def _value_text(value, yaml: bool) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, dict):
        sep = ": " if yaml else " = "
        body = ", ".join(f"{k}{sep}{_value_text(v, yaml)}" for k, v in value.items())
        return f"{{{body}}}" if yaml else f"{{ {body} }}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value_text(v, yaml) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and not re.fullmatch(r"<\w+>", value):  # <z>, <id>: a number to fill in
        return f'"{value}"'
    return str(value)


def config_line(config_file: str, key: str, value, bbox_name: str | None = None) -> str:
    """The exact line that sets ``key = value`` in a dataset config, and where it goes.

    TOML unless ``config_file`` is YAML; ``None`` values are written ``"none"``. With ``bbox_name``
    the line goes under ``[bboxes.<bbox_name>]``, else at the top level (before any ``[section]``).

    >>> config_line("synapse_dataset.toml", "voxel_size_nm", [40.0, 4.0, 4.0], "sstem")
    'add under [bboxes.sstem] in synapse_dataset.toml: voxel_size_nm = [40, 4, 4]'
    >>> config_line("synapse_dataset.toml", "labels", {"mito": None, "vesicle": 2, "cleft": 1}, "b1")
    'add under [bboxes.b1] in synapse_dataset.toml: labels = { mito = "none", vesicle = 2, cleft = 1 }'
    """
    yaml = str(config_file).endswith((".yaml", ".yml"))
    text = f"{key}: {_value_text(value, True)}" if yaml else f"{key} = {_value_text(value, False)}"
    if bbox_name is None:
        where = "at the top level of" if yaml else "at the top of (before any [section])"
        return f"add {where} {config_file}: {text}"
    where = f"bboxes: → {bbox_name}:" if yaml else f"[bboxes.{bbox_name}]"
    return f"add under {where} in {config_file}: {text}"


def find_config(root: Path) -> Path | None:
    """The config file inside ``root``, or ``root`` itself when it is a config file."""
    if root.is_file() and root.name.endswith((".toml", ".yaml", ".yml")):
        return root
    for name in CONFIG_NAMES:
        if (root / name).is_file():
            return root / name
    return None


def _read_mapping(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the dataset config is not UTF-8 text (byte {exc.start}: {exc.reason}); "
                          "save it as UTF-8 (most editors: 'Save with encoding' → UTF-8)") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the dataset config ({exc.strerror or exc})") from exc
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        import yaml

        data = yaml.safe_load(text) or {}
    except Exception as exc:  # both parsers give a line number in their message
        raise ConfigError(f"{path}: cannot parse the dataset config: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the dataset config must be a mapping of keys to values")
    return data


def _check_keys(path: Path, where: str, data: dict, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {unknown} in {where}; accepted keys are {sorted(allowed)}"
        )


def _labels(path: Path, where: str, data) -> LabelIds:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {where} must be a table like {{ mito = 5, vesicle = 6, cleft = 7, cleft2 = 7 }}")
    _check_keys(path, where, data, _LABEL_KEYS)
    missing = sorted(_LABEL_KEYS - set(data) - {"cleft2"})
    if missing:
        raise ConfigError(f"{path}: {where} is missing {missing}; give each an id, or \"none\" when the "
                          "dataset has no such label")
    values = {k: _label_id(path, f"{where} {k}", data[k]) for k in _LABEL_KEYS if k in data}
    values.setdefault("cleft2", values["cleft"])
    return LabelIds(**values)


def _label_id(path: Path, where: str, value) -> int | None:
    """A label id (int ≥ 0), or None for ``"none"`` (YAML null too): the dataset has no such label."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f'{path}: {where} must be an integer label id or "none", got {value!r}')
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number.is_integer() or number < 0:
        raise ConfigError(f'{path}: {where} must be an integer label id ≥ 0 or "none", got {value!r}')
    return int(number)


def _voxel_size(path: Path, where: str, value) -> tuple[float, float, float]:
    try:
        return check_voxel_size(_triple(path, where, value), f"{path}: {where}")
    except VoxelSizeError as exc:
        raise ConfigError(str(exc)) from exc


def _triple(path: Path, where: str, value, kind=float) -> tuple:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ConfigError(f"{path}: {where} must be a list of 3 numbers, got {value!r}")
    try:
        if any(isinstance(v, bool) for v in value):
            raise TypeError("a boolean is not a number")
        return tuple(kind(v) for v in value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{path}: {where} must be a list of 3 numbers, got {value!r}") from exc


def _inside(path: Path, where: str, file: str, roots) -> str:
    """``file`` (relative to the config's folder) resolved, refused unless inside ``roots``."""
    return str(confine(path.parent / file, roots, what=f"{path}: {where}", error=ConfigError))


def _volume(path: Path, where: str, value, roots) -> VolumeSpec:
    if isinstance(value, str):
        file, _, key = value.partition(":") if "::" not in value else value.partition("::")
        if not file.strip():
            raise ConfigError(f'{path}: {where} names no file, got {value!r}; write "file.h5:raw"')
        return VolumeSpec(_inside(path, where, file, roots), key or None)
    if isinstance(value, dict) and "path" in value:
        _check_keys(path, where, value, {"path", "key"})
        file, key = value["path"], value.get("key")
        if not isinstance(file, str) or not file.strip():
            raise ConfigError(f'{path}: {where} path must be a file name in quotes, e.g. path = "file.h5", got {file!r}')
        if key is not None and not isinstance(key, str):
            raise ConfigError(f'{path}: {where} key must be the dataset name in quotes, e.g. key = "raw", got {key!r}')
        return VolumeSpec(_inside(path, where, file, roots), key or None)
    raise ConfigError(f'{path}: {where} must be {{ path = "file.h5", key = "raw" }} or "file.h5:raw", got {value!r}')


def _table(path: Path, where: str, value, roots) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f'{path}: {where} must be a file name in quotes, e.g. table = "synapses.csv", got {value!r}')
    return _inside(path, where, value, roots)


def load_dataset_config(root: str | Path, roots=None) -> DatasetConfig:
    """Read the dataset config of ``root`` (a data folder or a config file); empty if there is none.

    Every file it names must lie inside ``roots`` (default: :func:`~synapse_core.data.paths.allowed_roots`
    of ``root``, i.e. the dataset folder and the operator's ``SYNAPSE_DATA_ROOTS``); an absolute,
    ``../`` or symlinked path outside them is a :class:`ConfigError` naming the key and the roots.
    """
    root = Path(root)
    path = find_config(root)
    if path is None:
        return DatasetConfig()
    roots = allowed_roots(root) if roots is None else roots
    data = _read_mapping(path)
    _check_keys(path, "the top level", data, _TOP_KEYS)
    voxel = data.get("voxel_size_nm")
    voxel = _voxel_size(path, "voxel_size_nm", voxel) if voxel is not None else None
    template = data.get("link_template")
    if template is not None:
        if not isinstance(template, str):
            raise ConfigError(f"{path}: link_template must be text in quotes, got {template!r}")
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            if fields - {"x", "y", "z", "bbox"}:  # no {x.__class__}, {0}, {bbox[1]}: only the 4 plain fields
                raise ValueError(f"placeholders {sorted(fields - {'x', 'y', 'z', 'bbox'})} are not allowed")
            if not template.lower().startswith(("http://", "https://")):
                raise ValueError("it must start with http:// or https://")
            template.format(x=0, y=0, z=0, bbox="b")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{path}: link_template may only use the placeholders {{x}}, {{y}}, {{z}}, {{bbox}} ({exc})"
            ) from exc
    labels = _labels(path, "[labels]", data["labels"]) if "labels" in data else None
    bboxes = {}
    table_of = data.get("bboxes") or {}
    if not isinstance(table_of, dict):
        raise ConfigError(f"{path}: bboxes must be tables, one per bbox, like [bboxes.bbox1] with raw/seg/table "
                          f"keys under it; got bboxes = {table_of!r}")
    for name, entry in table_of.items():
        where = f"[bboxes.{name}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: {where} must be a table")
        _check_keys(path, where, entry, _BBOX_KEYS)
        bboxes[str(name)] = BboxConfig(
            labels=_labels(path, f"{where} labels", entry["labels"]) if "labels" in entry else None,
            offset_xyz=_triple(path, f"{where} offset_xyz", entry["offset_xyz"], int) if "offset_xyz" in entry else (0, 0, 0),
            raw=_volume(path, f"{where} raw", entry["raw"], roots) if "raw" in entry else None,
            seg=_volume(path, f"{where} seg", entry["seg"], roots) if "seg" in entry else None,
            mask=_volume(path, f"{where} mask", entry["mask"], roots) if "mask" in entry else None,
            table=_table(path, f"{where} table", entry["table"], roots) if "table" in entry else None,
            voxel_size_nm=(_voxel_size(path, f"{where} voxel_size_nm", entry["voxel_size_nm"])
                           if "voxel_size_nm" in entry else None),
        )
    return DatasetConfig(
        path=str(path), voxel_size_nm=voxel, link_template=template, labels=labels, bboxes=bboxes
    )
