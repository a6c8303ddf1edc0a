"""Reports of a run or a sweep directory: PNG plots and a Markdown summary (``DIR/report.md``).

For a sweep, each metric's mean over seeds with a 95% Student-t confidence interval, per grid point,
against the first swept key. ``mean_ci`` and ``plot_band`` serve any figure of means with CI bands.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from market.runtime.builders import logged_scenario  # noqa: E402
from market.runtime.config import ConfigError, load_toml, merge  # noqa: E402


def mean_ci(samples: Any, level: float = 0.95, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of the Student-t confidence interval at ``level`` along ``axis``.

    samples: (..., n_seeds). The half-width is nan with fewer than two samples (no spread to measure).
    """
    x = np.asarray(samples, dtype=float)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    sem = x.std(axis=axis, ddof=1) / np.sqrt(n)
    return mean, stats.t.ppf(0.5 + level / 2, n - 1) * sem


def plot_band(ax: Any, x: Any, samples: Any, label: str | None = None, level: float = 0.95) -> None:
    """Draw the mean of ``samples`` (len(x), n_seeds) against ``x`` with its CI as a shaded band."""
    mean, half = mean_ci(samples, level)
    line = ax.plot(x, mean, marker="o", label=label)[0]
    if np.isfinite(half).any():
        ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)


def report(directory: Path, *, trust_builder: bool = False) -> Path:
    """Write plots and ``report.md`` into a run directory or a sweep directory; returns the Markdown path.
    A run's builder must be an installed scenario unless ``trust_builder`` (``builders.logged_scenario``)."""
    d = Path(directory)
    if (d / "results").is_dir():
        return _sweep_report(d)
    if (d / "summary.json").is_file() and (d / "config.toml").is_file():
        return _run_report(d, trust_builder=trust_builder)
    raise ConfigError(f"report: {str(d)!r} is neither a sweep directory (results/) nor a run directory "
                      "(summary.json + config.toml)")


# -- sweeps ------------------------------------------------------------------------------------


def load_results(directory: Path) -> tuple[list[str], dict[str, dict[str, list[float]]], dict[str, list]]:
    """Result files grouped by grid point: (swept keys, point -> metric -> values over seeds, point -> pairs).

    With the sweep's ``sweep.toml`` present, only its tasks count: results left by an earlier version of
    the spec (other metrics, other fixed keys) in the same directory are not mixed in.
    """
    from market.lab.sweep import parse_spec, tasks

    files = sorted((Path(directory) / "results").glob("*.json"))
    spec_path = Path(directory) / "sweep.toml"
    if spec_path.is_file():
        current = {t.name for t in tasks(parse_spec(load_toml(spec_path)))}
        files = [f for f in files if f.stem in current]
    if not files:
        raise ConfigError(f"report: no result files in {Path(directory) / 'results'}")
    keys: list[str] = []
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    points: dict[str, list] = {}
    for f in files:
        rec = json.loads(f.read_text())
        point = rec["point"]
        keys = keys or [k for k, _ in point]
        pid = json.dumps(point, sort_keys=True)
        points[pid] = point
        for m, v in rec["metrics"].items():
            values[pid][m].append(v)
    return keys, values, points


def point_order(value: Any) -> tuple:
    """Sort key of a swept value: numbers by value and everything else by its JSON text, numbers first."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, json.dumps(value, sort_keys=True))


def point_label(value: Any) -> str:
    """A swept value as a legend or table shows it."""
    return value if isinstance(value, str) else json.dumps(value)


def _file_name(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", metric) + ".png"


def _sweep_report(d: Path) -> Path:
    keys, values, points = load_results(d)
    runs = sum(max(len(v) for v in values[pid].values()) for pid in points)
    order = sorted(points, key=lambda pid: [point_order(v) for _, v in points[pid]])
    metrics = sorted({m for pid in values for m in values[pid]})
    x_key, rest = keys[0], keys[1:]
    xs = sorted({json.dumps(points[pid][0][1]) for pid in order}, key=lambda s: point_order(json.loads(s)))
    numeric_x = all(point_order(json.loads(s))[0] == 0 for s in xs)
    series: dict[str, dict[str, str]] = defaultdict(dict)  # other keys' values -> x -> point id
    for pid in order:
        pairs = points[pid]
        series[", ".join(f"{k}={point_label(v)}" for k, v in pairs[1:])][json.dumps(pairs[0][1])] = pid

    figures = []
    for m in metrics:
        fig, ax = plt.subplots(figsize=(6, 4))
        for offset, (name, by_x) in enumerate(series.items()):
            xs_here = [s for s in xs if s in by_x and m in values[by_x[s]]]
            if not xs_here:
                continue
            samples = [values[by_x[s]][m] for s in xs_here]
            means, halves = zip(*(mean_ci(v) for v in samples))
            if numeric_x:
                pos = [json.loads(s) for s in xs_here]
                if min(len(v) for v in samples) == max(len(v) for v in samples):
                    plot_band(ax, pos, samples, label=name or None)
                    continue
            else:
                pos = [xs.index(s) + 0.08 * (offset - (len(series) - 1) / 2) for s in xs_here]
            ax.errorbar(pos, means, yerr=np.nan_to_num(halves), marker="o", capsize=3,
                        linestyle="-" if numeric_x else "none", label=name or None)
        if not numeric_x:
            ax.set_xticks(range(len(xs)), [point_label(json.loads(s)) for s in xs], rotation=20)
        ax.set_xlabel(x_key)
        ax.set_ylabel(m)
        ax.set_title(f"{m}: mean and 95% CI over seeds")
        if rest:
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(d / _file_name(m), dpi=100)
        plt.close(fig)
        figures.append(_file_name(m))

    failed = len(list((d / "failed").glob("*.json"))) if (d / "failed").is_dir() else 0
    lines = [f"# Sweep report: {d.name}", "",
             f"{runs} runs over {len(order)} grid points; "
             f"{failed} failed tasks (see failed/). Cells: mean ± half-width of the 95% CI over seeds.", "",
             "| " + " | ".join(keys + ["seeds"] + metrics) + " |",
             "|" + "---|" * (len(keys) + 1 + len(metrics))]
    for pid in order:
        cells = [point_label(v) for _, v in points[pid]]
        cells.append(str(max(len(v) for v in values[pid].values())))
        for m in metrics:
            cells.append(mean_ci_cell(values[pid].get(m, [])))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Figures: " + ", ".join(f"[{f}]({f})" for f in figures), ""]
    out = d / "report.md"
    out.write_text("\n".join(lines))
    return out


def mean_ci_cell(samples: list[float]) -> str:
    """A table cell: the mean of ``samples`` with its 95% CI half-width, or the mean alone for one sample."""
    if not samples:
        return ""
    mean, half = mean_ci(samples)
    return f"{float(mean):.4g}" if not np.isfinite(half) else f"{float(mean):.4g} ± {float(half):.2g}"


# -- single runs -------------------------------------------------------------------------------


def _numbers(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_numbers(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out


def _run_report(d: Path, *, trust_builder: bool = False) -> Path:
    summary = json.loads((d / "summary.json").read_text())
    config = tomllib.loads((d / "config.toml").read_text())
    builder = config.get("scenario", {}).get("builder", "")
    named: dict[str, float] = {}
    if builder:
        market = logged_scenario(builder, trust_builder=trust_builder, config=config)
        defaults = copy.deepcopy(market.defaults)
        defaults["scenario"] = dict(config["scenario"])
        config = merge(defaults, config)  # a run written before a key was added reads it as its default
        named = dict(market.metrics(summary, config))

    # Per-agent families (wins, and scenario metrics named family.agent) as bar charts.
    families: dict[str, dict[str, float]] = defaultdict(dict)
    for agent, n in summary.get("wins", {}).items():
        families["wins"][agent] = float(n)
    scalars = _numbers({k: v for k, v in summary.items() if k not in ("balances", "received", "paid", "wins")})
    for name, value in named.items():
        if "." in name:
            family, member = name.split(".", 1)
            families[family][member] = float(value)
        else:
            scalars[name] = float(value)
    figures = []
    for family, members in families.items():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(list(members), list(members.values()))
        ax.set_ylabel(family)
        ax.set_title(f"{family} per agent")
        ax.tick_params(axis="x", rotation=20)
        fig.tight_layout()
        fig.savefig(d / _file_name(family), dpi=100)
        plt.close(fig)
        figures.append(_file_name(family))

    name = config.get("scenario", {}).get("name", d.name)
    seed = config.get("run", {}).get("seed", "?")
    lines = [f"# Run report: {name}, seed {seed}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.6g} |" for k, v in scalars.items()]
    for family, members in families.items():
        lines += ["", f"| {family} | value |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" for k, v in members.items()]
    lines += ["", "Figures: " + ", ".join(f"[{f}]({f})" for f in figures), ""]
    out = d / "report.md"
    out.write_text("\n".join(lines))
    return out
