"""How the stages declare their settings: once, as frozen pydantic dataclasses.

Each setting is one field with its type (``Literal[...]`` for choices), default, range
(``Field(ge=..., le=...)``) and ``description`` (help text with units). Validation, the CLI flags
(:func:`synapse_core.cli.options.add_settings_arguments`), the dashboard's widget options
(:mod:`synapse_core.app.widgets`) and run configurations (:mod:`synapse_core.app.run_config`) all
read that declaration; :func:`field_spec` is the one place that interprets it.

A settings class is a frozen dataclass (``dataclasses.asdict``/``replace`` work, equal settings hash
alike, so a settings object is also a cache key) validated strictly: ``"80"`` is not an integer
and ``80.5`` is not a crop size. Numpy scalars are taken as the Python numbers they hold, lists as
tuples and paths as strings. A bad value raises :class:`SettingsError` (a ``ValueError``) naming
the field, the value and what is accepted::

    CropSettings.alpha=1.5 must be less than or equal to 1

This module imports only the standard library and pydantic.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import annotated_types
import pydantic
from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

#: Configuration of every settings class: no silent type coercion, no unknown fields.
CONFIG = ConfigDict(strict=True, extra="forbid", validate_default=True)

__all__ = ["CONFIG", "FieldSpec", "SettingsError", "field_spec", "field_specs", "settings", "settings_from_dict",
           "settings_to_dict"]


class SettingsError(ValueError):
    """Settings that fail validation; the message names each field, its value and what is accepted.

    ``errors`` holds pydantic's error dicts (``loc``, ``msg``, ``input``, ``type``) for callers
    that name the fields their own way (the CLI names flags).
    """

    def __init__(self, message: str, errors: list[dict] = (), cls: type | None = None):
        super().__init__(message)
        self.errors = list(errors)
        self.cls = cls


def _plain(value: Any) -> Any:
    """Numpy scalars → Python numbers, lists → tuples, paths → str (the value is kept as it is)."""
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def settings(cls: type) -> type:
    """Class decorator: ``cls`` becomes a frozen, strictly validated pydantic dataclass.

    Construction errors are raised as :class:`SettingsError` with a one-line message per field.
    """
    cls = pydantic.dataclasses.dataclass(frozen=True, config=CONFIG)(cls)
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        try:
            init(self, *(_plain(a) for a in args), **{k: _plain(v) for k, v in kwargs.items()})
        except ValidationError as exc:
            raise SettingsError(error_text(exc.errors(include_url=False), cls), exc.errors(include_url=False),
                                cls) from None

    cls.__init__ = __init__
    return cls


# ------------------------------------------------------------------------------- error messages


def _label(where: str, loc: tuple) -> str:
    out = where
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _class_at(cls: type | None, loc: tuple) -> type | None:
    """The settings class of the nested field at ``loc`` (None when it is not one)."""
    for part in loc:
        fields = getattr(cls, "__pydantic_fields__", None)
        if fields is None or part not in fields:
            return None
        annotation = fields[part].annotation
        cls = annotation if dataclasses.is_dataclass(annotation) else None
    return cls


def error_text(errors: list[dict], cls: type | None = None, where: str | None = None, label=None) -> str:
    """One readable line per problem: ``<where>.<field>=<value> must be <accepted>``.

    ``where`` names the settings (default: the class name, e.g. ``"extraction"`` for a run config
    section); ``label(loc)`` may name a field another way (e.g. by its command-line flag).
    """
    where = where if where is not None else (cls.__name__ if cls is not None else "settings")
    name = label or (lambda loc: _label(where, loc))
    lines: list[str] = []
    unknown: dict[tuple, list[str]] = {}
    for e in errors:
        loc = tuple(e.get("loc", ()))
        if e.get("type") in ("unexpected_keyword_argument", "extra_forbidden") and loc:
            unknown.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        if msg.startswith("Input should be "):
            msg = "must be " + msg.removeprefix("Input should be ")
        if not loc:
            lines.append(f"{where}: {msg}")
        elif msg.startswith("must ") and not isinstance(e.get("input"), dict):
            lines.append(f"{name(loc)}={e.get('input')!r} {msg}")
        else:
            lines.append(f"{name(loc)}: {msg}")
    for parent, names in unknown.items():
        nested = _class_at(cls, parent)
        allowed = f"; allowed: {', '.join(nested.__pydantic_fields__)}" if nested is not None else ""
        head = name(parent) if parent else where
        lines.insert(0, f"{head}: unknown field(s) {', '.join(names)}{allowed}")
    return "; ".join(lines)


# ------------------------------------------------------------------------------- JSON round trip


@functools.lru_cache(maxsize=None)
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def settings_to_dict(value: Any) -> dict:
    """A (nested) settings object as a JSON-ready dict (tuples become lists)."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"expected a settings object, got {type(value).__name__}")
    return _adapter(type(value)).dump_python(value, mode="json")


def settings_from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Validate ``data`` (as parsed from JSON) as ``cls``; missing fields take their defaults.

    JSON's types are taken strictly (``"80"`` is not an integer, ``true`` is not 1); an array is
    accepted for a tuple and an integer for a float. ``where`` names the settings in errors
    (e.g. ``"extraction"``; default: the class name).

    Raises
    ------
    SettingsError
        Naming every bad or unknown field with its value and what is accepted.
    """
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise SettingsError(f"{where}: expected a JSON object, got {type(data).__name__}", cls=cls)
    try:
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{where}: not JSON data ({exc})", cls=cls) from exc
    try:
        return _adapter(cls).validate_json(text, strict=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise SettingsError(error_text(errors, cls, where), errors, cls) from None


# ------------------------------------------------------------------------------- field declarations


@dataclass(frozen=True)
class FieldSpec:
    """What the declaration of one settings field says, for building a flag or a widget.

    Attributes
    ----------
    name : field name.
    kind : the value type: ``int``, ``float``, ``str``, ``bool``, ``tuple`` or a settings class.
    default : the declared default.
    help : the field's description (units included).
    choices : the accepted values of a ``Literal`` field, else None.
    keywords : words accepted besides numbers (``("auto",)`` for ``k``), else ().
    minimum, maximum : declared bounds (of each item for a tuple), or None.
    exclusive_minimum, exclusive_maximum : True when a bound is itself refused (``gt``/``lt``).
    nullable : None is accepted.
    length : number of items of a fixed-length tuple, else None.
    item_kind : type of a tuple's items, else None.
    """

    name: str
    kind: type
    default: Any
    help: str
    choices: tuple | None = None
    keywords: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    nullable: bool = False
    length: int | None = None
    item_kind: type | None = None


def _bounds(metadata, spec: dict) -> None:
    for m in metadata:
        if isinstance(m, FieldInfo):
            _bounds(m.metadata, spec)
        elif isinstance(m, annotated_types.Ge):
            spec.update(minimum=m.ge, exclusive_minimum=False)
        elif isinstance(m, annotated_types.Gt):
            spec.update(minimum=m.gt, exclusive_minimum=True)
        elif isinstance(m, annotated_types.Le):
            spec.update(maximum=m.le, exclusive_maximum=False)
        elif isinstance(m, annotated_types.Lt):
            spec.update(maximum=m.lt, exclusive_maximum=True)
        elif isinstance(m, annotated_types.Interval):
            _bounds([annotated_types.Ge(m.ge)] if m.ge is not None else [], spec)
            _bounds([annotated_types.Gt(m.gt)] if m.gt is not None else [], spec)
            _bounds([annotated_types.Le(m.le)] if m.le is not None else [], spec)
            _bounds([annotated_types.Lt(m.lt)] if m.lt is not None else [], spec)


def _analyse(tp: Any, spec: dict) -> None:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        _analyse(args[0], spec)
        _bounds(args[1:], spec)
    elif origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        spec["nullable"] = spec.get("nullable", False) or len(members) < len(args)
        literals = [a for a in members if typing.get_origin(a) is Literal]
        others = [a for a in members if typing.get_origin(a) is not Literal]
        if others:
            for a in others:
                _analyse(a, spec)
            spec["keywords"] = tuple(v for a in literals for v in typing.get_args(a))
        else:
            spec["choices"] = tuple(v for a in literals for v in typing.get_args(a))
            spec["kind"] = type(spec["choices"][0])
    elif origin is Literal:
        spec["choices"] = args
        spec["kind"] = type(args[0])
    elif origin is tuple:
        spec["kind"] = tuple
        if args and args[-1] is not Ellipsis:
            spec["length"] = len(args)
        if args:
            item: dict = {}
            _analyse(args[0], item)
            spec["item_kind"] = item.get("kind")
            spec.update({k: v for k, v in item.items() if k in ("minimum", "maximum", "exclusive_minimum",
                                                                "exclusive_maximum")})
    else:
        spec["kind"] = tp


def field_spec(cls: type, name: str) -> FieldSpec:
    """The declaration of field ``name`` of settings class ``cls`` (KeyError naming the fields)."""
    fields = cls.__pydantic_fields__
    if name not in fields:
        raise KeyError(f"{cls.__name__} has no field {name!r}; fields: {', '.join(fields)}")
    info = fields[name]
    spec: dict = {}
    _analyse(info.annotation, spec)
    _bounds(info.metadata, spec)
    default = info.default_factory() if info.default_factory is not None else info.default
    return FieldSpec(name=name, default=default, help=info.description or "", **spec)


def field_specs(cls: type) -> list[FieldSpec]:
    """:func:`field_spec` of every field of ``cls``, in declaration order."""
    return [field_spec(cls, name) for name in cls.__pydantic_fields__]
