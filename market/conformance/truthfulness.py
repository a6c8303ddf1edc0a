"""A truthfulness test kit for mechanism designs: hypothesis strategies for auction instances, and checks
that raise ``TruthfulnessViolation`` with the (shrunk) instance when a misreport pays.

Reverse auctions (``search_truthful_in_expectation``, ``assert_truthful_in_expectation``): random instances alone
miss cheats that pay only in a narrow band (a reserve that gates the winner but does not cap the price pays a
bidder whose cost lies between the reserve and the next bid), so each instance is searched adaptively: misreports
and private costs at and around the points where bidder 0's outcome can change (the others' bids, the range's
ends, a published reserve, and the bids where its winning flips, found by bisection). Expected utilities: one
draw for a mechanism found deterministic (its outcomes identical over several coin streams, its rng untouched),
ROSA's exact threshold method (ROSA spec 7, T17), otherwise Monte Carlo with common random numbers and a z-test.
Aggregation auctions: misreports on a fixed candidate set (MOSAIC spec 6, check 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
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


DEFAULT_EXAMPLES = 100
"""Instances a reverse-auction search checks unless told otherwise."""
DEFAULT_DRAWS = 2000
"""Coin streams per misreport for a randomised mechanism checked by Monte Carlo."""
DEFAULT_EXACT_DRAWS = 500
"""Draws of the others' coins for ROSA's exact method: truthful on every draw, so fewer suffice than for Monte Carlo."""
DEFAULT_GRID = 101
"""Evenly spaced misreports over [cost_floor, cost_cap], on top of the adaptive ones."""
_BISECTIONS = 32  # halvings of a bracket where winning flips: 1/100 of the range down to ~2e-12 of it
_MOST_FLIPS = 8  # brackets refined per instance (a monotone rule has one)
_PROBE_STREAMS = 3  # coin streams the determinism probe compares
_CONFIRM = 10  # a Monte Carlo violation is confirmed on this many times ``draws`` fresh coin streams


@dataclass(frozen=True, slots=True)
class TruthfulnessReport:
    """What one check did. method: how expected utilities were computed ("deterministic, one draw", "Monte Carlo,
    common random numbers" or "exact threshold method"); draws: coin streams per misreport; misreports and costs:
    how many bids and private costs were compared; thresholds: the points where bidder 0's winning flips (found by
    bisection, or ROSA's threshold on the others' unmodified bids); best_gain: the largest expected gain of a
    misreport over truth-telling, over every cost tried (at most the tolerance when the check passed)."""

    method: str
    deterministic: bool
    draws: int
    misreports: int
    costs: int
    thresholds: tuple[float, ...]
    best_gain: float


@dataclass(frozen=True, slots=True)
class SearchReport:
    """What a search did: instances checked, how many of them were deterministic (one draw each), the methods
    used, and the largest gain of a misreport seen on any of them."""

    examples: int
    deterministic: int
    methods: tuple[str, ...]
    best_gain: float


def prepared(make: Callable[[int, int], Any], inst: ReverseInstance) -> Any:
    """A fresh mechanism from ``make(n, d)`` that has learned from the instance's history."""
    mech = make(inst.n, inst.d)
    for x, winner, reward in inst.history:
        outcome = ReverseOutcome(winner, np.zeros(inst.n), np.asarray(inst.bids, float), np.zeros(inst.n, bool))
        mech.update(np.asarray(x, float), outcome, reward)
    return mech


def bid_range(mech: Any, bids: np.ndarray) -> tuple[float, float]:
    """[cost_floor, cost_cap] the mechanism publishes (``BidRange``); without a finite cap, [floor, 1] stretched
    to twice the highest bid, so that misreports above every other bid are tried."""
    lo = float(getattr(mech, "cost_floor", 0.0))
    cap = float(getattr(mech, "cost_cap", math.inf))
    if not math.isfinite(cap):
        cap = max(1.0, lo + 1.0, 2.0 * float(np.max(bids[1:], initial=lo)))
    return lo, cap


class _Outcomes:
    """Bidder 0's (payment, won) for a bid z on coin stream s, ``select`` on the instance with the mechanism's
    state restored after every call (for mechanisms that commit on select); stream s is derive_rng(seed, s),
    the same for every bid (common random numbers). Stream 0's outcomes are kept: bisection and the
    deterministic case read them again."""

    def __init__(self, mech: Any, inst: ReverseInstance, seed: int) -> None:
        self.mech, self.seed = mech, seed
        self.state = mech.get_state()
        self.x, self.bids = np.asarray(inst.context, float), np.asarray(inst.bids, float)
        self.kept: dict[float, tuple[float, float]] = {}
        self.streams: dict[int, tuple[np.random.Generator, Mapping[str, Any]]] = {}

    def outcome(self, z: float, s: int = 0) -> tuple[float, float]:
        if s == 0 and z in self.kept:
            return self.kept[z]
        o = self.select(z, self.stream(s))
        got = (float(o.payments[0]), float(o.winner == 0))
        if s == 0:
            self.kept[z] = got
        return got

    def stream(self, s: int) -> np.random.Generator:
        """derive_rng(seed, s) at its start, made once and rewound on every later use (making it costs more
        than most selects)."""
        if s not in self.streams:
            rng = derive_rng(self.seed, s)
            self.streams[s] = (rng, rng.bit_generator.state)
        rng, start = self.streams[s]
        rng.bit_generator.state = start
        return rng

    def select(self, z: float, rng: np.random.Generator) -> ReverseOutcome:
        b = self.bids.copy()
        b[0] = z
        try:
            return self.mech.select(self.x, b, rng)
        finally:
            self.mech.set_state(self.state)

    def deterministic(self, points: Sequence[float], streams: int = _PROBE_STREAMS) -> bool:
        """True if, at every bid of ``points``, ``streams`` different coin streams give the same winner and
        payments and ``select`` never draws from its rng; a mechanism with hidden coins shows in the outcomes."""
        for z in points:
            seen = None
            for s in range(streams):
                rng = derive_rng(self.seed, s)
                before = rng.bit_generator.state
                o = self.select(z, rng)
                if rng.bit_generator.state != before:
                    return False
                key = (o.winner, np.asarray(o.payments, float).tobytes())
                if seen is not None and key != seen:
                    return False
                seen = key
        return True

    def flips(self, points: Sequence[float]) -> list[tuple[float, float]]:
        """Brackets (a, b), a < b a hair apart, where winning on stream 0 differs between a and b: found on
        the sorted ``points`` and narrowed by bisection (at most ``_MOST_FLIPS`` of them)."""
        pts = sorted(set(points))
        won = [self.outcome(z)[1] for z in pts]
        out: list[tuple[float, float]] = []
        for a, b, wa, wb in zip(pts, pts[1:], won, won[1:]):
            if wa == wb:
                continue
            for _ in range(_BISECTIONS):
                m = 0.5 * (a + b)
                if m in (a, b):
                    break
                if self.outcome(m)[1] == wa:
                    a = m
                else:
                    b = m
            out.append((a, b))
            if len(out) == _MOST_FLIPS:
                break
        return out

    def payoffs(self, points: np.ndarray, draws: int, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(payments, wins), each (len(points), draws): bidder 0's outcome per bid on streams first, first + 1, ..."""
        pay, won = np.zeros((points.size, draws)), np.zeros((points.size, draws))
        for k, z in enumerate(points):
            for s in range(draws):
                pay[k, s], won[k, s] = self.outcome(float(z), first + s)
        return pay, won


def _exact_rosa(mech: Any) -> bool:
    return isinstance(mech, ROSA) and hasattr(mech.rule, "threshold")


def _rosa_thresholds(mech: ROSA, inst: ReverseInstance, draws: int, seed: int) -> np.ndarray:
    """(draws,) bidder 0's winning threshold on the others' resampled bids, one draw of their coins each."""
    x, bids = np.asarray(inst.context, float), np.asarray(inst.bids, float)
    rng = np.random.default_rng(seed)
    tiled = np.tile(bids, draws)
    chi, _ = resample(tiled, mech.mu, mech.cost_cap, draw_coins(rng, tiled.size))
    rows, which = np.unique(chi.reshape(draws, inst.n)[:, 1:], axis=0, return_inverse=True)
    # bidder 0's own entry is ignored by its threshold; rows repeat wherever no other bid was modified
    threshold = mech.rule.threshold  # type: ignore[attr-defined]  # _exact_rosa checked it is there
    taus = np.array([threshold(x, np.concatenate(([bids[0]], row)), 0) for row in rows])
    return taus[which.reshape(-1)]


def expected_utilities(make: Callable[[int, int], Any], inst: ReverseInstance, grid: np.ndarray,
                       draws: int = DEFAULT_DRAWS, seed: int = 0) -> np.ndarray:
    """(len(grid),) bidder 0's expected utility of bidding each z of grid.

    ROSA around a rule with ``threshold``: the exact method (others' coins sampled once and shared, own
    coins integrated in closed form). Any other mechanism: the mean over ``draws`` coin streams, the same
    streams for every bid (common random numbers; exact for deterministic mechanisms with draws = 1).
    """
    mech = prepared(make, inst)
    grid = np.asarray(grid, float)
    if _exact_rosa(mech):
        taus = _rosa_thresholds(mech, inst, draws, seed)
        won, pay = threshold_expectations(grid[:, None], taus[None, :], mech.mu, mech.cost_cap)
    else:
        pay, won = _Outcomes(mech, inst, seed).payoffs(grid, draws)
    return (pay - inst.cost * won).mean(axis=1)


def _gains(pay: np.ndarray, won: np.ndarray, cost: float, truth: int,
           noisy: bool) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard error) per row of the gain of bidding that row's bid over row ``truth`` for a bidder with
    ``cost``, paired draw by draw (common random numbers); the error is 0 unless ``noisy``."""
    u = pay - cost * won
    gain = u - u[truth]
    se = gain.std(axis=1, ddof=1) / math.sqrt(gain.shape[1]) if noisy else np.zeros(gain.shape[0])
    return gain.mean(axis=1), se


def _near(points: Sequence[float], eps: float, lo: float, cap: float) -> list[float]:
    """Each point and the points ``eps`` below and above it, inside [lo, cap]."""
    return [float(np.clip(t + e, lo, cap)) for t in points for e in (-eps, 0.0, eps)]


def assert_truthful_in_expectation(make: Callable[[int, int], Any], inst: ReverseInstance, *,
                                   grid: np.ndarray | None = None, draws: int | None = None, seed: int = 0,
                                   tolerance: float = 1e-9, z: float = 4.0, deterministic: bool | None = None,
                                   adaptive: bool = True) -> TruthfulnessReport:
    """Compare bidder 0's expected utility of truth-telling with every candidate misreport, for its cost and for
    costs on both sides of every threshold; raise TruthfulnessViolation naming the instance (with the cost that
    lost), the misreport and both utilities, else return what was checked.

    Misreports: ``grid`` (default 101 points over [cost_floor, cost_cap]) and, when ``adaptive``, the points where
    the outcome can change, each with the points a hair (1e-6 of the range) below and above: the others' bids,
    the range's ends, a numeric ``reserve`` attribute of the mechanism, and the brackets where bidder 0's winning
    flips (found on the grid, narrowed by bisection: a reserve the mechanism hides is found this way). Costs: the
    instance's, plus (adaptive) those same points and the midpoints between consecutive ones.

    Expected utilities: ROSA around a rule with ``threshold`` by the exact method (``draws`` draws of the others'
    coins, own coins in closed form). Otherwise the mechanism is probed (``deterministic`` None): if three coin
    streams give identical winners and payments at the cost, the others' bids and the range's ends, and select
    never draws from its rng, one draw is exact and used; else Monte Carlo over ``draws`` coin streams shared
    by every bid (default 2,000). A misreport counts when its mean gain exceeds ``tolerance`` plus ``z``
    standard errors of the paired (common-random-numbers) gain, and again on 10 x ``draws`` fresh streams;
    bids closer to the cost than 10/``draws`` of the range are not judged by Monte Carlo. Deterministic and
    exact checks have no noise: any gain above ``tolerance`` counts.
    """
    mech = prepared(make, inst)
    bids = np.asarray(inst.bids, float)
    lo, cap = bid_range(mech, bids)
    eps = 1e-6 * (cap - lo)
    grid = np.linspace(lo, cap, DEFAULT_GRID) if grid is None else np.asarray(grid, float)
    marks = [lo, cap, *map(float, bids[1:])]
    reserve = getattr(mech, "reserve", None)
    if isinstance(reserve, (int, float)) and lo <= reserve <= cap:
        marks.append(float(reserve))
    exact = _exact_rosa(mech)
    probe = None if exact else _Outcomes(mech, inst, seed)
    if exact:
        deterministic, method = False, "exact threshold method"
        draws = DEFAULT_EXACT_DRAWS if draws is None else draws
        taus = _rosa_thresholds(mech, inst, draws, seed)
        flips = [float(np.clip(mech.rule.threshold(np.asarray(inst.context, float), bids, 0), lo, cap))]
    else:
        assert probe is not None
        if deterministic is None:
            deterministic = probe.deterministic(sorted({inst.cost, lo, cap, *marks}))
        if deterministic:
            draws, method = 1, "deterministic, one draw"
        else:
            draws, method = DEFAULT_DRAWS if draws is None else draws, "Monte Carlo, common random numbers"
        brackets = probe.flips([*grid, *marks, inst.cost]) if adaptive else []
        flips = [float(t) for pair in brackets for t in pair]
    if adaptive:
        marks = sorted(set(marks + flips))
        costs = sorted(set(_near(marks, eps, lo, cap) + [0.5 * (a + b) for a, b in zip(marks, marks[1:])]))
        points = sorted(set([*grid, *_near(marks, eps, lo, cap), *costs, inst.cost]))
    else:
        costs, points = [], sorted(set([*grid, inst.cost]))
    costs = [inst.cost] + [float(c) for c in costs if c != inst.cost]  # the instance's own cost is judged first
    zs = np.asarray(points, float)
    if exact:
        won, pay = threshold_expectations(zs[:, None], taus[None, :], mech.mu, mech.cost_cap)
    else:
        assert probe is not None
        pay, won = probe.payoffs(zs, draws)
    index = {p: k for k, p in enumerate(points)}
    best_gain = -math.inf
    noisy = draws > 1 and not exact  # the exact method is truthful on every draw of the others' coins
    resolution = min(0.5, 10.0 / draws) * (cap - lo) if noisy else 0.0
    for c in costs:
        mean, se = _gains(pay, won, c, index[c], noisy)
        # Monte Carlo cannot judge a bid closer to the cost than ~10/draws of the range: the events that make
        # it unprofitable (e.g. losing a resampled win) have probability ~ its distance and go unseen
        judged = np.abs(zs - c) >= resolution
        k = int(np.argmax(np.where(judged, mean - z * se, -np.inf)))
        best_gain = max(best_gain, float(mean[judged].max(initial=0.0)))
        if not mean[k] > tolerance + z * se[k]:
            continue
        bid, truth, gain, noise = float(zs[k]), float((pay[index[c]] - c * won[index[c]]).mean()), mean[k], se[k]
        if noisy:
            # the largest of many noisy gains is biased upwards, and a gain can hide in rare large payments
            # (ROSA's 1/mu bonus): judge it again on ten times as many fresh coin streams
            assert probe is not None
            pay2, won2 = probe.payoffs(np.array([bid, c]), _CONFIRM * draws, first=draws)
            mean2, se2 = _gains(pay2, won2, c, 1, noisy)
            if not mean2[0] > tolerance + z * se2[0]:
                continue
            truth, gain, noise = float((pay2[1] - c * won2[1]).mean()), mean2[0], se2[0]
        spread = f" +- {noise:.2g} (standard error, confirmed on fresh coin streams)" if noisy else ""
        raise TruthfulnessViolation(
            f"bidding {bid!r} instead of the cost {c!r} raises expected utility from {truth:.6g} to "
            f"{truth + gain:.6g}{spread} ({method}{f', {draws} draws' if draws > 1 else ''}) on "
            f"{replace(inst, cost=float(c))!r}"
        )
    return TruthfulnessReport(method, bool(deterministic), draws, zs.size, len(costs), tuple(flips), best_gain)


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


def search_truthful_in_expectation(make: Callable[[int, int], Any], *, examples: int = DEFAULT_EXAMPLES,
                                   instances: st.SearchStrategy[ReverseInstance] | None = None,
                                   **check: Any) -> SearchReport:
    """Hypothesis search (``examples`` instances, default 100, derandomised) for a profitable misreport; each
    instance goes through ``assert_truthful_in_expectation`` with the keywords ``check``. On failure raises
    TruthfulnessViolation naming the shrunk instance; else returns what was checked."""
    reports: list[TruthfulnessReport] = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(instances if instances is not None else reverse_instances())
    def check_instance(inst: ReverseInstance) -> None:
        reports.append(assert_truthful_in_expectation(make, inst, **check))

    check_instance()
    return SearchReport(len(reports), sum(r.deterministic for r in reports),
                        tuple(sorted({r.method for r in reports})), max((r.best_gain for r in reports), default=0.0))


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
