"""Global pooling of a 3D feature map ``(B, C, z, y, x)`` into one vector per sample.

======================  =========================  ==========================================
method                  size                       how
======================  =========================  ==========================================
``avg`` (default)       C                          mean over space
``max``                 C                          max over space
``concat_avg_max``      2·C                        ``[avg, max]``
``spp``                 C·(1 + 8 + 64) = 73·C      adaptive average to 1³, 2³, 4³, concatenated
                                                   (4³ only if the smallest spatial dim ≥ 4)
======================  =========================  ==========================================

For ``spp`` each level is flattened channel-major (``C × k³``), as in the original tool.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synapse_core.features.settings import POOLING_METHODS


def check_pooling(method: str) -> str:
    """``method`` if it is one of :data:`POOLING_METHODS`, else a ValueError naming the choices."""
    if method not in POOLING_METHODS:
        raise ValueError(f"unknown pooling {method!r}: use one of {', '.join(POOLING_METHODS)}")
    return method


def spp_levels(spatial_zyx) -> tuple[int, ...]:
    """Pyramid levels (output edge lengths) used by ``spp`` for a map of this (z, y, x) size."""
    return (1, 2, 4) if min(spatial_zyx) >= 4 else (1, 2)


def pool(x: torch.Tensor, method: str = "avg") -> torch.Tensor:
    """Pool ``x`` of shape (B, C, z, y, x) to (B, F); F per the table in the module docstring.

    Pooling runs in float32 whatever the input dtype, so bf16 activations are averaged exactly.
    """
    check_pooling(method)
    if x.ndim != 5:
        raise ValueError(f"pool expects a (B, C, z, y, x) tensor, got shape {tuple(x.shape)}")
    x = x.float()
    if method == "avg":
        return x.mean(dim=(2, 3, 4))
    if method == "max":
        return x.amax(dim=(2, 3, 4))
    if method == "concat_avg_max":
        return torch.cat([x.mean(dim=(2, 3, 4)), x.amax(dim=(2, 3, 4))], dim=1)
    levels = spp_levels(x.shape[2:])
    return torch.cat([F.adaptive_avg_pool3d(x, k).reshape(x.shape[0], -1) for k in levels], dim=1)


def pooled_size(channels: int, spatial_zyx, method: str) -> int:
    """Length of the vector :func:`pool` returns for ``channels`` maps of size ``spatial_zyx``."""
    check_pooling(method)
    if method in ("avg", "max"):
        return channels
    if method == "concat_avg_max":
        return 2 * channels
    return channels * sum(k**3 for k in spp_levels(spatial_zyx))
