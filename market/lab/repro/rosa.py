"""Reproduction experiment for ROSA + TRCM-UCB (Patra et al., AAMAS 2026).

It follows the protocol of the ROSA spec, section 6.

Per-round reverse auctions on floor 1 (no bus): linear qualities, U[0, 1] costs bid truthfully, Gaussian and
exponential rewards. It measures regret against T and mu, payment spread, a provider's expected utility
against its bid, and how often resampling changes the winner.
"""

from __future__ import annotations

import csv
import pathlib
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from market.core.mechanisms.priors import UniformCost  # noqa: E402
from market.core.mechanisms.rosa import ROSA, draw_coins, resample, threshold_expectations  # noqa: E402
from market.core.mechanisms.rules import TRCMUCB  # noqa: E402
from market.core.quality import LinearQuality  # noqa: E402
from market.core.seeding import derive_rng  # noqa: E402

CAP = 1.0


@dataclass(frozen=True, slots=True)
class Setup:
    """Environment and learner constants of one experiment."""

    n: int = 5
    d: int = 5
    value_scale: float = 2.0  # kappa: values theta . x in [0, 2] against virtual costs 2c in [0, 2]
    noise_scale: float = 0.1
    alpha: float = 0.5
    surplus: str = "virtual"  # "virtual": Myerson benchmark phi(c) = 2c (user utility); "welfare": c


@dataclass(frozen=True, slots=True)
class Run:
    """One simulated run: per-round virtual-surplus regret, total payment and whether resampling mattered."""

    regret: np.ndarray  # (T,)
    paid: np.ndarray  # (T,)
    changed: np.ndarray  # (T,) bool: the winner differs from the winner on the unresampled bids
    modified: np.ndarray  # (T,) bool: some bid was resampled


def instance(setup: Setup, seed: int) -> np.ndarray:
    """theta (n, d): U[0,1]^d rows with unit L1 norm, times value_scale (spec 6)."""
    return LinearQuality.draw(derive_rng(seed, 0), setup.n, setup.d, setup.value_scale).theta


def simulate(setup: Setup, horizon: int, mu: float, noise: str, seed: int) -> Run:
    """Run ROSA(TRCM-UCB) for horizon rounds with truthful bids c_{i,t} ~ U[0, 1]."""
    theta = instance(setup, seed)
    quality = LinearQuality(theta, noise=noise, scale=setup.noise_scale)
    env = derive_rng(seed, 1)
    contexts = env.random((horizon, setup.d))
    costs = UniformCost(0.0, CAP).sample(env, (horizon, setup.n))
    rewards = quality.table(contexts, env)
    # theta_i . x_t - phi(c_{i,t}): the regret benchmark matches what the rule ranks by
    surplus = contexts @ theta.T - (2.0 * costs if setup.surplus == "virtual" else costs)
    best = np.maximum(surplus.max(axis=1), 0.0)

    rule = TRCMUCB(setup.n, setup.d, alpha=setup.alpha, reserve=0.0, surplus=setup.surplus)
    mech = ROSA(rule, mu, CAP, 0.0)
    coins = derive_rng(seed, 2)
    got = np.zeros(horizon)
    paid = np.zeros(horizon)
    changed = np.zeros(horizon, dtype=bool)
    modified = np.zeros(horizon, dtype=bool)
    for t in range(horizon):
        x, bids = contexts[t], costs[t]
        out = mech.select(x, bids, coins)
        w = out.winner
        if out.modified.any():
            modified[t] = True
            changed[t] = rule.allocate(x, bids, None) != w
        if w is not None:
            got[t] = surplus[t, w]
            paid[t] = out.payments[w]
        mech.update(x, out, float(rewards[t, w]) if w is not None else 0.0)
    return Run(best - got, paid, changed, modified)


def fit_slope(horizons: np.ndarray, regret: np.ndarray) -> float:
    """Least-squares slope of log regret against log T."""
    return float(np.polyfit(np.log(horizons), np.log(np.maximum(regret, 1e-12)), 1)[0])


def utility_against_bid(
    setup: Setup, mu: float, costs: tuple[float, ...], bids: np.ndarray, seed: int, history: int, draws: int
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Provider 0's expected utility per bid, by the exact threshold method (spec T17).

    After `history` learning rounds, it samples contexts, the others' costs and their ROSA coins; its
    own resampling is integrated in closed form. Also returns the pay-as-bid utility on the same draws.
    """
    theta = instance(setup, seed)
    env = derive_rng(seed, 3)
    rule = TRCMUCB(setup.n, setup.d, alpha=setup.alpha, reserve=0.0)
    quality = LinearQuality(theta, "gaussian", setup.noise_scale)
    for _ in range(history):
        x = env.random(setup.d)
        w = rule.allocate(x, env.random(setup.n), None)
        if w is not None:
            rule.update(x, w, None, quality.sample(w, x, env))
    taus, plain = np.empty(draws), np.empty(draws)
    for m in range(draws):
        x, others = env.random(setup.d), env.random(setup.n)
        chi, _ = resample(others, mu, CAP, draw_coins(env, setup.n))
        taus[m] = rule.threshold(x, chi, 0)
        plain[m] = rule.threshold(x, others, 0)
    out = {}
    for c in costs:
        abar, pay = threshold_expectations(bids[:, None], taus[None, :], mu, CAP)
        rosa_u = (pay - c * abar).mean(axis=1)
        first_price = ((bids[:, None] - c) * (bids[:, None] <= plain[None, :])).mean(axis=1)
        out[c] = (rosa_u, first_price)
    return out


def _write(path: pathlib.Path, header: tuple[str, ...], rows: list[tuple]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def run(out_dir: pathlib.Path, quick: bool = False) -> dict:
    """Write the CSV tables and PNG figures into out_dir; return a summary with the fitted slopes."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    setup = Setup()
    horizons = np.array([300, 1000, 3000]) if quick else np.array([1000, 3000, 10_000, 30_000, 100_000])
    seeds = range(2) if quick else range(5)
    fixed_mu = 0.05
    mus = (0.01, 0.05, 0.2) if quick else (0.001, 0.01, 0.05, 0.1, 0.2)
    sweep_horizon = 1500 if quick else 10_000
    noises = ("gaussian", "exponential")

    regret_rows, curves = [], {}
    for noise in noises:
        scaled = np.array([[simulate(setup, int(T), T ** -0.5, noise, s).regret.sum() for T in horizons]
                           for s in seeds])
        fixed = np.array([np.cumsum(simulate(setup, int(horizons[-1]), fixed_mu, noise, s).regret)[horizons - 1]
                          for s in seeds])
        curves[noise] = (scaled.mean(axis=0), fixed.mean(axis=0))
        for s_i, s in enumerate(seeds):
            for j, T in enumerate(horizons):
                regret_rows.append((noise, "T^-1/2", int(T), s, scaled[s_i, j]))
                regret_rows.append((noise, f"{fixed_mu}", int(T), s, fixed[s_i, j]))
    _write(out_dir / "rosa_regret_vs_T.csv", ("noise", "mu", "T", "seed", "regret"), regret_rows)
    slopes = {noise: {"mu=T^-1/2": fit_slope(horizons, c[0]), f"mu={fixed_mu}": fit_slope(horizons, c[1])}
              for noise, c in curves.items()}
    for noise, s in slopes.items():
        print(f"ROSA regret slope ({noise}): " + ", ".join(f"{k}: {v:.3f}" for k, v in s.items()))

    sweep_rows = []
    for mu in mus:
        for s in seeds:
            r = simulate(setup, sweep_horizon, mu, "gaussian", s)
            served = r.paid[r.paid > 0]
            sweep_rows.append((mu, s, r.regret.sum(), r.paid.mean(), r.paid.std(), served.std() if served.size else 0.0,
                               r.changed.mean(), r.modified.mean(), 1 - (1 - mu) ** setup.n))
    _write(out_dir / "rosa_mu_sweep.csv",
           ("mu", "seed", "regret", "payment_mean", "payment_sd", "winner_payment_sd", "changed_fraction",
            "modified_fraction", "bound"),
           sweep_rows)
    sweep = np.array(sweep_rows, dtype=float)
    by_mu = np.array([sweep[sweep[:, 0] == mu].mean(axis=0) for mu in mus])

    bids = np.linspace(0.0, 0.6, 121)
    utility_costs = (0.1, 0.2, 0.3)
    utilities = utility_against_bid(setup, 0.1, utility_costs, bids, seed=0, history=200 if quick else 1000,
                                    draws=2000 if quick else 20_000)
    _write(out_dir / "rosa_utility_vs_bid.csv", ("cost", "bid", "rosa_utility", "pay_as_bid_utility"),
           [(c, b, u[0][k], u[1][k]) for c, u in utilities.items() for k, b in enumerate(bids)])
    best_bids = {c: float(bids[np.argmax(u[0])]) for c, u in utilities.items()}
    pay_as_bid_best = {c: float(bids[np.argmax(u[1])]) for c, u in utilities.items()}

    _plot(out_dir, horizons, curves, slopes, fixed_mu, np.array(mus), by_mu, bids, utilities, setup.n)
    return {
        "slopes": slopes,
        "regret_by_mu": {float(mu): float(row[2]) for mu, row in zip(mus, by_mu)},
        "payment_sd_by_mu": {float(mu): float(row[4]) for mu, row in zip(mus, by_mu)},
        "changed_by_mu": {float(mu): (float(row[6]), float(row[7]), float(row[8])) for mu, row in zip(mus, by_mu)},
        "best_bid_by_cost": best_bids,
        "pay_as_bid_best_bid_by_cost": pay_as_bid_best,
    }


def _plot(out_dir, horizons, curves, slopes, fixed_mu, mus, by_mu, bids, utilities, n) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for noise, (scaled, fixed) in curves.items():
        ax.loglog(horizons, scaled, "o-", label=f"{noise}, mu=T^-1/2 (slope {slopes[noise]['mu=T^-1/2']:.2f})")
        ax.loglog(horizons, fixed, "s--", label=f"{noise}, mu={fixed_mu} (slope {slopes[noise][f'mu={fixed_mu}']:.2f})")
    ax.loglog(horizons, scaled[0] * np.sqrt(horizons / horizons[0]), "k:", label="slope 1/2")
    ax.set(xlabel="T", ylabel="virtual-surplus regret", title="ROSA + TRCM-UCB: regret vs T")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "rosa_regret_vs_T.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].semilogx(mus, by_mu[:, 2], "o-")
    axes[0].set(xlabel="mu", ylabel="regret", title="regret vs mu")
    axes[1].loglog(mus, by_mu[:, 5], "o-", label="sd of winner's payment")
    # anchored at the largest mu: at small mu the rare bonus is seldom drawn, so its sd is least reliable
    axes[1].loglog(mus, by_mu[-1, 5] * np.sqrt(mus[-1] / mus), "k:", label="mu^-1/2")
    axes[1].set(xlabel="mu", ylabel="payment sd", title="payment spread vs mu")
    axes[1].legend(fontsize=7)
    axes[2].semilogx(mus, by_mu[:, 6], "o-", label="rounds whose winner changed")
    axes[2].semilogx(mus, by_mu[:, 7], "s-", label="rounds with a resampled bid")
    axes[2].semilogx(mus, 1 - (1 - mus) ** n, "k:", label="1-(1-mu)^n")
    axes[2].set(xlabel="mu", ylabel="fraction", title="effect of resampling")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "rosa_mu_sweep.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for c, (rosa_u, first_price) in utilities.items():
        line, = ax.plot(bids, rosa_u, label=f"ROSA, cost {c}")
        ax.plot(bids, first_price, "--", color=line.get_color(), label=f"pay-as-bid, cost {c}")
        ax.axvline(c, color=line.get_color(), lw=0.5)
    ax.set(xlabel="bid", ylabel="expected utility", title="provider utility vs bid (mu = 0.1)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "rosa_utility_vs_bid.png", dpi=120)
    plt.close(fig)
