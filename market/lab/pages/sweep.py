"""The sweep page: every metric against every swept key, mean over seeds with its 95% Student-t band, one
trace per combination of the other keys' values (click a legend entry to hide a trace and its band)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from market.lab.pages.page import Page
from market.lab.report import load_results, mean_ci, mean_ci_cell, point_label, point_order

COLOURS = qualitative.Plotly




def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def metric_figure(metric: str, key: str, keys: list[str], values: dict[str, dict[str, list[float]]],
                  points: dict[str, list]) -> go.Figure:
    """``metric`` against ``key``: one line (mean) and one band (95% CI) per combination of the other keys."""
    k = keys.index(key)
    xs = sorted({json.dumps(p[k][1]) for p in points.values()}, key=lambda s: point_order(json.loads(s)))
    numeric = all(point_order(json.loads(s))[0] == 0 for s in xs)
    series: dict[str, dict[str, str]] = {}  # the other keys' values -> x -> point id
    for pid in sorted(points, key=lambda p: [point_order(v) for _, v in points[p]]):
        pairs = points[pid]
        name = ", ".join(f"{kk}={point_label(v)}" for j, (kk, v) in enumerate(pairs) if j != k)
        series.setdefault(name, {})[json.dumps(pairs[k][1])] = pid
    fig = go.Figure()
    for n, (name, by_x) in enumerate(series.items()):
        here = [s for s in xs if s in by_x and values[by_x[s]].get(metric)]
        if not here:
            continue
        stats = [mean_ci(values[by_x[s]][metric]) for s in here]
        mean = np.array([float(m) for m, _ in stats])
        half = np.array([float(h) for _, h in stats])
        seeds = [len(values[by_x[s]][metric]) for s in here]
        x = [json.loads(s) if numeric else point_label(json.loads(s)) for s in here]
        colour = COLOURS[n % len(COLOURS)]
        group = name or metric
        if np.isfinite(half).all() and len(x) > 1:
            fig.add_trace(go.Scatter(x=x + x[::-1], y=np.concatenate([mean + half, (mean - half)[::-1]]),
                                     mode="lines", fill="toself", fillcolor=_rgba(colour, 0.18), line={"width": 0},
                                     hoverinfo="skip", legendgroup=group, showlegend=False, name=f"{group} CI"))
        fig.add_trace(go.Scatter(
            x=x, y=mean, mode="lines+markers", name=name or metric, legendgroup=group, line={"color": colour},
            error_y={"type": "data", "array": np.nan_to_num(half), "visible": len(x) == 1, "color": colour},
            customdata=np.column_stack([np.nan_to_num(half), seeds]),
            hovertemplate=f"{key}=%{{x}}<br>{metric} = %{{y:.4g}} ± %{{customdata[0]:.2g}}"
                          f"<br>seeds: %{{customdata[1]}}<extra>{name}</extra>"))
    fig.update_layout(title=f"{metric} against {key}: mean and 95% CI over seeds", xaxis_title=key,
                      yaxis_title=metric, showlegend=len(keys) > 1,
                      legend={"title": {"text": "click to hide"}, "font": {"size": 10}})
    if numeric:
        fig.update_xaxes(tickmode="array", tickvals=[json.loads(s) for s in xs])
    else:
        fig.update_xaxes(type="category", categoryorder="array",
                         categoryarray=[point_label(json.loads(s)) for s in xs])
    return fig


def sweep_page(directory: Path) -> Page:
    """The page of a sweep directory (``results/``, written by ``llm-market sweep``)."""
    d = Path(directory)
    keys, values, points = load_results(d)
    order = sorted(points, key=lambda pid: [point_order(v) for _, v in points[pid]])
    metrics = sorted({m for pid in values for m in values[pid]})
    runs = sum(max(len(v) for v in values[pid].values()) for pid in points)
    failed = len(list((d / "failed").glob("*.json"))) if (d / "failed").is_dir() else 0
    page = Page(f"Sweep: {d.name}", f"{runs} runs over {len(order)} grid points ({' x '.join(keys)}); "
                                    f"{failed} failed tasks. Lines: mean over seeds; bands: 95% Student-t CI.")
    for metric in metrics:
        page.section(metric, "One trace per value of the other keys: click a legend entry to hide it "
                             "(its band goes with it), double-click to show it alone." if len(keys) > 1 else "")
        for key in keys:
            page.figure(metric_figure(metric, key, keys, values, points))
    page.section("Grid points", "Mean ± half-width of the 95% CI over seeds.")
    rows = [[point_label(v) for _, v in points[pid]] + [max(len(v) for v in values[pid].values())]
            + [mean_ci_cell(values[pid].get(m, [])) for m in metrics] for pid in order]
    page.table([*keys, "seeds", *metrics], rows, table_id="points")
    return page
