"""Dashboard faults: uploads capped and deleted when refused, the checkpoint folder confined, a pickle in an
upload never runs, and user-controlled names shown as text (never as Markdown, HTML or Plotly markup)."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pandas as pd
import pytest
from faultlib import SECRET

from synapse_core.app import escape, uploads
from synapse_core.app.uploads import UploadError


def test_an_upload_is_stored_once_under_its_hash(tmp_path):
    a = uploads.store_upload(b"weights-1", "a.pth", tmp_path, 100, 1000)
    b = uploads.store_upload(b"weights-1", "copy.pth", tmp_path, 100, 1000)
    assert a == b and a.read_bytes() == b"weights-1" and len(list(tmp_path.iterdir())) == 1


def test_the_uploads_folder_stays_under_its_total_cap_evicting_the_oldest(tmp_path):
    paths = []
    for i in range(5):
        paths.append(uploads.store_upload(bytes([i]) * 400, f"{i}.pth", tmp_path, 1000, 1000))
        os.utime(paths[-1], (i, i))  # a distinct age per upload
    assert uploads.folder_bytes(tmp_path) <= 1000
    assert [p.exists() for p in paths] == [False, False, False, True, True]
    assert paths[-1].read_bytes() == bytes([4]) * 400


@pytest.mark.parametrize("size, file_cap, total_cap, match", [
    (0, 100, 1000, "the file is empty"),
    (200, 100, 1000, "larger than the .* MB allowed per upload"),
    (200, 1000, 100, "larger than the .* MB the uploads folder may hold"),
])
def test_a_refused_upload_writes_nothing(tmp_path, size, file_cap, total_cap, match):
    with pytest.raises(UploadError, match=f"big.pth: .*{match}"):
        uploads.store_upload(b"x" * size, "big.pth", tmp_path, file_cap, total_cap)
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_a_refused_checkpoint_upload_is_deleted(tmp_path):
    path = uploads.store_upload(b"not a checkpoint", "model.pth", tmp_path / "uploads", 100, 1000)
    assert uploads.discard_upload(path, tmp_path / "uploads")
    assert list((tmp_path / "uploads").iterdir()) == []


def test_discarding_never_deletes_a_file_outside_the_uploads_folder(tmp_path):
    other = tmp_path / "precious.pth"
    other.write_bytes(b"keep")
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "link.pth").symlink_to(other)
    assert not uploads.discard_upload(other, tmp_path / "uploads")
    assert not uploads.discard_upload(tmp_path / "uploads" / "link.pth", tmp_path / "uploads")
    assert other.read_bytes() == b"keep"


def test_a_bad_upload_setting_names_the_variable():
    with pytest.raises(ValueError, match="SYNAPSE_UPLOADS_TOTAL_MB='lots' must be a whole number of MB"):
        uploads.upload_limits({"SYNAPSE_UPLOADS_TOTAL_MB": "lots"})


@pytest.fixture
def checkpoint_folder(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "good.pth").write_bytes(b"weights")
    secret = tmp_path / "secret.pth"
    secret.write_text(SECRET)
    (folder / "escape.pth").symlink_to(secret)
    return folder


def test_a_symlink_out_of_the_checkpoint_folder_is_not_listed(checkpoint_folder):
    assert uploads.checkpoint_choices(checkpoint_folder) == ["good.pth"]


@pytest.mark.parametrize("name", ["escape.pth", "../secret.pth", "/etc/passwd", ".."])
def test_a_checkpoint_outside_the_folder_is_refused(checkpoint_folder, name):
    with pytest.raises(ValueError) as err:
        uploads.checkpoint_path(checkpoint_folder, name)
    assert SECRET not in str(err.value)


@pytest.mark.slow
def test_a_pickle_in_an_uploaded_checkpoint_never_runs(tmp_path):
    from synapse_core.features.checkpoints import CheckpointError, read_checkpoint

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    data = pickle.dumps({"model_state_dict": Exploit()})
    path = uploads.store_upload(data, "evil.pth", tmp_path / "uploads", 10**6, 10**7)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    assert not marker.exists()
    assert uploads.discard_upload(path, tmp_path / "uploads") and not path.exists()


@pytest.mark.parametrize("payload", [
    "![x](https://attacker.example/x.png)",
    "[click](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    ":red[alert] **bold** `code` $x^2$ ~~gone~~",
    "line one\n# heading\n![y](//attacker.example/y.png)",
])
def test_markdown_escaping_leaves_no_markup(payload):
    import markdown_it

    text = escape.md(payload)
    rendered = markdown_it.MarkdownIt("commonmark").render(text)
    assert "<img" not in rendered and "<a " not in rendered and "<h1" not in rendered and "<code" not in rendered
    assert "<strong" not in rendered and "\n" not in text


def test_html_escaping_shows_the_tag_as_text():
    assert escape.html('<img src=x onerror="alert(1)">') == "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"


@pytest.mark.slow
def test_map_figure_shows_markup_in_names_as_text():
    from synapse_core.viz.figures import map_figure

    evil_bbox, evil_var1 = "<b>bbox</b>", '<a href="https://attacker.example">s</a>'
    table = pd.DataFrame({"bbox_name": [evil_bbox, "b2"], "Var1": [evil_var1, "s2"], "cluster": [0, 1],
                          "proj_1": [0.0, 1.0], "proj_2": [0.0, 1.0]})
    for color_by in ("cluster", "bbox"):
        spec = json.loads(map_figure(table, color_by=color_by).to_json())
        shown = json.dumps([[t.get("name"), [row[1:] for row in t["customdata"]]] for t in spec["data"]])
        assert "<b>" not in shown and "<a href" not in shown and "&lt;a href" in shown
        ids = [row[0] for t in spec["data"] for row in t["customdata"]]
        assert f"{evil_bbox}|{evil_var1}" in ids  # the id read back from a selection is the real one


@pytest.mark.slow
def test_the_data_page_shows_a_markup_bbox_name_as_text(tmp_path, monkeypatch):
    from app_helpers import image_captions  # noqa: F401 (the helpers configure nothing else)
    from faultlib import write_small_dataset
    from streamlit.testing.v1 import AppTest

    name = "<img src=x onerror=alert(1)>"
    rows = pd.DataFrame([{"Var1": "![x](https://attacker.example/x.png)", "central_coord_1": 12, "central_coord_2": 10,
                          "central_coord_3": 4, "side_1_coord_1": 8, "side_1_coord_2": 10, "side_1_coord_3": 4,
                          "side_2_coord_1": 16, "side_2_coord_2": 10, "side_2_coord_3": 4}])
    write_small_dataset(tmp_path / "lab", bboxes=(name,), rows=rows)
    monkeypatch.setenv("SYNAPSE_DATA_ROOTS", f"lab={tmp_path / 'lab'}")
    monkeypatch.setenv("SYNAPSE_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(__import__("faultlib").REPO / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    slice_caption = next(c for c in captions if "synapse centres (circles) within" in c)
    assert slice_caption.startswith("&lt;img src=x onerror=alert(1)&gt;, z = ") and "<img src=x" not in slice_caption
    markdownish = captions + [e.value for e in at.error] + [w.value for w in at.warning]
    assert not any("![x](https" in m for m in markdownish)
    assert np.isfinite(len(at.dataframe))
