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
