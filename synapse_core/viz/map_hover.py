"""Synapse pictures on map hover: a small script that shows a thumbnail next to the hovered point.

Plotly hover labels cannot show images, so the dashboard adds this script (in a zero-height
``streamlit.components.v1.html`` frame, which shares the page's origin) next to its map: it finds
the map's Plotly element in the parent page by the chart's key, listens to ``plotly_hover`` /
``plotly_unhover``, and shows the hovered synapse's picture (``customdata[0]`` = synapse id) in a
floating box (``#synapse-hover-thumb``) beside the point: below and right of it, clear of the
point and of Plotly's own label, flipped left/above near the page's right/bottom edge. No
Streamlit here: this module only writes the HTML.

User text (bbox names, Var1) reaches the page as JSON data set with ``textContent``, never as
markup; ``</`` is escaped so that the data cannot close the script element.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

#: Id of the floating element that holds the hovered synapse's picture (tests look for it).
TOOLTIP_ID = "synapse-hover-thumb"

_SCRIPT = """<script>
(function () {
  const THUMBS = __THUMBS__;
  const LABELS = __LABELS__;
  const KEY = __KEY__;
  const VERSION = __VERSION__;
  const doc = window.parent.document;
  function tooltip() {
    let box = doc.getElementById(__TOOLTIP__);
    if (!box) {
      box = doc.createElement("div");
      box.id = __TOOLTIP__;
      box.style.cssText = "position:fixed;z-index:1000000;pointer-events:none;display:none;background:#fff;" +
        "border:1px solid #999;border-radius:4px;padding:4px;box-shadow:0 2px 8px rgba(0,0,0,.35);" +
        "font:12px sans-serif;color:#222;text-align:center";
      const img = doc.createElement("img");
      img.style.cssText = "display:block;width:__SIZE__px;height:__SIZE__px;image-rendering:pixelated";
      img.alt = "synapse";
      const caption = doc.createElement("div");
      box.appendChild(img);
      box.appendChild(caption);
      doc.body.appendChild(box);
    }
    return box;
  }
  const GAP = 12, LABEL_HALF = 24;  // CSS pixels: gap to the point; half the height of Plotly's hover label
  function pointOnPage(ev, point) {
    // [x, y, map box]: the hovered point in window pixels, from its axes on a 2-D map, else the mouse.
    const gd = doc.querySelector(".st-key-" + KEY + " .js-plotly-plot");
    const svg = gd && (gd.querySelector(".main-svg") || gd);  // the drawn figure; the div may be larger
    const plot = svg ? svg.getBoundingClientRect() : {left: 0, top: 0, right: Infinity, bottom: Infinity};
    const xa = point.xaxis, ya = point.yaxis;
    if (gd && xa && ya && typeof xa.c2p === "function" && typeof ya.c2p === "function") {
      const origin = gd.getBoundingClientRect();
      const px = origin.left + xa._offset + xa.c2p(xa.d2c ? xa.d2c(point.x) : point.x);
      const py = origin.top + ya._offset + ya.c2p(ya.d2c ? ya.d2c(point.y) : point.y);
      if (isFinite(px) && isFinite(py)) return [px, py, plot];
    }
    const e = ev.event || {};
    if (isFinite(e.clientX) && isFinite(e.clientY)) return [e.clientX, e.clientY, plot];
    return [plot.left, plot.top, plot];
  }
  function show(ev) {
    const point = ev.points && ev.points[0];
    const sid = point && point.customdata && point.customdata[0];
    const box = tooltip();
    if (!sid || !(sid in THUMBS)) { box.style.display = "none"; return; }
    box.firstChild.src = THUMBS[sid];
    box.lastChild.textContent = LABELS[sid] || sid;
    box.style.display = "block";
    const at = pointOnPage(ev, point);
    const w = box.offsetWidth, h = box.offsetHeight;
    const plot = at[2];
    const right = Math.min(plot.right, window.parent.innerWidth - 4);
    const bottom = Math.min(plot.bottom, window.parent.innerHeight - 4);
    // Beside the point, below and to its right, clear of the point and of Plotly's own label (drawn
    // beside the point at its height); flipped to the left / above where the map or the window ends.
    let left = at[0] + GAP, top = at[1] + GAP + LABEL_HALF;
    if (left + w > right) left = at[0] - GAP - w;
    if (top + h > bottom) top = at[1] - GAP - LABEL_HALF - h;
    box.style.left = Math.max(4, left) + "px";
    box.style.top = Math.max(4, top) + "px";
    box.dataset.synapse = sid;
  }
  function hide() { const box = doc.getElementById(__TOOLTIP__); if (box) box.style.display = "none"; }
  function bind() {
    const gd = doc.querySelector(".st-key-" + KEY + " .js-plotly-plot");
    if (!gd || typeof gd.on !== "function") return;
    if (gd.__synapseHoverVersion === VERSION) return;
    if (gd.__synapseHover) {
      gd.removeListener("plotly_hover", gd.__synapseHover);
      gd.removeListener("plotly_unhover", gd.__synapseUnhover);
    }
    gd.__synapseHover = show;
    gd.__synapseUnhover = hide;
    gd.__synapseHoverVersion = VERSION;
    gd.on("plotly_hover", show);
    gd.on("plotly_unhover", hide);
  }
  bind();
  setInterval(bind, 300);  // Streamlit redraws the chart element on reruns: bind to the new one
})();
</script>"""


def _js(value) -> str:
    """``value`` as a JavaScript literal that cannot end the script element."""
    return json.dumps(value).replace("</", "<\\/").replace("<!--", "<\\!--")


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def hover_pictures_html(thumbnails: Mapping[str, bytes], chart_key: str, labels: Mapping[str, str] | None = None,
                        size: int = 96) -> str:
    """HTML (a script) that shows ``thumbnails[synapse id]`` when the map's point is hovered.

    Parameters
    ----------
    thumbnails : mapping synapse id → PNG bytes
        Pictures (e.g. :func:`synapse_core.viz.gallery.synapse_thumbnail`); points without one show none.
    chart_key : str
        Key of the ``st.plotly_chart`` that draws the map (letters, digits, ``_`` and ``-``).
    labels : mapping synapse id → str, optional
        Caption under each picture (default: the id).
    size : int
        Picture size in CSS pixels.
    """
    if not chart_key or not all(c.isalnum() or c in "_-" for c in chart_key):
        raise ValueError(f"chart_key must be letters, digits, '_' or '-', got {chart_key!r}")
    if not (isinstance(size, int) and 16 <= size <= 512):
        raise ValueError(f"size must be an integer number of pixels in [16, 512], got {size!r}")
    uris = {str(k): png_data_uri(v) for k, v in thumbnails.items()}
    version = hashlib.sha1(json.dumps([sorted(uris), size]).encode()).hexdigest()[:12]
    script = _SCRIPT
    for name, value in (("__THUMBS__", _js(uris)), ("__LABELS__", _js({str(k): str(v) for k, v in (labels or {}).items()})),
                        ("__KEY__", _js(chart_key)), ("__VERSION__", _js(version)), ("__TOOLTIP__", _js(TOOLTIP_ID))):
        script = script.replace(name, value)
    return script.replace("__SIZE__", str(size))
