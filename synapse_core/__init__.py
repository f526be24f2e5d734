"""SynapseClusterEM core: data → crops → features → embedding/clusters → figures.

Axis order everywhere is ``(z, y, x)``; synapse tables store points as ``(x, y, z)``
voxel indices (columns ``*_coord_1..3``), so ``vol[z, y, x]`` indexes a volume.
"""

__version__ = "0.1.0"
