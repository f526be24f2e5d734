"""Widget options of a settings field, read from its declaration (no Streamlit here).

The dashboard's settings widgets take their choices, range and help from the stage's settings
class (:mod:`synapse_core.settings_base`), so a page never retypes them; a value loaded from a
run configuration that a widget cannot show is reported by name (:func:`unshowable`), never
silently replaced.

Example
-------
>>> from synapse_core.cluster.settings import ClusterSettings
>>> widget_options(ClusterSettings, "nan_policy")["options"]
['error', 'drop', 'impute']
>>> widget_options(ClusterSettings, "min_samples")["min_value"]
1
>>> unshowable("extraction.layer", "stage3,stage4".split(","), options=["stage3"])
"extraction.layer=['stage3', 'stage4'] cannot be shown: the widget offers 'stage3'"
"""

from __future__ import annotations

from typing import Any

from synapse_core.settings_base import field_spec


def widget_options(cls: type, name: str, **overrides) -> dict[str, Any]:
    """Keyword arguments for a widget of field ``name`` of settings class ``cls``.

    ``options`` (a list) for a field with choices; ``min_value``/``max_value`` for a number (or
    a tuple of numbers) with a declared range; ``help`` from the field's description.
    ``overrides`` (e.g. a page's ``step`` or ``format_func``) are added last.
    """
    spec = field_spec(cls, name)
    kwargs: dict[str, Any] = {"help": spec.help}
    number = spec.item_kind if spec.kind is tuple else spec.kind
    if spec.choices is not None:
        kwargs["options"] = list(spec.choices)
    elif number in (int, float):
        if spec.minimum is not None:
            kwargs["min_value"] = number(spec.minimum)
        if spec.maximum is not None:
            kwargs["max_value"] = number(spec.maximum)
    kwargs.update(overrides)
    return kwargs


def declared_default(cls: type, name: str) -> Any:
    """The declared default of field ``name`` of ``cls``."""
    return field_spec(cls, name).default


def unshowable(label: str, value: Any, options=None, min_value=None, max_value=None) -> str | None:
    """Why a widget with these ``options`` or limits cannot show ``value`` (None when it can).

    A list or tuple ``value`` (a multiselect, a range slider) is checked item by item. ``label``
    names the field in the message, e.g. ``"clustering.nan_policy"``.
    """
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if options is not None:
        opts = list(options)
        if any(v not in opts for v in items):
            return f"{label}={value!r} cannot be shown: the widget offers {', '.join(map(repr, opts))}"
        return None
    numbers = [v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if min_value is not None and any(v < min_value for v in numbers):
        return f"{label}={value!r} cannot be shown: the widget's smallest value is {min_value}"
    if max_value is not None and any(v > max_value for v in numbers):
        return f"{label}={value!r} cannot be shown: the widget's largest value is {max_value}"
    return None
