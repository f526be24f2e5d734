"""Layer names for biologists: what each selectable point of the VGG3D trunk is, in plain words.

The stored setting is always the internal name (``stage4``, ``stage3.conv1``): URLs and saved run
configurations do not change. These functions only say what a name means, for widget labels and help.

>>> layer_label("stage4")
'stage 4 (deepest, default)'
>>> layer_label("stage3.conv1")
"stage 3, convolution 1 before BatchNorm (the original's layer 20)"
>>> internal_name("stage4")
'stage4 = features.33'
"""

from __future__ import annotations

from synapse_core.features.vgg3d import Vgg3DConfig, layer_table, resolve_layer

#: The original tool's network shape (and the default of every function here).
ORIGINAL = Vgg3DConfig()

#: What the output of each stage of a 4-stage trunk typically responds to, from shallow to deep.
_STAGE_WORDS = {1: "edges and texture", 2: "small shapes", 3: "larger parts"}

_KIND_WORDS = {"conv": "before BatchNorm", "bn": "after BatchNorm", "relu": "after ReLU"}

#: The original tool's ``--layer_num 20``, called by its number in its papers and notes.
_ORIGINAL_LAYER = 20


def layer_options(config: Vgg3DConfig = ORIGINAL) -> list[str]:
    """Internal names offered for choice: the stage outputs (``stage1`` ..) first, then every trunk module."""
    stages = [f"stage{s}" for s in range(1, len(config.n_convolutions) + 1)]
    return stages + [info.name for info in layer_table(config)]


def _stage_words(stage: int, n_stages: int) -> str:
    if stage == n_stages:
        return "deepest"
    if stage == 1:
        return _STAGE_WORDS[1]
    return _STAGE_WORDS.get(stage, "intermediate") if n_stages == 4 else "intermediate"


def layer_label(name: str, config: Vgg3DConfig = ORIGINAL) -> str:
    """A short name for layer ``name`` in the field's words, e.g. ``"stage 1 (edges and texture)"``.

    Stage outputs (``stage{s}``) are named by their depth; the default
    (``stage4``, the original's "standard" extraction) says so. Other modules name their stage,
    convolution and position (before/after BatchNorm, after ReLU). Raises ValueError for an
    unknown name, listing the accepted ones.
    """
    info = resolve_layer(name, config)
    n_stages = len(config.n_convolutions)
    if info.kind == "pool" and name.strip().lower() == info.name:  # "stage4.pool": the same layer as "stage4"
        return f"stage {info.stage} after its max-pool (same as stage {info.stage})"
    if info.kind == "pool":
        words = _stage_words(info.stage, n_stages)
        if info.index == resolve_layer("standard", config).index:
            words += ", default"
        return f"stage {info.stage} ({words})"
    conv = int(info.name.split(".")[1][len("conv"):])
    label = f"stage {info.stage}, convolution {conv} {_KIND_WORDS[info.kind]}"
    if info.index == _ORIGINAL_LAYER and config == ORIGINAL:
        label += " (the original's layer 20)"
    return label


def internal_name(name: str, config: Vgg3DConfig = ORIGINAL) -> str:
    """The name as given and the checkpoint module it reads, e.g. ``"stage4 = features.33"``."""
    return f"{name.strip()} = features.{resolve_layer(name, config).index}"


def layer_option_label(name: str, config: Vgg3DConfig = ORIGINAL) -> str:
    """Label and internal name in one line, for a widget's ``format_func``:
    ``"stage 4 (deepest, default) · stage4 = features.33"``."""
    return f"{layer_label(name, config)} · {internal_name(name, config)}"


def layers_help(config: Vgg3DConfig = ORIGINAL) -> str:
    """Markdown help: what each stage output is (channels, spatial size in voxels) and how the internal names read."""
    size = list(config.input_size)
    lines = []
    for s, (channels, factor) in enumerate(zip(config.stage_channels(), config.downsample_factors), start=1):
        size = [n // f for n, f in zip(size, factor)]
        lines.append(f"- **{layer_label(f'stage{s}', config)}**: `{internal_name(f'stage{s}', config)}`, "
                     f"{channels} channels on a {'×'.join(map(str, size))} (z×y×x) grid")
    return (
        "Where in the network the features are read. Shallow stages respond to local texture, deep ones to "
        "the whole synapse; the deepest stage is the original tool's standard.\n\n" + "\n".join(lines) + "\n\n"
        "Finer choices read one convolution of a stage before BatchNorm, after BatchNorm or after ReLU "
        "(`stage3.conv1` is the original's layer 20). Several layers are concatenated in the order chosen. "
        "`features.N` is module N of the checkpoint."
    )
