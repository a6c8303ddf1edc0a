"""Exact best responses and utility loss: how much a provider (or advertiser) could gain by bidding anything else.

Reverse auctions. The scenario is played for a warm-up with everyone truthful (the fast engine, ``FastMarket``),
then the mechanism is frozen (no more updates) and R rounds are drawn: context, costs, the others' bids and,
under ROSA, the others' coins. In each drawn round t the deviator's threshold tau_t (the largest bid that still
wins given everything else, ``rule.threshold``) makes its expected utility an exact function of its bid b:

- ROSA: (E[P](b) - c ā(b)) over its own coins, in closed form (``threshold_expectations``, ROSA spec 3.6);
- critical bid (Myerson, LinUCB-critical): (tau - c) 1{b <= tau};
- pay-as-bid (pay-as-bid, first-price UCB): (b - c) 1{b <= tau};
- leaky ROSA (coins public, so known before bidding): with its own coins (modified, U) known, the bid wins iff
  chi(b) <= tau, i.e. b <= tau' (tau' = tau unmodified, c_cap - (c_cap - tau) U^(-1/(1-mu)) modified), and is
  paid b + 1{modified} (c_cap - b) / mu.

Bids lie in the mechanism's range [cost_floor, cost_cap]; a bid equal to tau wins (the supremum of the winning
bids; with ties to the lowest index this is exact for provider-0). The maximum over b is exact: u_t is constant
(critical), increasing (pay-as-bid), decreasing (leaky, modified) or, for ROSA, has derivative
K mu (1 - mu) (c - b) (c_cap - b)^(mu - 2) on b <= tau (K > 0), so it is maximal at b = c when c <= tau and at
b = tau otherwise. Hence the best bid is one of {floor, cap, c, tau, tau'} or any losing bid (utility 0), and
``FrozenRounds.best_free`` takes the best of these (a test checks it against a dense grid).

The utility loss (bnelearn's ex-interim utility loss) of one seed is mean_t [max_b u_t(b) - u_t(c_t)]; a
bootstrap CI over seeds (``deviation.bootstrap_ci``) gives its uncertainty. Every candidate bid sees the same
drawn rounds (common random numbers).

Bidding functions. The same drawn rounds judge the best function in a family (``agents.bidfuncs``'s contract:
multiplier theta[0] c; affine theta[0] + theta[1] c; cluster theta[k] c with k = argmax_j x_j over j < K), bids
clipped into the range: max_theta mean_t u_t(f_theta(c_t, x_t)) - mean_t u_t(c_t), cross-fitted: theta is
fitted on the even rounds and judged on the odd ones, and the reverse (``cross_fitted_gain``), so fitting noise
does not inflate it (it can be below 0). Multipliers (and the
cluster family, which separates into one multiplier per cluster) are maximised over every breakpoint
tau_t / c_t (where a round switches from winning to losing), the midpoints between them and a grid of 801
multipliers in [0, 4]: exact for critical-bid and pay-as-bid mechanisms, whose objective is constant or
increasing between breakpoints (pay-as-bid wins at its breakpoint). The affine family is searched on a
41 x 41 grid, then refined by Nelder-Mead from the best grid point and the best multiplier (a local search: a
lower bound on the family's best). Truthful bidding is in every family, so family losses are >= 0.

MOSAIC (the ad market). On each auction's fixed candidate set, advertiser-0's interim utility q(r')·r - p(r')
(true rewards r, report r') is maximised over the report vector r' in R^M with the exact gradient
(q ∘ ((r - r') - q·(r - r')) / tau with payments, q ∘ (r - q·r) / tau without): projected Adam ascent (400
steps, all auctions and starts at once, the best report evaluated along the way kept) from five starts
(truthful, two perturbations, the exaggerated report 2r and a report pushing the best candidate), reports kept
within [min r - 30 tau, max r + 30 tau] (L-BFGS-B per start was 10x slower for the same optima). MOSAIC's
payments make truthful reporting dominant on every candidate set, so the loss is ~0 with them; without payments
the sup is max_j r_j - q·r (pushing the best reply).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from market.core.mechanisms.leaky import LeakyROSA, public_coins
from market.core.mechanisms.rosa import draw_coins, resample, threshold_expectations
from market.lab.attackers import Attacker, AttackSpec, Progress
from market.lab.curve import payment_kind
from market.lab.deviation import bootstrap_ci, deviator_market
from market.runtime.config import ConfigError, resolve

FAMILIES = ("multiplier", "affine", "cluster")
ROUNDS, AD_ROUNDS = 1000, 50  # the command's default rounds per seed (frozen rounds; ad auctions)
AD_MECHANISMS = ("mosaic", "mosaic-rochet", "mosaic-nopay")
REVERSE_MECHANISMS = ("myerson", "rosa-trcm-ucb", "rosa-leaky", "pay-as-bid", "first-price-ucb", "linucb-critical")
MULTIPLIER_GRID = np.linspace(0.0, 4.0, 801)
AFFINE_GRID = (np.linspace(-0.6, 0.6, 41), np.linspace(0.0, 3.0, 41))
CLUSTERS = 4  # the cluster family's K: contexts cluster by their largest of the first K coordinates
AD_BOUND = 30.0  # reports stay within [min r - 30 tau, max r + 30 tau]
# A loss whose CI lies above these is a profitable deviation; below, float noise (exact) or optimiser noise.
EXACT_TOL, NUMERIC_TOL = 1e-9, 1e-6
TIE = 1e-12  # mean utilities this close are a tie, broken toward truthful bidding
SEES = {
    "free bid": "own cost, context and threshold of each round (an oracle: the others' bids and coins)",
    "multiplier": "own cost (bid = theta0 x cost)",
    "affine": "own cost (bid = theta0 + theta1 x cost)",
    "cluster": "own cost and the context's cluster (bid = theta_k x cost)",
    "free report": "own true rewards and every other report on the candidate set (an oracle)",
}


# -- reverse auctions: the drawn rounds --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrozenRounds:
    """R drawn rounds after the warm-up, the mechanism frozen: what makes the deviator's utility a function of
    its bid alone. cost, tau: (R,); context: (R, d); modified, coin: (R,) the deviator's own public coins (leaky
    ROSA only, else empty)."""

    mechanism: str
    kind: str  # 'rosa', 'critical', 'pay-as-bid' or 'leaky'
    cost: np.ndarray
    tau: np.ndarray
    context: np.ndarray
    mu: float | None
    floor: float
    cap: float
    modified: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    coin: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def rounds(self) -> int:
        return int(self.cost.size)

    def subset(self, mask: np.ndarray) -> FrozenRounds:
        """The rounds where ``mask`` (R,) is True."""
        leaky = self.kind == "leaky"
        return replace(self, cost=self.cost[mask], tau=self.tau[mask], context=self.context[mask],
                       modified=self.modified[mask] if leaky else self.modified,
                       coin=self.coin[mask] if leaky else self.coin)

    def win_threshold(self) -> np.ndarray:
        """(R,) the largest bid that wins: tau, or under leaky ROSA with a modified own bid the largest b whose
        raised bid c_cap - (c_cap - b) U^(1/(1-mu)) is still <= tau."""
        if self.kind != "leaky":
            return self.tau
        assert self.mu is not None
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            raised = self.cap - (self.cap - self.tau) * self.coin ** (-1.0 / (1.0 - self.mu))
        # tau >= c_cap: every raised bid wins; U = 0 (or tiny) raises every bid to c_cap, which then loses
        raised = np.where(self.tau >= self.cap, np.inf, np.where(self.coin > 0, raised, -np.inf))
        raised = np.where(np.isnan(raised), -np.inf, raised)
        return np.where(self.modified, raised, self.tau)

    def utility(self, bids: np.ndarray) -> np.ndarray:
        """Expected utility (over the deviator's own coins) of bids (..., R), round by round: (..., R)."""
        z = np.asarray(bids, dtype=float)
        c = np.broadcast_to(self.cost, z.shape)
        tau = np.broadcast_to(self.tau, z.shape)
        if self.kind == "rosa":
            assert self.mu is not None
            alloc, pay = threshold_expectations(z, tau, self.mu, self.cap)
            return pay - c * alloc
        if self.kind == "critical":
            return np.where(z <= tau, np.minimum(tau, self.cap) - c, 0.0)
        if self.kind == "pay-as-bid":
            return np.where(z <= tau, z - c, 0.0)
        assert self.mu is not None
        wins = z <= np.broadcast_to(self.win_threshold(), z.shape)
        pay = z + np.broadcast_to(self.modified, z.shape) * (self.cap - z) / self.mu
        return np.where(wins, pay - c, 0.0)

    def truthful(self) -> np.ndarray:
        """(R,) the utility of bidding the cost."""
        return self.utility(np.clip(self.cost, self.floor, self.cap))

    def best_free(self) -> tuple[np.ndarray, np.ndarray]:
        """((R,) best bid, (R,) its utility) per round, exactly (module docstring); NaN bid: any losing bid."""
        lo, hi = self.floor, self.cap
        cands = np.stack([np.full(self.rounds, lo), np.full(self.rounds, hi), np.clip(self.cost, lo, hi),
                          np.clip(self.tau, lo, hi), np.clip(self.win_threshold(), lo, hi)])
        u = self.utility(cands)
        k = np.argmax(u, axis=0)
        best = u[k, np.arange(self.rounds)]
        bid = cands[k, np.arange(self.rounds)]
        losing = self.win_threshold() < hi  # some bid in range loses: utility 0
        take_zero = losing & (best < 0.0)
        return np.where(take_zero, np.nan, bid), np.where(take_zero, 0.0, best)


def draw_rounds(scenario: str, overrides: Sequence[str], seed: int, *, warmup: int, rounds: int,
                deviator: str = "provider-0") -> FrozenRounds:
    """The scenario played for ``warmup`` rounds with ``deviator`` truthful, then ``rounds`` frozen rounds drawn."""
    if warmup < 0 or rounds < 1:
        raise ConfigError(f"--warmup = {warmup}, --rounds = {rounds}: expected warmup >= 0 and rounds >= 1")
    market, i = deviator_market(scenario, [*overrides, f"strategies.overrides.{deviator}=truthful"], seed,
                                warmup + rounds, deviator)
    mech = market.mechanism
    label = market.config["mechanism"]["name"]
    kind = "leaky" if isinstance(mech, LeakyROSA) else payment_kind(mech, label)
    market.warm(warmup)
    rule, cap, mu = mech.rule, float(mech.cost_cap), getattr(mech, "mu", None)
    xs, cost, tau = [], np.empty(rounds), np.empty(rounds)
    own = np.zeros((2, rounds))
    for s in range(rounds):
        x, costs, bids = market.draw()
        present = market.bid_range.accepted(bids)
        present[i] = True
        seen = bids
        if kind == "rosa":
            seen = resample(bids, mu, cap, draw_coins(market.mech_rng, bids.size))[0]
        elif kind == "leaky":
            coins = public_coins(mech.leak_seed, mech.rounds + s, bids.size)  # the coins round warmup + s would use
            seen = resample(bids, mu, cap, coins)[0]
            own[:, s] = coins[:, i]
        tau[s] = rule.threshold(x, np.where(present, seen, cap), i, present)
        cost[s] = costs[i]
        xs.append(x)
    extra: dict[str, Any] = {}
    if kind == "leaky":
        assert mu is not None
        extra = {"modified": own[0] < mu, "coin": own[1]}
    return FrozenRounds(label, kind, cost, tau, np.asarray(xs), mu, float(market.bid_range.floor), cap, **extra)


def concat(parts: Sequence[FrozenRounds]) -> FrozenRounds:
    """The rounds of several seeds (same mechanism and range) as one sample."""
    first = parts[0]
    leaky = first.kind == "leaky"
    return replace(first, cost=np.concatenate([p.cost for p in parts]), tau=np.concatenate([p.tau for p in parts]),
                   context=np.concatenate([p.context for p in parts]),
                   modified=np.concatenate([p.modified for p in parts]) if leaky else first.modified,
                   coin=np.concatenate([p.coin for p in parts]) if leaky else first.coin)


# -- bidding functions ---------------------------------------------------------------------------------------------


def family_bids(family: str, theta: Sequence[float], cost: np.ndarray, context: np.ndarray, floor: float,
                cap: float) -> np.ndarray:
    """The bids (R,) of ``agents.bidfuncs``' family with parameters theta, clipped into [floor, cap]."""
    th = np.asarray(theta, dtype=float)
    if family == "multiplier":
        z = th[0] * cost
    elif family == "affine":
        z = th[0] + th[1] * cost
    elif family == "cluster":
        z = th[clusters(context, th.size)] * cost
    else:
        raise ConfigError(f"family: got {family!r}, expected one of {FAMILIES}")
    return np.clip(z, floor, cap)


def clusters(context: np.ndarray, k: int) -> np.ndarray:
    """(R,) each context's cluster: the index of its largest coordinate among the first k."""
    return np.argmax(np.asarray(context)[:, :k], axis=1)


def _mean_utility(fr: FrozenRounds, bids: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Mean utility over rounds of each candidate row of bids (k, R), in chunks to bound memory."""
    out = np.empty(bids.shape[0])
    for a in range(0, bids.shape[0], chunk):
        out[a:a + chunk] = fr.utility(bids[a:a + chunk]).mean(axis=1)
    return out


def best_multiplier(fr: FrozenRounds) -> tuple[float, float]:
    """(m, mean utility) of the best multiplier: breakpoints, midpoints and a grid (module docstring)."""
    if fr.rounds == 0:
        return 1.0, 0.0
    c = np.where(fr.cost > 0, fr.cost, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        brk = np.concatenate([fr.win_threshold() / c, fr.tau / c, fr.floor / c, fr.cap / c])
    brk = np.unique(brk[np.isfinite(brk) & (brk >= 0.0) & (brk <= 10.0)])
    mids = (brk[1:] + brk[:-1]) / 2 if brk.size > 1 else brk[:0]
    m = np.unique(np.concatenate([brk, mids, MULTIPLIER_GRID, [1.0]]))
    vals = _mean_utility(fr, np.clip(m[:, None] * fr.cost[None, :], fr.floor, fr.cap))
    k = _nearest_best(vals, np.abs(m - 1.0))
    return float(m[k]), float(vals[k])


def _nearest_best(vals: np.ndarray, distance: np.ndarray) -> int:
    """The index of the best value; among values within TIE of it, the one nearest truthful bidding (so that a
    flat objective, as under a critical-bid mechanism, reports truthful parameters)."""
    near = vals >= vals.max() - TIE
    return int(np.flatnonzero(near)[np.argmin(distance[near])])


def best_affine(fr: FrozenRounds, start: float = 1.0) -> tuple[tuple[float, float], float]:
    """((theta0, theta1), mean utility): grid, then Nelder-Mead from the best grid point and (0, start)."""
    from scipy.optimize import minimize

    a, b = np.meshgrid(*AFFINE_GRID, indexing="ij")
    grid = np.stack([a.ravel(), b.ravel()], axis=1)
    grid = np.vstack([grid, [[0.0, 1.0], [0.0, start]]])
    bids = np.clip(grid[:, :1] + grid[:, 1:] * fr.cost[None, :], fr.floor, fr.cap)
    vals = _mean_utility(fr, bids)

    def neg(th: np.ndarray) -> float:
        return -float(fr.utility(np.clip(th[0] + th[1] * fr.cost, fr.floor, fr.cap)).mean())

    best_k = _nearest_best(vals, np.abs(grid - [0.0, 1.0]).sum(axis=1))
    best, best_val = grid[best_k], float(vals[best_k])
    for k in (best_k, len(grid) - 1):
        res = minimize(neg, grid[k], method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 200})
        if -res.fun > best_val + TIE:
            best, best_val = res.x, -float(res.fun)
    return (float(best[0]), float(best[1])), best_val


def best_cluster(fr: FrozenRounds, k: int = CLUSTERS) -> tuple[tuple[float, ...], float]:
    """(theta (k,), mean utility): one best multiplier per cluster (the objective separates over clusters)."""
    groups = clusters(fr.context, k)
    theta, total = [], 0.0
    for j in range(k):
        mask = groups == j
        m, v = best_multiplier(fr.subset(mask))
        theta.append(m)
        total += v * int(mask.sum())
    return tuple(theta), total / max(fr.rounds, 1)


def best_in_family(fr: FrozenRounds, family: str) -> tuple[tuple[float, ...], float]:
    """(theta, mean utility over the rounds) of the best function of ``family``."""
    if family == "multiplier":
        m, v = best_multiplier(fr)
        return (m,), v
    if family == "affine":
        return best_affine(fr, best_multiplier(fr)[0])
    if family == "cluster":
        return best_cluster(fr, min(CLUSTERS, fr.context.shape[1]))
    raise ConfigError(f"family: got {family!r}, expected one of {FAMILIES}")


# -- MOSAIC -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdRounds:
    """Auctions on fixed candidate sets: rewards (R, n, M) true rewards, log_w (R, M) log pi_ref - log pi_gen,
    tau (R,); the deviator is advertiser 0."""

    mechanism: str
    payment: str
    rewards: np.ndarray
    log_w: np.ndarray
    tau: np.ndarray

    def utility(self, report: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(utility (..., R), gradient (..., R, M)) of advertiser 0 reporting ``report`` (..., R, M), the others
        truthful."""
        tau = self.tau[:, None]
        r = self.rewards[:, 0]
        beta = self.rewards[:, 1:].sum(axis=1) / tau + self.log_w
        s = report / tau + beta
        top = s.max(axis=-1, keepdims=True)
        e = np.exp(s - top)
        z = e.sum(axis=-1, keepdims=True)
        q = e / z
        got = (q * r).sum(axis=-1)
        if self.payment == "none":
            return got, q * (r - got[..., None]) / tau
        lse_s = (np.log(z) + top)[..., 0]
        diff = r - report
        qd = (q * diff).sum(axis=-1)
        # offset and Rochet payments differ by a constant in the report: same utility up to it, same gradient
        base = beta if self.payment == "offset" else self.log_w
        b_top = base.max(axis=-1, keepdims=True)
        const = (np.log(np.exp(base - b_top).sum(axis=-1, keepdims=True)) + b_top)[..., 0]
        u = qd + self.tau * (lse_s - const)
        return u, q * (diff - qd[..., None]) / tau


def draw_ad_rounds(mechanism: str, seed: int, rounds: int, overrides: Sequence[str] = ()) -> AdRounds:
    """The ads scenario's auctions in its order (as ``deviation.play_ads`` draws them, everyone truthful)."""
    from market.core.mechanisms.aggregation import AGGREGATIONS
    from scenarios.ads import asked, instances, proposals

    payments = {"mosaic": "offset", "mosaic-rochet": "rochet", "mosaic-nopay": "none"}
    if mechanism not in payments:
        raise ConfigError(f"--mechanism: got {mechanism!r}, expected one of {AD_MECHANISMS} in the ad market"
                          + ("" if mechanism in AGGREGATIONS else f" ({AGGREGATIONS.unknown(mechanism)})"))
    if rounds < 1:
        raise ConfigError(f"--rounds: got {rounds}, expected at least 1")
    from market.core.seeding import derive_rng

    config = resolve("ads", [*overrides, f"run.rounds={rounds}"])[0]
    insts = instances(config, seed)
    arms = proposals(config)
    draws = derive_rng(seed, "mechanism")
    pulls = [inst.pulls(tuple(inst.query.descriptions)) for inst in insts]
    rewards, log_w, tau = [], [], []
    for t, qid in enumerate(asked(config)):
        inst, context_aware = insts[qid], arms[t % len(arms)] == "context"
        replies = inst.sample_candidates(config["market"]["candidates"], draws, context_aware, pulls=pulls[qid])
        rewards.append(inst.rewards(replies))
        log_w.append(inst.log_ref(replies) - inst.log_gen(replies, context_aware, pulls=pulls[qid]))
        tau.append(inst.tau)
        draws.random()  # the shown reply's draw (sample_shown), so the next candidates are play_ads's
    return AdRounds(mechanism, payments[mechanism], np.asarray(rewards), np.asarray(log_w), np.asarray(tau, float))


def best_reports(ar: AdRounds, seed: int = 0, steps: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """((R, M) best report found, (R,) its utility) per auction: projected Adam ascent on the exact gradient from
    every start at once (module docstring), keeping the best report evaluated anywhere along the way."""
    r = ar.rewards[:, 0]
    tau = ar.tau[:, None]
    lo, hi = r.min(axis=1, keepdims=True) - AD_BOUND * tau, r.max(axis=1, keepdims=True) + AD_BOUND * tau
    rng = np.random.default_rng(seed)
    spread = r.std(axis=1, keepdims=True) + 1e-3
    push = np.where(r == r.max(axis=1, keepdims=True), hi, r)
    x = np.clip(np.stack([r, r + spread * rng.standard_normal(r.shape), r + 2 * spread * rng.standard_normal(r.shape),
                          2.0 * r, push]), lo, hi)
    best_u, best_x = ar.utility(r)[0], r.copy()
    m, v = np.zeros_like(x), np.zeros_like(x)
    lr, b1, b2 = 0.05 * tau, 0.9, 0.999
    for k in range(1, steps + 2):
        u, g = ar.utility(x)
        top = np.argmax(u, axis=0)
        u_top = u[top, np.arange(u.shape[1])]
        better = u_top > best_u
        best_u = np.where(better, u_top, best_u)
        best_x = np.where(better[:, None], x[top, np.arange(u.shape[1])], best_x)
        if k > steps:
            break
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = lr * (m / (1 - b1**k)) / (np.sqrt(v / (1 - b2**k)) + 1e-12)
        x = np.clip(x + step, lo, hi)
    return best_x, best_u


# -- utility loss -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Loss:
    """One mechanism and kind of deviation: the utility loss per round per seed with its bootstrap CI.
    kind: 'free bid' / 'free report' or a family name; theta: the best parameters per seed (families)."""

    mechanism: str
    kind: str
    loss: float
    ci_low: float
    ci_high: float
    verdict: str
    losses: tuple[float, ...]
    truthful: float
    rounds: int
    warmup: int
    tol: float
    theta: tuple[tuple[float, ...], ...] = ()

    @property
    def seeds(self) -> int:
        return len(self.losses)


def loss_verdict(ci_low: float, tol: float) -> str:
    """'profitable deviation' when the CI lies above the numerical tolerance, else 'no profitable deviation'."""
    return "profitable deviation" if ci_low > tol else "no profitable deviation"


def seed_losses(task: tuple) -> dict[str, Any]:
    """One seed of one mechanism: per kind, (loss, truthful utility, theta). Tasks are picklable tuples:
    ('reverse', scenario, overrides, seed, warmup, rounds, deviator, families) or ('ads', mechanism, seed, rounds,
    overrides)."""
    if task[0] == "ads":
        _, mechanism, seed, rounds, overrides = task
        ar = draw_ad_rounds(mechanism, seed, rounds, overrides)
        truth = ar.utility(ar.rewards[:, 0])[0]
        best = best_reports(ar, seed)[1]
        return {"free report": (float(np.mean(best - truth)), float(truth.mean()), ())}
    _, scenario, overrides, seed, warmup, rounds, deviator, families = task
    fr = draw_rounds(scenario, overrides, seed, warmup=warmup, rounds=rounds, deviator=deviator)
    truth = fr.truthful()
    out = {"free bid": (float(np.mean(fr.best_free()[1] - truth)), float(truth.mean()), ())}
    for family in families:
        out[family] = cross_fitted_gain(fr, family)
    return out


def cross_fitted_gain(fr: FrozenRounds, family: str) -> tuple[float, float, tuple[float, ...]]:
    """(gain over truthful, truthful utility, theta fitted on the even rounds) of ``family``: the best theta on
    the even rounds judged on the odd ones and the reverse, averaged. Judged where it was not fitted, a family's
    gain carries no fitting noise upward (an in-sample maximum would, e.g. from the rare resampled rounds whose
    bonus dominates a ROSA sample); it may come out below 0."""
    idx = np.arange(fr.rounds)
    halves = (fr.subset(idx % 2 == 0), fr.subset(idx % 2 == 1))
    gains, thetas = [], []
    for fit, judge in (halves, halves[::-1]):
        theta = best_in_family(fit, family)[0]
        bids = family_bids(family, theta, judge.cost, judge.context, judge.floor, judge.cap)
        gains.append(float(np.sum(judge.utility(bids) - judge.truthful())))
        thetas.append(theta)
    truth = float(fr.truthful().mean())
    return sum(gains) / max(fr.rounds, 1), truth, thetas[0]


def _run(tasks: Sequence[tuple], workers: int, progress: Progress | None) -> list[dict[str, Any]]:
    done: list[dict[str, Any]] = []
    if workers <= 1 or len(tasks) <= 1:
        for k, t in enumerate(tasks):
            done.append(seed_losses(t))
            if progress:
                progress("best response", k + 1, len(tasks))
        return done
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for k, res in enumerate(pool.map(seed_losses, tasks)):
            done.append(res)
            if progress:
                progress("best response", k + 1, len(tasks))
    return done


def utility_loss(
    scenario: str,
    mechanisms: Sequence[str] | None = None,
    *,
    seeds: int = 8,
    rounds: int = 1000,
    warmup: int = 500,
    overrides: Sequence[str] = (),
    families: Sequence[str] = FAMILIES,
    deviator: str | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    labels: dict[str, str] | None = None,
    mechanism_sets: Callable[[str], list[str]] | None = None,
) -> list[Loss]:
    """Utility loss of every mechanism (free bid and each family; free report in the ad market) on seeds
    0..seeds-1. mechanism_sets: the --set items selecting a mechanism (default ``mechanism.name=NAME``)."""
    if seeds < 2:
        raise ConfigError(f"--seeds: got {seeds}, expected at least 2 (a confidence interval needs them)")
    for f in families:
        if f not in FAMILIES:
            raise ConfigError(f"families: got {f!r}, expected one of {FAMILIES}")
    # the overrides may hold a mechanism's parameters (mechanism.params.mu): resolved with each mechanism, below
    ads = resolve(scenario, [])[1].name == "ads"
    names = list(mechanisms or (AD_MECHANISMS if ads else [resolve(scenario, list(overrides))[0]["mechanism"]["name"]]))
    sets = mechanism_sets or (lambda name: [f"mechanism.name={name}"])
    tasks, index = [], []
    for name in names:
        for seed in range(seeds):
            if ads:
                if deviator not in (None, "advertiser-0"):
                    raise ConfigError(f"--deviator: got {deviator!r}; in the ad market advertiser-0 deviates")
                tasks.append(("ads", name, seed, rounds, tuple(overrides)))
            else:
                tasks.append(("reverse", scenario, (*overrides, *sets(name)), seed, warmup, rounds,
                              deviator or "provider-0", tuple(families)))
            index.append(name)
    results = _run(tasks, workers, progress)
    out = []
    for name in names:
        per = [r for n, r in zip(index, results) if n == name]
        for kind in per[0]:
            losses = [p[kind][0] for p in per]
            low, high = bootstrap_ci(losses)
            tol = NUMERIC_TOL if ads or kind == "affine" else EXACT_TOL
            out.append(Loss((labels or {}).get(name, name), kind, float(np.mean(losses)), low, high,
                            loss_verdict(low, tol), tuple(losses), float(np.mean([p[kind][1] for p in per])),
                            rounds, 0 if ads else warmup, tol, tuple(p[kind][2] for p in per)))
    return out


COLUMNS = ("mechanism", "kind", "loss", "ci_low", "ci_high", "verdict", "truthful_utility", "seeds", "rounds",
           "warmup", "sees", "theta_seed0")


def as_row(loss: Loss) -> dict[str, Any]:
    """A loss as a table row (the CSV's columns)."""
    theta = loss.theta[0] if loss.theta else ()
    return {"mechanism": loss.mechanism, "kind": loss.kind, "loss": loss.loss, "ci_low": loss.ci_low,
            "ci_high": loss.ci_high, "verdict": loss.verdict, "truthful_utility": loss.truthful, "seeds": loss.seeds,
            "rounds": loss.rounds, "warmup": loss.warmup, "sees": SEES.get(loss.kind, ""),
            "theta_seed0": " ".join(f"{v:.4g}" for v in theta)}


def write_outputs(losses: Sequence[Loss], out_dir: Path) -> None:
    """best_response.csv (one row per mechanism and kind) and best_response.png (losses with their CIs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "best_response.csv", "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        for loss in losses:
            row = as_row(loss)
            w.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mechs = list(dict.fromkeys(x.mechanism for x in losses))
    kinds = list(dict.fromkeys(x.kind for x in losses))
    width = 0.8 / len(kinds)
    fig, ax = plt.subplots(figsize=(1.6 * len(mechs) + 3, 4.2))
    for j, kind in enumerate(kinds):
        xs, ys, err = [], [], [[], []]
        for i, m in enumerate(mechs):
            hit = [x for x in losses if x.mechanism == m and x.kind == kind]
            if hit:
                x = hit[0]
                xs.append(i + (j - (len(kinds) - 1) / 2) * width)
                ys.append(x.loss)
                err[0].append(max(x.loss - x.ci_low, 0.0))
                err[1].append(max(x.ci_high - x.loss, 0.0))
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=kind)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(range(len(mechs)), mechs, rotation=25, ha="right")
    ax.set_ylabel("utility loss per round (95% CI over seeds)")
    ax.set_title("What a best response gains over truthful bidding")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "best_response.png", dpi=120)
    plt.close(fig)


def format_losses(losses: Sequence[Loss]) -> str:
    rows = [f"{'mechanism':<22}{'kind':<13}{'loss':>11}  {'95% CI':<24}{'verdict':<25}{'truthful':>10}"]
    for x in losses:
        ci = f"[{x.ci_low:+.5f}, {x.ci_high:+.5f}]"
        rows.append(f"{x.mechanism:<22}{x.kind:<13}{x.loss:>+11.5f}  {ci:<24}{x.verdict:<25}{x.truthful:>10.5f}")
    return "\n".join(rows)


def print_progress(what: str, done: int, total: int) -> None:
    """A progress line on stderr, rewritten in place."""
    end = "\n" if done == total else ""
    print(f"\r{what}: {done}/{total}", end=end, file=sys.stderr, flush=True)


# -- for the verdict table and the attack command ---------------------------------------------------------------------

SIZES = {
    "quick": {"seeds": 8, "rounds": 400, "warmup": 300, "ad_rounds": 30},
    "full": {"seeds": 20, "rounds": 2000, "warmup": 1000, "ad_rounds": 100},
}
VERDICT_REVERSE = (("Myerson", "myerson"), ("ROSA + TRCM-UCB", "rosa-trcm-ucb"),
                   ("leaky ROSA (public coins)", "rosa-leaky"), ("pay-as-bid", "pay-as-bid"),
                   ("first-price UCB", "first-price-ucb"))
VERDICT_ADS = (("MOSAIC (offset)", "mosaic"), ("Rochet without offset", "mosaic-rochet"),
               ("no payments", "mosaic-nopay"))


def utility_loss_rows(quick: bool, workers: int) -> list[dict[str, Any]]:
    """Rows for the verdict table: per mechanism (reverse on quickstart, ROSA at the table's mu; MOSAIC on ads)
    the free best response and the best bidding function among the families (its family named in ``kind``)."""
    from market.lab import verdicts

    size = SIZES["quick" if quick else "full"]
    labels = {name: label for label, name in VERDICT_REVERSE}
    reverse = utility_loss(verdicts.SCENARIO, [n for _, n in VERDICT_REVERSE], seeds=size["seeds"],
                           rounds=size["rounds"], warmup=size["warmup"], workers=workers, labels=labels,
                           mechanism_sets=verdicts.mechanism_sets)
    ads = utility_loss("ads", [n for _, n in VERDICT_ADS], seeds=size["seeds"], rounds=size["ad_rounds"],
                       workers=workers, labels={name: label for label, name in VERDICT_ADS})
    rows = []
    for label, _ in VERDICT_REVERSE:
        mine = [x for x in reverse if x.mechanism == label]
        rows.append(as_row(next(x for x in mine if x.kind == "free bid")))
        fams = [x for x in mine if x.kind in FAMILIES]
        best = max(fams, key=lambda x: x.loss)
        rows.append({**as_row(best), "kind": f"best family ({best.kind})"})
    rows += [as_row(x) for x in ads]
    return rows


def _format_theta(theta: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.10g}" for v in theta) + "]"


def best_response_attacker(spec: AttackSpec, progress: Progress) -> Attacker:
    """The best bidding function among the families, fitted on the training seeds' frozen rounds pooled (warm-up
    spec.rounds // 2 rounds, then spec.rounds drawn rounds per seed), as ``bidfunc`` overrides for spec.deviator.
    train_gain: its mean per-round gain over truthful bidding on those frozen rounds (not through a learning run)."""
    config, market = resolve(spec.scenario, list(spec.overrides))
    if market.name == "ads" or market.instance is None:
        raise ConfigError(f"attack --method best-response: scenario {spec.scenario!r} ({market.name} market) has no "
                          "bidding-function family; expected a procurement market (providers bid)")
    warmup = spec.rounds // 2
    parts = []
    for k, seed in enumerate(spec.train_seeds):
        parts.append(draw_rounds(spec.scenario, spec.overrides, seed, warmup=warmup, rounds=spec.rounds,
                                 deviator=spec.deviator))
        progress("best response: drawing rounds", k + 1, len(spec.train_seeds))
    fr = concat(parts)
    truth = float(fr.truthful().mean())
    fits = {}
    for k, family in enumerate(FAMILIES):
        fits[family] = best_in_family(fr, family)
        progress("best response: fitting families", k + 1, len(FAMILIES))
    family = max(FAMILIES, key=lambda f: fits[f][1])
    theta, value = fits[family]
    overrides = (f"strategies.overrides.{spec.deviator}=bidfunc", f"strategies.params.bidfunc.family={family}",
                 f"strategies.params.bidfunc.theta={_format_theta(theta)}")
    details: dict[str, object] = {
        "warmup": warmup, "rounds_per_seed": spec.rounds, "mechanism": config["mechanism"]["name"],
        "free_bid_gain": float((fr.best_free()[1] - fr.truthful()).mean()),
        **{f"{f}_gain": fits[f][1] - truth for f in FAMILIES},
        **{f"{f}_theta": list(fits[f][0]) for f in FAMILIES},
    }
    return Attacker("best-response", "bidfunc", overrides, SEES[family], value - truth, tuple(spec.train_seeds),
                    details)
