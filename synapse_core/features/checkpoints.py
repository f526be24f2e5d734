"""Load VGG3D weights from synister / SynapseClusterEM checkpoint files, or make an explicit untrained net.

A checkpoint is a ``torch.save``-d dict, either ``{"model_state_dict": state_dict, ...}`` (the
synister training format; other entries such as the optimizer state are ignored) or the bare
state dict, with keys ``features.N.*`` and ``classifier.N.*`` (see :mod:`synapse_core.features.vgg3d`).
The class count (6 or 7 for the neurotransmitter classifiers) is read from
``classifier.6.weight``. Files are read with ``torch.load(weights_only=True)``: a file that holds
anything but tensors and plain containers is refused.

Every problem raises :class:`CheckpointError` naming the file and what is wrong: there is no
silent fallback to random weights (the original tool's worst bug, notes §14.1). A network without
a checkpoint is explicitly "untrained (random weights, seed N)", and that string travels with
every output (:attr:`LoadedModel.identity`).

A checkpoint written by ``python -m synapse_core train`` (:mod:`synapse_core.features.train`) also
holds ``"synapse_cluster_em": metadata`` (plain JSON values): the network shape (``network``:
``input_size``, ``fmaps`` ...), training and crop settings, data fingerprint and loss curve. The
network is then built from that metadata, not from the caller's configuration, so such a file
needs no other setting (:func:`read_metadata`, :attr:`LoadedModel.metadata`).

Cost (issue 16): a zip checkpoint is opened memory-mapped (``torch.load(mmap=True)``), so checking it
(:func:`inspect_checkpoint`: keys, shapes, metadata, identity) reads no weights; shapes are compared
with a network built on PyTorch's ``meta`` device (no memory, no initialisation). Loading
(:func:`load_checkpoint`) copies only the tensors the network needs: the trunk (``features.*``)
unless ``classifier=True``, so the 100M-parameter head of the hemibrain classifier is never built
for feature extraction; NaN/inf are checked on those tensors only. The file's sha256 is memoised
by (path, size, mtime): in this process and in ``<cache_dir>/checkpoint_sha256.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from synapse_core.data.atomic import write_text_atomically
from synapse_core.features.vgg3d import Vgg3D, Vgg3DConfig, untrained_vgg3d

#: Where the original tool downloaded its checkpoint from (hemibrain neurotransmitter classifier, 2022-02-25).
ORIGINAL_CHECKPOINT_NAME = "hemibrain_production.checkpoint"
#: Key of this project's metadata in a checkpoint file, and the metadata version this code reads.
METADATA_KEY = "synapse_cluster_em"
METADATA_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class LoadedModel:
    """A ready network (eval mode) and what it is.

    ``identity`` is ``"sha256:<hex>"`` for a checkpoint, ``"untrained (random weights, seed N)"``
    otherwise; it goes into cache keys and into every output table.
    """

    model: Vgg3D
    identity: str
    n_classes: int
    path: str | None = None
    metadata: dict | None = dataclasses.field(default=None, compare=False)  # a dict is not hashable

    @property
    def untrained(self) -> bool:
        return self.path is None

    @property
    def self_supervised(self) -> bool:
        """True for a network trained by ``python -m synapse_core train`` (it carries metadata)."""
        return self.metadata is not None


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint file is, checked without loading its weights (:func:`inspect_checkpoint`).

    ``config`` is the network the file holds (from its metadata, or the caller's trunk with the
    classifier's width and input size read from the file).
    """

    identity: str
    n_classes: int
    path: str
    config: Vgg3DConfig
    metadata: dict | None = dataclasses.field(default=None, compare=False)

    @property
    def untrained(self) -> bool:
        return False

    @property
    def self_supervised(self) -> bool:
        return self.metadata is not None


def untrained_identity(seed: int) -> str:
    return f"untrained (random weights, seed {seed})"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


#: File of the sha256 memo inside the cache folder: {"<abs path>": {"size": N, "mtime_ns": T, "sha256": hex}}.
SHA_MEMO_FILE = "checkpoint_sha256.json"
_SHA_MEMO: dict[tuple[str, int, int], str] = {}
_SHA_LOCK = threading.Lock()


def file_identity(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """``"sha256:<hex>"`` of a file, memoised by (absolute path, size, mtime).

    The memo lives in this process and in ``<cache_dir>/checkpoint_sha256.json`` (default: the
    project's cache folder, :func:`synapse_core.data.cache_dir.resolve_cache_dir`); a file whose
    size or mtime changed is hashed again. An unwritable cache folder only costs the hash.
    """
    from synapse_core.data.cache_dir import resolve_cache_dir

    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    with _SHA_LOCK:
        if key in _SHA_MEMO:
            return "sha256:" + _SHA_MEMO[key]
    try:
        memo_path = resolve_cache_dir(cache_dir) / SHA_MEMO_FILE
    except OSError:
        memo_path = None
    memo = {}
    if memo_path is not None and memo_path.is_file():
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}  # a damaged memo is only a lost shortcut
    entry = memo.get(real) if isinstance(memo, dict) else None
    if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns \
            and isinstance(entry.get("sha256"), str):
        digest = entry["sha256"]
    else:
        digest = file_sha256(real)
        if memo_path is not None:
            memo = memo if isinstance(memo, dict) else {}
            memo[real] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
            try:  # atomic: concurrent writers leave one whole file
                write_text_atomically(memo_path, json.dumps(memo, indent=1, sort_keys=True))
            except OSError:
                pass
    with _SHA_LOCK:
        _SHA_MEMO[key] = digest
    return "sha256:" + digest


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (bare or under ``model_state_dict``); CheckpointError otherwise."""
    return read_checkpoint(path)[0]


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The ``synapse_cluster_em`` metadata of a trained checkpoint (validated), or None for other files."""
    return read_checkpoint(path)[1]


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """``(state_dict, metadata)`` of ``path``; metadata is None for files without ``synapse_cluster_em``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (give the path of a VGG3D .checkpoint/.pt file, "
                              f"or no checkpoint for an explicitly untrained network)")
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):  # zip (torch >= 1.6) or a legacy pickle
        raise CheckpointError(f"checkpoint {path} is corrupt or not a PyTorch file (it starts with {head!r}, "
                              f"not a torch.save archive; an HTML error page from a failed download looks like "
                              f"this); download it again or check the path")
    try:
        # zip archives are memory-mapped: nothing is read until a tensor is used (legacy pickles cannot be)
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=head.startswith(b"PK"))
    except pickle.UnpicklingError as exc:
        # torch's own text advises weights_only=False (arbitrary code execution): never pass that on.
        found = re.search(r"(?:Unsupported global: GLOBAL|global) '?([\w.]+)", str(exc))
        why = (f"it contains the Python object {found.group(1)}" if found
               else "it holds pickled Python objects, not only tensors")
        raise CheckpointError(
            f"checkpoint {path} cannot be read safely: {why}. Only files holding tensors and plain "
            f"containers are loaded (torch.load weights_only=True); re-save the state dict with "
            f"torch.save({{'model_state_dict': model.state_dict()}}, path)") from exc
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a PyTorch file ({type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no details'}); "
                              f"download it again or check the path") from exc
    state = obj.get("model_state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        what = type(obj).__name__ if not isinstance(obj, dict) else f"dict with keys {sorted(map(str, obj))[:6]}"
        raise CheckpointError(f"checkpoint {path} is not a VGG3D state dict: found a {what}; expected "
                              f"{{'model_state_dict': {{'features.0.weight': tensor, ...}}}} or the bare state dict")
    if all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    metadata = obj.get(METADATA_KEY) if isinstance(obj, dict) and "model_state_dict" in obj else None
    if metadata is not None:
        metadata_config(metadata, path)  # refuse malformed metadata here, naming the file
    return state, metadata


def metadata_config(metadata, path="checkpoint") -> Vgg3DConfig:
    """The :class:`Vgg3DConfig` described by a checkpoint's ``synapse_cluster_em`` metadata.

    Raises CheckpointError naming the file and the entry when the metadata is malformed or newer
    than this code.
    """
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path} has unusable {METADATA_KEY} metadata: {what}; re-train it with "
                               f"this version (python -m synapse_core train) or remove the {METADATA_KEY!r} entry")

    if not isinstance(metadata, dict):
        raise bad(f"expected a dict, found a {type(metadata).__name__}")
    if metadata.get("format") != METADATA_FORMAT:
        raise bad(f"format {metadata.get('format')!r} (this version reads format {METADATA_FORMAT})")
    net = metadata.get("network")
    if not isinstance(net, dict):
        raise bad("no 'network' entry (input_size, fmaps, ...)")

    def ints(key, length=None, nested=False):
        value = net.get(key)
        items = value if isinstance(value, (list, tuple)) else None
        ok = items is not None and (length is None or len(items) == length) and all(
            (isinstance(v, (list, tuple)) and len(v) == 3 and all(isinstance(u, int) and u > 0 for u in v))
            if nested else (isinstance(v, int) and not isinstance(v, bool) and v > 0) for v in items)
        if not ok:
            raise bad(f"network.{key} = {value!r} is not a list of positive integers"
                      + (f" of length {length}" if length else ""))
        return tuple(tuple(v) for v in items) if nested else tuple(items)

    def one(key):
        value = net.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad(f"network.{key} = {value!r} is not a positive integer")
        return value

    config = Vgg3DConfig(input_size=ints("input_size", 3), fmaps=one("fmaps"), n_convolutions=ints("n_convolutions"),
                         downsample_factors=ints("downsample_factors", nested=True), fmap_inc=ints("fmap_inc"),
                         input_fmaps=one("input_fmaps"), classifier_width=one("classifier_width"))
    if len(config.downsample_factors) != len(config.n_convolutions):
        raise bad("network.downsample_factors and network.n_convolutions have different lengths")
    return config


def _classes_of(state: dict[str, torch.Tensor], path) -> int:
    head = [k for k in state if k.startswith("classifier.") and k.endswith(".weight")]
    if not head:
        raise CheckpointError(f"checkpoint {path} has no classifier weights (keys start with "
                              f"{sorted({k.split('.')[0] for k in state})}); it is not a VGG3D checkpoint")
    last = max(head, key=lambda k: int(k.split(".")[1]) if k.split(".")[1].isdigit() else -1)
    return int(state[last].shape[0])


def _describe_mismatch(state, expected, path, config: Vgg3DConfig) -> str:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in expected if k in state and state[k].shape != expected[k].shape]
    parts = []
    if missing:
        parts.append(f"missing keys {missing[:5]}{' …' if len(missing) > 5 else ''}")
    if unexpected:
        parts.append(f"unexpected keys {unexpected[:5]}{' …' if len(unexpected) > 5 else ''}")
    if shapes:
        parts.append(f"shape mismatch {shapes[:3]}{' …' if len(shapes) > 3 else ''}")
    first = state.get("features.0.weight")
    hint = f" (the file's first conv has {first.shape[0]} feature maps)" if first is not None else ""
    return (f"checkpoint {path} does not match the VGG3D architecture (input {config.input_size}, fmaps "
            f"{config.fmaps}, convolutions per stage {config.n_convolutions}){hint}: " + "; ".join(parts))


def _head_config(state: dict[str, torch.Tensor], config: Vgg3DConfig) -> Vgg3DConfig:
    """``config`` with the classifier's width and input size read from the file's classifier.

    The classifier is never used for features; its shape only says which crop size and head the
    network was trained with. The trunk (``features.*``) must match ``config`` exactly.
    """
    first, hidden = state.get("classifier.0.weight"), state.get("classifier.3.weight")
    if first is None or first.ndim != 2:
        return config
    c_last = config.stage_channels()[-1]
    flat = int(first.shape[1])
    edge = round((flat / c_last) ** (1 / 3)) if flat % c_last == 0 else 0
    if edge < 1 or edge**3 * c_last != flat:
        return config  # the strict comparison reports the mismatch
    size = tuple(edge * int(torch.tensor([f[a] for f in config.downsample_factors]).prod()) for a in range(3))
    width = int(hidden.shape[0]) if hidden is not None and hidden.ndim == 2 else config.classifier_width
    return dataclasses.replace(config, input_size=size, classifier_width=width)


def trained_crop(metadata: dict | None) -> dict:
    """The crop settings a trained checkpoint learned from (its metadata's ``crop``); ``{}`` when unknown.

    Checkpoints written before ``CropSettings.orientation`` existed were trained on native crops (the
    only kind then): their settings read ``orientation="native"``, so an extraction with such a
    checkpoint takes native crops, not the canonical default.

    Example
    -------
    >>> trained_crop({"crop": {"alpha": 1.0}})
    {'orientation': 'native', 'alpha': 1.0}
    >>> trained_crop(None)
    {}
    """
    trained = (metadata or {}).get("crop")
    if not isinstance(trained, dict):
        return {}
    return {"orientation": "native", **trained}


def crop_mismatch(metadata: dict | None, crop) -> list[str]:
    """How ``crop`` (CropSettings of an extraction) differs from the crops a trained checkpoint learned from.

    One sentence per differing field, e.g. ``"trained on crops with alpha=1.0, extracting with
    alpha=0.3"``; empty for checkpoints without metadata or with equal settings.
    """
    trained = trained_crop(metadata)
    if not trained:
        return []
    now = dataclasses.asdict(crop)
    return [f"trained on crops with {name}={trained[name]!r}, extracting with {name}={now[name]!r}; features of "
            f"other crops are less meaningful" for name in sorted(now) if name in trained and trained[name] != now[name]]


def _trunk_config(state, metadata, path, config: Vgg3DConfig) -> tuple[Vgg3DConfig, int]:
    n_classes = _classes_of(state, path)
    return (metadata_config(metadata, path) if metadata is not None else _head_config(state, config)), n_classes


def _check_architecture(state, path, config: Vgg3DConfig, n_classes: int) -> None:
    """CheckpointError unless ``state`` has exactly the keys and shapes of ``Vgg3D(config, n_classes)``.

    The reference network is built on the ``meta`` device: shapes only, no memory, no initialisation.
    """
    with torch.device("meta"):
        expected = Vgg3D(config, output_classes=n_classes).state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        raise CheckpointError(_describe_mismatch(state, expected, path, config))


def inspect_checkpoint(path: str | os.PathLike, config: Vgg3DConfig = Vgg3DConfig(),
                       cache_dir: str | os.PathLike | None = None) -> CheckpointInfo:
    """Check ``path`` (format, safety, metadata, keys and shapes) and name it, without loading its weights.

    Raises CheckpointError for a missing, corrupt, unsafe or mismatched file (NaN/inf weights are
    found by :func:`load_checkpoint`, which reads them).
    """
    state, metadata = read_checkpoint(path)
    config, n_classes = _trunk_config(state, metadata, path, config)
    _check_architecture(state, path, config, n_classes)
    return CheckpointInfo(file_identity(path, cache_dir), n_classes, str(path), config, metadata)


def load_checkpoint(path: str | os.PathLike, config: Vgg3DConfig = Vgg3DConfig(), classifier: bool = True,
                    cache_dir: str | os.PathLike | None = None) -> LoadedModel:
    """Build a VGG3D with the trunk of ``config`` and the class count, classifier width and input size
    found in ``path``, and load its weights strictly.

    A trained checkpoint with ``synapse_cluster_em`` metadata is built from its metadata instead
    (``config`` is ignored): its network width and input size are the file's.

    Parameters
    ----------
    classifier : False builds and reads only the trunk (``features.*``; what feature extraction uses):
        the classifier's weights are checked for shape but never read or built (``model.classifier``
        is None).
    cache_dir : where the file's sha256 is memoised (:func:`file_identity`).

    Raises CheckpointError for a missing, corrupt, unsafe, mismatched or non-finite file.
    """
    state, metadata = read_checkpoint(path)
    config, n_classes = _trunk_config(state, metadata, path, config)
    _check_architecture(state, path, config, n_classes)
    wanted = {k: v for k, v in state.items() if classifier or k.startswith("features.")}
    bad = [k for k, v in wanted.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"checkpoint {path} holds NaN/inf values in {bad[:5]}; the file is damaged")
    with torch.device("meta"):  # no memory and no random init for weights that are overwritten anyway
        model = Vgg3D(config, output_classes=n_classes, classifier=classifier)
    # clone: own memory, independent of the memory-mapped file
    model.load_state_dict({k: v.clone() for k, v in wanted.items()}, strict=True, assign=True)
    return LoadedModel(model.eval(), file_identity(path, cache_dir), n_classes, str(path), metadata)


def load_model(checkpoint: str | os.PathLike | None, config: Vgg3DConfig = Vgg3DConfig(), seed: int = 0) -> LoadedModel:
    """The checkpoint's network, or with ``checkpoint=None`` an untrained one initialised from ``seed``."""
    if checkpoint is None or str(checkpoint) == "":
        model = untrained_vgg3d(config, seed=seed)
        return LoadedModel(model, untrained_identity(seed), model.output_classes, None)
    return load_checkpoint(checkpoint, config)


def save_checkpoint(model: Vgg3D, path: str | os.PathLike) -> str:
    """Write ``model`` in the synister format ``{"model_state_dict": ...}``; returns the file's sha256."""
    if model.classifier is None:
        raise ValueError("save_checkpoint: this network was built without its classifier (classifier=False); "
                         "a checkpoint holds the whole VGG3D")
    torch.save({"model_state_dict": model.state_dict()}, path)
    return file_sha256(path)
