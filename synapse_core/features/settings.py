"""How features are extracted: :class:`ExtractSettings` and the choices it accepts, declared once.

Imports no torch at import time (the CLI builds ``extract --help`` from this module); checking a
layer name against the network builds the layer table of :mod:`synapse_core.features.vgg3d` on
first validation.
"""

from __future__ import annotations

import re
import typing
from typing import Literal

from pydantic import Field, field_validator, model_validator

from synapse_core.crops.settings import CropSettings
from synapse_core.settings_base import settings

FeatureSet = Literal["auto", "vgg3d", "morphology", "both", "pixels"]
Pooling = Literal["avg", "max", "concat_avg_max", "spp"]
Precision = Literal["fp32", "bf16"]
Executor = Literal["local", "dask"]
Invariance = Literal["none", "flips", "flips_rot90", "cube"]

#: ``vgg3d`` → ``feat_*`` columns (deep features), ``morphology`` → ``morph_*``, ``both`` → both, ``pixels`` →
#: ``feat_*`` holding the block-averaged blended crop; ``auto`` → ``vgg3d`` with a checkpoint, else
#: :data:`NO_CHECKPOINT_FEATURES`.
FEATURE_SETS: tuple[str, ...] = typing.get_args(FeatureSet)
#: What ``features="auto"`` extracts without a checkpoint: the best feature set that needs no download,
#: measured by ``benchmarks/learned_features.py`` (docs/training.md).
NO_CHECKPOINT_FEATURES = "morphology"
#: Symmetry groups the vectors can be averaged over (:mod:`synapse_core.features.invariance`).
INVARIANCES: tuple[str, ...] = typing.get_args(Invariance)
#: Pooling of a layer's output over (z, y, x) (see :func:`synapse_core.features.pooling.pool`).
POOLING_METHODS: tuple[str, ...] = typing.get_args(Pooling)
#: fp32, or bfloat16 autocast.
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
#: Devices by name; ``cuda:N`` names one GPU.
DEVICES = ("auto", "cpu", "cuda")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
_SCHEDULER = re.compile(r"(tcp|tls|ucx|inproc)://\S+")


@settings
class ExtractSettings:
    """How features are extracted (frozen; the result-relevant fields are part of every cache key).

    ``features`` is the feature set to cluster on (``feature_set`` column, with ``"auto"`` resolved:
    :attr:`feature_set`); morphology columns are always written, ``feat_*`` columns hold the deep
    features (vgg3d, both) or the block-averaged crop (pixels). ``invariance`` averages the vector
    over flips/rotations of the crop (:mod:`synapse_core.features.invariance`). ``layer`` names one or
    more layers, comma-separated (see :func:`synapse_core.features.vgg3d.resolve_layer`); the
    original's "layer 20" is ``stage3.conv1`` (or ``layer20``). bf16 is ~1.7× faster on CPUs with
    AVX512-BF16, but its rounding (~0.2 % of a feature) exceeds the between-synapse spread of an
    untrained network's features (~0.02 %); check it with ``benchmarks/extract.py`` for a checkpoint.

    Example
    -------
    >>> ExtractSettings(features="morphology", pooling="mean")
    Traceback (most recent call last):
    ...
    synapse_core.settings_base.SettingsError: ExtractSettings.pooling='mean' must be 'avg', 'max', 'concat_avg_max' or 'spp'
    """

    crop: CropSettings = Field(default_factory=CropSettings,
                               description="crop size, segmentation type, alpha ... (the network input is the "
                                           "blended crop)")
    features: FeatureSet = Field("auto", description="feature set to cluster on: vgg3d (deep features), morphology, "
                                                     "both, pixels (the blended crop block-averaged to pixel_grid³, "
                                                     "a baseline), or auto: vgg3d with a checkpoint, else "
                                                     f"{NO_CHECKPOINT_FEATURES} (measured best without a download, "
                                                     "docs/training.md); morphology columns are always written")
    checkpoint: str | None = Field(None, description="VGG3D checkpoint file (synister format, e.g. "
                                                     "hemibrain_production.checkpoint); None: an untrained network "
                                                     "(random weights from seed), and outputs say so")
    layer: str = Field("stage4",
                       description="layer(s), comma-separated: stage1..stage4 (after the stage's max-pool; stage4 = "
                                   "the original's 'standard'), stage3.conv1 or layer20 (the original's layer 20, "
                                   "conv output before BatchNorm), stage<S>.conv<C>.relu ...")
    pooling: Pooling = Field("avg", description="pooling of the layer output over (z, y, x)")
    batch_size: int = Field(4, ge=1, le=1024, description="crops per forward pass")
    device: str = Field("auto", description="auto (CUDA when available), cpu, cuda or cuda:N")
    precision: Precision = Field("fp32", description="bf16 autocast: faster only where the hardware runs bfloat16 "
                                                     "natively (CPUs with AMX, GPUs); slower than fp32 on other CPUs "
                                                     "(measured once per machine; a warning says so), and its "
                                                     "rounding can exceed the differences between synapses "
                                                     "(untrained network)")
    seed: int = Field(0, ge=0, description="initialisation seed of the untrained network (ignored with a checkpoint)")
    fmaps: int = Field(24, ge=1, le=512, description="first-stage feature maps of VGG3D (24 = the original network)")
    workers: int = Field(1, ge=0, le=256, description="processes building crops while the network runs (0: the main process)")
    executor: Executor = Field("local", description="where the per-synapse work runs: local (a process pool on this "
                                                    "machine, the network in this process) or dask (a Dask "
                                                    "cluster's workers build crops and run the network; "
                                                    "docs/scale.md)")
    dask_workers: int = Field(2, ge=1, description="dask: worker processes of the local cluster started when no "
                                                   "scheduler is given (one thread each)")
    scheduler: str | None = Field(None, description="dask: address of a running Dask scheduler to join, "
                                                     "tcp://HOST:PORT (None: start a local cluster)")
    pixel_grid: int = Field(10, ge=1, le=64, description="pixels: edge of the grid the blended crop is block-averaged "
                                                         "to (10: 1000 values per synapse)")
    invariance: Invariance = Field("none", description="average each vector over a symmetry group of the crop: "
                                                       "flips (8: z, y, x flips), flips_rot90 (16: also 90° "
                                                       "rotations in the y-x plane), cube (48: all axis "
                                                       "permutations and flips; the crop grid is isotropic); costs "
                                                       "that many forward passes per synapse")

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is not None and not _SCHEDULER.fullmatch(value):
            raise ValueError("must be a Dask scheduler address such as tcp://10.0.0.5:8786 (or None)")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.fullmatch(value):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return value

    @model_validator(mode="after")
    def _network_fits(self):
        # "auto" becomes vgg3d as soon as a checkpoint is chosen: a bad layer is an error now, not then.
        if self.deep or (self.features == "auto" and self.crop.size >= 16):
            from synapse_core.features.vgg3d import parse_layers

            parse_layers(self.layer, self.network_config())  # the crop fits the network; the layers exist
        return self

    @property
    def feature_set(self) -> str:
        """The feature set extracted: ``features`` with ``"auto"`` resolved (vgg3d with a checkpoint, else
        :data:`NO_CHECKPOINT_FEATURES`)."""
        if self.features != "auto":
            return self.features
        return "vgg3d" if self.checkpoint else NO_CHECKPOINT_FEATURES

    @property
    def deep(self) -> bool:
        """True when deep (VGG3D) features are computed (a network is needed)."""
        return self.feature_set in ("vgg3d", "both")

    @property
    def pixels(self) -> bool:
        """True when the pixel baseline is computed (no network)."""
        return self.feature_set == "pixels"

    @property
    def vectors(self) -> bool:
        """True when a vector per synapse is computed from its blended crop (deep features or pixels)."""
        return self.deep or self.pixels

    def network_config(self):
        """The :class:`~synapse_core.features.vgg3d.Vgg3DConfig` of these settings (ValueError: crop too small)."""
        from synapse_core.features.vgg3d import Vgg3DConfig

        size = self.crop.size
        if size < 16:
            raise ValueError(f"crop size {size} is too small for VGG3D (4 max-pools of 2): use at least 16 voxels "
                             f"(80 for the original network)")
        return Vgg3DConfig(input_size=(size, size, size), fmaps=self.fmaps)
