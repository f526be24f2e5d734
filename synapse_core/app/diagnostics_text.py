"""A clustering run's diagnostics for people: one sentence per number, with a traffic light.

:func:`diagnostic_rows` reads ``ClusterResult.diagnostics`` (the JSON the CLI writes too) and
returns plain rows ``{"topic", "sentence", "value", "level"}``: ``level`` is ``"good"`` (green),
``"caution"`` (amber), ``"bad"`` (red) or ``"info"``. A missing number gives no row, never a guess.
The thresholds are stated in the sentences so that a reader can judge them. No Streamlit here.

>>> rows = diagnostic_rows({"map_knn_overlap": 0.79, "map_knn_overlap_random": 0.17, "settings": {"knn_k": 10}})
>>> rows[0]["level"], rows[0]["value"]
('good', '79% (random 17%)')
"""

from __future__ import annotations

from collections.abc import Mapping

LEVELS = ("good", "caution", "bad", "info")
#: Words for the nuisance columns of ``diagnostics["alignment"]``.
_NUISANCE = {
    "bbox_name": "the bbox the synapse comes from",
    "presynaptic_side": "which annotated side is presynaptic (the crop's mirror orientation)",
    "coverage": "how much of the crop lies inside the data (padding at the volume's edge)",
    "orientation_z": "the synapse's orientation along z",
    "orientation_y": "the synapse's orientation along y",
    "orientation_x": "the synapse's orientation along x",
    "cleft_normal_z": "the cleft's normal along z",
    "cleft_normal_y": "the cleft's normal along y",
    "cleft_normal_x": "the cleft's normal along x",
}


def _row(topic: str, sentence: str, value: str, level: str) -> dict:
    assert level in LEVELS
    return {"topic": topic, "sentence": sentence, "value": value, "level": level}


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def map_fidelity_row(diag: Mapping) -> dict | None:
    """How many feature-space neighbours the map keeps, against a random layout."""
    kept, rand = _num(diag.get("map_knn_overlap")), _num(diag.get("map_knn_overlap_random"))
    if kept is None:
        return None
    k = (diag.get("settings") or {}).get("knn_k", 10)
    rand = rand if rand is not None else 0.0
    if kept >= max(0.5, 3 * rand):
        level, meaning = "good", "points close on the map are usually close in the features"
    elif kept >= 2 * rand:
        level, meaning = "caution", "the map keeps some neighbourhoods; read distances on it loosely"
    else:
        level, meaning = "bad", "the map is close to a random layout: do not read clusters off its distances"
    return _row("Map fidelity",
                f"The map keeps {kept:.0%} of each synapse's {k} nearest neighbours in the features "
                f"(a random layout keeps {rand:.0%}): {meaning}.",
                f"{kept:.0%} (random {rand:.0%})", level)


def structure_row(diag: Mapping) -> dict | None:
    """Whether k was supported against a structureless null (``k_decision``)."""
    decision = diag.get("k_decision")
    if not isinstance(decision, Mapping) or "structure" not in decision:
        return None
    k = decision.get("k")
    verdict = decision.get("verdict") or ""
    if decision["structure"]:
        return _row("Cluster structure", f"The data have more cluster structure than a single Gaussian cloud of the "
                    f"same spread at k = {k} ({verdict}).", f"k = {k}", "good")
    return _row("Cluster structure", "No k beats a single Gaussian cloud of the same spread: the synapses form a "
                f"continuum here, and any split into clusters is a partition, not found types ({verdict}).",
                "k = 1", "bad")


def stability_row(diag: Mapping) -> dict | None:
    """Subsample stability (ARI) against the same clustering of a Gaussian null."""
    stab = diag.get("stability")
    if not isinstance(stab, Mapping) or _num(stab.get("ari_mean")) is None:
        return None
    ari, null = float(stab["ari_mean"]), _num(stab.get("null_ari_mean"))
    beats = stab.get("beats_null")
    null_text = f" (a structureless cloud gives {null:.2f})" if null is not None else ""
    if beats and ari >= 0.75:
        level, meaning = "good", "the same clusters come back when a fifth of the synapses is left out"
    elif beats or (beats is None and ari >= 0.75):
        level, meaning = "caution", "clusters partly change when synapses are left out"
    else:
        level, meaning = "bad", "no more stable than clustering noise: the clusters may not be reproducible"
    return _row("Stability", f"Re-clustering random subsamples agrees with the full clustering at ARI {ari:.2f}"
                f"{null_text}, 1 = identical: {meaning}.", f"{ari:.2f}" + (f" vs {null:.2f}" if null is not None else ""),
                level)


def batch_effect_row(diag: Mapping) -> dict | None:
    """Whether feature-space neighbours come from the same bbox more often than chance."""
    eff = diag.get("bbox_effect")
    if not isinstance(eff, Mapping) or _num(eff.get("batch_effect_score")) is None:
        return None
    score = float(eff["batch_effect_score"])
    same, expected = _num(eff.get("knn_same_bbox")), _num(eff.get("knn_same_bbox_expected"))
    if score < 0.1:
        level, meaning = "good", "bboxes are well mixed in the features"
    elif score < 0.3:
        level, meaning = "caution", "some features reflect the bbox (staining, imaging, alignment) rather than biology"
    else:
        level, meaning = "bad", "the features mostly sort synapses by bbox: a batch effect, not synapse types"
    detail = (f"{same:.0%} of each synapse's nearest neighbours come from its own bbox ({expected:.0%} if bboxes "
              f"were mixed)") if same is not None and expected is not None else "neighbours by bbox"
    return _row("Batch effect", f"{detail}; score {score:.2f} (0 mixed, 1 every neighbour from the same bbox): "
                f"{meaning}.", f"{score:.2f}", level)


def alignment_rows(diag: Mapping) -> list[dict]:
    """One row per nuisance column: do clusters follow it (adjusted mutual information)?"""
    al = diag.get("alignment")
    if not isinstance(al, Mapping) or not isinstance(al.get("ami"), Mapping):
        return []
    threshold = _num(al.get("threshold")) or 0.25
    rows = []
    for col, ami in al["ami"].items():
        ami = _num(ami)
        if ami is None:
            continue
        what = _NUISANCE.get(col, f"the column {col}")
        if ami >= threshold:
            level, meaning = "bad", "the clusters largely follow it: check before reading them as biology"
        elif ami >= threshold / 2:
            level, meaning = "caution", "the clusters partly follow it"
        else:
            level, meaning = "good", "the clusters do not follow it"
        rows.append(_row(f"Alignment: {col}", f"Clusters vs {what}: AMI {ami:.2f} (0 unrelated, 1 the same "
                         f"grouping; warning at {threshold:.2f}): {meaning}.", f"{ami:.2f}", level))
    return rows


def noise_row(diag: Mapping) -> dict | None:
    n_noise, n = diag.get("n_noise"), diag.get("n_synapses")
    if not n_noise or not n:
        return None
    share = n_noise / n
    level = "good" if share < 0.1 else "caution" if share < 0.3 else "bad"
    return _row("Noise", f"{n_noise} of {n} synapses ({share:.0%}) are in no cluster (label −1).", f"{share:.0%}", level)


def diagnostic_rows(diag: Mapping) -> list[dict]:
    """Every diagnostic of ``diag`` that is present, as ``{"topic", "sentence", "value", "level"}`` rows.

    Order: map fidelity, cluster structure, stability, batch effect, noise, alignment with each
    nuisance column (bbox, presynaptic side, coverage, orientation).
    """
    rows = [r for r in (map_fidelity_row(diag), structure_row(diag), stability_row(diag), batch_effect_row(diag),
                        noise_row(diag)) if r is not None]
    return rows + alignment_rows(diag)
