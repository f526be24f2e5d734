"""Validation of synapse rows and volumes, and the report shown by the CLI and the dashboard's data page.

Fatal problems (a missing folder, raw/seg/mask stacks that differ, an unreadable file, voxel sizes
that disagree) exclude a bbox; per-row problems skip just that row. Every good row is kept.
Warnings name the bbox, the ids or numbers, and the line to add to ``synapse_dataset.toml``:

* :func:`check_labels`: label ids the bbox will use that occur nowhere in its mask, mask ids no
  class uses, and the original per-bbox label table where the mask disagrees with it. Opening a
  dataset counts the mask's ids near the synapses only (:func:`label_counts_near_points`: at most
  :data:`LABEL_MAX_WINDOWS` windows of :data:`LABEL_WINDOW`³ voxels, so the cost does not grow with
  the volume); the ``validate`` command also counts every voxel of every mask once
  (:func:`mask_label_counts`, cached per file) and reports ids that occur nowhere in the whole mask
  (:func:`whole_mask_label_warnings`);
* :func:`extent_warnings`: anisotropy (largest / smallest voxel edge) and a stack thinner than a
  crop, for a given crop extent in nm (the crop stage computes it from its settings).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from synapse_core.data.atomic import write_text_atomically
from synapse_core.data.config import config_line
from synapse_core.data.labels import (
    CLASS_NAMES,
    NO_LABELS,
    ORIGINAL_LABELS,
    LabelIds,
    count_label_ids,
    default_labels,
)
from synapse_core.data.tables import (
    COORD_COLUMNS,
    POINTS,
    SOURCE_FILE,
    SOURCE_ROW,
    point_columns,
)
from synapse_core.data.voxel_size import format_voxel_size
from synapse_core.data.windows import point_values, read_box

ISSUE_COLUMNS = ("bbox_name", "Var1", "row", "column", "problem", "action", "file")


@dataclass
class ValidationReport:
    """What was found at a data root: fatal problems, warnings and per-row issues.

    ``row_issues`` has one row per problem: ``bbox_name``, ``Var1``, ``row`` (spreadsheet row
    number, header = 1), ``column``, ``problem``, ``action`` ("skipped" or "kept") and ``file``.
    """

    root: str
    fatal: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    row_issues: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ISSUE_COLUMNS))
    bboxes: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_rows_total: int = 0
    n_rows_valid: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing fatal was found."""
        return not self.fatal

    @property
    def n_rows_skipped(self) -> int:
        return self.n_rows_total - self.n_rows_valid

    def text(self) -> str:
        """The report as plain text (what ``python -m synapse_core validate`` prints)."""
        lines = [f"Data root: {self.root}"]
        if not self.bboxes.empty:
            lines.append(f"Bounding boxes ({len(self.bboxes)}):")
            for _, b in self.bboxes.iterrows():
                lines.append(f"  {b['bbox_name']}: shape (z, y, x) {b['shape_zyx']}, {b['n_synapses']} synapses, "
                             f"mask: {b['mask']}, source: {b['source']}")
                voxel = b.get("voxel_size_nm")
                if voxel is not None and not (isinstance(voxel, float) and np.isnan(voxel)):
                    lines.append(f"    voxel size {format_voxel_size(voxel)} from {b['voxel_size_source']}, "
                                 f"anisotropy {b['anisotropy']:.3g}")
                elif "voxel_size_nm" in b:
                    lines.append("    voxel size unknown (measurements in voxels)")
                if b.get("labels"):
                    ids = ("not counted (a whole volume's mask is not scanned)" if b["mask_ids"] is None
                           else ", ".join(map(str, b["mask_ids"])) or "none")
                    lines.append(f"    mask labels: {b['labels']} ({b['labels_source']}); ids in the mask: {ids}")
        lines.append(f"Synapses: {self.n_rows_valid} valid of {self.n_rows_total} rows, {self.n_rows_skipped} skipped")
        if self.fatal:
            lines.append(f"FATAL ({len(self.fatal)}):")
            lines += [f"  - {m}" for m in self.fatal]
        if self.warnings:
            lines.append(f"Warnings ({len(self.warnings)}):")
            lines += [f"  - {m}" for m in self.warnings]
        if len(self.row_issues):
            lines.append(f"Row problems ({len(self.row_issues)}):")
            for _, r in self.row_issues.iterrows():
                lines.append(f"  - {r['bbox_name']}/{r['Var1']} (row {r['row']} of {r['file']}), "
                             f"column {r['column']}: {r['problem']} [{r['action']}]")
        lines.append("Result: " + ("FATAL problems found" if self.fatal else "OK"))
        return "\n".join(lines)


@dataclass(frozen=True)
class LabelCheck:
    """The label ids a bbox will use, where they came from, and what its mask says about them.

    Attributes
    ----------
    labels : LabelIds
        Ids to use; None for a class the bbox does not have (declared ``"none"``, or the original
        table was refused because the mask disagrees with it).
    source : str
        Where ``labels`` came from, e.g. ``"synapse_dataset.toml [bboxes.bbox2] labels"``.
    warnings : tuple of str
        One message per problem; each names the bbox, the ids and the config line to add.
    """

    labels: LabelIds
    source: str
    warnings: tuple[str, ...] = ()


def _present(counts: Mapping[int, int], scope: str = "in the mask") -> str:
    ids = [(i, n) for i, n in counts.items() if i != 0]
    if not ids:
        return f"only background (id 0) {scope}"
    return f"ids {scope}: " + ", ".join(f"{i} ({n:,} voxels)" for i, n in ids)


#: Edge (native voxels) of the window around a synapse centre whose mask ids opening a dataset counts.
LABEL_WINDOW = 64
#: At most this many windows per bbox (synapses taken evenly over the table): a bounded cost per bbox.
LABEL_MAX_WINDOWS = 64


def synapse_points_zyx(table: pd.DataFrame, bbox_name: str, shape_zyx) -> np.ndarray:
    """Annotated centres (n, 3) as (z, y, x) voxel indices of ``bbox_name``'s rows that lie inside ``shape_zyx``.

    Rows with missing or non-numeric ``central_coord_*`` (x, y, z) are left out (validation reports them).
    """
    if table is None or not len(table) or "bbox_name" not in table:
        return np.zeros((0, 3), np.int64)
    rows = table[table["bbox_name"] == bbox_name]
    cols = [f"central_coord_{i}" for i in (3, 2, 1)]
    if not len(rows) or any(c not in rows for c in cols):
        return np.zeros((0, 3), np.int64)
    zyx = np.stack([pd.to_numeric(rows[c], errors="coerce").to_numpy(float) for c in cols], 1)
    zyx = zyx[np.all(np.isfinite(zyx), axis=1)]
    zyx = np.rint(zyx).astype(np.int64)
    inside = np.all((zyx >= 0) & (zyx < np.asarray(shape_zyx, np.int64)), axis=1)
    return zyx[inside]


def label_counts_near_points(mask, points_zyx, window: int | None = None,
                             max_windows: int | None = None, cache_dir: Path | None = None
                             ) -> tuple[dict[int, int], str]:
    """Voxels per mask id in windows around synapse centres, and where they were counted.

    ``window`` and ``max_windows`` default to :data:`LABEL_WINDOW` and :data:`LABEL_MAX_WINDOWS`.
    ``mask`` is an array-like indexed ``[z, y, x]`` or a volume source (``.open()``,
    ``.fingerprint``); the counts of a source counted whole are kept in ``cache_dir`` (see
    :func:`mask_label_counts`), so opening the dataset again does not count them again.

    The cost is bounded by ``max_windows * window³`` voxels whatever the volume size: a volume no
    larger than that is counted whole (exact); otherwise windows of ``window``³ voxels centred on at
    most ``max_windows`` of ``points_zyx`` (taken evenly over the given order) are counted, or, without
    points, windows on an even grid over the volume. Overlapping windows count shared voxels again.

    Returns
    -------
    (counts, scope)
        ``{id: voxels}`` (0 included) and the words the report uses for where ids were looked for,
        e.g. ``"in the mask"`` or ``"near the synapses (12 windows of 64³ voxels)"``.
    """
    window = LABEL_WINDOW if window is None else int(window)
    max_windows = LABEL_MAX_WINDOWS if max_windows is None else int(max_windows)
    source = mask if hasattr(mask, "open") and hasattr(mask, "fingerprint") else None
    if source is not None:
        mask = source.open()
    shape = [int(n) for n in mask.shape[:3]]
    budget = max_windows * window ** 3
    if math.prod(shape) <= budget:
        counts = mask_label_counts(source, cache_dir) if source is not None else count_label_ids(mask)
        return counts, "in the mask"
    pts = np.asarray(points_zyx, dtype=np.int64).reshape(-1, 3)
    if len(pts) > max_windows:
        pts = pts[np.unique(np.linspace(0, len(pts) - 1, max_windows).round().astype(int))]
    scope = f"near the synapses ({len(pts)} windows of {window}³ voxels; `validate` counts the whole mask)"
    if not len(pts):  # no synapse rows: an even grid of windows
        per_axis = max(1, round(max_windows ** (1 / 3)))
        axes = [np.linspace(window // 2, max(window // 2, n - window // 2), per_axis).round().astype(int) for n in shape]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        scope = f"in {len(pts)} windows of {window}³ voxels spread over the mask (`validate` counts the whole mask)"
    totals: dict[int, int] = {}
    half = window // 2
    for p in pts:
        lo = [max(0, int(c) - half) for c in p]
        hi = [min(n, a + window) for a, n in zip(lo, shape)]
        for i, n in count_label_ids(read_box(mask, lo, hi)).items():
            totals[i] = totals.get(i, 0) + n
    return dict(sorted(totals.items())), scope


def mask_label_counts(mask, cache_dir: Path | None = None) -> dict[int, int]:
    """Voxels per id of a whole mask volume (:func:`~synapse_core.data.labels.count_label_ids`), cached.

    ``mask`` is a volume source (``.open()``, ``.fingerprint``). Counted once per mask: the counts are
    kept in ``cache_dir/label_counts/<fingerprint>.json`` (the fingerprint changes when the file does).
    """
    fingerprint = getattr(mask, "fingerprint", None)
    path = Path(cache_dir) / "label_counts" / f"{fingerprint}.json" if cache_dir and fingerprint else None
    if path is not None and path.exists():
        try:
            return {int(k): int(v) for k, v in json.loads(path.read_text()).items()}
        except (ValueError, OSError):
            pass  # a damaged cache entry: count again
    counts = count_label_ids(mask.open())
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(path, json.dumps({str(k): v for k, v in counts.items()}))
        except OSError:  # a read-only cache: count again next time
            pass
    return counts


def whole_mask_label_warnings(bboxes: Mapping, config_file: str, cache_dir: Path | None = None) -> list[str]:
    """Warnings from counting every voxel of every bbox's mask: ids in use that occur nowhere in it.

    ``bboxes`` maps names to opened bboxes (``Dataset.bboxes``: ``.mask``, ``.labels``,
    ``.labels_source``); bboxes without a mask are skipped. Also names mask ids no class uses.
    What the ``validate`` command adds to the report of ``open_dataset`` (which looks near the synapses).
    """
    out = []
    for name, b in bboxes.items():
        if getattr(b, "mask", None) is None:
            continue
        if math.prod(int(n) for n in b.mask.open().shape[:3]) <= LABEL_MAX_WINDOWS * LABEL_WINDOW ** 3:
            continue  # opening the dataset counted this small mask whole already
        counts = mask_label_counts(b.mask, cache_dir)
        check = check_labels(name, counts, b.labels, config_file, getattr(b, "labels_source", ""),
                             scope="in the whole mask")
        out.extend(check.warnings)
    return out


def check_labels(bbox_name: str, counts: Mapping[int, int] | None, configured: LabelIds | None,
                 config_file: str, configured_source: str = "", scope: str = "in the mask") -> LabelCheck:
    """Decide and check the label ids of one bbox against the ids its mask holds.

    Parameters
    ----------
    bbox_name : str
    counts : {id: voxels} of the bbox's mask (:func:`count_label_ids`), or None without a mask.
    configured : LabelIds from the dataset config, or None to use the original tool's table.
    config_file : the config file a suggested line goes to (used in messages only).
    configured_source : where ``configured`` came from, for messages.
    scope : where ``counts`` were counted, for messages (e.g. "near the synapses (…)").

    Rules
    -----
    * Config ids are used as given; an id that occurs nowhere in the mask is a warning.
    * The original table (:func:`default_labels`) is used only if the mask agrees with it: at least
      one of its ids occurs and every non-zero id of the mask is one of its ids. Otherwise no class
      is labelled (``NO_LABELS``) and the warning gives the line that says which id is which.
    * Non-zero mask ids that no class uses are a warning (they are ignored).
    * Without a mask nothing is checked.
    """
    if configured is not None:
        labels, source = configured, configured_source or f"{config_file} labels"
    else:
        labels = default_labels(bbox_name)
        which = bbox_name if bbox_name in ORIGINAL_LABELS else "bbox1 and unknown names"
        source = f"the original tool's label table ({which})"
    if counts is None:
        return LabelCheck(labels, source)
    present = {i for i, n in counts.items() if n and i != 0}
    used = {k: v for k, v in labels.as_dict().items() if v is not None}
    missing = {k: v for k, v in used.items() if v not in present}
    unmapped = sorted(present - set(used.values()))
    suggested = {k: (v if v in present else None) for k, v in labels.as_dict().items()}
    line = config_line(config_file, "labels", suggested, bbox_name)
    warnings = []
    if configured is None and (unmapped or len(missing) == len(used)):
        table = labels.describe()
        warnings.append(
            f"{bbox_name}: the mask does not match {source} ({table}): "
            + (f"ids {', '.join(map(str, unmapped))} are not in it" if unmapped else f"none of its ids occur {scope}")
            + f"; {_present(counts, scope)}. The table is not used, so no mask class is known for {bbox_name} and "
            f"segmentation types that need vesicle, cleft or mitochondria labels are unavailable; say which id is "
            f"which (\"none\" for a class the mask lacks): {line}")
        return LabelCheck(NO_LABELS, f"none ({source} does not match the mask)", tuple(warnings))
    for k, v in missing.items():
        if k == "cleft2" and v == labels.cleft:
            continue  # one cleft label used twice: reported once, as cleft
        warnings.append(
            f"{bbox_name}: {k} id {v} ({CLASS_NAMES[k]}, from {source}) occurs nowhere {scope}; {_present(counts, scope)}. "
            f"If {bbox_name} has no {CLASS_NAMES[k]}, say so, or give the right id: {line}")
    if unmapped:
        warnings.append(
            f"{bbox_name}: mask ids {', '.join(map(str, unmapped))} "
            f"({', '.join(f'{counts[i]:,}' for i in unmapped)} voxels) belong to no class ({labels.describe()}, "
            f"from {source}) and are ignored; to use one, put it in place of the class's id: "
            + config_line(config_file, "labels", labels.as_dict(), bbox_name))
    return LabelCheck(labels, source, tuple(warnings))


#: Largest / smallest voxel edge above which crops in voxels are physically elongated (a warning).
ANISOTROPY_WARN = 1.5


def anisotropy(voxel_size_nm) -> float | None:
    """Largest over smallest voxel edge (1 = isotropic); None when the voxel size is unknown."""
    if voxel_size_nm is None:
        return None
    return float(max(voxel_size_nm) / min(voxel_size_nm))


def extent_warnings(bbox_name: str, shape_zyx, voxel_size_nm, crop_nm_zyx, crop_voxels_zyx) -> list[str]:
    """Warnings about a bbox's grid against one crop: anisotropy, and axes thinner than the crop.

    Parameters
    ----------
    bbox_name : str
    shape_zyx : volume shape (z, y, x) in voxels.
    voxel_size_nm : (z, y, x) nm, or None when unknown (then only voxel counts are compared).
    crop_nm_zyx : physical crop extent (z, y, x) in nm, or None when the voxel size is unknown.
    crop_voxels_zyx : crop extent (z, y, x) in (possibly fractional) native voxels of this bbox.
    """
    out = []
    ratio = anisotropy(voxel_size_nm)
    if ratio is not None and ratio > ANISOTROPY_WARN:
        z, y, x = (f"{v:g}" for v in voxel_size_nm)
        size = " × ".join(f"{v:g}" for v in crop_nm_zyx)
        out.append(f"{bbox_name}: anisotropic voxels {z}×{y}×{x} nm (z, y, x), ratio {ratio:.3g}; each "
                   f"{size} nm crop covers {' × '.join(f'{v:.3g}' for v in crop_voxels_zyx)} native voxels and is "
                   "resampled to isotropic voxels, so detail along the coarsest axis is interpolated")
    for axis, name in enumerate("zyx"):
        n, c = int(shape_zyx[axis]), crop_voxels_zyx[axis]
        if n < c:
            if voxel_size_nm is not None:
                have = f"{n * voxel_size_nm[axis]:g} nm ({n} voxels × {voxel_size_nm[axis]:g} nm)"
                need = f"{crop_nm_zyx[axis]:g} nm ({c:.3g} voxels)"
            else:
                have, need = f"{n} voxels", f"{c:g} voxels"
            out.append(f"{bbox_name}: the stack is {have} in {name}, thinner than a crop ({need}); "
                       f"{1 - n / c:.0%} of every crop's {name} extent is padding outside the data")
    return out


def _issue(row, column: str, problem: str, action: str = "skipped") -> dict:
    return {
        "bbox_name": row.get("bbox_name"),
        "Var1": row.get("Var1"),
        "row": row.get(SOURCE_ROW),
        "column": column,
        "problem": problem,
        "action": action,
        "file": row.get(SOURCE_FILE),
    }


def validate_rows(table: pd.DataFrame, shapes_zyx: dict[str, tuple], seg_volumes: dict | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check synapse rows; return ``(valid_rows, issues)``.

    Parameters
    ----------
    table : rows with ``bbox_name``, ``Var1``, the coordinate columns (x, y, z) and source columns.
    shapes_zyx : volume shape (z, y, x) per usable bbox; rows of other bboxes are skipped.
    seg_volumes : optional seg array-like per bbox, for the "side point on background (id 0)" check.

    Checks: missing ``Var1``; missing, non-numeric or infinite coordinates; a point outside the
    volume; a side point on background id 0; then, among the rows that passed, a duplicate
    ``(bbox_name, Var1)`` with ids compared without surrounding spaces (the first valid row is kept
    and the message names its row).
    Both side points in the same neuron is reported as a warning and the row is kept.
    Coordinates of valid rows are returned as int64.
    """
    issues: list[dict] = []
    t = table.reset_index(drop=True)
    n = len(t)
    bad = np.zeros(n, bool)
    numeric = {c: pd.to_numeric(t[c], errors="coerce") for c in COORD_COLUMNS}
    bbox_values = t["bbox_name"].tolist() if "bbox_name" in t else [None] * n
    var1_values = t["Var1"].tolist()
    # Vectorised screen: a row with a usable bbox, an id and nine finite coordinates inside its volume
    # has no per-row problem; only the other rows (usually few) go through the per-row checks below,
    # which write the messages. Same rows, same messages, same order as checking every row.
    suspect = np.array([b not in shapes_zyx for b in bbox_values], bool) if n else np.zeros(0, bool)
    suspect |= np.array([v is None or (isinstance(v, float) and np.isnan(v)) or not str(v).strip()
                         for v in var1_values], bool) if n else np.zeros(0, bool)
    shape_rows = np.array([shapes_zyx.get(b, (0, 0, 0)) if isinstance(b, str) else (0, 0, 0) for b in bbox_values],
                          np.int64).reshape(n, 3)
    for point in POINTS:
        xyz = np.stack([numeric[c].to_numpy(dtype=float, na_value=np.nan) for c in point_columns(point)], 1)
        finite = np.all(np.isfinite(xyz), axis=1)
        suspect |= ~finite
        zyx = np.rint(np.where(finite[:, None], xyz, 0.0)[:, ::-1])
        suspect |= ~np.all((zyx >= 0) & (zyx < shape_rows), axis=1)
    suspect_rows = np.flatnonzero(suspect)
    records = dict(zip(suspect_rows.tolist(), t.iloc[suspect_rows].to_dict("records")))

    def record(i: int) -> dict:
        """Row ``i`` as the dict the messages read (converted on demand: only rows with an issue)."""
        if i not in records:
            records[i] = t.iloc[[i]].to_dict("records")[0]
        return records[i]

    for i in suspect_rows.tolist():
        row = records[i]
        bbox = row.get("bbox_name")
        if bbox not in shapes_zyx:
            issues.append(_issue(row, "bbox_name", f"bbox {bbox!r} has no usable volumes (see fatal problems above)"))
            bad[i] = True
            continue
        var1 = row.get("Var1")
        if var1 is None or (isinstance(var1, float) and np.isnan(var1)) or not str(var1).strip():
            issues.append(_issue(row, "Var1", "missing synapse id"))
            bad[i] = True
        shape = shapes_zyx[bbox]
        for point in POINTS:
            cols = point_columns(point)
            vals = []
            for c in cols:
                v = numeric[c].iloc[i]
                raw = row.get(c)
                if raw is None or (isinstance(raw, float) and np.isnan(raw)):
                    issues.append(_issue(row, c, "missing coordinate"))
                    bad[i] = True
                elif np.isnan(v):
                    issues.append(_issue(row, c, f"not a number: {raw!r}"))
                    bad[i] = True
                elif not np.isfinite(v):
                    issues.append(_issue(row, c, f"not a finite number: {raw!r}; give a voxel index"))
                    bad[i] = True
                    v = np.nan
                vals.append(v)
            if any(np.isnan(v) for v in vals):
                continue
            x, y, z = (int(round(v)) for v in vals)
            if not (0 <= z < shape[0] and 0 <= y < shape[1] and 0 <= x < shape[2]):
                issues.append(_issue(
                    row, f"{cols[0]}..3",
                    f"{point} point (x, y, z) = ({x}, {y}, {z}) is outside the volume; valid x < {shape[2]}, "
                    f"y < {shape[1]}, z < {shape[0]}",
                ))
                bad[i] = True
    if seg_volumes:
        ok = np.flatnonzero(~bad)
        bboxes = np.asarray(bbox_values, dtype=object)
        xyz = {p: np.stack([numeric[c].to_numpy() for c in point_columns(p)], 1) for p in ("side_1", "side_2")}
        for bbox, seg in seg_volumes.items():
            rows_b = ok[bboxes[ok] == bbox]
            if seg is None or not len(rows_b):
                continue
            ids = {p: point_values(seg, np.rint(xyz[p][rows_b][:, ::-1]).astype(np.int64)) for p in xyz}
            flagged = (ids["side_1"] == 0) | (ids["side_2"] == 0) | (ids["side_1"] == ids["side_2"])
            for j in np.flatnonzero(flagged).tolist():
                i = int(rows_b[j])
                row = record(i)
                for p in ("side_1", "side_2"):
                    if ids[p][j] == 0:
                        x, y, z = np.rint(xyz[p][i]).astype(int)
                        issues.append(_issue(row, f"{p}_coord_1..3",
                                             f"{p} point (x, y, z) = ({x}, {y}, {z}) lies on background (seg id 0); "
                                             "move it inside the neuron"))
                        bad[i] = True
                if ids["side_1"][j] == ids["side_2"][j] != 0:
                    issues.append(_issue(row, "side_1_coord_1..3/side_2_coord_1..3",
                                         f"both side points lie in the same neuron (seg id {ids['side_1'][j]})",
                                         action="kept"))
    # Duplicates among the valid rows only (an invalid row never displaces a valid one), on ids
    # normalised as they are used later ("syn_001 " is "syn_001").
    norm = [str(v).strip() if isinstance(v, str) or pd.notna(v) else None for v in var1_values]
    seen: dict[tuple, int] = {}
    for i in np.flatnonzero(~bad).tolist():
        key = (bbox_values[i], norm[i])
        if key in seen:
            first, row = record(seen[key]), record(i)
            same = "" if str(first.get("Var1")) == str(row.get("Var1")) else \
                f" (ids compared without surrounding spaces: {row.get('Var1')!r} and {first.get('Var1')!r})"
            issues.append(_issue(row, "Var1",
                                 f"duplicate (bbox_name, Var1) = ({key[0]}, {key[1]}){same}: row {first.get(SOURCE_ROW)} "
                                 f"of {first.get(SOURCE_FILE)} has the same id and is kept; give this synapse its own Var1"))
            bad[i] = True
        else:
            seen[key] = i
    valid = t.loc[~bad].copy()
    for c in COORD_COLUMNS:
        valid[c] = numeric[c][~bad].round().astype(np.int64)
    valid["Var1"] = valid["Var1"].astype(str).str.strip()
    return valid.reset_index(drop=True), pd.DataFrame(issues, columns=ISSUE_COLUMNS)
