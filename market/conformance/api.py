"""API and seed checks for a user's own mechanism, strategy, agent or aggregation auction, as PettingZoo's
``api_test`` and ``seed_test`` are for environments: each builds the object, checks it has what its Protocol names
(``ReverseMechanism``, ``BiddingStrategy``, ``AdStrategy``, ``AgentLike``: every method, taking the arguments the
caller passes), drives it through its contract (the shapes and types it returns, state it must not change, equal
seeds giving equal results, a get_state/set_state round trip restoring behaviour, bad input refused) and raises
``ConformanceError`` naming the first thing that failed ("mechanism 'x' lacks method `update(context, outcome,
reward)`").
"""

from __future__ import annotations

import copy
import inspect
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from agents.ad_strategies import AdFeedback, AdStrategy, Reporter
from agents.strategies import Bidder, BidderFacts, BiddingStrategy, BidFeedback, bid_style
from market.core.mechanisms.base import MechanismError, ReverseMechanism, ReverseOutcome
from market.runtime.checkpoint import pack_state
from market.runtime.contracts import AgentLike


class ConformanceError(AssertionError):
    """An object that breaks its contract: names the object, the check and what was seen against what was expected."""


def same_state(a: Any, b: Any) -> bool:
    """Structural equality of states (dicts, sequences, arrays, scalars), NaN equal to NaN."""
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(
            same_state(a[k], b[k]) for k in a)
    if isinstance(a, (np.ndarray, list, tuple)) or isinstance(b, (np.ndarray, list, tuple)):
        try:
            x, y = np.asarray(a), np.asarray(b)
        except ValueError:  # ragged: compare element by element
            return len(a) == len(b) and all(same_state(u, v) for u, v in zip(a, b))
        if x.dtype == object or y.dtype == object:
            return x.shape == y.shape and all(same_state(u, v) for u, v in zip(x.ravel(), y.ravel()))
        floats = x.dtype.kind in "fc" and y.dtype.kind in "fc"
        return x.shape == y.shape and bool(np.array_equal(x, y, equal_nan=floats))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return bool(a == b)


def _call_form(name: str, fn: Callable[..., Any]) -> str:
    """``name(a, b, c=None)``: how a Protocol's method is called, without self."""
    params = []
    for p in inspect.signature(fn).parameters.values():
        if p.name == "self":
            continue
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            params.append(f"*{p.name}")
        elif p.kind is inspect.Parameter.VAR_KEYWORD:
            params.append(f"**{p.name}")
        else:
            params.append(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}")
    return f"{name}({', '.join(params)})"


def _protocol_members(protocol: type) -> tuple[dict[str, Callable[..., Any]], list[str]]:
    """(methods by name, attribute names) a Protocol declares, its own and its bases' (not object's)."""
    methods: dict[str, Callable[..., Any]] = {}
    attributes: list[str] = []
    for base in reversed(protocol.__mro__):
        if base is object or base.__name__ in ("Protocol", "Generic"):
            continue
        attributes += [a for a in vars(base).get("__annotations__", {}) if a not in attributes]
        methods.update({k: v for k, v in vars(base).items() if not k.startswith("_") and inspect.isfunction(v)})
    return methods, [a for a in attributes if a not in methods]


def protocol_gaps(obj: Any, protocol: type, skip: Iterable[str] = ()) -> list[str]:
    """What ``obj`` lacks of ``protocol``, one phrase each: "method `update(context, outcome, reward)`",
    "attribute `n`", "method `learn(feedback)` (it takes `learn()`)", "method `run()` (not async)"."""
    methods, attributes = _protocol_members(protocol)
    skipped = set(skip)
    gaps = [f"attribute `{a}`" for a in attributes if a not in skipped and not hasattr(obj, a)]
    for name, spec in methods.items():
        if name in skipped:
            continue
        form = _call_form(name, spec)
        have = getattr(obj, name, None)
        if not callable(have):
            gaps.append(f"method `{form}`")
            continue
        if inspect.iscoroutinefunction(spec) and not inspect.iscoroutinefunction(have):
            gaps.append(f"method `{form}` (not async)")
            continue
        required = [p for p in inspect.signature(spec).parameters.values()
                    if p.name != "self" and p.default is inspect.Parameter.empty
                    and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        try:
            sig = inspect.signature(have)
        except (TypeError, ValueError):  # no signature to read (a builtin): trust it
            continue
        try:
            sig.bind(*range(len(required)))
        except TypeError:
            gaps.append(f"method `{form}` (it takes `{name}{sig}`)")
    return gaps


def check_protocol(obj: Any, protocol: type, owner: str | None = None, *, skip: Iterable[str] = ()) -> None:
    """Raise ``ConformanceError`` naming every method and attribute of ``protocol`` that ``obj`` lacks (or whose
    method does not take the arguments the caller passes); ``skip`` names members checked elsewhere."""
    gaps = protocol_gaps(obj, protocol, skip)
    if gaps:
        who = owner or _owner(type(obj).__name__, obj)
        raise ConformanceError(f"{who} lacks {', '.join(gaps)} ({protocol.__module__}.{protocol.__name__})")


def _owner(kind: str, obj: Any) -> str:
    """``kind 'name'``: the object's name if it has one, else its class's."""
    name = getattr(obj, "name", None)
    return f"{kind} {name if isinstance(name, str) else type(obj).__name__!r}"


def _snapshot(owner: str, obj: Any) -> Any:
    """A deep copy of ``obj.get_state()``, checked to be what a checkpoint can store."""
    state = obj.get_state()
    if not isinstance(state, dict):
        raise ConformanceError(f"{owner}: get_state() returned a {type(state).__name__}, expected a dict")
    try:
        pack_state(state)
    except TypeError as err:
        raise ConformanceError(f"{owner}: get_state() cannot be checkpointed: {err}") from None
    return copy.deepcopy(state)


def _check_outcome(owner: str, out: Any, bids: np.ndarray, active: np.ndarray) -> None:
    n = bids.size
    if not isinstance(out, ReverseOutcome):
        raise ConformanceError(f"{owner}: select returned a {type(out).__name__}, expected a ReverseOutcome")
    w = out.winner
    if w is not None and not (isinstance(w, numbers.Integral) and not isinstance(w, bool) and 0 <= w < n):
        raise ConformanceError(f"{owner}: winner = {w!r}, expected None or a provider index in [0, {n})")
    if w is not None and not active[w]:
        raise ConformanceError(f"{owner}: winner = {w}, but provider {w} abstained (active False)")
    for field, kind in (("payments", "f"), ("resampled", "f"), ("modified", "b")):
        arr = getattr(out, field)
        if not isinstance(arr, np.ndarray) or arr.shape != (n,) or arr.dtype.kind != kind:
            got = f"{arr.dtype}{arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise ConformanceError(f"{owner}: outcome.{field} is {got}, expected a ({n},) "
                                   f"{'float' if kind == 'f' else 'bool'} array")
    pay = out.payments
    if not np.all(np.isfinite(pay)) or np.any(pay < 0):
        raise ConformanceError(f"{owner}: payments = {pay.tolist()}, expected finite amounts >= 0 (user to provider)")
    unpaid = np.ones(n, dtype=bool) if w is None else np.arange(n) != w
    if np.any(pay[unpaid] != 0):
        raise ConformanceError(f"{owner}: payments = {pay.tolist()} with winner {w}, expected 0 for everyone else")
    if w is not None and pay[w] < bids[w]:
        # individual rationality: a provider bidding its cost never loses money by winning
        raise ConformanceError(f"{owner}: the winner {w} bid {bids[w]} and is paid {pay[w]}, expected at least its bid")


def _same_outcome(a: ReverseOutcome, b: ReverseOutcome) -> bool:
    return a.winner == b.winner and all(same_state(getattr(a, f), getattr(b, f))
                                        for f in ("payments", "resampled", "modified"))


def check_reverse_mechanism(factory: Callable[[int, int], Any], *, n: int = 4, d: int = 3, rounds: int = 30,
                            seed: int = 0, stateless_select: bool = True,
                            error: type[Exception] = MechanismError) -> None:
    """Check a reverse-auction mechanism ``factory(n, d)`` against the auctioneer's contract (``ReverseMechanism``).

    It plays ``rounds`` rounds with the last provider abstaining (NaN bid, active False) and, in half the rounds,
    another one sitting out (its bid unchanged, active False), and checks every outcome's
    types and shapes, that abstainers never win and only the winner is paid, at least its bid; that ``select``
    leaves ``get_state()`` unchanged after the first round (a horizon mechanism commits the bids at its first
    select; ``stateless_select=False`` for a mechanism that counts its selects by design) and that equal rng
    seeds give equal outcomes; that a fresh mechanism given ``get_state()`` selects and learns as the original;
    that NaN and infinite bids raise ``error`` and that a bid outside [cost_floor, cost_cap] raises it or is
    treated as the nearest bid inside.
    """
    mech = factory(n, d)
    owner = _owner("mechanism", mech)
    check_protocol(mech, ReverseMechanism, owner)
    if not isinstance(getattr(mech, "name", None), str):
        raise ConformanceError(f"{owner}: name = {getattr(mech, 'name', None)!r}, expected a string")
    if getattr(mech, "n", None) != n:
        raise ConformanceError(f"{owner}: n = {getattr(mech, 'n', None)!r}, expected {n} (built with n = {n})")
    lo, cap = getattr(mech, "cost_floor", None), getattr(mech, "cost_cap", None)
    if not (isinstance(lo, numbers.Real) and isinstance(cap, numbers.Real) and np.isfinite([lo, cap]).all()
            and lo < cap):
        raise ConformanceError(f"{owner}: [cost_floor, cost_cap] = [{lo!r}, {cap!r}], expected finite numbers, "
                               "floor < cap (the bid range the auctioneer and the strategies use)")
    lo, cap = float(lo), float(cap)
    draws = np.random.default_rng(seed)
    bids = lo + (cap - lo) * draws.uniform(0.05, 0.4, n)  # low against the rewards below: most rounds sell
    present = np.ones(n, dtype=bool)
    present[n - 1] = False

    def active() -> np.ndarray:
        """Who bids this round: a second provider sits out half the time, so several win and get learned about."""
        mask = present.copy()
        if n > 2 and draws.random() < 0.5:
            mask[int(draws.integers(n - 1))] = False
        return mask
    bids[n - 1] = np.nan
    # rewards linear in the context, one quality vector per provider, so a learner's state changes its choices
    theta = draws.random((n, d))

    def reward(x: np.ndarray, winner: int | None) -> float:
        if winner is None:
            return 0.0
        return cap * (0.5 + float(theta[winner] @ x) / d) + 0.1 * (cap - lo) * float(draws.standard_normal())

    mech_rng = np.random.default_rng([seed, 1])
    for t in range(rounds):
        x = draws.random(d)
        before = _snapshot(owner, mech)
        mask = active()
        out = mech.select(x, bids.copy(), mech_rng, mask.copy())
        _check_outcome(f"{owner} round {t}", out, bids, mask)
        if stateless_select and t > 0 and not same_state(before, mech.get_state()):
            raise ConformanceError(f"{owner} round {t}: select changed get_state(); expected select to draw an "
                                   "outcome without learning (only update learns)")
        mech.update(x, out, reward(x, out.winner))

    state = _snapshot(owner, mech)
    x = draws.random(d)
    k = int(draws.integers(1 << 30))
    mask = active()
    first = mech.select(x, bids.copy(), np.random.default_rng(k), mask.copy())
    mech.set_state(copy.deepcopy(state))
    again = mech.select(x, bids.copy(), np.random.default_rng(k), mask.copy())
    if not _same_outcome(first, again):
        raise ConformanceError(f"{owner}: two selects from one state with rng seed {k} disagree "
                               f"(winner {first.winner} vs {again.winner}); expected the rng to be its only coins")
    mech.set_state(copy.deepcopy(state))
    twin = factory(n, d)
    twin.set_state(copy.deepcopy(state))
    if not same_state(state, twin.get_state()):
        raise ConformanceError(f"{owner}: set_state(s) then get_state() differs from s")
    for t in range(rounds):
        x, k, mask = draws.random(d), int(draws.integers(1 << 30)), active()
        a = mech.select(x, bids.copy(), np.random.default_rng(k), mask.copy())
        b = twin.select(x, bids.copy(), np.random.default_rng(k), mask.copy())
        if not _same_outcome(a, b):
            raise ConformanceError(f"{owner}: a fresh mechanism given get_state() selects differently {t} rounds "
                                   f"later (winner {a.winner} vs {b.winner}); expected the state to restore behaviour")
        r = reward(x, a.winner)
        mech.update(x, a, r)
        twin.update(x, b, r)

    honest = lo + (cap - lo) * 0.5
    for bad in (np.nan, np.inf, -np.inf, cap + (cap - lo), lo - (cap - lo)):
        probe, clipped = factory(n, d), factory(n, d)
        wrong = np.full(n, honest)
        wrong[0] = bad
        x, k = draws.random(d), int(draws.integers(1 << 30))
        try:
            out = probe.select(x, wrong, np.random.default_rng(k))
        except error:
            continue
        except Exception as err:  # reported as what was raised instead
            raise ConformanceError(f"{owner}: bids[0] = {bad} raised {type(err).__name__}: {err}; expected "
                                   f"{error.__name__}") from err
        if not np.isfinite(bad):
            raise ConformanceError(f"{owner}: bids[0] = {bad} from an active provider was accepted; expected "
                                   f"{error.__name__}")
        inside = wrong.copy()
        inside[0] = min(max(bad, lo), cap)
        if not _same_outcome(out, clipped.select(x, inside, np.random.default_rng(k))):
            raise ConformanceError(f"{owner}: bids[0] = {bad} outside [{lo}, {cap}] was accepted and not treated as "
                                   f"{inside[0]}; expected {error.__name__} or the nearest bid inside the range")


def _bid_stream(owner: str, bidder: Bidder, facts: BidderFacts, rounds: int, seed: int, d: int,
                start: int = 0, provider: np.random.Generator | None = None) -> list[float]:
    """Bids of ``bidder``'s strategy over rounds start..rounds-1 of a market drawn from ``seed``: costs in the bid
    range, contexts in [0, 1]^d, a rival threshold bid; a win pays the threshold (a critical-bid payment). Round t
    is observed as round 3t + 1 (a market's rounds need not be the strategy's call count); the history is the
    ``Bidder``'s, as a provider keeps it."""
    market = np.random.default_rng([seed, 7])
    provider = provider if provider is not None else np.random.default_rng([seed, 8])
    lo, cap = facts.cost_floor, facts.cost_cap
    out = []
    for t in range(rounds):
        cost, context, rival = lo + (cap - lo) * market.random(), market.random(d), lo + (cap - lo) * market.random()
        if t < start:
            continue
        position = provider.bit_generator.state
        bid = bidder.answer(cost, context, 3 * t + 1, provider)
        if provider.bit_generator.state != position:
            raise ConformanceError(f"{owner} round {t}: bid advanced the provider's generator; expected coins split "
                                   "off it (rng.spawn) so the provider's cost draws match its truthful twin's")
        if isinstance(bid, bool) or not isinstance(bid, numbers.Real) or not np.isfinite(bid):
            raise ConformanceError(f"{owner} round {t}: bid = {bid!r}, expected a finite number")
        if not lo <= bid <= cap:
            raise ConformanceError(f"{owner} round {t}: bid = {bid!r}, expected a bid in [cost_floor, cost_cap] = "
                                   f"[{lo}, {cap}] (the auctioneer refuses any other)")
        won = bid <= rival
        bidder.learn(BidFeedback(3 * t + 1, won, rival if won else 0.0, cost, float(bid)))
        out.append(float(bid))
    return out


def check_strategy(factory: Callable[[BidderFacts], Any], *, facts: BidderFacts = BidderFacts(0, 3, 0.0, 1.0, 0.2),
                   rounds: int = 60, seed: int = 0, d: int = 3) -> None:
    """Check a provider strategy ``factory(facts)`` against ``BiddingStrategy`` (``bid(obs)``, ``learn(feedback)``,
    ``get_state``, ``set_state``; the deprecated ``bid(cost, context, rng)`` is still accepted).

    The strategy has every method the provider calls; every bid is a finite number in [cost_floor, cost_cap];
    ``bid`` leaves the provider's generator where it was (a randomised strategy splits its coins off it); two
    strategies fed one seed bid alike (no global RNG, no clock); ``get_state()`` can be checkpointed, and a fresh
    strategy given it (and the history its provider kept), mid-run, bids on as the original.
    """
    first = factory(facts)
    owner = _owner("strategy", first)
    check_protocol(first, BiddingStrategy, owner, skip=("bid", "memory"))
    try:
        bid_style(first)
        bidder = Bidder(first)
    except TypeError as err:
        raise ConformanceError(f"{err} ({BiddingStrategy.__module__}.{BiddingStrategy.__name__})") from None
    bids = _bid_stream(owner, bidder, facts, rounds, seed, d)
    again = _bid_stream(owner, Bidder(factory(facts)), facts, rounds, seed, d)
    if bids != again:
        t = next(i for i, (a, b) in enumerate(zip(bids, again)) if a != b)
        raise ConformanceError(f"{owner} round {t}: one seed gave bids {bids[t]!r} and {again[t]!r}; expected equal "
                               "bids (coins only from the rng passed to bid)")
    half = rounds // 2
    original = Bidder(factory(facts))
    provider = np.random.default_rng([seed, 8])
    _bid_stream(owner, original, facts, half, seed, d, provider=provider)
    state = _snapshot(owner, original.strategy)
    twin = Bidder(factory(facts))
    twin.strategy.set_state(copy.deepcopy(state))
    twin.set_state(original.get_state())
    if not same_state(state, twin.strategy.get_state()):
        raise ConformanceError(f"{owner}: set_state(s) then get_state() differs from s")
    position = provider.bit_generator.state
    rest = _bid_stream(owner, original, facts, rounds, seed, d, start=half, provider=provider)
    twin_provider = np.random.default_rng([seed, 8])
    twin_provider.bit_generator.state = position
    restored = _bid_stream(owner, twin, facts, rounds, seed, d, start=half, provider=twin_provider)
    if rest != restored:
        t = half + next(i for i, (a, b) in enumerate(zip(rest, restored)) if a != b)
        raise ConformanceError(f"{owner} round {t}: a fresh strategy given get_state() at round {half} bids "
                               f"{restored[t - half]!r}, the original {rest[t - half]!r}; expected the state to "
                               "restore behaviour (a checkpointed run resumes exactly)")


def _report_stream(owner: str, reporter: Reporter, rounds: int, seed: int, m: int, start: int = 0,
                   advertiser: np.random.Generator | None = None) -> list[np.ndarray]:
    """Reports of ``reporter``'s strategy over rounds start..rounds-1 (observed as rounds 3t + 1, not a count of
    calls), with the history the ``Reporter`` keeps, as an advertiser does."""
    market = np.random.default_rng([seed, 9])
    advertiser = advertiser if advertiser is not None else np.random.default_rng([seed, 10])
    out = []
    for t in range(rounds):
        true, shown, payment = market.normal(size=m), int(market.integers(m)), float(market.normal())
        if t < start:
            continue
        position = advertiser.bit_generator.state
        report = reporter.report(true.copy(), 3 * t + 1, advertiser)
        if advertiser.bit_generator.state != position:
            raise ConformanceError(f"{owner} round {t}: report advanced the advertiser's generator; expected coins "
                                   "split off it (rng.spawn)")
        report = np.asarray(report)
        if report.shape != (m,) or report.dtype.kind not in "fi" or not np.all(np.isfinite(report)):
            raise ConformanceError(f"{owner} round {t}: report = {report!r}, expected ({m},) finite rewards")
        reporter.learn(AdFeedback(3 * t + 1, true, report, float(true[shown]), payment))
        out.append(report.astype(float))
    return out


def check_ad_strategy(factory: Callable[[], Any], *, rounds: int = 40, seed: int = 0, m: int = 5) -> None:
    """Check an advertiser strategy ``factory()`` against ``AdStrategy`` (``describe``, ``report(obs)``, ``learn``,
    ``get_state``, ``set_state``; the deprecated ``report(true_rewards, rng)`` is still accepted).

    ``describe`` returns a string; every report is (M,) finite rewards; ``report`` leaves the advertiser's generator
    where it was; one seed gives equal reports; a fresh strategy given ``get_state()`` (and the history its
    advertiser kept) mid-run reports on alike.
    """
    first = factory()
    owner = _owner("advertiser strategy", first)
    check_protocol(first, AdStrategy, owner, skip=("report",))
    try:
        reporter = Reporter(first)
    except TypeError as err:
        raise ConformanceError(f"{err} ({AdStrategy.__module__}.{AdStrategy.__name__})") from None
    described = first.describe("Acme", "fast tea")
    if not isinstance(described, str):
        raise ConformanceError(f"{owner}: describe returned {described!r}, expected a string")
    reports = _report_stream(owner, reporter, rounds, seed, m)
    again = _report_stream(owner, Reporter(factory()), rounds, seed, m)
    for t, (a, b) in enumerate(zip(reports, again)):
        if not np.array_equal(a, b):
            raise ConformanceError(f"{owner} round {t}: one seed gave reports {a.tolist()} and {b.tolist()}")
    half = rounds // 2
    original, advertiser = Reporter(factory()), np.random.default_rng([seed, 10])
    _report_stream(owner, original, half, seed, m, advertiser=advertiser)
    state = _snapshot(owner, original.strategy)
    twin = Reporter(factory())
    twin.strategy.set_state(copy.deepcopy(state))
    twin.set_state(original.get_state())
    twin_advertiser = np.random.default_rng([seed, 10])
    twin_advertiser.bit_generator.state = advertiser.bit_generator.state
    rest = _report_stream(owner, original, rounds, seed, m, start=half, advertiser=advertiser)
    restored = _report_stream(owner, twin, rounds, seed, m, start=half, advertiser=twin_advertiser)
    for t, (a, b) in enumerate(zip(rest, restored)):
        if not np.array_equal(a, b):
            raise ConformanceError(f"{owner} round {half + t}: a fresh strategy given get_state() at round {half} "
                                   f"reports {b.tolist()}, the original {a.tolist()}")


def check_agent(agent: Any) -> None:
    """Check an agent object, as built and before the world attaches it, against ``AgentLike``: every method the
    world calls (``run`` async), an ``id`` and ``groups``, and a ``get_state()`` a checkpoint can store.

    What it does in a market is checked by running one: ``check_run_determinism`` on a scenario that adds it.
    """
    owner = f"agent {getattr(agent, 'id', type(agent).__name__)!r}"
    check_protocol(agent, AgentLike, owner)
    if not isinstance(agent.id, str) or not agent.id:
        raise ConformanceError(f"{owner}: id = {agent.id!r}, expected a non-empty string")
    groups = agent.groups
    if not isinstance(groups, tuple) or not all(isinstance(g, str) for g in groups):
        raise ConformanceError(f"{owner}: groups = {groups!r}, expected a tuple of group names")
    _snapshot(owner, agent)


def _check_same_arrays(owner: str, what: str, a: Any, b: Any, fields: tuple[str, ...]) -> None:
    for f in fields:
        if not np.array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f))):
            raise ConformanceError(f"{owner}: {what}: {f} {np.asarray(getattr(a, f)).tolist()} vs "
                                   f"{np.asarray(getattr(b, f)).tolist()}")


def check_aggregation(aggregate: Callable[..., Any], *, n: int = 2, m: int = 6, tau: float = 1.0, seed: int = 0,
                      error: type[Exception] = MechanismError) -> None:
    """Check a MOSAIC-style aggregation auction ``aggregate(rewards (n, M), log_ref (M,), log_gen (M,), tau=...)``
    returning ``q`` (M,) and ``payments`` (n,).

    q is a probability vector and payments are finite; equal inputs give equal outputs and are not modified;
    relabelling the candidates permutes q the same way and leaves payments unchanged (no position bias); NaN
    rewards and mismatched shapes raise ``error``.
    """
    label = getattr(aggregate, "__name__", None) or getattr(getattr(aggregate, "func", None), "__name__", aggregate)
    owner = f"aggregation {label!r}"
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(n, m))
    log_ref, log_gen = np.log(rng.dirichlet(np.ones(m))), np.log(rng.dirichlet(np.ones(m)))
    kept = rewards.copy(), log_ref.copy(), log_gen.copy()
    out = aggregate(rewards, log_ref, log_gen, tau=tau)
    if any(not np.array_equal(a, b) for a, b in zip((rewards, log_ref, log_gen), kept)):
        raise ConformanceError(f"{owner}: the call modified its inputs; expected them untouched")
    q, pay = np.asarray(getattr(out, "q", None)), np.asarray(getattr(out, "payments", None))
    if q.shape != (m,) or q.dtype.kind != "f" or not np.all(np.isfinite(q)) or np.any(q < 0) or abs(q.sum() - 1) > 1e-9:
        raise ConformanceError(f"{owner}: q = {q!r}, expected a ({m},) probability vector")
    if pay.shape != (n,) or pay.dtype.kind != "f" or not np.all(np.isfinite(pay)):
        raise ConformanceError(f"{owner}: payments = {pay!r}, expected ({n},) finite amounts")
    _check_same_arrays(owner, "two calls on equal inputs differ", out, aggregate(*kept, tau=tau), ("q", "payments"))
    order = rng.permutation(m)
    moved = aggregate(rewards[:, order], log_ref[order], log_gen[order], tau=tau)
    if not (np.allclose(np.asarray(moved.q), q[order], rtol=1e-9, atol=1e-12)
            and np.allclose(np.asarray(moved.payments), pay, rtol=1e-9, atol=1e-12)):
        raise ConformanceError(f"{owner}: relabelling the candidates by {order.tolist()} changed the outcome beyond "
                               "the relabelling; expected q permuted alike and payments unchanged")
    bad_reward = rewards.copy()
    bad_reward[0, 0] = np.nan
    for what, args in (("a NaN reward", (bad_reward, log_ref, log_gen)),
                       ("log_ref of another length", (rewards, log_ref[:-1], log_gen))):
        try:
            aggregate(*args, tau=tau)
        except error:
            continue
        except Exception as err:  # reported as what was raised instead
            raise ConformanceError(f"{owner}: {what} raised {type(err).__name__}: {err}; "
                                   f"expected {error.__name__}") from err
        raise ConformanceError(f"{owner}: {what} was accepted; expected {error.__name__}")


def check_token_aggregation(step: Callable[..., Any], *, n: int = 3, v: int = 6, seed: int = 0,
                            error: type[Exception] = MechanismError) -> None:
    """Check a token auction step ``step(token_probs (n, V), bids (n,))`` returning ``q`` (V,) and ``payments`` (n,).

    q is a probability vector; payments are finite, >= 0 and at most the bid; equal inputs give equal outputs;
    relabelling the tokens permutes q alike and leaves payments unchanged; NaN or negative bids raise ``error``.
    """
    owner = f"token aggregation {getattr(step, '__name__', step)!r}"
    rng = np.random.default_rng(seed)
    probs, bids = rng.dirichlet(np.ones(v), size=n), rng.uniform(0.5, 2.0, n)
    kept = probs.copy(), bids.copy()
    out = step(probs, bids)
    if not (np.array_equal(probs, kept[0]) and np.array_equal(bids, kept[1])):
        raise ConformanceError(f"{owner}: the call modified its inputs; expected them untouched")
    q, pay = np.asarray(out.q), np.asarray(out.payments)
    if q.shape != (v,) or not np.all(np.isfinite(q)) or np.any(q < 0) or abs(q.sum() - 1) > 1e-9:
        raise ConformanceError(f"{owner}: q = {q!r}, expected a ({v},) probability vector")
    if pay.shape != (n,) or not np.all(np.isfinite(pay)) or np.any(pay < 0) or np.any(pay > bids + 1e-12):
        raise ConformanceError(f"{owner}: payments = {pay!r} for bids {bids.tolist()}, expected ({n},) amounts in "
                               "[0, bid]")
    _check_same_arrays(owner, "two calls on equal inputs differ", out, step(*kept), ("q", "payments"))
    order = rng.permutation(v)
    moved = step(probs[:, order], bids)
    if not (np.allclose(moved.q, q[order], rtol=1e-9, atol=1e-12) and np.allclose(moved.payments, pay, rtol=1e-9,
                                                                                    atol=1e-12)):
        raise ConformanceError(f"{owner}: relabelling the tokens by {order.tolist()} changed the outcome beyond the "
                               "relabelling")
    for bad in (np.nan, -1.0):
        wrong = bids.copy()
        wrong[0] = bad
        try:
            step(probs, wrong)
        except error:
            continue
        raise ConformanceError(f"{owner}: bids[0] = {bad} was accepted; expected {error.__name__}")
