"""Helpers for the dashboard's AppTest tests: a configured demo data root and page drivers."""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
#: A full page run (dataset open, extraction of a few synapses, clustering) stays well below this.
TIMEOUT_S = 120


def configure(monkeypatch, demo_root: Path, cache: Path) -> None:
    """Point the app at the demo dataset as an operator-configured root, with a test cache."""
    monkeypatch.setenv("SYNAPSE_DATA_ROOTS", f"demo={demo_root}")
    monkeypatch.setenv("SYNAPSE_CACHE_DIR", str(cache))
    monkeypatch.delenv("SYNAPSE_DATA_ROOTS_FILE", raising=False)
    monkeypatch.delenv("SYNAPSE_CHECKPOINT_DIR", raising=False)
    monkeypatch.setenv("SYNAPSE_WARMUP", "0")  # no compile warm-up process per test session (a server's job)


def open_page(page: str | None = None, state: dict | None = None, query: dict | None = None) -> AppTest:
    """Run the app once (Data page), put ``state`` into the session, then switch to ``page``."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    for key, value in (state or {}).items():
        at.session_state[key] = value
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def shown(markdown: str) -> str:
    """The text a reader sees of Markdown whose user text was escaped (``synapse_core.app.escape.md``)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def errors(at: AppTest) -> list[str]:
    return [shown(e.value) for e in at.error]


def markdown_texts(at: AppTest) -> list[str]:
    return [shown(m.value) for m in at.markdown]


def image_captions(at: AppTest) -> list[str]:
    """Captions of every image shown (``st.image`` elements hold a list of images)."""
    return [shown(img.caption) for element in at.get("image") for img in element.proto.imgs]


def plotly_specs(at: AppTest) -> list[dict]:
    """The Plotly figure JSON of every chart on the page."""
    import json

    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
