"""Dashboard support without Streamlit: data roots, run configurations, widget options, selection state.

The names below are the public API; they are imported on first use, so importing a light module
of this package (e.g. its settings) does not pull in the heavy ones (torch, scikit-learn).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        'data_roots': ['DataRoot', 'configured_roots', 'resolve_inside'],
        'run_config': ['RunConfig', 'dumps', 'loads'],
        'widgets': ['widget_options'],
        'state': ['nearest_neighbours', 'ids_from_plotly_selection', 'map_event', 'plain_measurements'],
        'annotations': ['NamedSelection'],
        'diagnostics_text': ['diagnostic_rows'],
        'jobs': ['JobRegistry', 'REGISTRY', 'submit_extraction', 'submit_training'],
    },
)
