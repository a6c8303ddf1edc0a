"""A provider's exact expected profit as a function of its shading multiplier: the best multiplier a learner
could find, without the learner's noise.

After a warm-up of the scenario (as the fast engine plays it), the mechanism's state is frozen and one
provider bids ``m x cost`` against the others' bids; for each drawn round (context, costs, the others' coins)
its profit is computed in closed form over its own coins from its threshold tau, the largest bid that still
wins given everything else (``rule.threshold``):

- ROSA: expected allocation and payment of a bid z against tau (``threshold_expectations``); coins drawn
  after the bids, so truthful bidding maximises this on every drawn round;
- critical-bid mechanisms (Myerson, LinUCB-critical): (tau - c) 1{z <= tau};
- pay-as-bid mechanisms (pay-as-bid, first-price UCB): (z - c) 1{z <= tau}.

Every multiplier sees the same drawn rounds (common random numbers), so differences between multipliers
carry no sampling noise from the rounds themselves beyond their spread across rounds.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from market.core.mechanisms.baselines import CriticalBid, PayAsBid
from market.core.mechanisms.leaky import LeakyROSA
from market.core.mechanisms.rosa import ROSA, draw_coins, resample, threshold_expectations
from market.lab.deviation import deviator_market
from market.runtime.config import ConfigError

DEFAULT_MULTIPLIERS = (0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 1.7, 2.0)


@dataclass(frozen=True, slots=True)
class Curve:
    """Mean per-round profit for each multiplier, and the paired difference to truthful bidding (m = 1)
    with its normal 95% CI over the drawn rounds. best: the multiplier with the highest mean profit."""

    mechanism: str
    multipliers: tuple[float, ...]
    profit: tuple[float, ...]
    gain: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    samples: int
    warmup: int
    seeds: int

    @property
    def best(self) -> float:
        return self.multipliers[int(np.argmax(self.profit))]


def payment_kind(mechanism: object, label: str | None = None) -> str:
    """'rosa', 'critical' or 'pay-as-bid': how a bid turns into a payment; ConfigError (naming ``label``, the
    configured name, when given) for the others."""
    if isinstance(mechanism, ROSA) and not isinstance(mechanism, LeakyROSA):
        return "rosa"
    if isinstance(mechanism, CriticalBid):
        return "critical"
    if isinstance(mechanism, PayAsBid):
        return "pay-as-bid"
    name = label or getattr(mechanism, "name", type(mechanism).__name__)
    raise ConfigError(f"mechanism.name: {name!r} has no per-round threshold to compute profits from; the curve "
                      "supports ROSA (not the leaky variant), critical-bid and pay-as-bid mechanisms")


def round_profits(kind: str, bids: np.ndarray, cost: float, tau: float, mu: float | None, cap: float) -> np.ndarray:
    """Expected profit over the provider's own coins of each bid in ``bids`` (k,), given its threshold tau."""
    if kind == "rosa":
        alloc, pay = threshold_expectations(bids, np.full(bids.shape, tau), mu, cap)
        return pay - cost * alloc
    wins = bids <= tau
    if kind == "critical":
        return np.where(wins, tau - cost, 0.0)
    return np.where(wins, bids - cost, 0.0)


def profit_samples(
    scenario: str,
    overrides: Sequence[str],
    seed: int,
    *,
    warmup: int,
    samples: int,
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
    deviator: str = "provider-0",
) -> tuple[str, np.ndarray]:
    """(mechanism name, (samples, k) expected profits): the scenario played for ``warmup`` rounds, then
    ``samples`` frozen rounds in which ``deviator`` bids multiplier x cost (clipped into the bid range)."""
    market, i = deviator_market(scenario, overrides, seed, warmup + samples, deviator)
    kind = payment_kind(market.mechanism, market.config["mechanism"]["name"])
    market.warm(warmup)
    mech = market.mechanism
    rule, cap = mech.rule, float(mech.cost_cap)
    mu = getattr(mech, "mu", None)
    m = np.asarray(multipliers, dtype=float)
    out = np.empty((samples, m.size))
    rng = market.mech_rng
    for s in range(samples):
        x, costs, bids = market.draw()
        present = market.bid_range.accepted(bids)
        present[i] = True
        seen = resample(bids, mu, cap, draw_coins(rng, bids.size))[0] if kind == "rosa" else bids
        tau = rule.threshold(x, np.where(present, seen, cap), i, present)
        z = np.clip(m * costs[i], market.bid_range.floor, market.bid_range.cap)
        out[s] = round_profits(kind, z, float(costs[i]), tau, mu, cap)
    return mech.name, out


def profit_curve(
    scenario: str,
    overrides: Sequence[str] = (),
    *,
    seeds: int = 4,
    warmup: int = 1000,
    samples: int = 5000,
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
    deviator: str = "provider-0",
) -> Curve:
    """The deviator's expected per-round profit curve over ``multipliers``, pooled over seeds 0..seeds-1."""
    m = tuple(float(v) for v in multipliers)
    if not m or not all(np.isfinite(v) and v > 0 for v in m):
        raise ConfigError(f"--multipliers: got {list(multipliers)!r}, expected positive numbers")
    if 1.0 not in m:
        m = tuple(sorted((*m, 1.0)))
    if seeds < 1 or samples < 2 or warmup < 0:
        raise ConfigError(f"seeds = {seeds}, samples = {samples}, warmup = {warmup}: expected seeds >= 1, "
                          "samples >= 2, warmup >= 0")
    runs = [profit_samples(scenario, overrides, s, warmup=warmup, samples=samples, multipliers=m, deviator=deviator)
            for s in range(seeds)]
    profits = np.concatenate([p for _, p in runs])
    diff = profits - profits[:, [m.index(1.0)]]
    mean, se = diff.mean(axis=0), diff.std(axis=0, ddof=1) / np.sqrt(diff.shape[0])
    return Curve(runs[0][0], m, tuple(profits.mean(axis=0).tolist()), tuple(mean.tolist()),
                 tuple((mean - 1.96 * se).tolist()), tuple((mean + 1.96 * se).tolist()), samples, warmup, seeds)


def format_curve(curve: Curve) -> str:
    seeds = f"{curve.seeds} seed{'s' if curve.seeds != 1 else ''}"
    rows = [f"{curve.mechanism}: expected profit per round by multiplier ({seeds} x {curve.samples} "
            f"rounds after {curve.warmup} warm-up rounds)",
            f"{'multiplier':>10}  {'profit':>9}  {'vs truthful':>11}  {'95% CI':<22}"]
    for k, m in enumerate(curve.multipliers):
        ci = f"[{curve.ci_low[k]:+.5f}, {curve.ci_high[k]:+.5f}]"
        mark = "  <- best" if m == curve.best else ""
        rows.append(f"{m:>10.2f}  {curve.profit[k]:>9.5f}  {curve.gain[k]:>+11.5f}  {ci:<22}{mark}")
    return "\n".join(rows)


def write_curves(curves: Sequence[Curve], out_dir: Path) -> None:
    """curve.csv (one row per mechanism and multiplier) and curve.png (profit vs multiplier)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "curve.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mechanism", "multiplier", "profit", "gain", "ci_low", "ci_high", "best", "seeds", "samples",
                    "warmup"])
        for c in curves:
            for k, m in enumerate(c.multipliers):
                w.writerow([c.mechanism, m, f"{c.profit[k]:.6f}", f"{c.gain[k]:.6f}", f"{c.ci_low[k]:.6f}",
                            f"{c.ci_high[k]:.6f}", int(m == c.best), c.seeds, c.samples, c.warmup])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for c in curves:
        gain = np.asarray(c.gain)
        line, = ax.plot(c.multipliers, gain, marker="o", ms=3, label=f"{c.mechanism} (best {c.best:g})")
        ax.fill_between(c.multipliers, c.ci_low, c.ci_high, color=line.get_color(), alpha=0.2)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("shading multiplier (bid / cost)")
    ax.set_ylabel("expected profit per round minus truthful")
    ax.set_title("Where a learner's best multiplier lies")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "curve.png", dpi=120)
    plt.close(fig)
