"""Save and load a run's full configuration as JSON (never pickle).

A run configuration names the data (data-root name, optional sub-folder, bboxes) and holds the
settings of each stage as plain JSON objects, in the form of the stages' settings declarations
(:class:`synapse_core.features.settings.ExtractSettings`,
:class:`synapse_core.cluster.settings.ClusterSettings`)::

    {"format": "synapse-cluster-em/run-config", "version": 1,
     "data": {"root": "demo", "subfolder": "", "bboxes": ["bbox1", "bbox2"]},
     "extraction": {...}, "clustering": {...}}

Loading validates every section against its declaration (:func:`settings_from_dict`): an unknown
key, a value of the wrong type or outside the declared choices or range, and a wrong format or
version are refused with an error naming the field (``clustering.nan_policy='median' must be
'error', 'drop' or 'impute'``); nothing is coerced. Missing keys take the declared default, so a
config written by an older version still loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from synapse_core.cluster.settings import ClusterSettings
from synapse_core.features.settings import ExtractSettings
from synapse_core.settings_base import settings, settings_from_dict, settings_to_dict

__all__ = ["FORMAT", "VERSION", "MAX_CONFIG_BYTES", "DataChoice", "RunConfig", "SECTIONS", "dumps", "loads",
           "settings_from_dict", "settings_to_dict"]

FORMAT = "synapse-cluster-em/run-config"
VERSION = 1
#: Configs are small; anything larger is refused before parsing.
MAX_CONFIG_BYTES = 1_000_000
#: Settings class of each stage section.
SECTIONS: dict[str, type] = {"extraction": ExtractSettings, "clustering": ClusterSettings}


@settings
class DataChoice:
    """Which data a run used: a configured root's name, a folder inside it, the bboxes."""

    root: str = Field("", description="name of a configured data root")
    subfolder: str = Field("", description="folder inside the data root ('' = the root itself)")
    bboxes: tuple[str, ...] = Field((), description="bboxes of the run (none: all)")


@dataclass(frozen=True)
class RunConfig:
    """A run's configuration: data plus the settings of each stage, as plain dicts.

    ``extraction`` and ``clustering`` are the :func:`settings_to_dict` form of the stages'
    settings (possibly partial: missing fields take their defaults); rebuild the settings with
    :func:`settings_from_dict` and the section's class in :data:`SECTIONS`.
    """

    data: DataChoice = field(default_factory=DataChoice)
    extraction: dict = field(default_factory=dict)
    clustering: dict = field(default_factory=dict)


def dumps(config: RunConfig) -> str:
    """``config`` as pretty JSON text."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "data": settings_to_dict(config.data),
        "extraction": config.extraction,
        "clustering": config.clustering,
    }
    return json.dumps(payload, indent=2, sort_keys=False, allow_nan=False) + "\n"


def loads(text: str | bytes, source: str = "run config") -> RunConfig:
    """Parse and check JSON text written by :func:`dumps`; ``source`` names it in errors.

    Every section is validated against its settings declaration (:data:`SECTIONS`).

    Raises
    ------
    ValueError
        If the text is too large, not JSON, of another format/version, or has a bad field (named
        as ``<section>.<field>``, with its value and what is accepted).
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
    unknown = sorted(set(payload) - {"format", "version", "data", *SECTIONS})
    if unknown:
        raise ValueError(f"{source}: unknown section(s) {', '.join(unknown)}")
    try:
        data = settings_from_dict(DataChoice, payload.get("data", {}), "data")
        sections: dict[str, Any] = {}
        for name, cls in SECTIONS.items():
            section = payload.get(name, {})
            settings_from_dict(cls, section, name)  # refuse a bad field now, naming it
            sections[name] = section
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc
    return RunConfig(data=data, **sections)
