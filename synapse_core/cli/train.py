"""``train``: self-supervised training of the VGG3D trunk on the dataset's own synapse crops.

Example::

    python -m synapse_core train --data DATA --out model.pt            # --preset small without a GPU
    python -m synapse_core extract --data DATA --checkpoint model.pt --out features.csv

Writes ``model.pt`` (synister format plus metadata; ``extract``/the dashboard read the network
width and input size from it). While it runs, the state after each epoch is in ``model.pt.partial``:
run the same command again after an interruption and it continues from the last finished epoch.
"""

from __future__ import annotations

import sys

from synapse_core.cli.options import (
    add_crop_settings_arguments,
    add_data_arguments,
    add_settings_arguments,
    crop_settings_from_args,
    settings_from_args,
)

NAME = "train"
HELP = ("train the VGG3D trunk on the dataset's own synapses (self-supervised, VICReg or SimCLR, plus a morphology "
        "target in the small preset) and write a checkpoint for extract --checkpoint")

#: Short spellings of training flags (the first is shown in --help).
ALIASES: dict[str, tuple[str, ...]] = {"learning_rate": ("--lr", "--learning-rate")}


def add_arguments(p) -> None:
    from synapse_core.features.train_settings import (
        PRESETS,
        TrainSettings,
        settings_fields,
    )

    add_data_arguments(p)
    p.add_argument("--out", required=True, help="checkpoint to write, e.g. model.pt (state of an unfinished run: "
                                                "<out>.partial)")
    p.add_argument("--preset", choices=("auto", *PRESETS), default="auto",
                   help="small: fmaps 8, 32³ input, morphology target, about 12 CPU minutes for 300 synapses; "
                        "full: fmaps 24, 80³ input (the original network), self-supervision only, for a GPU; auto: "
                        "full with CUDA, else small. Flags below override it; the defaults shown are the small "
                        "preset's (default: %(default)s)")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="start from this VGG3D checkpoint's trunk (fine-tuning, e.g. hemibrain_production.checkpoint); "
                        "fmaps and, unless given, the input size are taken from the file (80³ for hemibrain)")
    p.add_argument("--overwrite", action="store_true", help="train again when --out exists")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch (default: PyTorch's choice; 1 is faster on a busy machine)")
    p.add_argument("--no-progress", dest="show_progress", action="store_false", help="no progress bar")
    add_crop_settings_arguments(p)
    add_settings_arguments(p, TrainSettings, aliases=ALIASES, exclude=("crop",), title="training settings",
                           preset=("small preset", PRESETS["small"]))
    # None = "not given": the preset (or the declared default) fills it in run().
    p.set_defaults(**{name: None for name in settings_fields()})


def _init_network(path: str):
    """The :class:`~synapse_core.features.vgg3d.Vgg3DConfig` of the VGG3D checkpoint ``path`` (its own width)."""
    from synapse_core.features.checkpoints import (
        CheckpointError,
        load_checkpoint,
        read_state_dict,
    )
    from synapse_core.features.vgg3d import Vgg3DConfig

    weight = read_state_dict(path).get("features.0.weight")
    if weight is None:
        raise CheckpointError(f"--init {path}: no features.0.weight; it is not a VGG3D checkpoint")
    return load_checkpoint(path, Vgg3DConfig(fmaps=int(weight.shape[0]))).model.config


def run(args) -> int:
    from pathlib import Path

    import torch

    from synapse_core.data.dataset import open_dataset
    from synapse_core.features.train import partial_path, prepare_training_data, train
    from synapse_core.features.train_settings import (
        TrainSettings,
        preset_settings,
        settings_fields,
    )

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads {args.threads}: give a number ≥ 1")
        torch.set_num_threads(args.threads)
    preset = args.preset if args.preset != "auto" else ("full" if torch.cuda.is_available() else "small")
    if args.init:  # fine-tuning: the file's width, and by default the input size it was trained at
        network = _init_network(args.init)
        args.fmaps = network.fmaps if args.fmaps is None else args.fmaps
        args.input_size = network.input_size[0] if args.input_size is None else args.input_size
    defaults = preset_settings(preset)
    for name in settings_fields():
        if getattr(args, name) is None:
            setattr(args, name, getattr(defaults, name))
    settings = settings_from_args(TrainSettings, args, crop=crop_settings_from_args(args))
    out = Path(args.out)
    if out.exists() and not partial_path(out).exists() and not args.overwrite:
        raise ValueError(f"--out {out} exists; give another file name, or --overwrite to train again")

    dataset = open_dataset(args.data, cache_dir=args.cache_dir)
    print(f"train: {len(dataset.synapses)} synapses of {args.data}; preset {preset}: fmaps {settings.fmaps}, "
          f"{settings.crop.size}³ crops → {settings.input_size}³ input, {settings.epochs} epochs of batch "
          f"{settings.batch_size}, {settings.method}", file=sys.stderr)
    data = prepare_training_data(dataset, settings)
    for row in data.skipped[:20]:
        print(f"  skipped {row['bbox_name']}/{row['Var1']}: {row['reason']}", file=sys.stderr)

    bar = None
    progress = None
    if args.show_progress:
        from tqdm import tqdm

        bar = tqdm(total=None, unit="step", desc="train", file=sys.stderr)

        def progress(epoch, step, steps, loss):
            if bar.total is None:
                bar.total = settings.epochs * steps
                bar.n = (epoch - 1) * steps + step - 1
            bar.update(1)
            bar.set_postfix(epoch=f"{epoch}/{settings.epochs}", loss=f"{loss:.3f}")

    try:
        result = train(data, settings, out, init=args.init, progress=progress)
    except KeyboardInterrupt:
        where = partial_path(out)
        if where.exists():
            print(f"interrupted; the state after the last finished epoch is in {where}: run the same command to "
                  f"continue", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    resumed = f", resumed after epoch {result.resumed_from}" if result.resumed_from else ""
    print(f"{result.n_synapses} synapses, {result.epochs_done} epochs{resumed}: loss {result.loss_curve[0]:.3f} → "
          f"{result.loss_curve[-1]:.3f}; {result.wall_time_s:.0f} s of training")
    print(f"wrote {result.path} ({result.identity}); use it with: python -m synapse_core extract --data "
          f"{args.data} --checkpoint {result.path} --out features.csv")
    return 0
