"""Save and load a run's full configuration as JSON (never pickle).

A run configuration names the data (data-root name, optional sub-folder, bboxes) and holds the
settings of each stage as plain JSON objects, built from the stages' frozen settings
dataclasses (:class:`synapse_core.features.extract.ExtractSettings`,
:class:`synapse_core.cluster.settings.ClusterSettings`)::

    {"format": "synapse-cluster-em/run-config", "version": 1,
     "data": {"root": "demo", "subfolder": "", "bboxes": ["bbox1", "bbox2"]},
     "extraction": {...}, "clustering": {...}}

Loading checks every field: unknown keys, wrong types and a wrong format or version are
refused with an error that names the field. Missing keys take the dataclass default, so a
config written by an older version still loads.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

FORMAT = "synapse-cluster-em/run-config"
VERSION = 1
#: Configs are small; anything larger is refused before parsing.
MAX_CONFIG_BYTES = 1_000_000


@dataclass(frozen=True)
class DataChoice:
    """Which data a run used: a configured root's name, a folder inside it, the bboxes."""

    root: str = ""
    subfolder: str = ""
    bboxes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunConfig:
    """A run's configuration: data plus the settings of each stage, as plain dicts.

    ``extraction`` and ``clustering`` are the ``settings_to_dict`` form of the stages' settings
    objects; rebuild those with :func:`settings_from_dict`.
    """

    data: DataChoice = field(default_factory=DataChoice)
    extraction: dict = field(default_factory=dict)
    clustering: dict = field(default_factory=dict)


def settings_to_dict(settings: Any) -> dict:
    """A (nested) frozen settings dataclass as a JSON-ready dict; tuples become lists."""
    if not dataclasses.is_dataclass(settings):
        raise TypeError(f"expected a settings dataclass, got {type(settings).__name__}")
    return _to_json(dataclasses.asdict(settings))


def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if hasattr(value, "__fspath__"):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    raise TypeError(f"value {value!r} of type {type(value).__name__} cannot be stored in a run config")


def settings_from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Rebuild the frozen dataclass ``cls`` from ``data`` (as written by :func:`settings_to_dict`).

    Nested dataclass fields are rebuilt recursively; lists become tuples where the field is a
    tuple. ``where`` prefixes field names in errors (e.g. ``"extraction"``).

    Raises
    ------
    ValueError
        On an unknown key, or a value whose type does not match the field.
    """
    label = where or cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{label}: expected a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{label}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints.get(name, Any), value, f"{label}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{label}: {exc}") from exc


def _coerce(hint: Any, value: Any, label: str) -> Any:
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, label)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else f"{label}: unexpected value {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ValueError(f"{label}: {value!r} is not one of {', '.join(map(repr, args))}")
    if dataclasses.is_dataclass(hint):
        return settings_from_dict(hint, value, label)
    if origin is tuple or hint is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{label}: expected a list, got {value!r}")
        if args and not (len(args) == 2 and args[1] is Ellipsis) and len(args) != len(value):
            raise ValueError(f"{label}: expected {len(args)} values, got {len(value)}")
        item_hints = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else (args or [Any] * len(value))
        return tuple(_coerce(h, v, f"{label}[{i}]") for i, (h, v) in enumerate(zip(item_hints, value)))
    if origin in (list, dict) or hint in (list, dict):
        expected = origin or hint
        if not isinstance(value, expected):
            raise ValueError(f"{label}: expected a {expected.__name__}, got {value!r}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{label}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{label}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{label}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{label}: expected a string, got {value!r}")
    if isinstance(hint, type) and hasattr(hint, "__fspath__"):
        if isinstance(value, str):
            return hint(value)
        raise ValueError(f"{label}: expected a path string, got {value!r}")
    return value


def dumps(config: RunConfig) -> str:
    """``config`` as pretty JSON text."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "data": settings_to_dict(config.data),
        "extraction": _to_json(config.extraction),
        "clustering": _to_json(config.clustering),
    }
    return json.dumps(payload, indent=2, sort_keys=False) + "\n"


def loads(text: str | bytes, source: str = "run config") -> RunConfig:
    """Parse and check JSON text written by :func:`dumps`; ``source`` names it in errors.

    Raises
    ------
    ValueError
        If the text is too large, not JSON, of another format/version, or has bad fields.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_CONFIG_BYTES:
            raise ValueError(f"{source}: {len(text)} bytes is larger than the {MAX_CONFIG_BYTES} allowed")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{source}: not UTF-8 text ({exc}); choose a .json run configuration") from exc
    if len(text) > MAX_CONFIG_BYTES:
        raise ValueError(f"{source}: {len(text)} characters is larger than the {MAX_CONFIG_BYTES} allowed")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{source}: not a run configuration (expected \"format\": \"{FORMAT}\")")
    if payload.get("version") != VERSION:
        raise ValueError(f"{source}: version {payload.get('version')!r} is not supported (this tool reads version {VERSION})")
    unknown = sorted(set(payload) - {"format", "version", "data", "extraction", "clustering"})
    if unknown:
        raise ValueError(f"{source}: unknown section(s) {', '.join(unknown)}")
    data = settings_from_dict(DataChoice, payload.get("data", {}), "data")
    sections = {}
    for name in ("extraction", "clustering"):
        section = payload.get(name, {})
        if not isinstance(section, dict):
            raise ValueError(f"{source}: section {name!r} must be a JSON object")
        sections[name] = section
    return RunConfig(data=data, **sections)
