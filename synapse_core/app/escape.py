"""User-controlled text (bbox and file names, ``Var1``, column names, error messages that quote them)
shown as text, never as markup, in the dashboard.

Streamlit renders Markdown in ``st.markdown``, ``st.caption``, ``st.error``/``warning``/``info``,
image captions, expander and widget labels: a ``Var1`` of ``![x](https://host/x.png)`` would make
every viewer's browser fetch that image, and ``unsafe_allow_html=True`` would let a bbox folder
named ``<img src=x onerror=...>`` inject HTML. Plotly renders a subset of HTML in trace names,
hover and axis text. Every such text goes through one of these functions first:

* :func:`md` for Markdown (the characters that start markup backslash-escaped, as CommonMark
  allows, and line breaks flattened, so nothing starts a link, image, HTML, heading, directive or math);
* :func:`html` for HTML (``&``, ``<``, ``>``, quotes as entities);
* :func:`plotly` for Plotly text (HTML-escaped: Plotly shows the entities as the characters).

>>> print(md("![x](https://e.vil/a.png)"))
\\!\\[x\\]\\(https://e.vil/a.png\\)
>>> html("<img src=x onerror=alert(1)>")
'&lt;img src=x onerror=alert(1)&gt;'
"""

from __future__ import annotations

import html as _html
import re

__all__ = ["html", "md", "plotly"]

#: Characters that start Markdown/Streamlit markup: links and images ``[]()!``, HTML and autolinks ``<>``,
#: code, emphasis, strikethrough, tables, math and colour directives. ``_`` is left alone: inside words
#: (``bbox_1``, ``syn_001``) CommonMark never reads it as emphasis.
_MD_SPECIAL = re.compile(r"([\\`*\[\]()<>!$~|{}#])")


def md(text) -> str:
    """``text`` as literal Markdown text: markup characters backslash-escaped, line breaks made spaces."""
    flat = re.sub(r"[\r\n\t\f\v]+", " ", str(text))
    return _MD_SPECIAL.sub(r"\\\1", flat)


def html(text) -> str:
    """``text`` as literal HTML text (``&``, ``<``, ``>``, ``"`` and ``'`` as entities)."""
    return _html.escape(str(text), quote=True)


def plotly(text) -> str:
    """``text`` for Plotly trace names, hover and axis text (HTML-escaped; Plotly shows the characters)."""
    return _html.escape(str(text), quote=False)
