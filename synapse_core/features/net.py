"""Run a VGG3D trunk over batches of crops and return pooled feature vectors (the inference half).

:class:`FeatureNet` prepares a model once for fast inference without changing its results:

* only the modules up to the deepest requested layer are kept;
* Conv3d + BatchNorm3d pairs are folded into one convolution where no requested layer needs the
  pre-BatchNorm or BatchNorm output on its own (eval-mode BN is an affine map per channel);
* channels-last 3D memory layout (about 2× faster convolutions on CPU with oneDNN);
* on CPU in fp32, each (folded) convolution followed by its ReLU runs as one oneDNN convolution with
  the ReLU as a post-op and weights reordered once into oneDNN's blocked layout
  (:class:`ConvReLU`; ``fuse_relu``): no separate pass over the activations, no weight reorder per
  call. Where that operator is missing or disagrees with the eager path on a tiny input (checked once
  per process), the eager modules run and one log line says so;
* ``precision="bf16"`` runs under bfloat16 autocast (max-pools stay in bfloat16 instead of the
  autocast default float32); the final global pooling is always float32. bf16 is faster only where
  the hardware runs it natively (AMX CPUs, GPUs): on other CPUs it is slower than fp32 (0.65× measured
  on an AVX-512 CPU without AMX). :func:`bf16_speedup` measures it once per machine (CPU model, torch
  version, threads) and remembers it in ``<cache_dir>/cpu_bf16.json``; asking for bf16 where it is
  slower logs a warning.

Crops go in as ``(B, z, y, x)`` float32 numpy arrays; vectors come out as ``(B, F)`` float32, the
requested layers' pooled outputs concatenated in the order given.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from synapse_core.features.pooling import pool, pooled_size
from synapse_core.features.settings import PRECISIONS
from synapse_core.features.vgg3d import LayerInfo, Vgg3D

log = logging.getLogger(__name__)

#: File of the remembered bf16/fp32 speed ratios inside the cache folder.
BF16_MEMO_FILE = "cpu_bf16.json"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def bf16_speedup(cache_dir=None, size: int = 24, repeats: int = 3) -> float:
    """fp32 time / bf16 time of VGG3D's first-stage convolution (24→24 maps, 3³, ``size``³) on this CPU.

    Measured once per (CPU model, torch version, threads) and remembered in
    ``<cache_dir>/cpu_bf16.json`` (default: the project's cache folder). Above 1: bf16 is faster here.
    """
    from synapse_core.data.cache_dir import resolve_cache_dir

    key = f"{_cpu_name()} | torch {torch.__version__} | {torch.get_num_threads()} threads"
    try:
        memo_path = resolve_cache_dir(cache_dir) / BF16_MEMO_FILE
        memo = json.loads(memo_path.read_text()) if memo_path.is_file() else {}
    except (OSError, ValueError):
        memo_path, memo = None, {}
    if isinstance(memo, dict) and isinstance(memo.get(key), (int, float)):
        return float(memo[key])
    conv = nn.Conv3d(24, 24, 3, padding=1).eval().to(memory_format=torch.channels_last_3d)
    x = torch.randn(1, 24, size, size, size, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last_3d)
    best = {}
    with torch.inference_mode():
        for name, enabled in (("fp32", False), ("bf16", True)):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                conv(x)  # warm-up (oneDNN picks its kernel)
                times = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    conv(x)
                    times.append(time.perf_counter() - t)
            best[name] = min(times)
    ratio = best["fp32"] / best["bf16"]
    if memo_path is not None:
        memo = memo if isinstance(memo, dict) else {}
        memo[key] = round(ratio, 3)
        tmp = memo_path.with_name(f"{memo_path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(memo, indent=1, sort_keys=True))
            os.replace(tmp, memo_path)
        except OSError:
            tmp.unlink(missing_ok=True)
    return ratio


def _pointwise_op():
    """oneDNN's fused convolution (``torch.ops.mkldnn._convolution_pointwise``), or None where missing."""
    try:
        if not torch.backends.mkldnn.is_available():
            return None
        return torch.ops.mkldnn._convolution_pointwise.default, torch.ops.mkldnn._reorder_convolution_weight
    except (AttributeError, RuntimeError):
        return None


class ConvReLU(nn.Module):
    """``relu(conv(x))`` as one oneDNN convolution with a ReLU post-op (CPU, float32).

    Same results as ``ReLU(Conv3d(x))`` up to float rounding (the same oneDNN convolution kernel; the
    ReLU is applied while the output is still in registers/cache). The weights are reordered into
    oneDNN's blocked layout at the first call and kept (``_packed``, not a parameter: it is rebuilt
    after a copy). ``conv`` stays the plain module (for its shape and FLOPs).
    """

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        self.conv = conv
        self._packed = None

    def _args(self):
        c = self.conv
        three = lambda v: list(v) if isinstance(v, (tuple, list)) else [v] * 3
        return three(c.padding), three(c.stride), three(c.dilation), c.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op, reorder = _pointwise_op()
        padding, stride, dilation, groups = self._args()
        if self._packed is None:
            self._packed = reorder(self.conv.weight.detach(), padding, stride, dilation, groups, list(x.shape))
        return op(x, self._packed, self.conv.bias, padding, stride, dilation, groups, "relu", [], "")

    def __deepcopy__(self, memo):
        return ConvReLU(copy.deepcopy(self.conv, memo))


_FUSED_OK: dict[str, bool] = {}


def fused_conv_relu_works() -> bool:
    """Whether :class:`ConvReLU` runs here and equals ``relu(conv(x))`` (checked once per process on a 6³ input)."""
    if "cpu" in _FUSED_OK:
        return _FUSED_OK["cpu"]
    ok, why = False, "torch.ops.mkldnn._convolution_pointwise is not available in this torch build"
    if _pointwise_op() is not None:
        try:
            with torch.inference_mode(), torch.random.fork_rng(devices=[]):  # the caller's random stream untouched
                torch.manual_seed(0)
                gen = torch.Generator().manual_seed(0)
                conv = nn.Conv3d(3, 5, 3, padding=1).eval()
                x = torch.randn(2, 3, 6, 6, 6, generator=gen).contiguous(memory_format=torch.channels_last_3d)
                got, want = ConvReLU(conv)(x), torch.relu(conv(x))
                ok = got.shape == want.shape and bool(torch.allclose(got, want, rtol=1e-4, atol=1e-5))
                why = "its output differs from the eager convolution's"
        except Exception as exc:  # noqa: BLE001 - any failure of a private operator: fall back, never fail the run
            ok, why = False, f"{type(exc).__name__}: {exc}"
    if not ok:
        log.warning("fused conv+ReLU unavailable (%s); VGG3D runs the eager modules", why)
    _FUSED_OK["cpu"] = ok
    return ok


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda"`` without a GPU is a ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device {device!r}: use auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA GPU is available to PyTorch; use --device cpu")
    return torch.device(device)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use fp32 or bf16")
    return precision


class FeatureNet:
    """A VGG3D trunk ready to turn crops into pooled vectors for ``layers``.

    Parameters
    ----------
    model : Vgg3D (not modified; its trunk is copied).
    layers : requested layers (from :func:`synapse_core.features.vgg3d.parse_layers`), output in this order.
    pooling : see :mod:`synapse_core.features.pooling`.
    device : torch.device or str.
    precision : "fp32" or "bf16".
    fold_batchnorm, channels_last, fuse_relu : speed options that do not change results beyond rounding
        (``fuse_relu`` applies on CPU in fp32 only, where :func:`fused_conv_relu_works`).
    """

    def __init__(self, model: Vgg3D, layers: list[LayerInfo], pooling: str = "avg", device="cpu",
                 precision: str = "fp32", fold_batchnorm: bool = True, channels_last: bool = True,
                 fuse_relu: bool = True):
        self.layers = list(layers)
        self.pooling = pooling
        self.device = torch.device(device)
        self.precision = check_precision(precision)
        if self.precision == "bf16" and self.device.type == "cpu":
            speed = bf16_speedup()
            if speed < 1.0:
                log.warning("bf16 runs at %.2fx the speed of fp32 on this CPU (%s; measured once, remembered in the "
                            "cache folder's %s): fp32 is faster here and exact; use --precision fp32", speed,
                            _cpu_name(), BF16_MEMO_FILE)
        self.channels_last = channels_last
        self.forward_passes = 0
        wanted = {l.index for l in self.layers}
        # A private copy of the trunk (a few MB): moving it to a device or layout never touches ``model``.
        modules = [copy.deepcopy(m) for m in list(model.features)[: max(wanted) + 1]]
        steps: list[tuple[nn.Module, int]] = []  # (module, index of the original output it produces)
        i = 0
        while i < len(modules):
            m = modules[i]
            foldable = (fold_batchnorm and isinstance(m, nn.Conv3d) and i + 1 < len(modules)
                        and isinstance(modules[i + 1], nn.BatchNorm3d) and i not in wanted and i + 1 not in wanted)
            if foldable:
                steps.append((fuse_conv_bn_eval(m.eval(), modules[i + 1].eval()), i + 1))
                i += 2
            else:
                steps.append((m, i))
                i += 1
        self.fused = (fuse_relu and self.device.type == "cpu" and self.precision == "fp32"
                      and fused_conv_relu_works())
        if self.fused:  # conv (+ folded BN) → ReLU pairs whose conv output nobody asked for: one op
            fused: list[tuple[nn.Module, int]] = []
            for m, idx in steps:
                if (isinstance(m, nn.ReLU) and fused and isinstance(fused[-1][0], nn.Conv3d)
                        and fused[-1][1] not in wanted):
                    fused[-1] = (ConvReLU(fused[-1][0]), idx)
                else:
                    fused.append((m, idx))
            steps = fused
        self._steps = steps
        self._trunk = nn.ModuleList([m for m, _ in steps]).eval().to(self.device)
        if channels_last:
            self._trunk = self._trunk.to(memory_format=torch.channels_last_3d)

    def output_size(self, crop_size_zyx) -> int:
        """Length of the vector returned per crop of size ``crop_size_zyx``."""
        total = 0
        for layer in self.layers:
            spatial = list(crop_size_zyx)
            for m, _ in self._steps[: 1 + [idx for _, idx in self._steps].index(layer.index)]:
                if isinstance(m, nn.MaxPool3d):
                    k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 3
                    spatial = [s // f for s, f in zip(spatial, k)]
            total += pooled_size(layer.channels, spatial, self.pooling)
        return total

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """Pooled features (B, F) float32 of crops (B, z, y, x) float32."""
        if crops.ndim != 4:
            raise ValueError(f"crops must be (B, z, y, x), got shape {crops.shape}")
        x = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32)).unsqueeze(1).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        wanted = {l.index for l in self.layers}
        out: dict[int, torch.Tensor] = {}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            for module, idx in self._steps:
                if isinstance(module, nn.MaxPool3d):
                    with torch.autocast(self.device.type, enabled=False):  # autocast would upcast to fp32
                        x = module(x)
                else:
                    x = module(x)
                if idx in wanted:  # pool now: a following in-place ReLU would overwrite a BN output
                    out[idx] = pool(x, self.pooling)
        self.forward_passes += 1
        return torch.cat([out[l.index] for l in self.layers], dim=1).float().cpu().numpy()
