"""Random views of synapse crops for self-supervised training, as plain torch functions.

Every function takes a batch ``x`` of shape ``(B, C, z, y, x)`` (float; intensities in [0, 1]
for the blended crops) and a :class:`torch.Generator`, and returns a new tensor of the same
shape and dtype; ``x`` is never modified. Random numbers are drawn on the CPU from the generator
only, so a seed gives the same views on any device. Each sample of the batch gets its own draw.

Which transformations suit EM (see docs/training.md):

* :func:`random_symmetry`: flips and 90° rotations. ``group="plane"`` keeps z as the section
  axis (rotations in the section plane (y, x), flips of every axis: 16 elements), for anisotropic
  data; ``group="cube"`` also permutes z with y and x (48 elements), only for isotropic voxels;
  ``group="canonical"`` (8 elements: 90° rotations and mirrors of the y-x plane, z kept as it is)
  for canonical crops, whose z axis is the cleft normal with the presynaptic side at low z.
  These are exact permutations of voxels.
* :func:`random_rotation`: free rotations (any 3D rotation for isotropic voxels, any angle in the
  section plane or, for canonical crops, about the cleft normal), trilinear; off unless
  ``rotation_probability`` > 0.
* :func:`random_translate`, :func:`random_intensity` (brightness, contrast, gamma),
  :func:`random_blur`, :func:`random_noise`, :func:`random_cutout`.
* :func:`section_jitter` (small y/x shifts per z section: misalignment) and
  :func:`section_drop` (blank sections), for anisotropic serial-section data.

:func:`resize` is the deterministic area-average resampling of crops to the network input size,
used for training and again at extraction.

Example
-------
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.rand(2, 1, 16, 16, 16)
>>> y = random_symmetry(x, g, group="cube")
>>> y.shape == x.shape and torch.equal(y.flatten(1).sort().values, x.flatten(1).sort().values)
True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SPATIAL = (2, 3, 4)  # (z, y, x) dimensions of a (B, C, z, y, x) batch
GROUPS = ("plane", "cube", "canonical")
#: ``random_view`` geometries: which symmetries a crop has (see :func:`random_view`).
GEOMETRIES = ("isotropic", "anisotropic", "canonical")


def _check(x: torch.Tensor) -> None:
    if x.ndim != 5:
        raise ValueError(f"expected a batch of shape (B, C, z, y, x), got shape {tuple(x.shape)}")


def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) CPU values → (B, 1, 1, 1, 1) on ``x``'s device and dtype."""
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1, 1)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Area-average (coarser) or trilinear (finer) resampling of a (B, C, z, y, x) batch to ``size``³ voxels.

    The voxel size grows by ``edge / size`` per axis; an input already of that size is returned as is.
    """
    _check(x)
    if tuple(x.shape[2:]) == (size, size, size):
        return x
    if all(s >= size for s in x.shape[2:]):
        return F.interpolate(x, size=(size, size, size), mode="area")
    return F.interpolate(x, size=(size, size, size), mode="trilinear", align_corners=False)


def random_symmetry(x: torch.Tensor, generator: torch.Generator, group: str = "plane") -> torch.Tensor:
    """Each sample mapped by a random element of ``group``: flips and 90° rotations (exact voxel permutations).

    ``"plane"``: a random flip of each of z, y, x and a random y↔x swap (16 elements: the dihedral
    group of the section plane, times a z flip); needs y = x. ``"cube"``: a random permutation of
    (z, y, x) and a random flip of each (48 elements); needs z = y = x (isotropic voxels).
    ``"canonical"``: a random y↔x swap and a random flip of y and of x, never of z (8 elements: the
    dihedral group of the y-x square); for canonical crops, where z is the cleft normal pointing from the
    presynaptic to the postsynaptic side, so a z flip would swap the two sides. Needs y = x.
    """
    _check(x)
    if group not in GROUPS:
        raise ValueError(f"group {group!r}: use 'plane' (anisotropic data), 'cube' (isotropic voxels) or "
                         f"'canonical' (canonical crops)")
    z, y, w = x.shape[2:]
    if y != w or (group == "cube" and z != y):
        raise ValueError(f"group {group!r} needs equal edges ({'z = y = x' if group == 'cube' else 'y = x'}), "
                         f"got (z, y, x) = {(z, y, w)}")
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        if group == "cube":
            order = [2 + int(a) for a in torch.randperm(3, generator=generator)]
        else:
            order = [2, 4, 3] if bool(torch.rand(1, generator=generator) < 0.5) else [2, 3, 4]
        flips = [d - 1 for d, f in zip(SPATIAL, torch.rand(3, generator=generator) < 0.5) if f]
        if group == "canonical":
            flips = [d for d in flips if d != 1]  # z (dim 1 of a sample) is never flipped
        v = x[i : i + 1].permute(0, 1, *order)[0]
        out[i] = v.flip(flips) if flips else v
    return out


def _rotation_matrices(generator: torch.Generator, n: int, plane: bool) -> torch.Tensor:
    """(n, 3, 3) float64 rotations: uniform on SO(3) (normalised Gaussian quaternions), or with ``plane``
    about z by a uniform angle. Rows and columns in ``affine_grid``'s order (x, y, z)."""
    if plane:
        angle = _uniform(generator, n, 0.0, 2 * math.pi).to(torch.float64)
        c, s = torch.cos(angle), torch.sin(angle)
        r = torch.zeros(n, 3, 3, dtype=torch.float64)
        r[:, 0, 0], r[:, 0, 1], r[:, 1, 0], r[:, 1, 1], r[:, 2, 2] = c, -s, s, c, 1.0
        return r
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    w, a, b, c = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    return torch.stack([
        torch.stack([1 - 2 * (b * b + c * c), 2 * (a * b - c * w), 2 * (a * c + b * w)], 1),
        torch.stack([2 * (a * b + c * w), 1 - 2 * (a * a + c * c), 2 * (b * c - a * w)], 1),
        torch.stack([2 * (a * c - b * w), 2 * (b * c + a * w), 1 - 2 * (a * a + b * b)], 1),
    ], 1)


def random_rotation(x: torch.Tensor, generator: torch.Generator, probability: float = 1.0,
                    plane: bool = False) -> torch.Tensor:
    """With ``probability``, rotate a sample about its centre by a random rotation (trilinear, edges replicated).

    ``plane=False``: uniform over all 3D rotations (isotropic voxels only: needs z = y = x);
    ``plane=True``: a uniform angle in the (y, x) section plane (needs y = x). Free rotations fill the
    orientations between the exact 90° symmetries of :func:`random_symmetry`; the trilinear resampling
    smooths a little. Nothing is drawn when ``probability`` is 0.
    """
    _check(x)
    n = x.shape[0]
    if probability <= 0:
        return x.clone()
    z, y, w = x.shape[2:]
    if y != w or (not plane and z != y):
        raise ValueError(f"random rotations need equal edges ({'y = x' if plane else 'z = y = x'}), got "
                         f"(z, y, x) = {(z, y, w)}")
    apply = torch.rand(n, generator=generator) < probability
    rot = _rotation_matrices(generator, n, plane)
    rot[~apply] = torch.eye(3, dtype=torch.float64)
    theta = torch.cat([rot, torch.zeros(n, 3, 1, dtype=torch.float64)], dim=2).to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _shift(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Each sample shifted by integer (dz, dy, dx) voxels, edges replicated (no wrap-around)."""
    m = int(shifts.abs().max()) if shifts.numel() else 0
    if m == 0:
        return x.clone()
    padded = F.pad(x, (m,) * 6, mode="replicate")
    z, y, w = x.shape[2:]
    out = torch.empty_like(x)
    for i, (dz, dy, dx) in enumerate(shifts.tolist()):
        out[i] = padded[i, :, m - dz : m - dz + z, m - dy : m - dy + y, m - dx : m - dx + w]
    return out


def random_translate(x: torch.Tensor, generator: torch.Generator, fraction: float = 0.1) -> torch.Tensor:
    """Shift each sample by up to ``fraction`` of each edge (integer voxels per axis), edges replicated."""
    _check(x)
    limits = torch.tensor([int(fraction * s) for s in x.shape[2:]])
    if int(limits.max()) == 0:
        return x.clone()
    shifts = ((torch.rand(x.shape[0], 3, generator=generator) * 2 - 1) * (limits + 0.5)).round().long()
    return _shift(x, shifts.clamp(-limits, limits))


def random_intensity(x: torch.Tensor, generator: torch.Generator, brightness: float = 0.1, contrast: float = 0.2,
                     gamma: float = 0.2) -> torch.Tensor:
    """Per sample: gamma ``exp(U(-gamma, gamma))`` on intensities clipped to [0, 1], contrast ``1 + U(-contrast,
    contrast)`` around the sample's mean, then ``+ U(-brightness, brightness)``."""
    _check(x)
    n = x.shape[0]
    g = _per_sample(torch.exp(_uniform(generator, n, -gamma, gamma)), x)
    c = _per_sample(1 + _uniform(generator, n, -contrast, contrast), x)
    b = _per_sample(_uniform(generator, n, -brightness, brightness), x)
    y = x.clamp(0, 1) ** g
    mean = y.mean(dim=(1, *SPATIAL), keepdim=True)
    return (y - mean) * c + mean + b


def _gaussian_kernels(sigmas: torch.Tensor, radius: int) -> torch.Tensor:
    """(n, 2 radius + 1) normalised Gaussian kernels of ``sigmas`` (voxels; 0 gives the identity kernel)."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    s = sigmas.to(torch.float64).clamp_min(1e-6).view(-1, 1)
    k = torch.exp(-0.5 * (t / s) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma_zyx) -> torch.Tensor:
    """Separable Gaussian blur of a (B, C, z, y, x) batch with sigma (z, y, x) in voxels (0: that axis is kept).

    ``sigma_zyx`` is three numbers (the same blur for every sample) or a (B, 3) tensor (one blur per
    sample). Edges are replicated; kernels reach 3 sigma.
    """
    _check(x)
    b, c = x.shape[:2]
    sig = torch.as_tensor(sigma_zyx, dtype=torch.float64).reshape(-1, 3).expand(b, 3)
    out = x.reshape(1, b * c, *x.shape[2:])  # one channel per (sample, channel): one grouped conv per axis
    for a, axis in enumerate(SPATIAL):
        top = float(sig[:, a].max())
        if top <= 0:
            continue
        radius = max(1, math.ceil(3 * top))
        k = _gaussian_kernels(sig[:, a], radius).repeat_interleave(c, dim=0).to(dtype=x.dtype, device=x.device)
        shape = [b * c, 1, 1, 1, 1]
        shape[axis] = 2 * radius + 1
        pad = [0] * 6
        pad[2 * (4 - axis)] = pad[2 * (4 - axis) + 1] = radius  # F.pad lists the last axis first
        out = F.conv3d(F.pad(out, pad, mode="replicate"), k.view(shape), groups=b * c)
    return out.reshape(x.shape)


def random_blur(x: torch.Tensor, generator: torch.Generator, probability: float = 0.5, sigma_max: float = 1.0,
                spacing_zyx=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """With ``probability``, blur a sample with sigma ``U(0.25, sigma_max)`` voxels in the section plane.

    ``spacing_zyx`` (relative voxel edges) scales sigma per axis so the blur is round in nm: with
    z sections 5× thicker than the in-plane pixels, z is blurred 5× less (in voxels).
    """
    _check(x)
    n = x.shape[0]
    apply = torch.rand(n, generator=generator) < probability
    sigmas = _uniform(generator, n, 0.25, max(sigma_max, 0.25)) * apply
    if sigma_max <= 0 or not bool(apply.any()):
        return x.clone()
    finest = min(spacing_zyx)
    scale = torch.tensor([finest / sp for sp in spacing_zyx], dtype=torch.float64)
    return gaussian_blur(x, sigmas.to(torch.float64).view(n, 1) * scale.view(1, 3))


def random_noise(x: torch.Tensor, generator: torch.Generator, std_max: float = 0.05) -> torch.Tensor:
    """Add Gaussian noise of std ``U(0, std_max)`` per sample."""
    _check(x)
    std = _per_sample(_uniform(generator, x.shape[0], 0, std_max), x)
    noise = torch.randn(x.shape, generator=generator).to(device=x.device, dtype=x.dtype)
    return x + std * noise


def random_cutout(x: torch.Tensor, generator: torch.Generator, probability: float = 0.5,
                  size_max: float = 0.3) -> torch.Tensor:
    """With ``probability``, set a random box of a sample (edges up to ``size_max`` of the crop's) to its mean."""
    _check(x)
    out = x.clone()
    n = x.shape[0]
    apply = torch.rand(n, generator=generator) < probability
    fractions = _uniform(generator, 3 * n, 0.1, max(size_max, 0.1)).view(n, 3)
    starts = torch.rand(n, 3, generator=generator)
    for i in range(n):
        if not apply[i]:
            continue
        box = []
        for a, edge in enumerate(x.shape[2:]):
            size = max(1, round(float(fractions[i, a]) * edge))
            start = int(float(starts[i, a]) * (edge - size + 1))
            box.append(slice(start, start + size))
        out[(i, slice(None), *box)] = x[i].mean()
    return out


def section_jitter(x: torch.Tensor, generator: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Shift every z section of every sample by its own random (dy, dx) in [-max_shift, max_shift] voxels.

    Serial-section misalignment; edges are replicated.
    """
    _check(x)
    if max_shift <= 0:
        return x.clone()
    b, _, z, y, w = x.shape
    m = int(max_shift)
    shifts = torch.randint(-m, m + 1, (b, z, 2), generator=generator).to(x.device)
    padded = F.pad(x, (m, m, m, m, 0, 0), mode="replicate")  # (B, C, z, y + 2m, x + 2m)
    rows = torch.arange(y, device=x.device).view(1, 1, y) + m - shifts[..., :1]  # (B, z, y)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + m - shifts[..., 1:]  # (B, z, x)
    bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    zi = torch.arange(z, device=x.device).view(1, z, 1, 1)
    planes = padded.permute(0, 2, 1, 3, 4)  # (B, z, C, Y, X)
    out = planes[bi, zi, :, rows[..., :, None], cols[..., None, :]]  # (B, z, y, x, C)
    return out.permute(0, 4, 1, 2, 3).contiguous()


def section_drop(x: torch.Tensor, generator: torch.Generator, probability: float = 0.05) -> torch.Tensor:
    """Blank each z section with ``probability`` (set to the sample's mean): a missing or damaged section."""
    _check(x)
    drop = torch.rand(x.shape[0], x.shape[2], generator=generator) < probability  # (B, z)
    if not bool(drop.any()):
        return x.clone()
    mean = x.mean(dim=(1, *SPATIAL), keepdim=True).expand_as(x)
    mask = drop.to(x.device).view(x.shape[0], 1, x.shape[2], 1, 1).expand_as(x)
    return torch.where(mask, mean, x)


def random_view(x: torch.Tensor, generator: torch.Generator, settings, geometry: str,
                spacing_zyx=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """One random view of each crop of ``x`` with the augmentation strengths of ``settings``.

    ``settings`` is a :class:`~synapse_core.features.train_settings.TrainSettings`; ``geometry``
    chooses the symmetry group, the free rotations and whether section jitter and section drop apply:

    * ``"isotropic"``: the 48 cube symmetries, free 3D rotations;
    * ``"anisotropic"``: the 16 symmetries that keep z the section axis, free rotations in the y-x
      plane, section jitter and drop;
    * ``"canonical"`` (canonical crops: z is the cleft normal, presynaptic side at low z): the 8
      rotations/mirrors of the y-x plane and free rotations about z; z is never flipped or mixed with
      y, x, so the pre/post axis stays (crop axes are not section axes: no section jitter or drop).

    Order: symmetry, free rotation, translation, section jitter/drop, intensity, blur, noise, cutout.
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry {geometry!r}: use one of {', '.join(GEOMETRIES)}")
    s = settings
    group = {"isotropic": "cube", "anisotropic": "plane", "canonical": "canonical"}[geometry]
    v = random_symmetry(x, generator, group)
    if getattr(s, "rotation_probability", 0.0) > 0:
        v = random_rotation(v, generator, s.rotation_probability, plane=geometry != "isotropic")
    v = random_translate(v, generator, s.translate)
    if geometry == "anisotropic":
        v = section_jitter(v, generator, s.section_jitter)
        v = section_drop(v, generator, s.section_drop)
    v = random_intensity(v, generator, s.brightness, s.contrast, s.gamma)
    v = random_blur(v, generator, s.blur_probability, s.blur_sigma, spacing_zyx)
    v = random_noise(v, generator, s.noise_std)
    return random_cutout(v, generator, s.cutout_probability, s.cutout_size)
