"""One self-contained HTML page: plotly figures, tables and page data, with plotly.js inlined once.

A page opens offline from a file (no request leaves it) and its bytes depend only on what was added,
so the same directory gives the same page. ``thin`` keeps long series small enough to draw.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

# Series longer than this are thinned for display: a 10^5-round run stays a few MB and draws at once.
MAX_POINTS = 2000

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
p.sub { color: #555; margin-top: 0; } figcaption, p.note { color: #555; font-size: 0.9rem; }
figure { margin: 0.5rem 0 1.5rem 0; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


def thin(y: Any, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a series (n,) with at most about ``max_points`` points: every point if it is short enough,
    else the first and last point of each bucket and its minimum and maximum, so spikes stay visible."""
    y = np.asarray(y, dtype=float)
    n = y.size
    if n <= max_points:
        return np.arange(n), y
    buckets = max(max_points // 4, 1)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep: set[int] = set()
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi > lo:
            part = y[lo:hi]
            keep.update((lo, hi - 1, lo + int(np.nanargmin(part)) if np.isfinite(part).any() else lo,
                         lo + int(np.nanargmax(part)) if np.isfinite(part).any() else lo))
    x = np.array(sorted(keep))
    return x, y[x]


class Page:
    """A report page built top to bottom: ``section``, ``figure``, ``table``, ``raw``, ``data``, ``script``;
    ``write(path)`` saves it. Figures get ids ``fig-1``, ``fig-2``, ... unless named."""

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self._body: list[str] = []
        self._scripts: list[str] = []
        self._figures = 0

    def section(self, heading: str, text: str = "") -> None:
        self._body.append(f"<h2>{html.escape(heading)}</h2>")
        if text:
            self._body.append(f'<p class="note">{html.escape(text)}</p>')

    def figure(self, fig: go.Figure, caption: str = "", fig_id: str | None = None) -> str:
        """Add a plotly figure; returns its div id."""
        self._figures += 1
        div_id = fig_id or f"fig-{self._figures}"
        fig.update_layout(template="plotly_white", margin={"l": 60, "r": 20, "t": 40, "b": 50})
        div = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                          config={"displaylogo": False, "responsive": True}, default_height="420px")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._body.append(f'<figure class="market-figure">{div}{cap}</figure>')
        return div_id

    def table(self, columns: list[str], rows: list[list[Any]], caption: str = "", table_id: str = "") -> None:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
        ident = f' id="{html.escape(table_id)}"' if table_id else ""
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._body.append(f"<table{ident}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def raw(self, markup: str) -> None:
        """Markup added as it is (a widget's controls); the caller escapes what it puts in."""
        self._body.append(markup)

    def data(self, name: str, obj: Any) -> None:
        """Embed ``obj`` as JSON for the page's scripts: ``JSON.parse(document.getElementById(name).textContent)``."""
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
        self._body.append(f'<script type="application/json" id="{html.escape(name)}">{text}</script>')

    def script(self, js: str) -> None:
        """A script run after the page's figures are drawn."""
        self._scripts.append(js)

    def render(self) -> str:
        sub = f'<p class="sub">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        scripts = "".join(f"<script>{s}</script>" for s in self._scripts)
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style>"
                f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
                f"<body><h1>{html.escape(self.title)}</h1>{sub}{''.join(self._body)}{scripts}</body></html>\n")

    def write(self, path: Path) -> Path:
        """Write the page atomically (a reader never sees half a page); returns its path."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.render(), encoding="utf-8")
        os.replace(tmp, path)
        return path


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)
