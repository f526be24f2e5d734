"""Flags shared by several commands (not a command itself): data root, cache, and settings flags.

A stage's settings flags are derived from its settings declaration
(:func:`add_settings_arguments`): one flag per field, ``--field-name`` and ``--field_name``,
with the field's description as help and its default. The original tool's spellings
(``--segmentation_type``, ``--gray_color``, ``--subvol_size`` ...) are accepted next to them.
Values are checked by the settings class: a bad one is an error naming the flag, the value and
what is accepted (``--alpha=1.5 must be less than or equal to 1``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synapse_core.settings_base import FieldSpec

#: The original tool's spellings of crop-settings flags (the dashed field name comes first in ``--help``).
CROP_ALIASES: dict[str, tuple[str, ...]] = {
    "segmentation_type": ("--segmentation-type", "--segmentation_type", "--seg-type"),
    "gray": ("--gray", "--gray_color", "--gray-color"),
    "size": ("--size", "--crop-size", "--subvol_size", "--subvol-size"),
}

#: Flag that names each settings field, per settings class (filled by :func:`add_settings_arguments`).
_FLAG_OF: dict[tuple[type, str], str] = {}


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """``--data`` (required) and ``--cache-dir``."""
    p.add_argument("--data", "--data_dir", "--data-dir", dest="data", required=True,
                   help="data root (folder with raw/, seg/, mask/, excel/) or a dataset config file")
    p.add_argument("--cache-dir", "--cache_dir", dest="cache_dir", default=None,
                   help="cache folder (default: the project's cache/ or $SYNAPSE_CACHE_DIR)")


def _spellings(name: str, negative: bool = False) -> list[str]:
    """``--field-name`` and ``--field_name`` (``--no-field-name`` and ``--no_field_name``)."""
    return ["--no-" + name.replace("_", "-"), "--no_" + name] if negative else ["--" + name.replace("_", "-"),
                                                                              "--" + name]


def _unique(flags) -> list[str]:
    return list(dict.fromkeys(flags))


def _metavar(spec: FieldSpec) -> str:
    if spec.choices is not None:
        return "{" + ",".join(map(str, spec.choices)) + "}"
    if spec.kind is tuple:
        return "-".join("N" if spec.item_kind is int else "X" for _ in range(spec.length or 2))
    word = {int: "N", float: "X"}.get(spec.kind, "TEXT")
    return "|".join([*map(str, spec.keywords), word] + (["none"] if spec.nullable else []))


def _help(spec: FieldSpec, preset: tuple[str, Mapping[str, Any]] | None = None) -> str:
    default = "none" if spec.default is None else spec.default
    if spec.kind is tuple:
        default = "-".join(map(str, spec.default))
    if preset is not None and spec.name in preset[1] and preset[1][spec.name] != spec.default:
        return f"{spec.help} ({preset[0]}: {preset[1][spec.name]}; otherwise {default})".replace("%", "%%")
    return f"{spec.help} (default: {default})".replace("%", "%%")


def add_settings_arguments(p: argparse.ArgumentParser, cls: type, aliases: Mapping[str, tuple[str, ...]] = None,
                           negations: Mapping[str, tuple[str, ...]] = None, exclude=(), title: str | None = None,
                           preset: tuple[str, Mapping[str, Any]] | None = None):
    """Add one flag per field of the settings class ``cls`` (a :func:`synapse_core.settings_base.settings` class).

    Parameters
    ----------
    p : the (sub)parser.
    cls : the settings class; type, choices, default and help of each flag come from its declaration.
    aliases : field → extra spellings of its flag (the first is the one ``--help`` and errors show).
    negations : bool field → extra spellings that turn it off (``--no-<field>`` always does).
    exclude : fields without a flag (e.g. a nested settings object the caller builds itself).
    title : heading of the flags in ``--help`` (default: the class name).
    preset : (name, field → value): ``--help`` shows these values, where they differ from the declared
        default, as the named preset's (e.g. ``("small preset", PRESETS["small"])``).

    Every flag's dest is the field name and its default the declared default; read the settings
    back with :func:`settings_from_args`.
    """
    from synapse_core.settings_base import field_specs  # pydantic: only for commands with settings

    aliases = aliases or {}
    negations = negations or {}
    group = p.add_argument_group(title or cls.__name__)
    for spec in field_specs(cls):
        if spec.name in exclude:
            continue
        flags = _unique([*aliases.get(spec.name, ()), *_spellings(spec.name)])
        _FLAG_OF[(cls, spec.name)] = flags[0]
        if spec.kind is bool:
            group.add_argument(*flags, dest=spec.name, action="store_true", default=spec.default,
                               help=f"{spec.help} (default: {'on' if spec.default else 'off'})".replace("%", "%%"))
            off = _unique([*_spellings(spec.name, negative=True), *negations.get(spec.name, ())])
            group.add_argument(*off, dest=spec.name, action="store_false", default=spec.default,
                               help=f"turn off {flags[0]}")
        else:
            group.add_argument(*flags, dest=spec.name, default=spec.default, metavar=_metavar(spec),
                               help=_help(spec, preset))


def _from_text(spec: FieldSpec, value: Any) -> Any:
    """The value a flag's text stands for; text that is none of the accepted forms stays text (the settings say why)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if spec.nullable and text.lower() == "none":
        return None
    words = [*(spec.choices or ()), *spec.keywords]
    for word in words:
        if str(word).lower() == text.lower():
            return word
    kind = spec.item_kind if spec.kind is tuple else spec.kind
    convert = {int: int, float: float}.get(kind)
    if convert is None:
        return value
    try:
        if spec.kind is tuple:  # "2-12", "2,12" or "2:12"
            return tuple(convert(part) for part in re.split(r"[,:]|(?<=\d)-", text))
        return convert(text)
    except ValueError:
        return value


def settings_from_args(cls: type, args: argparse.Namespace, **given):
    """The ``cls`` settings of parsed :func:`add_settings_arguments` flags; ``given`` fields are passed as they are.

    Raises
    ------
    ValueError
        Naming the flag, the value and what is accepted (e.g. ``--k='lots' must be "auto" or an integer ≥ 2``).
    """
    from synapse_core.settings_base import SettingsError, error_text, field_specs

    values = {spec.name: _from_text(spec, getattr(args, spec.name)) for spec in field_specs(cls)
              if spec.name not in given and hasattr(args, spec.name)}
    try:
        return cls(**values, **given)
    except SettingsError as exc:

        def label(loc):
            return _FLAG_OF.get((cls, loc[0]), f"--{str(loc[0]).replace('_', '-')}") + "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[1:])

        raise ValueError(error_text(exc.errors, cls, label=label)) from None


def add_crop_settings_arguments(p: argparse.ArgumentParser) -> None:
    """Every field of :class:`synapse_core.crops.settings.CropSettings` as a flag, with its default."""
    from synapse_core.crops.settings import CropSettings

    add_settings_arguments(p, CropSettings, aliases=CROP_ALIASES, title="crop settings")


def crop_settings_from_args(args):
    """The :class:`~synapse_core.crops.settings.CropSettings` of parsed :func:`add_crop_settings_arguments` flags."""
    from synapse_core.crops.settings import CropSettings

    return settings_from_args(CropSettings, args)
