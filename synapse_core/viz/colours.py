"""The package's colour tables: one for synapse structures, one for bboxes and clusters.

* :data:`STRUCTURE_COLOURS` — RGB of each structure of a crop or mask slice (Okabe–Ito
  colour-blind-safe palette), used by GIF/PNG overlays (:mod:`synapse_core.viz.render`) and the
  slice viewer (:mod:`synapse_core.viz.slice_overlay`);
* :data:`BBOX_COLOURS`, :data:`CLUSTER_COLOURS`, :data:`NOISE_COLOUR` — hex colours of the maps and
  bar charts (:mod:`synapse_core.viz.figures`), read through :func:`bbox_colour_map` and
  :func:`cluster_colour`.

>>> cluster_colour(-1) == NOISE_COLOUR
True
>>> bbox_colour_map(["bbox2", "bbox1"])
{'bbox1': '#FF0000', 'bbox2': '#00FFFF'}
"""

from __future__ import annotations

from collections.abc import Iterable

#: RGB (0–255) of each structure, by its name in ``SynapseCrop.structures``.
STRUCTURE_COLOURS: dict[str, tuple[int, int, int]] = {
    "pre": (0, 114, 178),            # blue
    "post": (230, 159, 0),           # orange
    "cleft": (213, 94, 0),           # vermillion
    "vesicle_cloud": (0, 158, 115),  # bluish green
    "mitochondria": (204, 121, 167),  # reddish purple
}
#: RGB of the boundaries between neurons in the slice viewer.
NEURON_BOUNDARY_COLOUR = (255, 230, 0)
#: Bbox colours of the original tool (notes §8.1), kept so figures look familiar.
BBOX_COLOURS: dict[str, str] = {
    "bbox1": "#FF0000", "bbox2": "#00FFFF", "bbox3": "#FFA500", "bbox4": "#800080",
    "bbox5": "#808080", "bbox6": "#0000FF", "bbox7": "#000000",
}
#: Colours of bboxes not in :data:`BBOX_COLOURS`, in order of their sorted names.
EXTRA_BBOX_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
#: Colour of cluster ``c`` is ``CLUSTER_COLOURS[c % len(CLUSTER_COLOURS)]``.
CLUSTER_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
    "#756bb1", "#636363",
)
#: Colour of noise (cluster −1).
NOISE_COLOUR = "#BBBBBB"


def bbox_colour_map(names: Iterable) -> dict[str, str]:
    """Colour of each bbox name: the original tool's for bbox1..7, else the next extra colour (cycled)."""
    out, extra = {}, 0
    for name in sorted({str(n) for n in names}):
        if name in BBOX_COLOURS:
            out[name] = BBOX_COLOURS[name]
        else:
            out[name] = EXTRA_BBOX_COLOURS[extra % len(EXTRA_BBOX_COLOURS)]
            extra += 1
    return out


def cluster_colour(c: int) -> str:
    """Colour of cluster ``c`` (noise −1 is light gray)."""
    return NOISE_COLOUR if int(c) < 0 else CLUSTER_COLOURS[int(c) % len(CLUSTER_COLOURS)]
