"""``llm-market judge MECHANISM``: one command that puts a reverse-auction design through everything we have.

A verdict card, one row per check, each with its confidence interval (where it measures a gain), what the
attacker could see and the command that recomputes it:

1. the contract (``check_reverse_mechanism``): the auctioneer's rules for select/update/state;
2. the truthfulness kit (``search_truthful_in_expectation``): an adaptive search for a profitable misreport;
3. the best-response utility loss: exact for mechanisms with a per-round threshold (``market.lab.best_response``),
   otherwise sampled here (``sampled_utility_loss``): the deviator's expected utility on a grid of bids in frozen
   rounds, over the mechanism's coins with common random numbers, cross-fitted (the best bid is chosen on one
   half of the coins and valued on the other) so that the noise of a maximum cannot fake a gain;
4. the shaders of the first verdict table (fixed shading and learners), each against its truthful twin;
5. the search attacker and 6. the PPO attacker (the [rl] extra), trained on seeds 0..N-1 and judged on held-out
   seeds.

The card is judge.md, judge.html and judge.json in the output directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from market.lab.deviation import bootstrap_ci, deviate, deviator_market
from market.runtime.config import ConfigError, resolve

SHADERS = ("shade", "underbid", "hedge", "ucb")
# The shaders get the verdict table's seeds and rounds: ROSA's payments are heavy-tailed (a bonus with
# probability mu), and a handful of seeds can miss the rare rounds that make shading unprofitable.
SIZES = {
    "quick": {"examples": 25, "seeds": 30, "rounds": 300, "loss_seeds": 4, "loss_rounds": 60, "warmup": 100,
              "train_seeds": 3, "test_seeds": 8, "attack_rounds": 200, "trials": 10, "ppo_steps": 6_144},
    "full": {"examples": 100, "seeds": 40, "rounds": 1000, "loss_seeds": 8, "loss_rounds": 200, "warmup": 300,
             "train_seeds": 8, "test_seeds": 20, "attack_rounds": 400, "trials": 40, "ppo_steps": 50_000},
}
GRID = 33  # bids on the sampled best response's grid (plus the deviator's cost)
COINS = 8  # coin streams per half of the sampled best response (one for a deterministic mechanism)


@dataclass(slots=True)
class Row:
    """One line of the card. gain/ci: the deviator's per-round gain (or utility loss) with its 95% CI, None for a
    pass/fail check; verdict: what it says; sees: what the attacker could see; command: what recomputes it."""

    check: str
    verdict: str
    gain: float | None = None
    ci: tuple[float, float] | None = None
    sees: str = ""
    command: str = ""
    detail: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# -- the sampled best response, for any mechanism ---------------------------------------------------------------


def _outcome_utility(mech: Any, x: np.ndarray, bids: np.ndarray, present: np.ndarray, i: int, cost: float,
                     rng: np.random.Generator) -> float:
    out = mech.select(x, bids, rng, present)
    return float(out.payments[i]) - cost * float(out.winner == i)


def sampled_round_losses(scenario: str, overrides: Sequence[str], seed: int, *, warmup: int, rounds: int,
                         deviator: str = "provider-0", grid: int = GRID, coins: int = COINS) -> np.ndarray:
    """(rounds,) cross-fitted utility loss of each frozen round: the scenario is played ``warmup`` rounds with the
    deviator truthful, the mechanism then frozen (select never changes it); in each drawn round the deviator's
    expected utility of every bid on a grid of the bid range (and of its cost) is averaged over ``coins`` coin
    streams per half, the same streams for every bid. A half's best bid is valued on the other half; the round's
    loss is the mean of the two, minus the truthful bid's value on the same halves."""
    market, i = deviator_market(scenario, [*overrides, f"strategies.overrides.{deviator}=truthful"], seed,
                                warmup + rounds, deviator)
    market.warm(warmup)
    mech, lo, hi = market.mechanism, float(market.bid_range.floor), float(market.bid_range.cap)
    losses = np.empty(rounds)
    streams = coins
    for s in range(rounds):
        x, costs, bids = market.draw()
        present = market.bid_range.accepted(bids)
        present[i] = True
        cost = float(costs[i])
        cands = np.unique(np.append(np.linspace(lo, hi, grid), cost))
        truth = int(np.searchsorted(cands, cost))
        if s == 0:  # a mechanism whose outcome never depends on its coins needs one stream
            probe = bids.copy()
            probe[i] = cands[len(cands) // 2]
            outs = {(o.winner, tuple(np.round(o.payments, 12)))
                    for o in (mech.select(x, probe, np.random.default_rng([seed, k]), present) for k in range(4))}
            streams = 1 if len(outs) == 1 else coins
        u = np.empty((2, len(cands)))
        for half in range(2):
            for j, b in enumerate(cands):
                trial = bids.copy()
                trial[i] = b
                u[half, j] = np.mean([_outcome_utility(mech, x, trial, present, i, cost,
                                                       np.random.default_rng([seed, s, half, k]))
                                      for k in range(streams)])
        if streams == 1:
            losses[s] = u[0].max() - u[0, truth]
        else:
            a, b = int(np.argmax(u[0])), int(np.argmax(u[1]))
            losses[s] = 0.5 * ((u[1, a] - u[1, truth]) + (u[0, b] - u[0, truth]))
    return losses


# -- the card's rows --------------------------------------------------------------------------------------------


def _timed(fn: Callable[[], Row]) -> Row:
    start = time.perf_counter()
    row = fn()
    row.seconds = round(time.perf_counter() - start, 1)
    return row


def _sets_command(sets: Sequence[str]) -> str:
    return " ".join(f"--set {s}" for s in sets)


def contract_row(make: Callable[[int, int], Any], name: str) -> Row:
    from market.conformance.api import ConformanceError, check_reverse_mechanism

    try:
        check_reverse_mechanism(make)
    except Exception as err:  # a user's mechanism may fail the contract by raising anything: that is the verdict
        what = str(err).splitlines()[0] if str(err) else ""
        if not isinstance(err, ConformanceError):
            what = f"{type(err).__name__}: {what}"
        return Row("contract (check_reverse_mechanism)", "fails", detail=what,
                   command=f"python -c \"from market.conformance import check_reverse_mechanism; ...({name})\"")
    return Row("contract (check_reverse_mechanism)", "passes",
               detail="select/update/state as the auctioneer expects, abstainers never win, the winner paid its bid")


def kit_row(make: Callable[[int, int], Any], examples: int) -> Row:
    from market.conformance.truthfulness import TruthfulnessViolation, search_truthful_in_expectation

    sees = "everything: the others' bids, the history, its own cost (a misreport searched per instance)"
    try:
        report = search_truthful_in_expectation(make, examples=examples)
    except TruthfulnessViolation as err:
        return Row("truthfulness kit (adaptive misreport search)", "profitable misreport found", sees=sees,
                   detail=" ".join(str(err).split())[:600])
    return Row("truthfulness kit (adaptive misreport search)", "no profitable misreport", sees=sees,
               gain=report.best_gain,
               detail=f"{report.examples} instances ({report.deterministic} deterministic), methods "
                      f"{', '.join(report.methods)}; largest gain of a misreport {report.best_gain:+.3g}")


def loss_row(scenario: str, sets: Sequence[str], size: dict[str, int], workers: int) -> Row:
    """Exact utility loss when the mechanism has a per-round threshold, else the sampled one."""
    from market.lab.best_response import utility_loss

    seeds, rounds, warmup = size["loss_seeds"], size["loss_rounds"], size["warmup"]
    try:
        losses = utility_loss(scenario, seeds=seeds, rounds=rounds, warmup=warmup, overrides=list(sets),
                              families=(), workers=workers)
    except ConfigError as err:
        if "per-round threshold" not in str(err):
            raise
    else:
        free = next(x for x in losses if x.kind == "free bid")
        return Row("best-response utility loss (exact)", free.verdict, free.loss, (free.ci_low, free.ci_high),
                   sees="an oracle: each round's winning threshold (the others' bids and coins)",
                   command=f"llm-market best-response {scenario} --seeds {seeds} --rounds {rounds} "
                           f"--warmup {warmup} {_sets_command(sets)} --out DIR")
    per_seed = [float(sampled_round_losses(scenario, sets, seed, warmup=warmup, rounds=rounds).mean())
                for seed in range(seeds)]
    low, high = bootstrap_ci(per_seed)
    verdict = "profitable deviation" if low > 1e-9 else "no profitable deviation"
    return Row("best-response utility loss (sampled, cross-fitted)", verdict, float(np.mean(per_seed)), (low, high),
               sees="an oracle: the others' bids each round (its expected utility over the mechanism's coins)",
               detail=f"{seeds} seeds x {rounds} frozen rounds after {warmup}; a grid of {GRID} bids and the cost, "
                      f"{COINS} coin streams per half",
               command=f"python -c \"from market.lab.judge import sampled_round_losses as f; "
                       f"print([f({scenario!r}, {list(sets)!r}, s, warmup={warmup}, rounds={rounds}).mean() "
                       f"for s in range({seeds})])\"")


def shader_rows(scenario: str, sets: Sequence[str], size: dict[str, int], workers: int) -> list[Row]:
    rows = []
    for strategy in SHADERS:
        def one(strategy: str = strategy) -> Row:
            v = deviate(scenario, strategy, seeds=size["seeds"], rounds=size["rounds"], overrides=list(sets),
                        workers=workers)
            sees = ("own cost (a fixed multiplier)" if strategy in ("shade", "underbid")
                    else "own cost and its own past profits (learns a multiplier)")
            return Row(f"shader: {strategy}", v.verdict, v.gain, (v.ci_low, v.ci_high), sees=sees,
                       command=f"llm-market deviate {scenario} --strategy {strategy} --seeds {size['seeds']} "
                               f"--rounds {size['rounds']} {_sets_command(sets)}")
        rows.append(_timed(one))
    return rows


def attacker_row(scenario: str, sets: Sequence[str], method: str, size: dict[str, int], workers: int) -> Row:
    from market.lab.attack import run_attack

    budget = size["trials"] if method == "search" else size["ppo_steps"]
    result = run_attack(scenario, method, overrides=list(sets), train_seeds=size["train_seeds"],
                        test_seeds=size["test_seeds"], budget=budget, rounds=size["attack_rounds"], workers=workers)
    held, seeds = result["held_out"], result["held_out_seeds"]
    return Row(f"{method} attacker (held-out seeds {seeds[0]}..{seeds[-1]})", held["verdict"], held["gain"],
               (held["ci_low"], held["ci_high"]), sees=result["attacker"]["sees"],
               detail=f"trained on seeds 0..{size['train_seeds'] - 1}, train gain {result['train_gain']:+.5f}",
               command=f"llm-market attack {scenario} --method {method} --train-seeds {size['train_seeds']} "
                       f"--test-seeds {size['test_seeds']} --budget {budget} --rounds {size['attack_rounds']} "
                       f"{_sets_command(sets)} --out DIR")


def mechanism_factory(scenario: str, sets: Sequence[str]) -> Callable[[int, int], Any]:
    """``make(n, d)`` for the conformance checks: the configured mechanism with the scenario's parameters (its
    priors uniform on the scenario's cost range)."""
    from market.core.mechanisms.priors import UniformCost
    from market.core.mechanisms.reverse import MECHANISMS

    config, _ = resolve(scenario, list(sets))
    mech = config["mechanism"]
    params = dict(mech.get("params", {}))

    def make(n: int, d: int) -> Any:
        return MECHANISMS.build(mech["name"], n=n, d=d, priors=UniformCost(), **params)
    return make


def judge(mechanism: str, *, scenario: str = "quickstart", overrides: Sequence[str] = (), quick: bool = False,
          workers: int = 1, methods: Sequence[str] = ("search", "ppo"),
          progress: Callable[[str], None] | None = None) -> list[Row]:
    """Every row of the card for ``mechanism`` (a registered name or 'module:attr') in ``scenario``."""
    from market.lab.verdicts_attackers import has_rl

    size = SIZES["quick" if quick else "full"]
    sets = [*overrides, f"mechanism.name={mechanism}"]
    config, market = resolve(scenario, sets)
    if market.instance is None:
        raise ConfigError(f"judge: scenario {scenario!r} ({market.name} market) is no procurement market; "
                          "judge puts reverse auctions through their checks (expected e.g. quickstart)")
    say = progress or (lambda what: None)
    make = mechanism_factory(scenario, sets)
    rows: list[Row] = []
    say("contract")
    rows.append(_timed(lambda: contract_row(make, mechanism)))
    say("truthfulness kit")
    rows.append(_timed(lambda: kit_row(make, size["examples"])))
    say("utility loss")
    rows.append(_timed(lambda: loss_row(scenario, sets, size, workers)))
    say("shaders")
    rows += shader_rows(scenario, sets, size, workers)
    for method in methods:
        if not has_rl():
            rows.append(Row(f"{method} attacker", "not run: needs the [rl] extra (pip install 'llm-market-sim[rl]')"))
            continue
        say(f"{method} attacker")
        rows.append(_timed(lambda method=method: attacker_row(scenario, sets, method, size, workers)))
    return rows


def _ci(row: Row) -> str:
    return "" if row.ci is None else f"[{row.ci[0]:+.5f}, {row.ci[1]:+.5f}]"


def _gain(row: Row) -> str:
    return "" if row.gain is None else f"{row.gain:+.5f}"


def markdown(mechanism: str, scenario: str, rows: Sequence[Row]) -> str:
    out = [f"# Verdict card: {mechanism}", "", f"Scenario `{scenario}`. Gains and losses are per round, for the "
           "deviator, against its truthful twin (common random numbers), with 95% bootstrap CIs over seeds.", "",
           "| check | verdict | gain | 95% CI | what the attacker saw | command |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.check} | {r.verdict} | {_gain(r)} | {_ci(r)} | {r.sees} | `{r.command}` |"
                   if r.command else f"| {r.check} | {r.verdict} | {_gain(r)} | {_ci(r)} | {r.sees} | |")
    notes = [f"- {r.check}: {r.detail}" for r in rows if r.detail]
    return "\n".join(out + ([""] + notes if notes else [])) + "\n"


def write_card(mechanism: str, scenario: str, rows: Sequence[Row], out_dir: Path) -> None:
    """judge.md, judge.json and judge.html."""
    from market.lab.pages.page import Page

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "judge.md").write_text(markdown(mechanism, scenario, rows))
    (out_dir / "judge.json").write_text(json.dumps(
        {"mechanism": mechanism, "scenario": scenario,
         "rows": [{"check": r.check, "verdict": r.verdict, "gain": r.gain, "ci": list(r.ci) if r.ci else None,
                   "sees": r.sees, "command": r.command, "detail": r.detail, "seconds": r.seconds} for r in rows]},
        indent=2) + "\n")
    page = Page(f"Verdict card: {mechanism}", f"scenario {scenario}")
    page.section("Checks and attackers", "Per-round gains and losses of the deviator against its truthful twin, "
                 "with 95% bootstrap CIs over seeds; each row names what its attacker could see and the command "
                 "that recomputes it.")
    page.table(["check", "verdict", "gain", "95% CI", "what the attacker saw", "command"],
               [[r.check, r.verdict, _gain(r), _ci(r), r.sees, r.command] for r in rows], table_id="card")
    measured = [r for r in rows if r.gain is not None and r.ci is not None]
    if measured:
        import plotly.graph_objects as go

        gains = np.array([r.gain for r in measured], dtype=float)
        lows = np.array([r.ci[0] for r in measured if r.ci], dtype=float)
        highs = np.array([r.ci[1] for r in measured if r.ci], dtype=float)
        fig = go.Figure(go.Bar(
            x=gains, y=[r.check for r in measured], orientation="h",
            error_x={"type": "data", "symmetric": False, "array": highs - gains, "arrayminus": gains - lows},
            marker_color=["#c0392b" if low > 1e-9 else "#7f8c8d" for low in lows]))
        fig.update_layout(xaxis_title="deviator's gain per round (95% CI)", height=120 + 40 * len(measured),
                          margin={"l": 330})
        page.figure(fig, "Red: a CI above 0 (the attacker gains).")
    page.write(out_dir / "judge.html")


def format_card(rows: Sequence[Row]) -> str:
    out = [f"{'check':<52} {'gain':>9}  {'95% CI':<22} verdict"]
    for r in rows:
        out.append(f"{r.check:<52} {_gain(r):>9}  {_ci(r):<22} {r.verdict}")
    return "\n".join(out)

