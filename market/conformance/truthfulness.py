"""A truthfulness test kit for mechanism designs: hypothesis strategies for auction instances, and checks
that raise ``TruthfulnessViolation`` with the (shrunk) instance when a misreport pays.

Reverse auctions: expected utility over the mechanism's coins with common random numbers, or ROSA's exact
threshold method (ROSA spec 7, T17). Aggregation auctions: misreports on a fixed candidate set (MOSAIC spec 6, check 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.core.mechanisms.base import ReverseOutcome
from market.core.mechanisms.rosa import ROSA, draw_coins, resample, threshold_expectations
from market.core.seeding import derive_rng
from market.runtime.records import Record


class TruthfulnessViolation(AssertionError):
    """A profitable misreport: the message holds the instance, the misreport and both utilities."""


@dataclass(frozen=True, slots=True)
class ReverseInstance:
    """Bidder 0 with private ``cost`` against fixed ``bids`` of providers 1..n-1, after a history.

    context: (d,); bids: (n,) with bids[0] ignored; history: ((context (d,), winner, reward), ...) fed
    to ``update`` before the round.
    """

    n: int
    d: int
    context: tuple[float, ...]
    bids: tuple[float, ...]
    cost: float
    history: tuple[tuple[tuple[float, ...], int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class AggregationInstance:
    """A fixed candidate set: rewards (n, M) true r_i(y_j), log_ref and log_gen (M,), temperature tau."""

    rewards: tuple[tuple[float, ...], ...]
    log_ref: tuple[float, ...]
    log_gen: tuple[float, ...]
    tau: float


def _unit(lo: float = 0.0, hi: float = 1.0) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def reverse_instances(draw: Any, n: int | tuple[int, int] = (2, 4), d: int = 2, history: int = 6,
                      cost_cap: float = 1.0) -> ReverseInstance:
    """Instances with n providers (fixed or a range), contexts in [0, 1]^d, bids and cost in [0, cost_cap]."""
    k = draw(st.integers(*n)) if isinstance(n, tuple) else n
    context = tuple(draw(st.lists(_unit(), min_size=d, max_size=d)))
    bids = tuple(draw(st.lists(_unit(0.0, cost_cap), min_size=k, max_size=k)))
    past = draw(st.lists(st.tuples(st.lists(_unit(), min_size=d, max_size=d).map(tuple), st.integers(0, k - 1),
                                   _unit(-1.0, 2.0)), max_size=history))
    return ReverseInstance(k, d, context, bids, draw(_unit(0.0, cost_cap)), tuple(past))


@st.composite
def aggregation_instances(draw: Any, n: int | tuple[int, int] = (1, 3), m: tuple[int, int] = (2, 6),
                          scale: float = 3.0) -> AggregationInstance:
    """Candidate sets with M candidates, rewards in [-scale, scale], log-probabilities in [-5, 0], tau in [0.2, 3]."""
    k = draw(st.integers(*n)) if isinstance(n, tuple) else n
    size = draw(st.integers(*m))
    row = st.lists(_unit(-scale, scale), min_size=size, max_size=size).map(tuple)
    logs = st.lists(_unit(-5.0, 0.0), min_size=size, max_size=size).map(tuple)
    return AggregationInstance(tuple(draw(st.lists(row, min_size=k, max_size=k))), draw(logs), draw(logs),
                               draw(_unit(0.2, 3.0)))


def prepared(make: Callable[[int, int], Any], inst: ReverseInstance) -> Any:
    """A fresh mechanism from ``make(n, d)`` that has learned from the instance's history."""
    mech = make(inst.n, inst.d)
    for x, winner, reward in inst.history:
        outcome = ReverseOutcome(winner, np.zeros(inst.n), np.asarray(inst.bids, float), np.zeros(inst.n, bool))
        mech.update(np.asarray(x, float), outcome, reward)
    return mech


def expected_utilities(make: Callable[[int, int], Any], inst: ReverseInstance, grid: np.ndarray,
                       draws: int = 2000, seed: int = 0) -> np.ndarray:
    """(len(grid),) bidder 0's expected utility of bidding each z of grid.

    ROSA around a rule with ``threshold``: the exact method (others' coins sampled once and shared, own
    coins integrated in closed form). Any other mechanism: the mean over ``draws`` coin streams, the same
    streams for every bid (common random numbers; exact for deterministic mechanisms with draws = 1).
    """
    mech = prepared(make, inst)
    x = np.asarray(inst.context, float)
    bids = np.asarray(inst.bids, float)
    if isinstance(mech, ROSA) and hasattr(mech.rule, "threshold"):
        rng = np.random.default_rng(seed)
        tiled = np.tile(bids, draws)
        chi, _ = resample(tiled, mech.mu, mech.cost_cap, draw_coins(rng, tiled.size))
        taus = np.array([mech.rule.threshold(x, row, 0) for row in chi.reshape(draws, inst.n)])
        abar, pay = threshold_expectations(grid[:, None], taus[None, :], mech.mu, mech.cost_cap)
        return (pay - inst.cost * abar).mean(axis=1)
    state = mech.get_state()  # restored after every select, for mechanisms that commit on select
    out = np.zeros(grid.size)
    for k, z in enumerate(grid):
        b = bids.copy()
        b[0] = z
        for s in range(draws):
            o = mech.select(x, b, derive_rng(seed, s))
            mech.set_state(state)
            out[k] += (o.payments[0] - inst.cost * (o.winner == 0)) / draws
    return out


def assert_truthful_in_expectation(make: Callable[[int, int], Any], inst: ReverseInstance, *,
                                   grid: np.ndarray | None = None, draws: int = 2000, seed: int = 0,
                                   tolerance: float = 1e-9) -> None:
    """Raise TruthfulnessViolation if some bid on ``grid`` (default 101 points over [cost_floor, cost_cap])
    gives bidder 0 more expected utility than bidding its cost."""
    mech = make(inst.n, inst.d)
    lo, cap = float(getattr(mech, "cost_floor", 0.0)), float(getattr(mech, "cost_cap", 1.0))
    grid = np.linspace(lo, cap, 101) if grid is None else np.asarray(grid, float)
    points = np.append(grid, inst.cost)
    u = expected_utilities(make, inst, points, draws, seed)
    best = int(np.argmax(u[:-1]))
    if u[best] > u[-1] + tolerance:
        raise TruthfulnessViolation(
            f"bidding {points[best]:.6g} instead of the cost {inst.cost:.6g} raises expected utility from "
            f"{u[-1]:.6g} to {u[best]:.6g} on {inst!r}"
        )


def misreports(rewards: np.ndarray, i: int) -> list[np.ndarray]:
    """Misreports of advertiser i's row: scaled (alpha x r), shifted (r + c) and single-candidate boosts."""
    r = rewards[i]
    out = [a * r for a in (0.0, 0.5, 1.5, 2.0, 4.0)] + [r + c for c in (-1.0, 1.0)]
    for j in range(r.size):
        for delta in (-1.0, 1.0):
            boost = r.copy()
            boost[j] += delta
            out.append(boost)
    return out


def assert_dominant_strategy(aggregate: Callable[..., Any], inst: AggregationInstance, *,
                             tolerance: float = 1e-9) -> None:
    """Raise TruthfulnessViolation if some advertiser's misreport (``misreports``) beats truth-telling on the
    instance's fixed candidates. aggregate(rewards, log_ref, log_gen, tau) returns q (M,) and payments (n,)."""
    r = np.asarray(inst.rewards, float)
    log_ref, log_gen = np.asarray(inst.log_ref, float), np.asarray(inst.log_gen, float)
    truth = aggregate(r, log_ref, log_gen, tau=inst.tau)
    for i in range(r.shape[0]):
        honest = float(truth.q @ r[i] - truth.payments[i])
        for report in misreports(r, i):
            reported = r.copy()
            reported[i] = report
            o = aggregate(reported, log_ref, log_gen, tau=inst.tau)
            lying = float(o.q @ r[i] - o.payments[i])
            if lying > honest + tolerance * max(1.0, abs(honest)):
                raise TruthfulnessViolation(
                    f"advertiser {i} reporting {np.round(report, 6).tolist()} instead of {np.round(r[i], 6).tolist()} "
                    f"raises its utility from {honest:.6g} to {lying:.6g} on {inst!r}"
                )


def search_truthful_in_expectation(make: Callable[[int, int], Any], *, examples: int = 30,
                                   instances: st.SearchStrategy[ReverseInstance] | None = None, **check: Any) -> None:
    """Hypothesis search for a profitable misreport; on failure raises TruthfulnessViolation naming the
    shrunk instance."""
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(instances if instances is not None else reverse_instances())
    def check_instance(inst: ReverseInstance) -> None:
        assert_truthful_in_expectation(make, inst, **check)

    check_instance()


def search_dominant_strategy(aggregate: Callable[..., Any], *, examples: int = 50,
                             instances: st.SearchStrategy[AggregationInstance] | None = None, **check: Any) -> None:
    """Hypothesis search for a profitable misreport on a fixed candidate set; raises naming the shrunk instance."""
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(instances if instances is not None else aggregation_instances())
    def check_instance(inst: AggregationInstance) -> None:
        assert_dominant_strategy(aggregate, inst, **check)

    check_instance()


class RecordKeeper:
    """An observer that keeps every record a run writes, for tests of a scenario: ``world.metrics.append(k)``
    before ``world.run()``, then look at ``k.records`` (it adds nothing to the summary's metrics)."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def observe(self, record: Record) -> None:
        self.records.append(record)

    def result(self) -> dict[str, Any]:
        return {}
