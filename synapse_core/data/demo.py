"""A deterministic, EM-like demo dataset with planted synapse types.

``write_demo_dataset(out, seed=0, n_synapses=60)`` writes the original tool's layout::

    out/raw/<bbox>/slice_<z>.tif     uint8 EM-like intensities (slice numbers NOT zero-padded)
    out/seg/<bbox>/slice_<z>.tif     neuron instance ids (0 = background)
    out/mask/<bbox>/slice_<z>.tif    semantic labels: vesicle cloud, cleft, mitochondria
    out/excel/<bbox>.xlsx            synapse table (Var1, central/side coords as x, y, z)
    out/synapse_dataset.toml         voxel size, link template, per-bbox offsets
    out/truth.csv                    planted type, presynaptic side, cleft normal (never read by the analysis)

Each synapse is a presynaptic bouton and a postsynaptic partner touching at a cleft, with a vesicle
cloud on the presynaptic side; the planted types differ in morphology (vesicle cloud size, cleft
size, bouton size, mitochondria). Neurons elsewhere fill the volume as a Voronoi tessellation.
Mask label ids follow the original per-bbox table (:func:`synapse_core.data.labels.default_labels`).

Every synapse has a random orientation — the cleft plane's normal is drawn uniformly on the sphere
(a normalised 3D standard normal) — and a random presynaptic side (side 1 or side 2 of the synapse
table is presynaptic with probability 1/2), so features that follow orientation or annotation
order rather than the synapse type can be caught. Types are assigned in turn (balanced).

Size: 60 synapses in 4 bboxes by default; ``n_synapses`` up to ``MAX_SYNAPSES_PER_BBOX`` × any
number of bboxes (bbox5, bbox6, ... are added, ``SYNAPSES_PER_BBOX`` synapses each unless
``n_bboxes`` is given). Everything is drawn from ``numpy.random.default_rng([seed, bbox_index])``:
the same seed gives the same bytes, and a bbox does not change when more bboxes are added.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# pandas, scipy.ndimage and tifffile are imported where they are used, so the constants below
# (read by `demo --help`) cost no heavy import.
from synapse_core.data.atomic import atomic_folder
from synapse_core.data.cache_dir import resolve_cache_dir
from synapse_core.data.labels import default_labels

#: Demo volume shape (z, y, x) in voxels; voxel size 8 nm isotropic.
DEMO_SHAPE = (112, 176, 176)
DEMO_BBOXES = ("bbox1", "bbox2", "bbox3", "bbox4")
DEMO_VOXEL_NM = 8.0
DEMO_VERSION = "1"
#: Synapses per bbox when only ``n_synapses`` is given (the default 60 = 4 bboxes × 15).
SYNAPSES_PER_BBOX = 15
#: Synapse positions in one bbox (the jittered 2 × 3 × 3 grid of :func:`_grid_positions`).
MAX_SYNAPSES_PER_BBOX = 18


@dataclass(frozen=True)
class SynapseType:
    """Morphology of a planted synapse type; lengths in voxels."""

    name: str
    bouton_radius: float
    vesicle_radius: float
    cleft_radius: float
    mitochondrion: bool


PLANTED_TYPES = (
    SynapseType("large_vesicle_cloud", bouton_radius=19, vesicle_radius=12, cleft_radius=6, mitochondrion=False),
    SynapseType("wide_cleft", bouton_radius=19, vesicle_radius=5, cleft_radius=15, mitochondrion=False),
    SynapseType("mitochondrion_bouton", bouton_radius=21, vesicle_radius=6, cleft_radius=8, mitochondrion=True),
    SynapseType("small_bouton", bouton_radius=11, vesicle_radius=4, cleft_radius=5, mitochondrion=False),
)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _grid_positions(shape, rng) -> list[np.ndarray]:
    """Synapse centres (z, y, x) on a jittered grid, ~48 voxels apart."""
    zs = (38, 74)
    ys = (40, 88, 136)
    xs = (40, 88, 136)
    out = [np.array([z, y, x], float) + rng.uniform(-4, 4, 3) for z in zs for y in ys for x in xs]
    rng.shuffle(out)
    return out


def _background_segmentation(shape, rng, n_seeds=140) -> np.ndarray:
    """Voronoi neurons: every voxel gets the id of its nearest random seed (ids 1..n_seeds)."""
    from scipy import ndimage

    seeds = np.zeros(shape, np.uint16)
    pts = (rng.uniform(0, 1, (n_seeds, 3)) * np.array(shape)).astype(int)
    seeds[pts[:, 0], pts[:, 1], pts[:, 2]] = np.arange(1, n_seeds + 1)
    idx = ndimage.distance_transform_edt(seeds == 0, return_distances=False, return_indices=True)
    return seeds[idx[0], idx[1], idx[2]]


def _membranes(seg: np.ndarray) -> np.ndarray:
    """True on voxels whose +1 neighbour along any axis belongs to another neuron."""
    edge = np.zeros(seg.shape, bool)
    for axis in range(3):
        diff = np.diff(seg, axis=axis) != 0
        sl_lo = [slice(None)] * 3
        sl_lo[axis] = slice(0, -1)
        edge[tuple(sl_lo)] |= diff
    return edge


def _window_coords(win: tuple[slice, ...]) -> np.ndarray:
    """Voxel coordinates (z, y, x) of a window as float32, shape (*window, 3)."""
    return np.stack(np.meshgrid(*[np.arange(w.start, w.stop, dtype=np.float32) for w in win], indexing="ij"), axis=-1)


def _render_bbox(bbox_index: int, bbox_name: str, seed: int, n_syn: int = SYNAPSES_PER_BBOX):
    """Build raw, seg, mask volumes (z, y, x) and the synapse rows of one demo bbox with ``n_syn`` synapses."""
    from scipy import ndimage

    if not 1 <= n_syn <= MAX_SYNAPSES_PER_BBOX:
        raise ValueError(f"a demo bbox holds 1 to {MAX_SYNAPSES_PER_BBOX} synapses, got {n_syn}")
    rng = np.random.default_rng([seed, bbox_index])
    shape = DEMO_SHAPE
    labels = default_labels(bbox_name)
    seg = _background_segmentation(shape, rng).astype(np.uint32)
    mask = np.zeros(shape, np.uint8)

    raw = np.full(shape, 150.0, np.float32)
    dark_features = np.zeros(shape, np.float32)  # added darkness (0..1) per voxel
    next_id = 1000
    rows, truth = [], []
    positions = _grid_positions(shape, rng)
    for k in range(n_syn):
        stype = PLANTED_TYPES[(k + bbox_index) % len(PLANTED_TYPES)]
        jitter = lambda v: v * rng.uniform(0.88, 1.12)
        c = positions[k]
        n = _unit(rng.normal(size=3))
        rb = jitter(stype.bouton_radius)
        rv = min(jitter(stype.vesicle_radius), rb * 0.8)
        rc = min(jitter(stype.cleft_radius), rb * 0.95)
        lo = np.maximum(np.floor(c - 2.2 * rb).astype(int), 0)
        hi = np.minimum(np.ceil(c + 2.2 * rb).astype(int) + 1, shape)
        win = tuple(slice(a, b) for a, b in zip(lo, hi))
        d = _window_coords(win) - c.astype(np.float32)
        along = d @ n.astype(np.float32)  # signed distance from the cleft plane (pre side > 0)
        dist_pre = np.linalg.norm(d - (rb * 0.85) * n, axis=-1)
        dist_post = np.linalg.norm(d + (rb * 0.85) * n, axis=-1)
        pre = (dist_pre < rb) & (along > 0)
        post = (dist_post < rb * 0.9) & (along <= 0)
        pre_id, post_id = next_id, next_id + 1
        next_id += 2
        seg[win][pre] = pre_id
        seg[win][post] = post_id
        radial = np.linalg.norm(d - along[..., None] * n, axis=-1)
        cleft = (np.abs(along) < 1.6) & (radial < rc)
        psd = (along < -1.0) & (along > -3.5) & (radial < rc)  # postsynaptic density: 2nd cleft label
        ves_c = rv + 2.0
        vesicle = (np.linalg.norm(d - ves_c * n, axis=-1) < rv) & pre
        m = mask[win]
        m[vesicle] = labels.vesicle
        m[psd & post] = labels.cleft2
        m[cleft] = labels.cleft
        df = dark_features[win]
        # Vesicles: small dark dots inside the cloud.
        dots = vesicle & (rng.uniform(size=vesicle.shape) < 0.25)
        df[dots] = np.maximum(df[dots], 0.55)
        df[cleft] = np.maximum(df[cleft], 0.75)
        df[psd & post] = np.maximum(df[psd & post], 0.6)
        if stype.mitochondrion:
            # Elongated mitochondrion behind the vesicle cloud, inside the bouton.
            mc = (2 * rv + 6.0) * n
            axis2 = _unit(np.cross(n, rng.normal(size=3)))
            rel = d - mc
            a1 = rel @ n.astype(np.float32)
            a2 = rel @ axis2.astype(np.float32)
            rest = np.linalg.norm(rel - a1[..., None] * n - a2[..., None] * axis2, axis=-1)
            mito = ((a1 / 4.5) ** 2 + (a2 / 9.0) ** 2 + (rest / 4.5) ** 2 < 1) & pre
            m[mito] = labels.mito
            stripes = mito & (np.sin(a2 * 1.3) > 0.3)
            df[mito] = np.maximum(df[mito], 0.35)
            df[stripes] = np.maximum(df[stripes], 0.6)
        side_pre = c + n * min(rb * 0.85, 12.0)
        side_post = c - n * min(rb * 0.85, 12.0)
        pre_side = 1 if rng.uniform() < 0.5 else 2
        s1, s2 = (side_pre, side_post) if pre_side == 1 else (side_post, side_pre)
        var1 = f"syn_{k + 1:03d}"
        czyx = np.round(c).astype(int)
        p1 = np.round(s1).astype(int)
        p2 = np.round(s2).astype(int)
        rows.append(
            {
                "Var1": var1,
                "central_coord_1": czyx[2], "central_coord_2": czyx[1], "central_coord_3": czyx[0],
                "side_1_coord_1": p1[2], "side_1_coord_2": p1[1], "side_1_coord_3": p1[0],
                "side_2_coord_1": p2[2], "side_2_coord_2": p2[1], "side_2_coord_3": p2[0],
                "annotator": "demo",
            }
        )
        truth.append({"bbox_name": bbox_name, "Var1": var1, "synapse_type": stype.name, "presynaptic_side": pre_side,
                      "cleft_normal_z": n[0], "cleft_normal_y": n[1], "cleft_normal_x": n[2]})

    # A few mitochondria away from synapses, so "closest component" has something to reject.
    for _ in range(6):
        mc = rng.uniform(0, 1, 3) * np.array(shape)
        radius = rng.uniform(3, 6)
        # only the blob's neighbourhood is measured (the same voxels as measuring the whole volume)
        win = tuple(slice(max(int(np.floor(m - radius)) - 1, 0), min(int(np.ceil(m + radius)) + 2, s))
                    for m, s in zip(mc, shape))
        blob = np.linalg.norm(_window_coords(win) - mc.astype(np.float32), axis=-1) < radius
        free = blob & (mask[win] == 0)
        mask[win][free] = labels.mito
        dark_features[win][free] = np.maximum(dark_features[win][free], 0.4)

    membranes = _membranes(seg)
    dark_features[membranes] = np.maximum(dark_features[membranes], 0.7)
    raw = raw * (1.0 - 0.75 * dark_features)
    raw += rng.normal(0, 6.0, shape).astype(np.float32)
    raw = ndimage.gaussian_filter(raw, 0.7)
    raw += rng.normal(0, 5.0, shape).astype(np.float32)
    raw = np.clip(raw, 0, 255).astype(np.uint8)
    return raw, seg, mask, rows, truth


def _smallest_uint(a: np.ndarray) -> np.ndarray:
    return a.astype(np.min_scalar_type(int(a.max()) if a.size else 0))


def _write_stack(folder: Path, volume: np.ndarray) -> None:
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    for z in range(volume.shape[0]):
        tifffile.imwrite(folder / f"slice_{z}.tif", volume[z])


def bbox_sizes(n_synapses: int | None = None, n_bboxes: int | None = None) -> list[int]:
    """Synapses in each demo bbox.

    Neither given: 4 bboxes of 15 (60 synapses). ``n_bboxes`` only: 15 each. ``n_synapses`` only:
    ⌈n_synapses / 15⌉ bboxes. Both: ``n_synapses`` spread over ``n_bboxes``. Counts differ by at
    most one between bboxes.

    Raises
    ------
    ValueError
        A count below 1, or more than ``MAX_SYNAPSES_PER_BBOX`` synapses per bbox.

    Example
    -------
    >>> bbox_sizes(), bbox_sizes(n_bboxes=1), bbox_sizes(n_synapses=40)
    ([15, 15, 15, 15], [15], [14, 13, 13])
    """
    if n_bboxes is not None and int(n_bboxes) < 1:
        raise ValueError(f"n_bboxes={n_bboxes!r} must be at least 1")
    if n_synapses is not None and int(n_synapses) < 1:
        raise ValueError(f"n_synapses={n_synapses!r} must be at least 1")
    if n_synapses is None:
        return [SYNAPSES_PER_BBOX] * int(n_bboxes if n_bboxes is not None else len(DEMO_BBOXES))
    n = int(n_synapses)
    nb = int(n_bboxes) if n_bboxes is not None else -(-n // SYNAPSES_PER_BBOX)
    if n < nb or n > nb * MAX_SYNAPSES_PER_BBOX:
        raise ValueError(
            f"n_synapses={n} does not fit n_bboxes={nb}: a demo bbox holds 1 to {MAX_SYNAPSES_PER_BBOX} "
            f"synapses; use between {nb} and {nb * MAX_SYNAPSES_PER_BBOX} synapses or change the bbox count"
        )
    return [n // nb + (i < n % nb) for i in range(nb)]


def bbox_name(i: int) -> str:
    """Name of the i-th demo bbox (0-based): bbox1, bbox2, ..."""
    return f"bbox{i + 1}"


def _write_bbox(out: Path, i: int, seed: int, n_syn: int) -> list[dict]:
    """Render bbox ``i`` and write its stacks and synapse table; returns its truth rows."""
    import pandas as pd

    name = bbox_name(i)
    raw, seg, mask, rows, truth = _render_bbox(i, name, seed, n_syn)
    _write_stack(out / "raw" / name, raw)
    _write_stack(out / "seg" / name, _smallest_uint(seg))
    _write_stack(out / "mask" / name, mask)
    (out / "excel").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_excel(out / "excel" / f"{name}.xlsx", index=False)
    return truth


def write_demo_dataset(out: str | os.PathLike, seed: int = 0, n_bboxes: int | None = None,
                       n_synapses: int | None = None, workers: int | None = None) -> Path:
    """Write the demo dataset to ``out`` and return its path.

    Deterministic: the same ``seed`` (and sizes) gives byte-identical volumes and tables, whatever
    ``workers``. Bboxes of ``DEMO_SHAPE`` (z, y, x) voxels at ``DEMO_VOXEL_NM`` nm, 4 planted types;
    sizes from :func:`bbox_sizes` (default 4 bboxes × 15 synapses).

    Parameters
    ----------
    out : path
        Folder to write (created).
    seed : int
        Seed of every random draw.
    n_bboxes, n_synapses : int, optional
        See :func:`bbox_sizes`.
    workers : int, optional
        Processes rendering bboxes in parallel; default 1 up to 4 bboxes, else all CPU cores.
    """
    import pandas as pd

    sizes = bbox_sizes(n_synapses, n_bboxes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if workers is None:
        workers = 1 if len(sizes) <= len(DEMO_BBOXES) else (os.cpu_count() or 1)
    workers = max(1, min(int(workers), len(sizes)))
    if workers == 1:
        per_bbox = [_write_bbox(out, i, seed, n) for i, n in enumerate(sizes)]
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            per_bbox = list(pool.map(_write_bbox, [out] * len(sizes), range(len(sizes)), [seed] * len(sizes), sizes))
    truth_rows = [row for rows in per_bbox for row in rows]
    offsets = {bbox_name(i): (1000 * (i + 1), 2000, 3000) for i in range(len(sizes))}
    pd.DataFrame(truth_rows).to_csv(out / "truth.csv", index=False)
    lines = [
        "# Demo dataset configuration (see README: dataset config).",
        f"voxel_size_nm = [{DEMO_VOXEL_NM}, {DEMO_VOXEL_NM}, {DEMO_VOXEL_NM}]  # z, y, x",
        '# {x}, {y}, {z}: global voxel position = bbox offset_xyz + the synapse centre; {bbox}: bbox name',
        'link_template = "https://webknossos.example.org/datasets/demo/view#{x},{y},{z},0,1.0"',
        "",
    ]
    for bbox, off in offsets.items():
        lines += [f"[bboxes.{bbox}]", f"offset_xyz = [{off[0]}, {off[1]}, {off[2]}]", ""]
    (out / "synapse_dataset.toml").write_text("\n".join(lines))
    (out / ".demo_version").write_text(f"{DEMO_VERSION} seed={seed}\n")
    return out


def demo_data_root(cache_dir: str | os.PathLike | None = None, seed: int = 0, n_bboxes: int = len(DEMO_BBOXES)) -> Path:
    """Path of a ready demo dataset inside ``cache_dir`` (default cache), written once on first use."""
    suffix = "" if n_bboxes == len(DEMO_BBOXES) else f"-{n_bboxes}bbox"
    root = resolve_cache_dir(cache_dir) / f"demo-v{DEMO_VERSION}-seed{seed}{suffix}"
    stamp = root / ".demo_version"
    if stamp.exists():
        return root
    with atomic_folder(root) as tmp:  # another process may finish first: its copy is identical and kept
        write_demo_dataset(tmp, seed=seed, n_bboxes=n_bboxes)
    return root
