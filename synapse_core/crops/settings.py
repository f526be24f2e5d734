"""How a synapse crop is built: :class:`CropSettings`, every choice declared once.

Imports no torch, pandas or scikit-learn: the CLI builds its crop flags from this module.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, model_validator

from synapse_core.crops.segmentation_types import SEGMENTATION_TYPES
from synapse_core.settings_base import settings

#: Segmentation type ids 0–13 (see :data:`synapse_core.crops.segmentation_types.SEGMENTATION_TYPES`).
SegmentationTypeId = Literal[tuple(SEGMENTATION_TYPES)]

_TYPES_HELP = "; ".join(f"{k} {v.name}" for k, v in SEGMENTATION_TYPES.items())

#: Fields that decide the presynaptic side, the crop centre and the context window (:meth:`CropSettings.locate_token`).
LOCATE_FIELDS = ("size", "smart_crop", "presynapse_weight", "presynapse_radius", "mito_dilation", "fallback_side",
                 "voxel_size_nm")


@settings
class CropSettings:
    """How a synapse crop is built (frozen: also the cache key of everything computed from crops).

    Defaults: an 80³ crop (the VGG3D input), seg type 10 "cleft + presynapse" with ``alpha=1.0``
    (everything else flat gray 0.6), smart crop on with weight 0.7. Type 10 with alpha 1 is what the
    original's published experiments fed the network (notes §3, "typical experiments"); unlike the
    config default 11 it does not depend on mitochondria labels being present and complete, and
    unlike 12/13 it never discards a synapse. Alpha 1 (not the dataset default 0.3) because the
    original's configs always passed 1.0, so features match that tool's.

    ``presynapse_radius=None`` means ``size // 2`` (a window the size of the crop). The original
    used ``size`` (a 160³ window); ``size // 2`` bounds the smart-crop shift to ``weight * size / 2``
    so the synapse always stays inside the crop, and keeps the cost of a crop small. The fallback
    side: the original silently chose side 2 on ties; no side is better founded, so the default
    follows the table's order (side 1).

    ``orientation="canonical"`` (default) rotates each crop so the cleft normal is its z axis,
    presynaptic side at low z (:mod:`synapse_core.crops.orient`). Measured on demo synapses of random
    orientation (``benchmarks/orientation.py``, docs/crops.md) it clusters the planted types better for
    every feature set (ARI untrained VGG3D 0.30 → 0.68, pixels 0.00 → 0.20, morphology 0.95 → 0.97),
    for 5–7× the CPU of a native crop (small next to the network). ``"native"`` keeps the data's axes.

    Example
    -------
    >>> CropSettings(size=64, segmentation_type=6).radius
    32
    >>> CropSettings(alpha=1.5)
    Traceback (most recent call last):
    ...
    synapse_core.settings_base.SettingsError: CropSettings.alpha=1.5 must be less than or equal to 1
    """

    size: int = Field(80, ge=2, le=512, description="crop edge in voxels (80 = the VGG3D input; at most 512: "
                                                    "a 512³ crop already needs 0.5 GB per array)")
    segmentation_type: SegmentationTypeId = Field(10, description=f"voxels kept raw: {_TYPES_HELP}")
    alpha: float = Field(1.0, ge=0, le=1, description="opacity of the gray curtain outside the mask: "
                                                      "1 flat gray, 0 raw everywhere")
    gray: float = Field(0.6, ge=0, le=1, description="gray level of the curtain outside the mask (0 black, 1 white)")
    smart_crop: bool = Field(True, description="move the crop centre presynapse_weight of the way towards the "
                                               "presynaptic neuron's centre of mass (off: centre on the annotation)")
    presynapse_weight: float = Field(0.7, ge=0, le=1, description="smart-crop weight (0 no shift, 1 the presynaptic "
                                                                  "centre of mass)")
    presynapse_radius: int | None = Field(None, ge=1, le=512, description="half-edge in voxels of the window around the "
                                                                  "synapse centre where the vesicle cloud decides "
                                                                  "the presynaptic side (None: size // 2)")
    mito_dilation: int = Field(2, ge=0, le=64, description="dilation (voxels, 6-neighbour cross) of the mitochondria "
                                                    "removed by types 11 and 13")
    vesicle_box: int = Field(25, ge=1, description="types 12/13: edge of the vesicle box in voxels (at most size)")
    vesicle_box_fill: float = Field(1.0, gt=0, le=1, description="types 12/13: fraction of the vesicle box that "
                                                                 "must be filled")
    vesicle_box_max_shift: int = Field(10, ge=0, description="type 13: largest shift of the vesicle box in voxels")
    fallback_side: Literal[1, 2] = Field(1, description="presynaptic side used when there is no vesicle evidence "
                                                        "(recorded as a fallback)")
    voxel_size_nm: float = Field(8.0, gt=0, le=1000, description="voxel edge of the crop grid in nm (isotropic; "
                                 "data of any voxel size is resampled to it; 8 nm × 80 voxels = 640 nm, the "
                                 "hemibrain VGG3D's input)")
    min_coverage: float = Field(0.5, ge=0, le=1, description="skip synapses whose crop has less than this "
                                "fraction of its volume inside the data (border, thin stacks); the reason is "
                                "reported")
    orientation: Literal["native", "canonical"] = Field(
        "canonical", description="canonical (default, clusters better: docs/crops.md): each crop is rotated so "
        "the cleft normal is its z axis with the presynaptic side at low z (galleries show every synapse the "
        "same way round); native: crops keep the data's axes")

    @model_validator(mode="after")
    def _box_fits(self):
        if SEGMENTATION_TYPES[self.segmentation_type].vesicle_box and self.vesicle_box > self.size:
            raise ValueError(f"vesicle_box={self.vesicle_box} must be at most size ({self.size}) for segmentation "
                             f"types 12 and 13")
        return self

    @property
    def crop_nm(self) -> float:
        """Edge of the crop in nm (``size * voxel_size_nm``) when the data's voxel size is known."""
        return self.size * self.voxel_size_nm

    @property
    def radius(self) -> int:
        """Half-edge (voxels) of the presynaptic evidence window."""
        return self.presynapse_radius if self.presynapse_radius is not None else self.size // 2

    def locate_token(self) -> str:
        """Key of the fields that decide the presynaptic side, crop centre and context window."""
        return json.dumps({k: getattr(self, k) for k in LOCATE_FIELDS}, sort_keys=True)
