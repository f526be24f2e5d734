"""Named selections and manual cluster assignments as table columns, stored as JSON in the cache."""

from __future__ import annotations

import pandas as pd
import pytest

from synapse_core.app import annotations as ann


def table() -> pd.DataFrame:
    return pd.DataFrame({"bbox_name": ["b1", "b1", "b2", "b2"], "Var1": ["s1", "s2", "s3", "s4"],
                         "cluster": [0, 0, 1, -1]})


def sel(name, ids, cluster=None, author="ana"):
    return ann.NamedSelection(name, tuple(ids), cluster=cluster, author=author, created="2026-11-30T07:00:00Z")


def test_a_named_selection_is_a_boolean_column_and_leaves_clusters_alone():
    out = ann.apply(table(), [sel("Docked vesicles", ["b1|s2", "b2|s4"])])
    assert out["selection_docked_vesicles"].tolist() == [False, True, False, True]
    assert out["cluster"].tolist() == [0, 0, 1, -1]
    assert "cluster_refined" not in out.columns


def test_assigning_to_a_new_cluster_refines_and_records_who_and_when():
    t = table()
    assert ann.new_cluster(t) == 2
    out = ann.apply(t, [sel("odd", ["b1|s1", "b2|s4"], cluster=ann.new_cluster(t), author="bo")])
    assert out["cluster_refined"].tolist() == [2, 0, 1, 2]
    assert out["annotation"].tolist() == ["odd", None, None, "odd"]
    assert out["annotated_by"].tolist() == ["bo", None, None, "bo"]
    assert out["annotated_at"].tolist()[0] == "2026-11-30T07:00:00Z"


def test_later_assignments_win_and_new_cluster_counts_assigned_ones():
    first = sel("a", ["b1|s1", "b1|s2"], cluster=2)
    assert ann.new_cluster(table(), [first]) == 3
    out = ann.apply(table(), [first, sel("b", ["b1|s2"], cluster=1)])
    assert out["cluster_refined"].tolist() == [2, 1, 1, -1]
    assert out["annotation"].tolist()[:2] == ["a", "b"]


def test_a_selection_with_the_same_name_replaces_the_old_one():
    kept = ann.add([sel("a", ["b1|s1"])], sel("A", ["b2|s3"]))
    assert [s.ids for s in kept] == [("b2|s3",)]
    assert ann.remove(kept, "a") == []


@pytest.mark.parametrize("name", ["", "x" * 41, "<script>", "a/b"])
def test_unusable_names_are_refused_with_what_is_allowed(name):
    with pytest.raises(ValueError, match="use 1–40 letters, digits, spaces"):
        sel(name, ["b1|s1"])


def test_an_empty_selection_is_refused():
    with pytest.raises(ValueError, match="is empty: select synapses on the map first"):
        sel("a", [])


def test_selections_round_trip_through_json_in_the_cache(tmp_path):
    key = ann.result_key(table(), "abc123")
    saved = [sel("a", ["b1|s1"], cluster=3), sel("b", ["b2|s3", "b2|s4"])]
    path = ann.save(tmp_path, key, saved)
    assert path.parent == tmp_path / "annotations" and path.suffix == ".json"
    assert ann.load(tmp_path, key) == saved
    assert ann.load(tmp_path, ann.result_key(table().iloc[:3], "abc123")) == []


def test_a_damaged_or_foreign_file_is_an_error_naming_it(tmp_path):
    key = ann.result_key(table(), None)
    path = ann.store_path(tmp_path, key)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x80\x04K\x01.")  # a pickle is not read as one
    with pytest.raises(ValueError, match=f"{path}: not JSON"):
        ann.load(tmp_path, key)
    path.write_text('{"format": "other", "selections": []}')
    with pytest.raises(ValueError, match="not a synapse-annotations-1 file"):
        ann.load(tmp_path, key)


def test_store_path_refuses_a_key_that_could_leave_the_cache(tmp_path):
    with pytest.raises(ValueError, match="annotation key must be a hex digest"):
        ann.store_path(tmp_path, "../../etc/passwd")


# --- the vectorised apply and the memoised result key give the values of the per-row code ----------

def reference_apply(t: pd.DataFrame, selections) -> pd.DataFrame:
    """The per-row implementation apply() replaced (kept here as the expected behaviour)."""
    out = t.copy()
    ids = (out["bbox_name"].astype(str) + "|" + out["Var1"].astype(str)).to_numpy()
    assigned = False
    refined = out["cluster"].astype(int).to_numpy().copy()
    notes = {name: [None] * len(out) for name in ann.ANNOTATION_COLUMNS[1:]}
    for s in selections:
        inside = pd.Series(ids).isin(set(s.ids)).to_numpy()
        out[s.column] = inside
        if s.cluster is not None:
            assigned = True
            refined[inside] = s.cluster
            for i in inside.nonzero()[0]:
                notes["annotation"][i], notes["annotated_by"][i], notes["annotated_at"][i] = s.name, s.author, s.created
    if assigned:
        out["cluster_refined"] = refined
        for name, values in notes.items():
            out[name] = pd.Series(values, index=out.index, dtype=object)
    return out


def wide_table() -> pd.DataFrame:
    """Eight synapses with a non-default index, integer Var1s and a feature column."""
    return pd.DataFrame({"bbox_name": ["b1"] * 4 + ["b2"] * 4, "Var1": [1, 2, 3, 4, 1, 2, 3, 4],
                         "cluster": [0, 0, 1, 1, 2, 2, -1, -1], "feat_1": [0.5] * 8}, index=range(10, 18))


SELECTION_CASES = {
    "none": [],
    "named only": [sel("a", ["b1|2", "b2|4"])],
    "overlapping, later wins": [sel("a", ["b1|1", "b1|2", "b1|3"], cluster=5, author="ana"),
                                sel("b", ["b1|3", "b2|1"], cluster=6, author="bo"),
                                sel("c", ["b1|1", "b2|2"])],
    "ids not in the table": [sel("a", ["b9|1", "b1|4", "nope|x"], cluster=3), sel("b", ["b9|9"], cluster=1)],
    "assigned to an existing cluster": [sel("a", ["b2|3", "b2|4"], cluster=0)],
}


@pytest.mark.parametrize("case", SELECTION_CASES)
def test_apply_gives_the_per_row_results(case):
    selections = SELECTION_CASES[case]
    pd.testing.assert_frame_equal(ann.apply(wide_table(), selections), reference_apply(wide_table(), selections))


def test_apply_with_overlapping_assignments_has_the_last_ones_values():
    out = ann.apply(wide_table(), SELECTION_CASES["overlapping, later wins"])
    assert out["cluster_refined"].tolist() == [5, 5, 6, 1, 6, 2, -1, -1]
    assert out["annotated_by"].tolist() == ["ana", "ana", "bo", None, "bo", None, None, None]
    assert out["selection_c"].tolist() == [True, False, False, False, False, True, False, False]


def test_apply_never_changes_the_table_it_was_given():
    t = wide_table()
    out = ann.apply(t, SELECTION_CASES["overlapping, later wins"])
    out.loc[10, "cluster"] = 99
    out.loc[10, "feat_1"] = -1.0
    assert t["cluster"].tolist() == [0, 0, 1, 1, 2, 2, -1, -1] and t["feat_1"].tolist() == [0.5] * 8
    assert list(t.columns) == ["bbox_name", "Var1", "cluster", "feat_1"]


def test_apply_on_a_table_with_a_repeated_id_marks_every_row_of_it():
    t = pd.concat([table(), table().iloc[[1]]], ignore_index=True)
    out = ann.apply(t, [sel("a", ["b1|s2"], cluster=4)])
    pd.testing.assert_frame_equal(out, reference_apply(t, [sel("a", ["b1|s2"], cluster=4)]))
    assert out["cluster_refined"].tolist() == [0, 4, 1, -1, 4]


def test_result_keys_keep_the_values_stored_annotations_are_filed_under():
    # computed by the content_hash of sorted ids before result_key was memoised (saved files use these names)
    assert ann.result_key(table(), "abc123") == "ce06ad673c1d9eab"
    assert ann.result_key(table(), None) == "dfbef047d3ba62c2"
    odd = pd.DataFrame({"bbox_name": ["bbox 1", "bé", "b2"], "Var1": [7, 'x"y', "s|3"], "cluster": [0, 1, 1]})
    assert ann.result_key(odd, "k") == "51e2b16c7523f974"


def test_result_key_ignores_row_order_and_follows_the_rows():
    t = table()
    assert ann.result_key(t.iloc[::-1], "s") == ann.result_key(t, "s")
    assert ann.result_key(t, "s") != ann.result_key(t, "t")
    assert ann.result_key(t.iloc[:3], "s") != ann.result_key(t, "s")


def test_new_cluster_is_one_above_the_table_and_the_assignments():
    assert ann.new_cluster(table()) == 2
    assert ann.new_cluster(table(), [sel("a", ["b1|s1"], cluster=7)]) == 8
    assert ann.new_cluster(table().iloc[:0]) == 0
    assert ann.new_cluster(pd.DataFrame({"cluster": [-1, -1]})) == 0


def test_row_positions_are_in_table_order_and_skip_unknown_ids():
    t = wide_table()
    assert ann.row_positions(t, ["b2|4", "b9|1", "b1|2", "b2|4"]).tolist() == [1, 7]
    assert ann.row_positions(t, []).tolist() == []
    assert "b1|3" in ann.table_ids(t) and "b1|9" not in ann.table_ids(t)


def test_load_reads_a_replaced_file_again(tmp_path):
    key = ann.result_key(table(), "reload")
    ann.save(tmp_path, key, [sel("a", ["b1|s1"])])
    assert [s.name for s in ann.load(tmp_path, key)] == ["a"]
    ann.save(tmp_path, key, [sel("a", ["b1|s1"]), sel("b", ["b2|s3"], cluster=4)])
    assert [(s.name, s.cluster) for s in ann.load(tmp_path, key)] == [("a", None), ("b", 4)]
    ann.store_path(tmp_path, key).unlink()
    assert ann.load(tmp_path, key) == []
