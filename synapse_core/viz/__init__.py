"""Visualisation: Plotly/matplotlib figures, crop GIFs and PNGs, slice overlays, galleries, one colour table.

The names below are the public API; they are imported on first use, so importing a light module
of this package (e.g. its settings) does not pull in the heavy ones (torch, scikit-learn).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        'figures': ['map_figure', 'k_curves_figure', 'bbox_composition_figure', 'save_figures'],
        'render': ['crop_gif_bytes', 'orthogonal_png_bytes'],
        'gallery': ['synapse_gif', 'synapse_orthogonal_png', 'gif_zip'],
        'slice_overlay': ['overlay_slice'],
    },
)
