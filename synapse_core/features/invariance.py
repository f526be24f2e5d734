"""Features that do not change when the crop is flipped or rotated by 90°: averages over a symmetry group.

A synapse's crop has no preferred orientation: the same synapse cut with its cleft facing up or
down, or annotated from the other side, should give the same features. For any feature map
``f``, the group average ``F(x) = mean over g in G of f(g x)`` is exactly invariant under every
element ``h`` of ``G`` (``G h = G``), whatever ``f`` is: an untrained or trained network, or the
pixel baseline. The price is ``|G|`` evaluations of ``f`` per crop.

Groups (elements are an axis permutation of (z, y, x) followed by flips; exact voxel permutations):

* ``"flips"`` — 8 elements: every combination of z, y and x flips (any crop shape);
* ``"flips_rot90"`` — 16: also the y↔x swap, so with the flips every 90° rotation in the y–x
  (section) plane; the symmetries of anisotropic serial-section data (needs y = x);
* ``"cube"`` — 48: every permutation of (z, y, x) with every flip (needs z = y = x: the crop
  grid, resampled to isotropic voxels, is cubic);
* ``"none"`` — the identity only.

Imports numpy only (the pixel baseline uses it without loading torch).

Example
-------
>>> x = np.arange(2 * 4 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 4)
>>> def f(c):
...     return c[:, :2, :2, :2].reshape(len(c), -1)  # not invariant on its own
>>> a = group_average(f, x, "flips")
>>> b = group_average(f, x[:, ::-1, :, ::-1], "flips")
>>> bool(np.allclose(a, b))
True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

#: A group element: (permutation of the (z, y, x) axes, flip of each output axis).
Element = tuple[tuple[int, int, int], tuple[bool, bool, bool]]

_PERMUTATIONS = {
    "none": [(0, 1, 2)],
    "flips": [(0, 1, 2)],
    "flips_rot90": [(0, 1, 2), (0, 2, 1)],
    "cube": list(itertools.permutations(range(3))),
}
GROUPS: tuple[str, ...] = tuple(_PERMUTATIONS)


def symmetry_group(name: str) -> list[Element]:
    """The elements of group ``name`` ("none", "flips", "flips_rot90" or "cube"), identity first."""
    if name not in _PERMUTATIONS:
        raise ValueError(f"invariance={name!r}: use one of {', '.join(GROUPS)}")
    flips = [(False, False, False)] if name == "none" else list(itertools.product((False, True), repeat=3))
    return [(perm, flip) for perm in _PERMUTATIONS[name] for flip in flips]


def check_shape(shape_zyx, name: str) -> None:
    """ValueError when the group ``name`` does not map a crop of ``shape_zyx`` (z, y, x) voxels onto itself."""
    z, y, x = (int(s) for s in shape_zyx)
    if name == "flips_rot90" and y != x:
        raise ValueError(f"invariance='flips_rot90' rotates the y-x plane, which needs y = x; the crops are "
                         f"(z, y, x) = {(z, y, x)}; use invariance='flips'")
    if name == "cube" and not z == y == x:
        raise ValueError(f"invariance='cube' permutes z, y and x, which needs a cubic crop; the crops are "
                         f"(z, y, x) = {(z, y, x)}; use invariance='flips'")


def apply_element(crops: np.ndarray, element: Element) -> np.ndarray:
    """``crops`` (B, z, y, x) mapped by ``element`` (a view where possible)."""
    perm, flip = element
    out = crops.transpose(0, *(1 + p for p in perm))
    axes = tuple(1 + a for a, f in enumerate(flip) if f)
    return np.flip(out, axis=axes) if axes else out


def group_average(fn: Callable[[np.ndarray], np.ndarray], crops: np.ndarray, name: str) -> np.ndarray:
    """Mean over the elements ``g`` of group ``name`` of ``fn(g crops)``.

    Parameters
    ----------
    fn : maps crops (B, z, y, x) float32 to vectors (B, F).
    crops : (B, z, y, x) array.
    name : group name (see the module docstring); "none" calls ``fn`` once.

    Returns
    -------
    (B, F) float32, accumulated in float64.
    """
    if crops.ndim != 4:
        raise ValueError(f"crops must be (B, z, y, x), got shape {crops.shape}")
    group = symmetry_group(name)
    if len(group) == 1:
        return fn(crops)
    check_shape(crops.shape[1:], name)
    total = None
    for element in group:
        out = np.asarray(fn(np.ascontiguousarray(apply_element(crops, element))), dtype=np.float64)
        total = out if total is None else total + out
    return (total / len(group)).astype(np.float32)

