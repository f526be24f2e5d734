"""How the VGG3D trunk is trained on a dataset's own synapses: :class:`TrainSettings` and its presets.

Imports no torch (the CLI builds ``train --help`` from this module). Every setting is declared
once, with its type, range and help; :data:`PRESETS` name two starting points:

* ``small`` (default without CUDA): ``fmaps=8``, crops area-averaged from 80³ to 32³ (2.5× coarser
  voxels: 20 nm for 8 nm data), 30 epochs of batch 16, every view also freely rotated (about the
  cleft normal for canonical crops), and the **morphology target** (``morphology_weight=10``,
  ``ssl_weight=0.1``): the pooled trunk features must also predict each synapse's measured
  morphology. About 12 CPU minutes for 300 synapses (730–745 CPU s measured); see docs/training.md
  for why (self-supervision alone put the bouton's size first and missed the planted types).
* ``full`` (default with CUDA): the original network (``fmaps=24``, 80³ input), 100 epochs of batch 32,
  self-supervision only (the morphology target is not measured at this size: add
  ``--morphology-weight`` to use it).

Example
-------
>>> s = preset_settings("small", epochs=5)
>>> s.fmaps, s.input_size, s.epochs, s.method
(8, 32, 5, 'vicreg')
>>> TrainSettings(input_size=30)
Traceback (most recent call last):
...
synapse_core.settings_base.SettingsError: TrainSettings.input_size=30 must be a multiple of 16
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from synapse_core.crops.settings import CropSettings
from synapse_core.settings_base import settings

Method = Literal["vicreg", "simclr"]
Geometry = Literal["auto", "isotropic", "anisotropic", "canonical"]

#: Self-supervised objectives (see docs/training.md for the choice).
METHODS: tuple[str, ...] = typing.get_args(Method)
#: Ratio of the largest to the smallest voxel edge up to which a dataset counts as isotropic.
ISOTROPY_TOLERANCE = 1.2


@settings
class TrainSettings:
    """Self-supervised training of the VGG3D trunk (frozen; its hash names a resumable run).

    The network sees each synapse's blended crop (``crop``, ``crop.size``³ voxels) area-averaged to
    ``input_size``³; two random views of a crop (:mod:`synapse_core.features.augment`) go through
    the trunk, a global average pool (the features ``extract`` reads at ``stage4``/``avg``) and a
    projection head that is discarded after training.
    """

    crop: CropSettings = Field(default_factory=CropSettings,
                               description="how each synapse is cropped (size, segmentation type, alpha ...); "
                                           "extraction with the trained model should use the same")
    method: Method = Field("vicreg", description="objective: vicreg (variance-invariance-covariance, no negatives, "
                                                 "works with small batches) or simclr (NT-Xent, contrastive)")
    fmaps: int = Field(8, ge=1, description="first-stage feature maps of VGG3D (24 = the original network)")
    input_size: int = Field(16, ge=16, description="network input edge in voxels: each crop is area-averaged "
                                                   "from crop.size to it (multiple of 16: 4 max-pools of 2)")
    epochs: int = Field(30, ge=1, description="passes over all synapses")
    batch_size: int = Field(16, ge=2, description="synapses per step (two views each)")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="peak AdamW learning rate (after warm-up; cosine "
                                                               "decay to 1 % of it)")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    warmup_epochs: int = Field(5, ge=0, description="epochs of linear learning-rate warm-up")
    seed: int = Field(0, ge=0, description="seed of the initial weights, batch order and augmentations")
    projector_dims: tuple[Annotated[int, Field(ge=1)], ...] = Field(
        (1024, 1024), min_length=1, description="widths of the projection head's layers (discarded after "
                                                "training; VICReg gains from a wide head)")
    invariance_weight: float = Field(25.0, ge=0, description="vicreg: weight of the view-agreement (MSE) term")
    variance_weight: float = Field(25.0, ge=0, description="vicreg: weight of the per-dimension std hinge term")
    covariance_weight: float = Field(1.0, ge=0, description="vicreg: weight of the off-diagonal covariance term")
    temperature: float = Field(0.2, gt=0, description="simclr: temperature of the NT-Xent softmax")
    ssl_weight: float = Field(1.0, ge=0, description="weight of the self-supervised loss (--method); 0 with "
                                                     "--morphology-weight > 0: the trunk learns only the morphology "
                                                     "target")
    morphology_weight: float = Field(0.0, ge=0, description="weight of the morphology target: a linear head on the "
                                                            "pooled trunk features must predict each synapse's "
                                                            "standardised morph_* measurements (volumes, cleft area "
                                                            "and thickness, distances, intensities of its own "
                                                            "segmentation) from the crop's image; discarded after "
                                                            "training. 0: self-supervision only")
    geometry: Geometry = Field("auto", description="isotropic: the 48 flips/axis permutations of the cube; "
                                                   "anisotropic: flips and 90° rotations in the section plane "
                                                   "(y, x) plus a z flip, per-section jitter and section drop; "
                                                   "canonical: 90° rotations and mirrors of the y-x plane only "
                                                   "(z, the cleft normal of canonical crops, is kept); "
                                                   "auto: canonical for canonical crops, else from the dataset's "
                                                   "voxel size (unknown → anisotropic)")
    rotation_probability: float = Field(0.0, ge=0, le=1, description="probability that a view is also rotated by "
                                                                     "a random angle: any 3D rotation (isotropic) "
                                                                     "or any angle in the y-x plane (anisotropic; "
                                                                     "canonical: about the cleft normal); "
                                                                     "trilinear, edges replicated")
    translate: float = Field(0.1, ge=0, le=0.5, description="largest random shift of a view, as a fraction of "
                                                            "the input edge")
    brightness: float = Field(0.1, ge=0, le=1, description="largest additive intensity change (intensities in [0, 1])")
    contrast: float = Field(0.2, ge=0, lt=1, description="largest relative contrast change around the view's mean")
    gamma: float = Field(0.2, ge=0, le=2, description="largest |log gamma| of the gamma change")
    blur_probability: float = Field(0.5, ge=0, le=1, description="probability that a view is Gaussian-blurred")
    blur_sigma: float = Field(1.0, ge=0, description="largest blur sigma, in input voxels (in-plane)")
    noise_std: float = Field(0.05, ge=0, description="largest std of additive Gaussian noise (intensities in [0, 1])")
    section_jitter: int = Field(1, ge=0, description="anisotropic data: largest y/x shift of each z section, "
                                                     "in input voxels (section misalignment)")
    section_drop: float = Field(0.05, ge=0, le=1, description="anisotropic data: probability that a z section is "
                                                              "blanked (missing section)")
    cutout_probability: float = Field(0.0, ge=0, le=1, description="probability that a box of a view is blanked "
                                                                   "(off by default: a box can hide the cleft or a "
                                                                   "mitochondrion, what tells synapses apart)")
    cutout_size: float = Field(0.3, gt=0, le=1, description="largest edge of the blanked box, as a fraction of "
                                                            "the input edge")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available")
    mixed_precision: bool = Field(True, description="float16 autocast on CUDA (ignored on CPU, which trains "
                                                    "in float32)")

    @model_validator(mode="after")
    def _some_loss(self):
        if self.ssl_weight == 0 and self.morphology_weight == 0:
            raise ValueError("ssl_weight and morphology_weight are both 0: nothing to train; give either a "
                             "positive weight")
        return self

    @field_validator("input_size")
    @classmethod
    def _multiple_of_16(cls, value: int) -> int:
        if value % 16:
            raise ValueError("must be a multiple of 16")
        return value

    def network_config(self):
        """The :class:`~synapse_core.features.vgg3d.Vgg3DConfig` trained (head of width 1: never used)."""
        from synapse_core.features.vgg3d import Vgg3DConfig

        n = self.input_size
        return Vgg3DConfig(input_size=(n, n, n), fmaps=self.fmaps, classifier_width=1)


#: Named starting points; any field can still be set on top (``preset_settings("small", epochs=10)``).
PRESETS: dict[str, dict] = {
    "small": {"fmaps": 8, "input_size": 32, "epochs": 30, "batch_size": 16, "learning_rate": 1e-3,
              "rotation_probability": 1.0, "ssl_weight": 0.1, "morphology_weight": 10.0},
    "full": {"fmaps": 24, "input_size": 80, "epochs": 100, "batch_size": 32, "learning_rate": 5e-4},
}


def preset_settings(preset: str, **overrides) -> TrainSettings:
    """:class:`TrainSettings` of preset ``preset`` ("small" or "full") with ``overrides`` applied."""
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r}: use one of {', '.join(PRESETS)}")
    return TrainSettings(**{**PRESETS[preset], **overrides})


def resolve_geometry(settings: TrainSettings, voxel_size_nm) -> str:
    """"isotropic", "anisotropic" or "canonical" for ``settings.geometry`` on data of ``voxel_size_nm`` (z, y, x) nm.

    ``auto``: "canonical" when ``settings.crop.orientation`` is canonical (the crop's z is the cleft
    normal: only rotations about it keep the synapse's pre/post axis), else from the voxel size
    (None: unknown → "anisotropic").
    """
    if settings.geometry != "auto":
        return settings.geometry
    if getattr(settings.crop, "orientation", "native") == "canonical":
        return "canonical"
    if voxel_size_nm is None:
        return "anisotropic"
    return "isotropic" if max(voxel_size_nm) <= ISOTROPY_TOLERANCE * min(voxel_size_nm) else "anisotropic"


def settings_fields() -> list[str]:
    """Names of the fields of :class:`TrainSettings` (besides ``crop``), in declaration order."""
    return [f.name for f in dataclasses.fields(TrainSettings) if f.name != "crop"]
