"""The verdict table: is cheating profitable? Mechanisms x deviating strategies, each cell the deviator's
mean per-round gain over its truthful twin (common random numbers) with a bootstrap 95% CI and a verdict.

Procurement cells run the quickstart market in the fast engine (``market.lab.deviation.play_fast``), horizon
ROSA and the ad auctions their floor-1 loops (``play_horizon``, ``play_ads``). One process pool runs all.

Two views complete the table: the exact expected-profit curve of a shading multiplier per reverse mechanism
(``market.lab.curve``: where a learner's best multiplier lies, without the learner's noise), and the user's view
(what the user pays per served query when every provider is truthful and when every provider is a learner).
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from market.lab.curve import Curve, format_curve, profit_curve, write_curves
from market.lab.deviation import (
    RunResult,
    Verdict,
    bootstrap_ci,
    deviators_for,
    judge,
    profile_overrides,
    run_tasks,
)

SCENARIO = "quickstart"
MU = 0.1  # ROSA's resampling probability in every ROSA cell, so quick and full runs share it
LEARNERS = ("hedge", "exp3", "ucb", "gradient")
PROVIDER_STRATEGIES = ("shade", "underbid", *LEARNERS, "ring")
AD_STRATEGIES = ("exaggerate", "add-constant", "alpha-learner", "description-pull")

# (label, engine, mechanism name, strategies)
ROWS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("ROSA + TRCM-UCB", "fast", "rosa-trcm-ucb", (*PROVIDER_STRATEGIES, "coin-predictor")),
    ("leaky ROSA (public coins)", "fast", "rosa-leaky", ("shade", "coin-predictor")),
    ("horizon ROSA", "horizon", "horizon-rosa", ("shade", "underbid")),
    ("pay-as-bid", "fast", "pay-as-bid", PROVIDER_STRATEGIES),
    ("first-price UCB", "fast", "first-price-ucb", PROVIDER_STRATEGIES),
    ("MOSAIC (offset)", "ads", "mosaic", AD_STRATEGIES),
    ("Rochet without offset", "ads", "mosaic-rochet", AD_STRATEGIES),
    ("no payments", "ads", "mosaic-nopay", AD_STRATEGIES),
    ("token auction", "ads", "token-auction", ("exaggerate", "add-constant", "alpha-learner")),
)

# ROSA's payments are heavy-tailed (a bonus (c_cap - b)/mu with probability mu), so a bootstrap over few
# seeds can miss the rare rounds that make shading unprofitable: reverse auctions get more seeds.
SIZES = {
    "full": {"seeds": 40, "rounds": 1000, "ad_seeds": 20, "ad_rounds": 200, "curve_seeds": 4, "curve_samples": 5000},
    "quick": {"seeds": 30, "rounds": 300, "ad_seeds": 10, "ad_rounds": 100, "curve_seeds": 2, "curve_samples": 2000},
}
# The reverse mechanisms of the curve and of the user's view, and the learner every provider plays there.
MARKET_MECHANISMS = (("ROSA + TRCM-UCB", "rosa-trcm-ucb"), ("pay-as-bid", "pay-as-bid"),
                     ("first-price UCB", "first-price-ucb"))
MARKET_LEARNER = "ucb"
CURVE_WARMUP = 1000

COLUMNS = ("mechanism", "strategy", "gain", "ci_low", "ci_high", "verdict", "seeds", "rounds",
           "others", "user", "platform", "final_multiplier")


@dataclass(frozen=True, slots=True)
class Cell:
    mechanism: str
    strategy: str
    verdict: Verdict


def mechanism_sets(mechanism: str) -> list[str]:
    """--set items selecting a reverse mechanism (ROSA variants at the table's mu)."""
    return [f"mechanism.name={mechanism}"] + ([f"mechanism.params.mu={MU}"] if "rosa" in mechanism else [])


def reproduce_command(label: str, strategy: str, seeds: int, rounds: int) -> str:
    """The command that recomputes one cell of the table (its gain and CI to the last digit), from the row's
    label as verdicts.csv writes it; '' for a label ROWS does not know.

    Procurement and ad cells are ``llm-market deviate`` runs (its twin makes the deviators truthful explicitly,
    which is the scenarios' default); horizon ROSA has no scenario, so its cell is a call of ``play_horizon``."""
    row = next((r for r in ROWS if r[0] == label), None)
    if row is None:
        return ""
    _, engine, mechanism, _ = row
    if engine == "horizon":
        runs = "[h({!r}, s, {}) for s in range({})]"
        return ('python -c "from market.lab.deviation import judge, play_horizon as h; '
                f"v = judge({runs.format('truthful', rounds, seeds)}, {runs.format(strategy, rounds, seeds)}, "
                "['provider-0']); print(v.gain, v.ci_low, v.ci_high)\"")
    if engine == "ads":
        scenario, sets = "ads", [f"mechanism.name={mechanism}"]
    else:
        scenario, sets = SCENARIO, mechanism_sets(mechanism)
    return (f"llm-market deviate {scenario} --strategy {strategy} --seeds {seeds} --rounds {rounds} "
            + " ".join(f"--set {s}" for s in sets))


def _task(engine: str, mechanism: str, strategy: str, seed: int, size: dict[str, int],
          ad_sets: tuple[str, ...] = ()) -> tuple:
    if engine == "horizon":
        return ("horizon", strategy, seed, size["rounds"])
    if engine == "ads":
        return ("ads", mechanism, strategy, seed, size["ad_rounds"], *((ad_sets,) if ad_sets else ()))
    sets = mechanism_sets(mechanism)
    if strategy != "truthful":
        sets += profile_overrides(strategy, deviators_for(strategy, None, 5))
    return ("fast", SCENARIO, tuple(sets), seed, size["rounds"], "provider-0")


def _seeds(engine: str, size: dict[str, int]) -> int:
    return size["ad_seeds"] if engine == "ads" else size["seeds"]


def table(size: dict[str, int], workers: int, ad_sets: tuple[str, ...] = ()) -> list[Cell]:
    """Every cell of ROWS at ``size``; each row's truthful twin is run once per seed and shared. ``ad_sets``:
    ``--set`` items of the ads scenario for the ad cells (e.g. ``market.lm=smollm2``: real replies)."""
    tasks, index = [], {}
    for label, engine, mechanism, strategies in ROWS:
        for strategy in ("truthful", *strategies):
            for seed in range(_seeds(engine, size)):
                index[(label, strategy, seed)] = len(tasks)
                tasks.append(_task(engine, mechanism, strategy, seed, size, ad_sets))
    results = run_tasks(tasks, workers)
    cells = []
    for label, engine, mechanism, strategies in ROWS:
        seeds = range(_seeds(engine, size))
        twins = [results[index[(label, "truthful", s)]] for s in seeds]
        for strategy in strategies:
            devs = [results[index[(label, strategy, s)]] for s in seeds]
            deviators = (["advertiser-0"] if engine == "ads"
                         else list(deviators_for(strategy, None, 5)))
            cells.append(Cell(label, strategy, judge(twins, devs, deviators)))
    return cells


def write_csv(cells: list[Cell], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for c in cells:
            v = c.verdict
            final = f"{v.trace[-1]:.3f}" if v.trace else ""
            w.writerow([c.mechanism, c.strategy, f"{v.gain:.6f}", f"{v.ci_low:.6f}", f"{v.ci_high:.6f}", v.verdict,
                        v.seeds, v.rounds, f"{v.others:.6f}", f"{v.user:.6f}", f"{v.platform:.6f}", final])


def format_table(cells: list[Cell]) -> str:
    rows = [f"{'mechanism':<27}{'strategy':<18}{'gain':>10}  {'95% CI':<22}{'verdict':<28}{'seeds':>6}{'rounds':>7}"]
    for c in cells:
        v = c.verdict
        ci = f"[{v.ci_low:+.4f}, {v.ci_high:+.4f}]"
        rows.append(f"{c.mechanism:<27}{c.strategy:<18}{v.gain:>+10.4f}  {ci:<22}{v.verdict:<28}"
                    f"{v.seeds:>6}{v.rounds:>7}")
    return "\n".join(rows)


def plot_heat_map(cells: list[Cell], path: Path) -> None:
    """Mechanisms x strategies; colour = gain / CI half-width (beyond +-1 the CI excludes 0), text = gain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mechs = list(dict.fromkeys(c.mechanism for c in cells))
    strats = list(dict.fromkeys(c.strategy for c in cells))
    z = np.full((len(mechs), len(strats)), np.nan)
    fig, ax = plt.subplots(figsize=(1.3 * len(strats) + 3, 0.6 * len(mechs) + 1.5))
    for c in cells:
        v = c.verdict
        i, j = mechs.index(c.mechanism), strats.index(c.strategy)
        half = max((v.ci_high - v.ci_low) / 2, 1e-12)
        z[i, j] = np.clip(v.gain / half, -3, 3)
        ax.text(j, i, f"{v.gain:+.3g}", ha="center", va="center", fontsize=7,
                color="white" if abs(z[i, j]) > 2 else "black")  # legible on the saturated cells
    im = ax.imshow(z, cmap="RdBu_r", vmin=-3, vmax=3, aspect="auto")
    ax.set_xticks(range(len(strats)), strats, rotation=35, ha="right")
    ax.set_yticks(range(len(mechs)), mechs)
    fig.colorbar(im, ax=ax, label="gain / CI half-width (red: profitable, blue: loses)")
    ax.set_title("Deviator's per-round gain over its truthful twin")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_multipliers(cells: list[Cell], path: Path) -> None:
    """Learned multiplier (or exaggeration factor) over the run, averaged over seeds, per mechanism."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learned = [c for c in cells if c.verdict.trace and c.strategy in (*LEARNERS, "alpha-learner")]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for c in learned:
        t = np.linspace(0, 1, len(c.verdict.trace))
        ax.plot(t, c.verdict.trace, label=f"{c.mechanism}: {c.strategy}", lw=1.2)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("fraction of the run")
    ax.set_ylabel("preferred multiplier (1 = truthful)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def curves(size: dict[str, int]) -> list[Curve]:
    """Provider-0's exact expected-profit curve over shading multipliers, per reverse mechanism."""
    return [profit_curve(SCENARIO, mechanism_sets(m), seeds=size["curve_seeds"], warmup=CURVE_WARMUP,
                         samples=size["curve_samples"]) for _, m in MARKET_MECHANISMS]


@dataclass(frozen=True, slots=True)
class UserRow:
    """One mechanism under the all-truthful and the all-learner profile (same seeds): the user's payment per
    served query and utility per round, the providers' profit per round; diff_* are learners minus truthful,
    with bootstrap 95% CIs over seeds; pay_minus_rosa: the payment per served query minus ROSA's, both with
    learners, paired by seed (None for ROSA itself)."""

    mechanism: str
    pay_truthful: float
    pay_learners: float
    pay_diff: tuple[float, float, float]
    user_diff: tuple[float, float, float]
    providers_diff: tuple[float, float, float]
    seeds: int
    rounds: int
    pay_minus_rosa: tuple[float, float, float] | None = None


def _per_served(r: RunResult) -> float:
    return r.spend / max(r.served, 1)


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    return (float(np.mean(values)), *bootstrap_ci(values))


def user_view(size: dict[str, int], workers: int) -> list[UserRow]:
    """Every provider truthful vs every provider a MARKET_LEARNER, per reverse mechanism, seeds 0..seeds-1."""
    seeds, rounds = size["seeds"], size["rounds"]
    tasks = [("fast", SCENARIO, tuple(mechanism_sets(m) + ([f"strategies.default={MARKET_LEARNER}"] if learn else [])),
              seed, rounds, None)
             for _, m in MARKET_MECHANISMS for seed in range(seeds) for learn in (False, True)]
    results = run_tasks(tasks, workers)
    rows, rosa = [], results[1:2 * seeds:2]  # MARKET_MECHANISMS[0] is ROSA: its learner runs
    for k, (label, _) in enumerate(MARKET_MECHANISMS):
        block = results[2 * seeds * k: 2 * seeds * (k + 1)]
        truth, learn = block[0::2], block[1::2]
        rows.append(UserRow(
            label,
            float(np.mean([_per_served(r) for r in truth])),
            float(np.mean([_per_served(r) for r in learn])),
            _mean_ci([_per_served(b) - _per_served(a) for a, b in zip(truth, learn)]),
            _mean_ci([(b.user - a.user) / rounds for a, b in zip(truth, learn)]),
            _mean_ci([(sum(b.utilities.values()) - sum(a.utilities.values())) / rounds for a, b in zip(truth, learn)]),
            seeds, rounds,
            _mean_ci([_per_served(b) - _per_served(a) for a, b in zip(rosa, learn)]) if k else None))
    return rows


def write_user_csv(rows: list[UserRow], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mechanism", "pay_per_served_truthful", "pay_per_served_learners", "pay_diff", "pay_diff_low",
                    "pay_diff_high", "user_diff", "user_diff_low", "user_diff_high", "providers_diff",
                    "providers_diff_low", "providers_diff_high", "pay_minus_rosa", "pay_minus_rosa_low",
                    "pay_minus_rosa_high", "learner", "seeds", "rounds"])
        for r in rows:
            vs = [f"{v:.6f}" for v in r.pay_minus_rosa] if r.pay_minus_rosa else ["", "", ""]
            w.writerow([r.mechanism, f"{r.pay_truthful:.6f}", f"{r.pay_learners:.6f}",
                        *(f"{v:.6f}" for v in (*r.pay_diff, *r.user_diff, *r.providers_diff)),
                        *vs, MARKET_LEARNER, r.seeds, r.rounds])


def format_user_view(rows: list[UserRow]) -> str:
    out = [f"The user's view: every provider truthful vs every provider a {MARKET_LEARNER} learner "
           f"({rows[0].seeds} seeds x {rows[0].rounds} rounds)",
           f"{'mechanism':<18}{'pay/served truthful':>20}{'learners':>10}  {'change [95% CI]':<30}"
           f"{'user utility/round change':<32}"]
    for r in rows:
        pay = f"{r.pay_diff[0]:+.4f} [{r.pay_diff[1]:+.4f}, {r.pay_diff[2]:+.4f}]"
        user = f"{r.user_diff[0]:+.4f} [{r.user_diff[1]:+.4f}, {r.user_diff[2]:+.4f}]"
        out.append(f"{r.mechanism:<18}{r.pay_truthful:>20.4f}{r.pay_learners:>10.4f}  {pay:<30}{user:<32}")
    for r in rows[1:]:
        d, lo, hi = r.pay_minus_rosa
        out.append(f"with learners, {r.mechanism} minus ROSA per served query: {d:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    return "\n".join(out)


def run(out_dir: Path, quick: bool = False, workers: int | None = None, ad_sets: tuple[str, ...] = (),
        attackers: bool = False) -> dict[str, Any]:
    """Compute the table; write verdicts.csv, verdicts.png, multipliers.png, egta.csv, users.csv, curve.csv and
    curve.png into out_dir; with ``attackers``, the second generation's rows too (attackers.csv: utility losses,
    search and PPO attackers, ``market.lab.verdicts_attackers``)."""
    from market.lab import egta

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = SIZES["quick" if quick else "full"]
    workers = workers or os.cpu_count() or 1
    wall = time.perf_counter()
    cells = table(size, workers, tuple(ad_sets))
    write_csv(cells, out_dir / "verdicts.csv")
    plot_heat_map(cells, out_dir / "verdicts.png")
    plot_multipliers(cells, out_dir / "multipliers.png")
    games = egta.verdict_games(quick, workers)
    egta.write_csv(games, out_dir / "egta.csv")
    users = user_view(size, workers)
    write_user_csv(users, out_dir / "users.csv")
    profit_curves = curves(size)
    write_curves(profit_curves, out_dir)
    second: list[dict[str, Any]] = []
    if attackers:
        from market.lab import verdicts_attackers

        second = verdicts_attackers.attacker_rows(quick, workers)
        verdicts_attackers.write_csv(second, out_dir / "attackers.csv")
    wall = time.perf_counter() - wall
    print(format_table(cells))
    print()
    print(egta.format_games(games))
    print()
    print(format_user_view(users))
    for c in profit_curves:
        print()
        print(format_curve(c))
    if attackers:
        from market.lab import verdicts_attackers

        print()
        print(verdicts_attackers.format_rows(second))
    return {"cells": len(cells), "attacker_rows": len(second), "sizes": size, "wall_seconds": round(wall, 1),
            "workers": workers,
            "profitable": sum(c.verdict.verdict == "profitable" for c in cells),
            "best_multiplier": {c.mechanism: c.best for c in profit_curves}}
