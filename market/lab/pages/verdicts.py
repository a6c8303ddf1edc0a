"""The verdict page of ``llm-market verdicts --out DIR``: the heat map of the deviators' gains (hover: gain,
CI, verdict, seeds, rounds and the command that recomputes the cell; click: the command, to copy), the learned
multipliers, the exact profit curves, the user's view and the EGTA games, read from the directory's CSVs."""

from __future__ import annotations

import csv
import html
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from market.lab.pages.page import Page
from market.lab.verdicts import LEARNERS, MARKET_LEARNER, reproduce_command
from market.runtime.config import ConfigError

COLOURS = qualitative.Plotly
# Colour = gain over the CI's half-width, clipped as in verdicts.png: beyond +-1 the CI excludes 0.
CLIP = 3.0

_CLICK = """
document.getElementById('heat-map').on('plotly_click', function (e) {
  var cell = e.points[0].customdata;
  if (!cell || !cell[6]) { return; }
  document.getElementById('cell-title').textContent = e.points[0].y + ', ' + e.points[0].x + ':';
  document.getElementById('cell-command').textContent = cell[6];
});
"""


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def heat_map(cells: list[dict[str, str]]) -> go.Figure:
    """Mechanisms x strategies, colour = gain / CI half-width; customdata per cell: gain, CI low, CI high,
    verdict, seeds, rounds, command (empty strings where a mechanism was not played against a strategy)."""
    mechs = list(dict.fromkeys(c["mechanism"] for c in cells))
    strats = list(dict.fromkeys(c["strategy"] for c in cells))
    z = np.full((len(mechs), len(strats)), np.nan)
    text = [["" for _ in strats] for _ in mechs]
    custom: list[list[list[object]]] = [[["", "", "", "", "", "", ""] for _ in strats] for _ in mechs]
    for c in cells:
        i, j = mechs.index(c["mechanism"]), strats.index(c["strategy"])
        gain, low, high = float(c["gain"]), float(c["ci_low"]), float(c["ci_high"])
        z[i, j] = float(np.clip(gain / max((high - low) / 2, 1e-12), -CLIP, CLIP))
        text[i][j] = f"{gain:+.3g}"
        seeds, rounds = int(c["seeds"]), int(c["rounds"])
        custom[i][j] = [f"{gain:+.6f}", f"{low:+.6f}", f"{high:+.6f}", c["verdict"], seeds, rounds,
                        reproduce_command(c["mechanism"], c["strategy"], seeds, rounds)]
    fig = go.Figure(go.Heatmap(
        z=z.tolist(), x=strats, y=mechs, text=text, texttemplate="%{text}", customdata=custom,
        colorscale="RdBu", reversescale=True, zmin=-CLIP, zmax=CLIP, xgap=2, ygap=2,
        colorbar={"title": {"text": "gain / CI half-width", "side": "right"}},
        hovertemplate="<b>%{y}</b>, %{x}<br>gain per round %{customdata[0]}<br>"
                      "95% CI [%{customdata[1]}, %{customdata[2]}]<br>%{customdata[3]}<br>"
                      "%{customdata[4]} seeds x %{customdata[5]} rounds<br>%{customdata[6]}<extra></extra>"))
    fig.update_layout(title="Deviator's per-round gain over its truthful twin (red: profitable, blue: loses)",
                      height=120 + 42 * len(mechs), hoverlabel={"font": {"size": 11}, "align": "left"})
    fig.update_yaxes(autorange="reversed")
    return fig


def multipliers_figure(cells: list[dict[str, str]]) -> go.Figure | None:
    """The learners' preferred multiplier (or exaggeration factor) at the end of the run, mean over seeds."""
    learned = [c for c in cells if c["final_multiplier"] and c["strategy"] in (*LEARNERS, "alpha-learner")]
    if not learned:
        return None
    fig = go.Figure()
    for n, strategy in enumerate(dict.fromkeys(c["strategy"] for c in learned)):
        mine = [c for c in learned if c["strategy"] == strategy]
        fig.add_trace(go.Bar(x=[c["mechanism"] for c in mine], y=[float(c["final_multiplier"]) for c in mine],
                             name=strategy, marker_color=COLOURS[n % len(COLOURS)]))
    fig.add_hline(y=1.0, line_dash="dash", line_color="black", annotation_text="truthful")
    fig.update_layout(title="Learned multiplier at the end of the run (mean over seeds; 1 = truthful)",
                      barmode="group", yaxis_title="multiplier")
    return fig


def curve_figure(rows: list[dict[str, str]]) -> go.Figure:
    """Expected profit per round minus truthful against the shading multiplier, per mechanism, with its CI."""
    fig = go.Figure()
    for n, mech in enumerate(dict.fromkeys(r["mechanism"] for r in rows)):
        mine = [r for r in rows if r["mechanism"] == mech]
        m = [float(r["multiplier"]) for r in mine]
        gain, low, high = ([float(r[k]) for r in mine] for k in ("gain", "ci_low", "ci_high"))
        best = next((float(r["multiplier"]) for r in mine if r["best"] == "1"), None)
        colour = COLOURS[n % len(COLOURS)]
        fig.add_trace(go.Scatter(x=m + m[::-1], y=high + low[::-1], mode="lines", fill="toself",
                                 fillcolor=_rgba(colour, 0.2), line={"width": 0}, hoverinfo="skip",
                                 legendgroup=mech, showlegend=False, name=f"{mech} CI"))
        fig.add_trace(go.Scatter(
            x=m, y=gain, mode="lines+markers", name=f"{mech} (best {best:g})" if best is not None else mech,
            legendgroup=mech, line={"color": colour},
            customdata=[[float(r["profit"]), float(r["ci_low"]), float(r["ci_high"])] for r in mine],
            hovertemplate="multiplier %{x}<br>profit %{customdata[0]:.5f}<br>vs truthful %{y:+.5f} "
                          "[%{customdata[1]:+.5f}, %{customdata[2]:+.5f}]<extra>" + mech + "</extra>"))
    fig.add_hline(y=0.0, line_color="black", line_width=1)
    fig.add_vline(x=1.0, line_color="black", line_width=1, line_dash="dash")
    first = rows[0]
    fig.update_layout(title=f"Where a learner's best multiplier lies ({first['seeds']} seeds x {first['samples']} "
                            f"rounds after {first['warmup']} warm-up rounds)",
                      xaxis_title="shading multiplier (bid / cost)",
                      yaxis_title="expected profit per round minus truthful")
    return fig


def users_figure(rows: list[dict[str, str]]) -> go.Figure:
    """Changes from the all-truthful to the all-learner profile, per mechanism, with bootstrap 95% CIs."""
    fig = go.Figure()
    measures = (("pay_diff", "user's payment per served query"), ("user_diff", "user's utility per round"),
                ("providers_diff", "providers' profit per round"))
    for n, (key, name) in enumerate(measures):
        mean = np.array([float(r[key]) for r in rows])
        low = np.array([float(r[f"{key}_low"]) for r in rows])
        high = np.array([float(r[f"{key}_high"]) for r in rows])
        fig.add_trace(go.Bar(
            x=[r["mechanism"] for r in rows], y=mean, name=name, marker_color=COLOURS[n],
            error_y={"type": "data", "symmetric": False, "array": high - mean, "arrayminus": mean - low},
            customdata=np.column_stack([low, high]),
            hovertemplate="%{x}: %{y:+.4f} [%{customdata[0]:+.4f}, %{customdata[1]:+.4f}]<extra>" + name
                          + "</extra>"))
    fig.update_layout(title="Every provider a learner minus every provider truthful", barmode="group",
                      yaxis_title="change (learners - truthful)")
    return fig


def verdicts_page(directory: Path) -> Page:
    """The page of a ``llm-market verdicts --out DIR`` directory (verdicts.csv and what else it holds)."""
    d = Path(directory)
    if not (d / "verdicts.csv").is_file():
        raise ConfigError(f"report: {str(d)!r} has no verdicts.csv; expected a `llm-market verdicts --out` directory")
    cells = _rows(d / "verdicts.csv")
    profitable = sum(c["verdict"] == "profitable" for c in cells)
    page = Page(f"Verdicts: {d.name}", f"{len(cells)} cells, {profitable} profitable deviations. Is cheating "
                                       "profitable? Each cell: a deviator's mean per-round gain over its truthful "
                                       "twin (same seeds) with a bootstrap 95% CI.")
    page.section("The verdict table", "Hover a cell for its gain, CI, verdict, size and the command that "
                                      "recomputes it; click it to show the command below, ready to copy.")
    page.figure(heat_map(cells), fig_id="heat-map")
    page.raw('<p class="note" id="cell-title">Click a cell for its command.</p>'
             '<pre id="cell-command" style="white-space: pre-wrap; background: #f4f4f4; padding: 0.5rem;"></pre>')
    page.script(_CLICK)
    page.table(["mechanism", "strategy", "gain", "95% CI", "verdict", "seeds", "rounds", "others", "user",
                "platform"],
               [[c["mechanism"], c["strategy"], f"{float(c['gain']):+.4f}",
                 f"[{float(c['ci_low']):+.4f}, {float(c['ci_high']):+.4f}]", c["verdict"], c["seeds"], c["rounds"],
                 f"{float(c['others']):+.4f}", f"{float(c['user']):+.4f}", f"{float(c['platform']):+.4f}"]
                for c in cells],
               caption="others, user, platform: their mean per-round change when the deviator deviates",
               table_id="cells")
    figure = multipliers_figure(cells)
    if figure is not None:
        page.section("Learned multipliers", "Where each learner ended: above 1 it shades its bids up "
                                            "(or exaggerates its reward report).")
        page.figure(figure)
    if (d / "curve.csv").is_file() and (rows := _rows(d / "curve.csv")):
        page.section("Profit curves", "Provider-0's exact expected profit per round for each shading multiplier "
                                      "(the others truthful), minus truthful bidding's, with a normal 95% CI.")
        page.figure(curve_figure(rows))
    if (d / "users.csv").is_file() and (rows := _rows(d / "users.csv")):
        first = rows[0]
        page.section("The user's view", f"Every provider truthful vs every provider a {MARKET_LEARNER} learner "
                                        f"({first['seeds']} seeds x {first['rounds']} rounds).")
        page.figure(users_figure(rows))
        page.table(["mechanism", "pay/served truthful", "pay/served learners", "change [95% CI]",
                    "minus ROSA with learners [95% CI]"],
                   [[r["mechanism"], float(r["pay_per_served_truthful"]), float(r["pay_per_served_learners"]),
                     _ci(r, "pay_diff"), _ci(r, "pay_minus_rosa") if r["pay_minus_rosa"] else ""] for r in rows],
                   table_id="users")
    if (d / "egta.csv").is_file() and (rows := _rows(d / "egta.csv")):
        page.section("EGTA", "Two-provider games: both providers' mean per-round payoffs for each profile "
                             "(provider-0's strategy / provider-1's), and the regret of the truthful profile.")
        for mech in dict.fromkeys(r["mechanism"] for r in rows):
            mine = [r for r in rows if r["mechanism"] == mech]
            page.raw(f"<h3>{html.escape(mech)}</h3>")
            page.table(["profile", "provider-0", "provider-1"],
                       [[r["profile"], f"{float(r['payoff_provider_0']):+.4f}", f"{float(r['payoff_provider_1']):+.4f}"]
                        for r in mine],
                       caption=f"regret of the truthful profile {float(mine[0]['truthful_regret']):.4f}, 95% CI "
                               f"[{float(mine[0]['regret_ci_low']):.4f}, {float(mine[0]['regret_ci_high']):.4f}]",
                       table_id=f"egta-{mech}")
    return page


def _ci(row: dict[str, str], key: str) -> str:
    return f"{float(row[key]):+.4f} [{float(row[key + '_low']):+.4f}, {float(row[key + '_high']):+.4f}]"
