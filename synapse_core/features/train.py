"""Self-supervised training of the VGG3D trunk on a dataset's own synapse crops.

1. :func:`prepare_training_data` crops every valid synapse of a dataset with the crop pipeline
   (:func:`synapse_core.crops.build.iter_crops`) and keeps the blended crops in memory,
   area-averaged to the network input (``TrainSettings.input_size``³ voxels).
2. :func:`train` fits the trunk: two random views of each crop (:func:`synapse_core.features.augment.random_view`)
   → ``model.features`` → global average pool (the ``stage4``/``avg`` features that ``extract``
   reads) → projection head → VICReg or NT-Xent loss (see docs/training.md). AdamW with linear
   warm-up and cosine decay.
3. After every epoch the whole state (weights, optimizer, epoch, loss curve, RNG state) is written
   atomically to ``<out>.partial``; a new call with the same settings and data continues from the
   last finished epoch. Batch order and augmentations of epoch *e* depend only on ``(seed, e)``,
   so on the CPU an interrupted and resumed run ends with the same weights as an uninterrupted one.
4. The result is a synister-format checkpoint ``{"model_state_dict": {features.N..., classifier.N...},
   "synapse_cluster_em": metadata}`` (projection head discarded; the classifier is an untrained
   1-unit placeholder that keeps the format). The metadata (plain JSON values: network shape,
   training and crop settings, data fingerprint, loss curve, method, version) is what
   :func:`synapse_core.features.checkpoints.load_checkpoint` reads to rebuild the network, so
   ``extract --checkpoint model.pt`` needs no other flag.

Example
-------
>>> ds = open_dataset("DATA")                                            # doctest: +SKIP
>>> s = preset_settings("small")                                         # doctest: +SKIP
>>> result = train(prepare_training_data(ds, s), s, "model.pt")          # doctest: +SKIP
>>> result.loss_curve[0] > result.loss_curve[-1]                         # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import synapse_core
from synapse_core.crops.build import Discarded, iter_crops
from synapse_core.data.atomic import atomic_file
from synapse_core.data.hashing import array_digest, content_hash
from synapse_core.features.augment import random_view, resize
from synapse_core.features.checkpoints import (
    METADATA_FORMAT,
    METADATA_KEY,
    CheckpointError,
    file_sha256,
    load_checkpoint,
)
from synapse_core.features.jobs import crop_morphology
from synapse_core.features.train_settings import TrainSettings, resolve_geometry
from synapse_core.features.train_targets import masked_mse, morphology_targets
from synapse_core.features.vgg3d import Vgg3D, untrained_vgg3d
from synapse_core.settings_base import settings_to_dict

log = logging.getLogger(__name__)

#: Version of the state written to ``<out>.partial``.
PARTIAL_FORMAT = 1


# ------------------------------------------------------------------------------------------- data


@dataclass
class TrainingData:
    """Crops of a dataset's synapses, ready for training.

    Attributes
    ----------
    crops : (N, n, n, n) float32 tensor, n = ``TrainSettings.input_size``; axis order (z, y, x).
    keys : (bbox_name, Var1) of each crop, in table order.
    skipped : rows that gave no crop: ``{"bbox_name", "Var1", "reason"}``.
    voxel_size_nm : (z, y, x) nm of the network input (the dataset's voxel size × crop.size / n), or None.
    data_voxel_size_nm : (z, y, x) nm of the dataset, or None when unknown.
    fingerprint : hex digests of the synapse table, of each bbox's volumes and of the crops.
    targets : (N, M) float32 tensor of standardised morphology (NaN: undefined), or None when the
        settings have no morphology target (:mod:`synapse_core.features.train_targets`).
    target_columns : the M ``morph_*`` names of ``targets``' columns.
    """

    crops: torch.Tensor
    keys: list[tuple[str, str]]
    skipped: list[dict] = field(default_factory=list)
    voxel_size_nm: tuple[float, float, float] | None = None
    data_voxel_size_nm: tuple[float, float, float] | None = None
    fingerprint: dict = field(default_factory=dict)
    targets: torch.Tensor | None = None
    target_columns: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        """One hex digest of the training data (the crops' bytes and their keys, and the targets if any)."""
        parts = {"crops": self.fingerprint.get("crops") or array_digest(self.crops.numpy()), "keys": self.keys}
        if self.targets is not None:
            parts["targets"] = {"values": array_digest(self.targets.numpy()), "columns": self.target_columns}
        return content_hash(parts)


def dataset_fingerprint(dataset) -> dict:
    """Digests of ``dataset``'s valid synapse table and of its volumes' fingerprints (per bbox)."""
    table = dataset.synapses
    rows = pd.util.hash_pandas_object(table.astype(str), index=False).to_numpy()
    return {
        "synapse_table": content_hash({"columns": [str(c) for c in table.columns], "rows": rows}),
        "volumes": {name: content_hash({"raw": b.raw.fingerprint, "seg": b.seg.fingerprint,
                                        "mask": b.mask.fingerprint if b.mask is not None else None})
                    for name, b in sorted(dataset.bboxes.items())},
    }


def prepare_training_data(dataset, settings: TrainSettings, progress: Callable[[int, int], None] | None = None
                          ) -> TrainingData:
    """Crop every valid synapse of ``dataset`` with ``settings.crop`` and resample to ``settings.input_size``³.

    With ``settings.morphology_weight > 0`` each crop's morphology is measured too (on the crop's own
    grid, before resampling) and kept as ``targets``. ``progress(done, total)`` is called after each
    synapse. Discarded synapses (e.g. segmentation types 12/13 without a vesicle box) are listed in
    ``skipped``. Raises ValueError when fewer than two synapses give a crop (a batch needs two).
    """
    rows = dataset.synapses
    total = len(rows)
    crops, keys, skipped, morphology = [], [], [], []
    for i, (bbox, var1, crop) in enumerate(iter_crops(dataset, settings.crop, rows), start=1):
        if isinstance(crop, Discarded):
            skipped.append({"bbox_name": bbox, "Var1": var1, "reason": crop.reason})
        else:
            x = torch.from_numpy(np.ascontiguousarray(crop.blended, dtype=np.float32))[None, None]
            crops.append(resize(x, settings.input_size)[0, 0])
            keys.append((bbox, var1))
            if settings.morphology_weight > 0:
                morphology.append(crop_morphology(crop, dataset.voxel_size_nm))
        if progress:
            progress(i, total)
    if len(crops) < 2:
        raise ValueError(f"training needs at least 2 synapse crops; {dataset.root} gave {len(crops)} "
                         f"({len(skipped)} discarded, {total} valid table rows): check the synapse tables and "
                         f"the segmentation type")
    stack = torch.stack(crops).contiguous()
    data_voxel = tuple(float(v) for v in dataset.voxel_size_nm) if dataset.voxel_size_nm is not None else None
    scale = settings.crop.size / settings.input_size
    voxel = tuple(v * scale for v in data_voxel) if data_voxel is not None else None
    fingerprint = {**dataset_fingerprint(dataset), "crops": array_digest(stack.numpy())}
    targets, columns = None, []
    if morphology:
        measured = morphology_targets(morphology)
        targets, columns = torch.from_numpy(measured.values), measured.columns
    return TrainingData(stack, keys, skipped, voxel, data_voxel, fingerprint, targets, columns)


# ------------------------------------------------------------------------------------------ losses


def vicreg_loss(za: torch.Tensor, zb: torch.Tensor, invariance: float = 25.0, variance: float = 25.0,
                covariance: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg (Bardes et al. 2022) of two (B, D) embeddings of the same B samples.

    ``invariance`` × MSE(za, zb) + ``variance`` × mean hinge ``max(0, 1 - std)`` per dimension (each
    branch, halved) + ``covariance`` × sum of squared off-diagonal covariances / D (each branch).
    """
    za, zb = za.float(), zb.float()
    n, d = za.shape
    sim = F.mse_loss(za, zb)
    za = za - za.mean(dim=0)
    zb = zb - zb.mean(dim=0)
    std_a = torch.sqrt(za.var(dim=0) + eps)
    std_b = torch.sqrt(zb.var(dim=0) + eps)
    var = F.relu(1 - std_a).mean() / 2 + F.relu(1 - std_b).mean() / 2
    off = ~torch.eye(d, dtype=torch.bool, device=za.device)
    cov_a = (za.T @ za) / (n - 1)
    cov_b = (zb.T @ zb) / (n - 1)
    cov = cov_a[off].pow(2).sum() / d + cov_b[off].pow(2).sum() / d
    return invariance * sim + variance * var + covariance * cov


def nt_xent_loss(za: torch.Tensor, zb: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al. 2020) of two (B, D) embeddings: each view must pick its partner among 2B - 1."""
    z = F.normalize(torch.cat([za.float(), zb.float()]), dim=1)
    n = za.shape[0]
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def projection_head(in_dim: int, dims) -> nn.Sequential:
    """Linear → BatchNorm → ReLU per hidden width of ``dims``, then a last Linear (VICReg's expander)."""
    layers: list[nn.Module] = []
    prev = in_dim
    for width in dims[:-1]:
        layers += [nn.Linear(prev, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
        prev = width
    layers.append(nn.Linear(prev, dims[-1]))
    return nn.Sequential(*layers)


def pooled(model: Vgg3D, x: torch.Tensor) -> torch.Tensor:
    """(B, C) global average of the trunk output (``stage4`` after its max-pool) for input (B, 1, z, y, x)."""
    return model.features(x).mean(dim=(2, 3, 4))


# ---------------------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """What :func:`train` did.

    ``finished`` is False when the run stopped early (``stop`` or ``until_epoch``); the state is then
    in ``partial`` and the same call continues it. ``path``/``identity`` name the checkpoint once finished.
    """

    path: str
    identity: str | None
    finished: bool
    epochs_done: int
    resumed_from: int
    loss_curve: list[float]
    wall_time_s: float
    n_synapses: int
    partial: str
    metadata: dict | None = None


def partial_path(out: str | os.PathLike) -> Path:
    """``model.pt`` → ``model.pt.partial`` (where an unfinished run keeps its state)."""
    return Path(str(out) + ".partial")


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of epoch ``epoch`` (0-based): batch order and augmentations depend on (seed, epoch) only."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _learning_rate(settings: TrainSettings, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up over ``warmup_epochs``, then cosine decay to 1 % of ``learning_rate`` at the last step."""
    total = settings.epochs * steps_per_epoch
    warm = min(settings.warmup_epochs * steps_per_epoch, total - 1)
    peak = settings.learning_rate
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, total - warm - 1)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A random permutation of ``range(n)`` split into ceil(n / batch_size) batches of near-equal size (≥ 2)."""
    perm = torch.randperm(n, generator=generator)
    count = max(1, math.ceil(n / batch_size))
    while count > 1 and n // count < 2:
        count -= 1
    return list(torch.tensor_split(perm, count))


@contextlib.contextmanager
def _deterministic():
    """Deterministic algorithms for the duration (restored after: the flag is global)."""
    before, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but no CUDA GPU is available to PyTorch; use --device cpu")
    return torch.device(name)


def _build(settings: TrainSettings, init: str | None) -> tuple[Vgg3D, nn.Sequential, str | None]:
    """The network (trunk from ``init`` when given) and a fresh projection head, both initialised from ``seed``."""
    config = settings.network_config()
    model = untrained_vgg3d(config, seed=settings.seed, output_classes=1)
    init_identity = None
    if init:
        loaded = load_checkpoint(init, dataclasses.replace(config, classifier_width=4096))
        trunk_config = loaded.model.config
        if (trunk_config.fmaps, trunk_config.n_convolutions) != (config.fmaps, config.n_convolutions):
            raise CheckpointError(f"--init {init}: its trunk has fmaps {trunk_config.fmaps}; train with "
                                  f"fmaps={trunk_config.fmaps} (--fmaps {trunk_config.fmaps}) to start from it")
        model.features.load_state_dict(loaded.model.features.state_dict())
        init_identity = loaded.identity
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed + 1)
        head = projection_head(config.stage_channels()[-1], settings.projector_dims)
    return model, head, init_identity


def _morphology_head(settings: TrainSettings, data: TrainingData) -> nn.Linear | None:
    """The linear head that predicts ``data.targets`` from the pooled trunk features (None without a target)."""
    if settings.morphology_weight == 0:
        return None
    if data.targets is None or data.targets.shape != (data.crops.shape[0], len(data.target_columns)):
        raise ValueError("settings.morphology_weight > 0 but the training data has no morphology targets: prepare "
                         "the data with the same settings (prepare_training_data measures them)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed + 2)
        return nn.Linear(settings.network_config().stage_channels()[-1], data.targets.shape[1])


def _atomic_save(obj, path: Path) -> None:
    """Write ``obj`` to ``path`` so that a reader (or a kill) sees the old file or the new one, never half."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def _run_key(settings: TrainSettings, data: TrainingData, init_identity: str | None) -> str:
    return content_hash({"settings": settings_to_dict(settings), "data": data.digest, "init": init_identity})


def _load_partial(path: Path, run_key: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: say which and what to do
        raise ValueError(f"{path} cannot be read to resume training ({type(exc).__name__}: {exc}); delete it to "
                         f"start again") from exc
    if not isinstance(state, dict) or state.get("format") != PARTIAL_FORMAT:
        raise ValueError(f"{path} is not a training state of this version; delete it to start again")
    if state.get("run") != run_key:
        raise ValueError(f"{path} holds an unfinished run with other settings, data or --init; rerun with the "
                         f"same ones to continue it, or delete {path} to start this run")
    return state


def _metadata(settings: TrainSettings, data: TrainingData, loss_curve, wall_time_s: float, geometry: str,
              init_identity: str | None, device: torch.device) -> dict:
    config = settings.network_config()
    metadata = {
        "format": METADATA_FORMAT,
        "kind": "vgg3d-self-supervised",
        "version": synapse_core.__version__,
        "torch": str(torch.__version__),  # TorchVersion is not a plain str
        "method": settings.method,
        "network": {
            "input_size": list(config.input_size), "fmaps": config.fmaps,
            "n_convolutions": list(config.n_convolutions),
            "downsample_factors": [list(f) for f in config.downsample_factors],
            "fmap_inc": list(config.fmap_inc), "input_fmaps": config.input_fmaps,
            "classifier_width": config.classifier_width,
        },
        "features": {"layer": "stage4", "pooling": "avg"},
        "training": settings_to_dict(settings),
        "crop": settings_to_dict(settings.crop),
        "geometry": geometry,
        "voxel_size_nm": list(data.voxel_size_nm) if data.voxel_size_nm is not None else None,
        "data_voxel_size_nm": list(data.data_voxel_size_nm) if data.data_voxel_size_nm is not None else None,
        "data": {"fingerprint": data.digest, **data.fingerprint, "n_synapses": len(data.keys),
                 "n_skipped": len(data.skipped)},
        "loss_curve": [float(v) for v in loss_curve],
        "wall_time_s": float(wall_time_s),
        "device": device.type,
        "init": init_identity,
        "morphology_targets": list(data.target_columns) if settings.morphology_weight > 0 else [],
    }
    # Plain JSON values only: the checkpoint must load with torch.load(weights_only=True).
    return json.loads(json.dumps(metadata, allow_nan=False))


def _loss(settings: TrainSettings, head: nn.Module, aux: nn.Module | None, fa: torch.Tensor, fb: torch.Tensor,
          targets: torch.Tensor | None) -> torch.Tensor:
    """The training loss of one batch from the pooled trunk features ``fa``, ``fb`` (B, C) of its two views.

    ``ssl_weight`` × the method's loss of the projected views + ``morphology_weight`` × the masked
    MSE of ``aux``'s morphology prediction against ``targets`` (B, M), averaged over both views.
    The heads run under the caller's autocast; the losses always in float32 (autocast off).
    """
    za = zb = pa = pb = None
    if settings.ssl_weight > 0:
        za, zb = head(fa), head(fb)
    if aux is not None:
        pa, pb = aux(fa), aux(fb)
    loss = None
    with torch.autocast(fa.device.type, enabled=False):
        if za is not None:
            if settings.method == "vicreg":
                loss = vicreg_loss(za, zb, settings.invariance_weight, settings.variance_weight,
                                   settings.covariance_weight)
            else:
                loss = nt_xent_loss(za, zb, settings.temperature)
            loss = settings.ssl_weight * loss
        if pa is not None:
            mse = (masked_mse(pa, targets) + masked_mse(pb, targets)) / 2
            loss = settings.morphology_weight * mse if loss is None else loss + settings.morphology_weight * mse
    return loss


def train(data: TrainingData, settings: TrainSettings, out: str | os.PathLike, init: str | None = None,
          progress: Callable[[int, int, int, float], None] | None = None, stop: Callable[[], bool] | None = None,
          until_epoch: int | None = None) -> TrainResult:
    """Train the VGG3D trunk on ``data`` and write the checkpoint ``out``; resume from ``<out>.partial`` if present.

    Parameters
    ----------
    data : :func:`prepare_training_data` of the dataset, made with the same ``settings``.
    settings : TrainSettings.
    out : checkpoint path to write (synister format plus metadata, see the module docstring).
    init : a VGG3D checkpoint whose trunk is the starting point (fine-tuning); None: random init from ``seed``.
    progress : called after each step as ``progress(epoch, step, steps_per_epoch, loss)`` (1-based epoch and step).
    stop : polled after each step; True stops now (the unfinished epoch is lost, the state of the last
        finished one is in ``<out>.partial``).
    until_epoch : stop after this many finished epochs (for tests and staged runs); None: run to ``settings.epochs``.

    Returns
    -------
    TrainResult
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: folder {out.parent} does not exist")
    if data.crops.shape[1:] != (settings.input_size,) * 3:
        raise ValueError(f"training crops are {tuple(data.crops.shape[1:])} voxels but settings.input_size is "
                         f"{settings.input_size}: prepare the data with the same settings")
    device = _resolve_device(settings.device)
    amp = device.type == "cuda" and settings.mixed_precision
    geometry = resolve_geometry(settings, data.data_voxel_size_nm)
    # Canonical crops are rotated onto an isotropic grid: their axes are not the data's section axes.
    spacing = (tuple(data.voxel_size_nm) if data.voxel_size_nm is not None and geometry != "canonical"
               else (1.0, 1.0, 1.0))
    model, head, init_identity = _build(settings, init)
    aux = _morphology_head(settings, data)
    run_key = _run_key(settings, data, init_identity)
    partial = partial_path(out)
    n = data.crops.shape[0]
    epochs = settings.epochs if until_epoch is None else min(settings.epochs, until_epoch)

    model.to(device)
    head.to(device)
    heads = [head] if aux is None else [head, aux.to(device)]
    # oneDNN's 3D convolutions (and their gradients) are several times faster channels-last on the CPU.
    layout = torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format
    model.features.to(memory_format=layout)
    params = list(model.features.parameters()) + [p for h in heads for p in h.parameters()]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loss_curve: list[float] = []
    start_epoch = 0
    elapsed = 0.0
    state = _load_partial(partial, run_key)
    if state is not None:
        model.load_state_dict(state["model"])
        head.load_state_dict(state["head"])
        if aux is not None:
            aux.load_state_dict(state["aux"])
        optimizer.load_state_dict(state["optimizer"])
        if amp and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        loss_curve = [float(v) for v in state["loss_curve"]]
        start_epoch = int(state["epoch"])
        elapsed = float(state.get("wall_time_s", 0.0))
        log.info("train: resuming %s from epoch %d of %d", partial, start_epoch, settings.epochs)

    def result(finished: bool, path: str = "", identity=None, metadata=None) -> TrainResult:
        return TrainResult(str(path or out), identity, finished, len(loss_curve), start_epoch, list(loss_curve),
                           elapsed, n, str(partial), metadata)

    crops_cpu = data.crops
    steps_per_epoch = len(_batches(n, settings.batch_size, _epoch_generator(settings.seed, 0)))
    with _deterministic():
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            model.train()
            for h in heads:
                h.train()
            gen = _epoch_generator(settings.seed, epoch)
            total, count = 0.0, 0
            for step, idx in enumerate(_batches(n, settings.batch_size, gen)):
                lr = _learning_rate(settings, epoch * steps_per_epoch + step, steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x = crops_cpu[idx].unsqueeze(1)
                views = [random_view(x, gen, settings, geometry, spacing) for _ in range(2)]
                va, vb = (v.to(device, memory_format=layout) for v in views)
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    fa, fb = pooled(model, va), pooled(model, vb)
                    loss = _loss(settings, head, aux, fa, fb, None if aux is None else data.targets[idx].to(device))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch + 1}, step "
                                             f"{step + 1}: lower --learning-rate (now {settings.learning_rate})")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                value = float(loss.detach())
                total += value * len(idx)
                count += len(idx)
                if progress:
                    progress(epoch + 1, step + 1, steps_per_epoch, value)
                if stop is not None and stop():
                    elapsed += time.perf_counter() - t0
                    return result(False)
            loss_curve.append(total / count)
            elapsed += time.perf_counter() - t0
            _atomic_save({"format": PARTIAL_FORMAT, "run": run_key, "epoch": epoch + 1,
                          "model": model.state_dict(), "head": head.state_dict(),
                          "aux": aux.state_dict() if aux is not None else {},
                          "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if amp else {},
                          "rng": torch.get_rng_state(), "loss_curve": list(loss_curve), "wall_time_s": elapsed},
                         partial)
    if len(loss_curve) < settings.epochs:
        return result(False)
    model.eval()
    model.features.to(memory_format=torch.contiguous_format)
    metadata = _metadata(settings, data, loss_curve, elapsed, geometry, init_identity, device)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_save({"model_state_dict": state, METADATA_KEY: metadata}, out)
    partial.unlink(missing_ok=True)
    identity = "sha256:" + file_sha256(out)
    log.info("train: %d epochs, final loss %.4f, wrote %s (%s)", len(loss_curve), loss_curve[-1], out, identity)
    return result(True, str(out), identity, metadata)
