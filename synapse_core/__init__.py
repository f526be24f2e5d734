"""SynapseClusterEM core: data → crops → features → cluster → viz, one subpackage per stage.

* :mod:`synapse_core.data`: datasets, volumes, voxel sizes, synapse tables, validation, the demo.
* :mod:`synapse_core.crops`: crops around each synapse on a grid in nm, segmentation types.
* :mod:`synapse_core.features`: VGG3D features (checkpoint or self-trained) and morphology.
* :mod:`synapse_core.cluster`: preprocessing, clustering, k selection, maps, diagnostics.
* :mod:`synapse_core.viz`: figures, GIFs, galleries.
* :mod:`synapse_core.app` (dashboard support without Streamlit) and :mod:`synapse_core.cli`
  (``python -m synapse_core``) are the two faces over them.

Axis order everywhere is ``(z, y, x)``; synapse tables store points as ``(x, y, z)`` voxel indices
(columns ``*_coord_1..3``), so ``vol[z, y, x]`` indexes a volume. Lengths are in nm.
"""

import lazy_loader as _lazy

__version__ = "0.2.0"

__getattr__, __dir__, _submodules = _lazy.attach(
    __name__, submodules=["data", "crops", "features", "cluster", "viz", "app", "cli"])
__all__ = [*_submodules, "__version__"]
