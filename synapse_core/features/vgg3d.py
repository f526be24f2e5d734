"""The VGG3D network of the original tool (funlib's ``Vgg3D``), and where features come from.

Module names are the checkpoint format: ``features.N`` is the N-th module of the convolutional
trunk, ``classifier.N`` of the fully connected head. With the original configuration
(80³ input, ``fmaps=24``, ``n_convolutions=(4, 2, 2, 2)``) ``features`` holds 34 modules:

====  ==========================================  ======  =======
idx   module                                      ch      spatial
====  ==========================================  ======  =======
0-11  stage 1: 4 × (Conv3d → BatchNorm3d → ReLU)  24      80³
12    MaxPool3d(2)                                24      40³
13-19 stage 2: 2 convs, MaxPool at 19             48      20³
20-26 stage 3: 2 convs, MaxPool at 26             96      10³
27-33 stage 4: 2 convs, MaxPool at 33             192     5³
====  ==========================================  ======  =======

Layers are chosen by name (see :func:`layer_table`): ``stage{s}`` is stage *s*'s output after
its max-pool (``stage4`` is the original's "standard" extraction), ``stage{s}.conv{c}`` the raw
output of that stage's c-th convolution *before* BatchNorm (the original's "layer 20" is
``stage3.conv1``), ``stage{s}.conv{c}.bn`` after BatchNorm, ``stage{s}.conv{c}.relu`` after the
ReLU. ``layer{N}`` and ``features.N`` name module N directly. Input is ``(B, 1, z, y, x)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: Alias for the original's default extraction (stage 4 after its max-pool).
STANDARD_LAYER = "stage4"


@dataclass(frozen=True)
class Vgg3DConfig:
    """Shape of a VGG3D network; the default is the original tool's (and the hemibrain checkpoint's).

    Parameters
    ----------
    input_size : (z, y, x) voxels of the input crop the classifier was built for.
    fmaps : feature maps of the first stage; stage *i* has ``fmaps * prod(fmap_inc[:i])``.
    n_convolutions : convolutions per stage.
    downsample_factors : (z, y, x) max-pool factor ending each stage.
    fmap_inc : factor by which the feature maps grow after each stage.
    input_fmaps : input channels (1: gray EM).
    classifier_width : units of the two hidden fully connected layers (4096 in funlib's Vgg3D;
        smaller only for tiny test networks).
    """

    input_size: tuple[int, int, int] = (80, 80, 80)
    fmaps: int = 24
    n_convolutions: tuple[int, ...] = (4, 2, 2, 2)
    downsample_factors: tuple[tuple[int, int, int], ...] = ((2, 2, 2),) * 4
    fmap_inc: tuple[int, ...] = (2, 2, 2, 2)
    input_fmaps: int = 1
    classifier_width: int = 4096

    def stage_channels(self) -> list[int]:
        """Output channels of each stage."""
        channels, f = [], self.fmaps
        for inc in self.fmap_inc[: len(self.n_convolutions)]:
            channels.append(f)
            f *= inc
        return channels

    def output_size(self) -> tuple[int, int, int]:
        """(z, y, x) size of the trunk output for ``input_size``."""
        size = list(self.input_size)
        for factor in self.downsample_factors:
            size = [s // f for s, f in zip(size, factor)]
        return tuple(size)


def _define_vgg3d():
    """The :class:`Vgg3D` class; torch is imported here, so settings and layer names need no torch."""
    import torch  # annotations of forward
    from torch import nn

    class Vgg3D(nn.Module):
        """funlib's Vgg3D: stages of (Conv3d(k=3, p=1) → BatchNorm3d → ReLU) × n, each ending in a max-pool,
        then ``Linear → ReLU → Dropout → Linear → ReLU → Dropout → Linear`` to ``output_classes``.

        ``classifier=False`` builds the trunk only (``self.classifier`` is None; features need no head,
        and the original's head holds 100M parameters).
        """

        def __init__(self, config: Vgg3DConfig = Vgg3DConfig(), output_classes: int = 7, classifier: bool = True):
            super().__init__()
            if len(config.downsample_factors) != len(config.n_convolutions):
                raise ValueError("Vgg3DConfig: downsample_factors and n_convolutions must have one entry per stage")
            self.config = config
            self.output_classes = output_classes
            layers: list[nn.Module] = []
            in_ch = config.input_fmaps
            for out_ch, n_conv, factor in zip(config.stage_channels(), config.n_convolutions, config.downsample_factors):
                for _ in range(n_conv):
                    layers += [nn.Conv3d(in_ch, out_ch, kernel_size=3, padding=1), nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True)]
                    in_ch = out_ch
                layers.append(nn.MaxPool3d(factor))
            self.features = nn.Sequential(*layers)
            self.classifier = None
            if not classifier:
                return
            flat = in_ch * math.prod(config.output_size())  # plain ints: also under torch.device("meta")
            w = config.classifier_width
            self.classifier = nn.Sequential(
                nn.Linear(flat, w), nn.ReLU(inplace=True), nn.Dropout(),
                nn.Linear(w, w), nn.ReLU(inplace=True), nn.Dropout(),
                nn.Linear(w, output_classes),
            )

        def forward(self, x: torch.Tensor, return_features: bool = False):
            if self.classifier is None:
                raise ValueError("this VGG3D was built without its classifier (classifier=False); run model.features(x) "
                                 "for the trunk's output")
            f = self.features(x)
            logits = self.classifier(f.reshape(f.shape[0], -1))
            return (logits, f) if return_features else logits

    Vgg3D.__module__ = __name__
    Vgg3D.__qualname__ = "Vgg3D"  # pickled by reference as synapse_core.features.vgg3d.Vgg3D
    return Vgg3D


def __getattr__(name: str):
    # ``Vgg3D`` is defined on first use (PEP 562): importing this module for Vgg3DConfig or layer
    # names (every settings validation, ``--help``) does not import torch.
    if name == "Vgg3D":
        cls = _define_vgg3d()
        globals()["Vgg3D"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def untrained_vgg3d(config: Vgg3DConfig = Vgg3DConfig(), seed: int = 0, output_classes: int = 7) -> Vgg3D:  # noqa: F821
    """A VGG3D with PyTorch's default initialisation drawn from ``seed`` (eval mode)."""
    import torch

    Vgg3D = globals().get("Vgg3D") or __getattr__("Vgg3D")
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = Vgg3D(config, output_classes)
    finally:
        torch.random.set_rng_state(gen_state)
    return model.eval()


@dataclass(frozen=True)
class LayerInfo:
    """One selectable point of the trunk: ``index`` into ``model.features`` and what it is."""

    name: str  # canonical name, e.g. "stage3.conv1"
    index: int  # features.N
    stage: int  # 1-based
    kind: str  # "conv" (pre-BN), "bn", "relu" or "pool"
    channels: int


def layer_table(config: Vgg3DConfig = Vgg3DConfig()) -> list[LayerInfo]:
    """Every module of ``features`` with its canonical name, in forward order."""
    table: list[LayerInfo] = []
    idx = 0
    for s, (ch, n_conv) in enumerate(zip(config.stage_channels(), config.n_convolutions), start=1):
        for c in range(1, n_conv + 1):
            base = f"stage{s}.conv{c}"
            table += [LayerInfo(base, idx, s, "conv", ch), LayerInfo(base + ".bn", idx + 1, s, "bn", ch),
                      LayerInfo(base + ".relu", idx + 2, s, "relu", ch)]
            idx += 3
        table.append(LayerInfo(f"stage{s}.pool", idx, s, "pool", ch))
        idx += 1
    return table


def resolve_layer(name: str, config: Vgg3DConfig = Vgg3DConfig()) -> LayerInfo:
    """The layer called ``name``: a canonical name, ``stage{s}``, ``standard``, ``layer{N}``, ``features.N`` or ``N``.

    Raises ValueError listing the accepted names for an unknown one.
    """
    table = layer_table(config)
    key = name.strip().lower()
    if key == "standard":
        key = f"stage{len(config.n_convolutions)}"
    if re.fullmatch(r"stage\d+", key):
        key += ".pool"
    m = re.fullmatch(r"(?:layer|features\.)?(\d+)", key)  # "20" as the original's --layer_num 20
    for info in table:
        if (m and info.index == int(m.group(1))) or info.name == key:
            return info
    stages = len(config.n_convolutions)
    raise ValueError(
        f"unknown layer {name!r}: use stage1..stage{stages} (output after the stage's max-pool), "
        f"'standard' (= stage{stages}), stage<S>.conv<C> (conv output before BatchNorm; the original's "
        f"layer 20 is stage3.conv1), stage<S>.conv<C>.bn, stage<S>.conv<C>.relu, or layer0..layer{len(table) - 1}"
    )


def parse_layers(spec: str, config: Vgg3DConfig = Vgg3DConfig()) -> list[LayerInfo]:
    """Comma-separated layer names (``"stage3,stage4"``) → their LayerInfos, in the order given."""
    names = [part for part in spec.split(",") if part.strip()]
    if not names:
        raise ValueError("layer: give at least one layer name, e.g. 'stage4' or 'stage3.conv1'")
    layers = [resolve_layer(n, config) for n in names]
    if len({l.index for l in layers}) != len(layers):
        raise ValueError(f"layer {spec!r} names the same layer twice")
    return layers
