"""The reproduction page of ``llm-market repro rosa|mosaic|selection --out DIR``: the figures of the PNGs,
drawn from the CSVs the experiments write (a directory may hold several papers' CSVs)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from market.lab.pages.page import Page
from market.lab.repro.mosaic import PANELS as MOSAIC_PANELS
from market.runtime.config import ConfigError

COLOURS = qualitative.Plotly
Row = dict[str, str]


def _rows(path: Path) -> list[Row]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _num(text: str) -> float:
    return float(text) if text else float("nan")


def _groups(rows: Sequence[Row], key: Callable[[Row], str]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def _panels(titles: Sequence[str], rows: int = 1) -> go.Figure:
    cols = -(-len(titles) // rows)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles), horizontal_spacing=0.08,
                        vertical_spacing=0.16)
    fig.update_layout(height=380 * rows)
    return fig


def _line(fig: go.Figure, rows: Sequence[Row], x: str, y: str, name: str, n: int, *, panel: int = 0,
          cols: int = 1, dash: str = "solid", first: bool = True, error: str | None = None) -> None:
    """One line of ``rows`` (y against x) in panel ``panel`` (row-major), coloured by ``n``; legend once."""
    xs, ys = [_num(r[x]) for r in rows], [_num(r[y]) for r in rows]
    trace = go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 40 else "lines", name=name, legendgroup=name,
                       showlegend=first, line={"color": COLOURS[n % len(COLOURS)], "dash": dash},
                       error_y={"type": "data", "array": [_num(r[error]) for r in rows]} if error else None)
    if cols > 1 or panel:
        fig.add_trace(trace, row=panel // cols + 1, col=panel % cols + 1)
    else:
        fig.add_trace(trace)


# -- ROSA ------------------------------------------------------------------------------------------


def rosa_figures(d: Path) -> list[tuple[go.Figure, str]]:
    """Regret against T (mean over seeds, log-log), the mu sweep's three panels, utility against bid."""
    out = []
    if (d / "rosa_regret_vs_T.csv").is_file():
        rows = _rows(d / "rosa_regret_vs_T.csv")
        fig = go.Figure()
        for n, ((noise, mu), mine) in enumerate(_groups(rows, lambda r: (r["noise"], r["mu"])).items()):
            by_t = _groups(mine, lambda r: r["T"])
            t = np.array([float(k) for k in by_t])
            regret = np.array([np.mean([float(r["regret"]) for r in v]) for v in by_t.values()])
            slope = float(np.polyfit(np.log(t), np.log(regret), 1)[0]) if len(t) > 1 and (regret > 0).all() else None
            label = f"{noise}, mu={mu}" + (f" (slope {slope:.2f})" if slope is not None else "")
            fig.add_trace(go.Scatter(x=t, y=regret, mode="lines+markers", name=label,
                                     line={"color": COLOURS[n % len(COLOURS)], "dash": "dash" if mu != "T^-1/2"
                                           else "solid"}))
            if n == 0:
                ref = regret[0] * np.sqrt(t / t[0])
                fig.add_trace(go.Scatter(x=t, y=ref, mode="lines", name="slope 1/2",
                                         line={"color": "black", "dash": "dot"}))
        fig.update_xaxes(type="log", title="T")
        fig.update_yaxes(type="log", title="virtual-surplus regret")
        fig.update_layout(title="ROSA + TRCM-UCB: regret vs T (mean over seeds)")
        out.append((fig, "rosa_regret_vs_T.csv"))
    if (d / "rosa_mu_sweep.csv").is_file():
        rows = _rows(d / "rosa_mu_sweep.csv")
        by_mu = _groups(rows, lambda r: r["mu"])
        mus = np.array([float(k) for k in by_mu])
        mean = {k: np.array([np.mean([float(r[k]) for r in v]) for v in by_mu.values()])
                for k in ("regret", "winner_payment_sd", "changed_fraction", "modified_fraction", "bound")}
        fig = _panels(["regret vs mu", "payment spread vs mu", "effect of resampling"])
        series = ((0, mean["regret"], "regret", "solid"), (1, mean["winner_payment_sd"], "sd of winner's payment",
                                                           "solid"),
                  (1, mean["winner_payment_sd"][-1] * np.sqrt(mus[-1] / mus), "mu^-1/2", "dot"),
                  (2, mean["changed_fraction"], "rounds whose winner changed", "solid"),
                  (2, mean["modified_fraction"], "rounds with a resampled bid", "dash"),
                  (2, mean["bound"], "1-(1-mu)^n", "dot"))
        for n, (panel, y, name, dash) in enumerate(series):
            fig.add_trace(go.Scatter(x=mus, y=y, mode="lines+markers", name=name,
                                     line={"color": "black" if dash == "dot" else COLOURS[n], "dash": dash}),
                          row=1, col=panel + 1)
        fig.update_xaxes(type="log", title="mu")
        fig.update_yaxes(type="log", row=1, col=2)
        fig.update_layout(title="ROSA's mu: regret, payment spread and resampling (mean over seeds)")
        out.append((fig, "rosa_mu_sweep.csv"))
    if (d / "rosa_utility_vs_bid.csv").is_file():
        rows = _rows(d / "rosa_utility_vs_bid.csv")
        fig = go.Figure()
        for n, (cost, mine) in enumerate(_groups(rows, lambda r: r["cost"]).items()):
            _line(fig, mine, "bid", "rosa_utility", f"ROSA, cost {cost}", n)
            _line(fig, mine, "bid", "pay_as_bid_utility", f"pay-as-bid, cost {cost}", n, dash="dash")
            fig.add_vline(x=float(cost), line_width=0.6, line_color=COLOURS[n % len(COLOURS)])
        fig.update_layout(title="Provider utility vs bid (mu = 0.1)", xaxis_title="bid",
                          yaxis_title="expected utility")
        out.append((fig, "rosa_utility_vs_bid.csv"))
    return out


# -- MOSAIC ----------------------------------------------------------------------------------------



def mosaic_figures(d: Path) -> list[tuple[go.Figure, str]]:
    """Per n, the nine convergence panels in M: baseline (dashed) and context (solid) proposals."""
    rows = _rows(d / "mosaic.csv")
    out = []
    for n_agents, mine in _groups(rows, lambda r: r["n"]).items():
        fig = _panels([title for _, title, _ in MOSAIC_PANELS], rows=3)
        for p, (key, _, bench) in enumerate(MOSAIC_PANELS):
            for n, (proposal, dash) in enumerate((("baseline", "dash"), ("context", "solid"))):
                sel = [r for r in mine if r["proposal"] == proposal]
                if sel:
                    _line(fig, sel, "M", key, proposal, n, panel=p, cols=3, dash=dash, first=p == 0)
            if bench and mine:
                ref = [dict(r, **{key: r[bench]}) for r in mine if r["proposal"] == "context"]
                _line(fig, ref, "M", key, "exact optimum", 2, panel=p, cols=3, dash="dot", first=p == 0)
        fig.update_xaxes(type="log", title="M")
        fig.update_layout(title=f"MOSAIC: convergence in the number of candidates M (n = {n_agents})", height=900)
        out.append((fig, "mosaic.csv"))
    return out


# -- selection -------------------------------------------------------------------------------------


def selection_figures(d: Path) -> list[tuple[go.Figure, str]]:
    """C2MAB-V: regret and violation over rounds, the budget sweep, the regret scaling; TI-UCB: regret over
    rounds with its detections, the window and threshold sweeps."""
    out = []
    if (d / "c2mabv_curves.csv").is_file():
        groups = _groups(_rows(d / "c2mabv_curves.csv"), lambda r: r["reward_model"])
        fig = _panels([f"{m.upper()}: {what}" for what in ("regret vs fractional optimum", "cumulative violation")
                       for m in groups], rows=2)
        cols = len(groups)
        for c, mine in enumerate(groups.values()):
            for n, (learner, sel) in enumerate(_groups(mine, lambda r: r["learner"]).items()):
                _line(fig, sel, "round", "regret_fractional", learner, n, panel=c, cols=cols, first=c == 0)
                _line(fig, sel, "round", "violation", learner, n, panel=cols + c, cols=cols, first=False)
        fig.update_xaxes(title="round")
        fig.update_layout(title="C2MAB-V on the SciQ replay: regret and budget violation", height=700)
        out.append((fig, "c2mabv_curves.csv"))
    if (d / "c2mabv_budget_sweep.csv").is_file():
        fig = _panels(["mean reward per round (SUC)", "violation V(T)"])
        for n, (learner, sel) in enumerate(_groups(_rows(d / "c2mabv_budget_sweep.csv"),
                                                   lambda r: r["learner"]).items()):
            _line(fig, sel, "budget", "mean_reward", learner, n, panel=0, cols=2)
            _line(fig, sel, "budget", "violation", learner, n, panel=1, cols=2, first=False)
        fig.update_xaxes(title="rho")
        fig.update_layout(title="C2MAB-V against CUCB over the budget rho")
        out.append((fig, "c2mabv_budget_sweep.csv"))
    if (d / "c2mabv_regret_scaling.csv").is_file():
        fits = {(f["reward_model"], f["relaxation"]): float(f["slope"])
                for f in (_rows(d / "c2mabv_regret_scaling_fit.csv")
                          if (d / "c2mabv_regret_scaling_fit.csv").is_file() else [])}
        fig = _panels(["R(T) / sqrt(T ln T)", "R(T) vs fractional optimum"])
        groups = _groups(_rows(d / "c2mabv_regret_scaling.csv"), lambda r: (r["reward_model"], r["relaxation"]))
        for n, ((model, relaxation), sel) in enumerate(groups.items()):
            slope = fits.get((model, relaxation))
            name = f"{model.upper()} {relaxation}" + (f" (slope {slope:.2f})" if slope is not None else "")
            _line(fig, sel, "horizon", "regret_over_sqrt_tlogt", name, n, panel=0, cols=2)
            _line(fig, sel, "horizon", "regret_fractional", name, n, panel=1, cols=2, first=False,
                  error="regret_se")
        fig.update_xaxes(type="log", title="T")
        fig.update_yaxes(type="log")
        fig.update_layout(title="C2MAB-V: regret scaling in T")
        out.append((fig, "c2mabv_regret_scaling.csv"))
    if (d / "tiucb_curves.csv").is_file():
        out.append((_tiucb_regret(_rows(d / "tiucb_curves.csv")), "tiucb_curves.csv"))
    for name, x, panels, title in (
            ("tiucb_window_sweep.csv", "window", (("regret", "regret at T", "regret_se"),
                                                  ("false_alarms", "false alarms per run", None),
                                                  ("median_delay", "median detection delay (pulls)", None)),
             "TI-UCB window sweep (trap instance, rested)"),
            ("tiucb_gamma_sweep.csv", "gamma", (("false_alarms", "false alarms per run", None),
                                                ("median_delay", "median detection delay (pulls)", None),
                                                ("detected_share", "share of converged arms detected", None)),
             "TI-UCB threshold sweep (rested)")):
        if not (d / name).is_file():
            continue
        rows = _rows(d / name)
        by = (lambda r: f"noise {r['noise']}") if x == "window" else (lambda r: r["instance"])
        fig = _panels([label for _, label, _ in panels])
        for n, (label, sel) in enumerate(_groups(rows, by).items()):
            for p, (key, _, error) in enumerate(panels):
                _line(fig, sel, x, key, label, n, panel=p, cols=3, first=p == 0, error=error)
        fig.update_xaxes(title=x, type="log" if x == "window" else "linear")
        fig.update_layout(title=title)
        out.append((fig, name))
    return out


def _tiucb_regret(rows: list[Row]) -> go.Figure:
    """Cumulative regret against the best limit per environment; detections marked on their learner's curve."""
    envs = _groups(rows, lambda r: r["environment"])
    fig = _panels([f"{e} (rested; | = detections)" for e in envs])
    for c, mine in enumerate(envs.values()):
        curves = {k: v for k, v in _groups(mine, lambda r: r["learner"]).items() if not k.endswith("_detection")}
        for n, (learner, sel) in enumerate(curves.items()):
            _line(fig, sel, "round", "regret_or_pull", learner, n, panel=c, cols=len(envs), first=c == 0)
            dets = [r for r in mine if r["learner"] == f"{learner}_detection"]
            if dets:
                t = np.array([float(r["round"]) for r in sel])
                y = np.array([float(r["regret_or_pull"]) for r in sel])
                at = np.array([float(r["round"]) for r in dets])
                fig.add_trace(go.Scatter(x=at, y=np.interp(at, t, y), mode="markers", name=f"{learner} detections",
                                         legendgroup=learner, showlegend=False,
                                         marker={"symbol": "line-ns-open", "size": 14,
                                                 "color": COLOURS[n % len(COLOURS)]}),
                              row=1, col=c + 1)
    fig.update_xaxes(title="round")
    fig.update_yaxes(title="cumulative regret vs best limit", row=1, col=1)
    fig.update_layout(title="TI-UCB and baselines on increasing (rested) arms: mean over seeds")
    return fig


def _tables(page: Page, d: Path) -> None:
    for name, caption in (("c2mabv_summary.csv", "C2MAB-V: totals at the horizon"),
                          ("c2mabv_regret_scaling_fit.csv", "C2MAB-V: fitted regret slopes"),
                          ("tiucb_summary.csv", "TI-UCB: per run")):
        if (d / name).is_file() and (rows := _rows(d / name)):
            cols = list(rows[0])
            page.table(cols, [[_cell(r[c]) for c in cols] for r in rows], caption=caption,
                       table_id=name.removesuffix(".csv"))


def _cell(text: str) -> object:
    try:
        return float(text) if "." in text or "e" in text else int(text)
    except ValueError:
        return text


PAPERS = (
    ("rosa", "ROSA: truthful procurement by resampling", ("rosa_regret_vs_T.csv", "rosa_mu_sweep.csv",
                                                          "rosa_utility_vs_bid.csv"), rosa_figures),
    ("mosaic", "MOSAIC: aggregating the advertisers' proposals", ("mosaic.csv",), mosaic_figures),
    ("selection", "Selecting LLMs: C2MAB-V and TI-UCB", ("c2mabv_curves.csv", "c2mabv_budget_sweep.csv",
                                                         "c2mabv_regret_scaling.csv", "tiucb_curves.csv",
                                                         "tiucb_window_sweep.csv", "tiucb_gamma_sweep.csv"),
     selection_figures),
)


def papers_in(directory: Path) -> list[str]:
    """The papers whose CSVs ``directory`` holds, in PAPERS' order."""
    return [name for name, _, files, _ in PAPERS if any((Path(directory) / f).is_file() for f in files)]


def repro_page(directory: Path) -> Page:
    """The page of a ``llm-market repro ... --out DIR`` directory."""
    d = Path(directory)
    found = papers_in(d)
    if not found:
        raise ConfigError(f"report: {str(d)!r} holds none of the reproduction CSVs (rosa_*.csv, mosaic.csv, "
                          "c2mabv_*.csv, tiucb_*.csv); expected a `llm-market repro ... --out` directory")
    page = Page(f"Reproductions: {d.name}", "The papers' figures, drawn from the CSVs of "
                + ", ".join(f"llm-market repro {p}" for p in found) + ".")
    for name, heading, _, figures in PAPERS:
        if name not in found:
            continue
        page.section(heading)
        for fig, source in figures(d):
            title = fig.layout.title.text
            if fig.layout.annotations and title:
                # the page's top margin has no room for a title above the panels' own titles
                fig.update_layout(title=None)
                page.figure(fig, f"{title}. From {source}.")
            else:
                page.figure(fig, f"From {source}.")
        if name == "selection":
            _tables(page, d)
    return page
