"""Bidding strategies of LLM providers: small objects with ``bid(obs)`` and ``learn(feedback)``.

The contract is ``BiddingStrategy`` (a Protocol): a provider asks ``bid`` once per call for bids with an
``Observation`` (its cost, the query's context, the market's round index, its own past rounds as it learnt
them, its generator), and hands every round's outcome to ``learn``. ``Bidder`` is the one code path the
provider agent and the fast engine both drive a strategy through: it builds the observations, keeps the
history the strategy asked for (``memory``) and still drives the deprecated ``bid(cost, context, rng)``.

Truthful and fixed shading; learners that adapt a shading multiplier from realised profit (EXP3/Hedge and
UCB over a grid, gradient ascent on a Gaussian-smoothed profit); a coin predictor; a bid-rotation ring.
``STRATEGIES`` maps the names usable in scenario files to factories ``f(facts, **params)``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, overload, runtime_checkable

import numpy as np

from market.core.mechanisms.leaky import public_coins
from market.core.mechanisms.rosa import resample
from market.core.registry import Registry
from market.core.seeding import generator_from_state, generator_state


@dataclass(frozen=True, slots=True)
class BidFeedback:
    """What a provider learns after a round: did it win, what it was paid, what serving cost it."""

    round: int
    won: bool
    payment: float
    cost: float
    bid: float

    @property
    def profit(self) -> float:
        return self.payment - (self.cost if self.won else 0.0)


@dataclass(frozen=True, slots=True)
class BidderFacts:
    """The public rules a provider bids under: its index among n providers, the accepted bid range
    [cost_floor, cost_cap] and the mechanism's resampling probability mu (None without resampling)."""

    index: int = 0
    n: int = 1
    cost_floor: float = 0.0
    cost_cap: float = 1.0
    mu: float | None = None


F = TypeVar("F")


class History(Sequence[F], Generic[F]):
    """A read-only view of a strategy's past rounds, oldest first, as its agent learnt them (``BidFeedback`` for
    a provider, ``AdFeedback`` for an advertiser).

    A view is fixed when it is made: later rounds never show up in it, so a strategy may keep an observation's
    history. Making one copies nothing (it is a window on a list a ``Memory`` only appends to, or replaces
    when it trims), so a history costs the same each round however long it is.
    """

    __slots__ = ("_items", "_start", "_stop")

    def __init__(self, items: Sequence[F] = (), start: int = 0, stop: int | None = None) -> None:
        self._items = items
        self._start = start
        self._stop = len(items) if stop is None else stop

    def __len__(self) -> int:
        return self._stop - self._start

    @overload
    def __getitem__(self, index: int) -> F: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[F, ...]: ...

    def __getitem__(self, index: int | slice) -> F | tuple[F, ...]:
        if isinstance(index, slice):
            return tuple(self._items[self._start:self._stop][index])
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"history index {index} out of range for {n} rounds")
        return self._items[self._start + index % n]

    def __iter__(self) -> Iterator[F]:
        for k in range(self._start, self._stop):
            yield self._items[k]

    def __repr__(self) -> str:
        return f"History({list(self)!r})"


_NO_HISTORY: History[Any] = History()


@dataclass(frozen=True, slots=True)
class Observation:
    """What a provider knows when it bids in one round.

    cost: its serving cost for this query, drawn from its prior just before.
    context: (d,) the query's context, as the call for bids carried it.
    round: the market's round index of this query (0, 1, ... over the run, also after a resume), not a count of
        the strategy's own calls: a call for bids lost on the wire is a round the strategy never sees.
    history: its own past rounds whose outcome reached it (``BidFeedback``: round, won, payment, cost, bid),
        oldest first; the last ``memory`` of them (the strategy's attribute; empty if it keeps none).
    rng: the provider's generator. ``bid`` must not draw from it (the provider's next costs would move away from
        its truthful twin's); a randomised strategy splits its own coins off it once with ``rng.spawn(1)``.
    """

    cost: float
    context: np.ndarray
    round: int
    history: History[BidFeedback]
    rng: np.random.Generator


@runtime_checkable
class BiddingStrategy(Protocol):
    """What a provider (``agents.providers.Provider``) and the fast engine (``market.lab.deviation.FastMarket``)
    need from a strategy. A factory ``f(facts: BidderFacts, **params)`` builds it, once per provider and run.

    An optional attribute ``memory`` says how many of its past rounds it wants in ``Observation.history``: 0 (none
    is kept; the default when it has none), k (the last k) or None (every one; the history then grows with the
    run, in memory and in every checkpoint).
    """

    name: str

    def bid(self, obs: Observation) -> float:
        """The bid for one round, asked when the call for bids arrives, before the round's outcome is known and
        after ``learn`` has seen every outcome that arrived earlier. Any number is sent; the auctioneer refuses
        one outside [cost_floor, cost_cap] (``Strategy.clip`` keeps it inside)."""
        ...

    def learn(self, feedback: BidFeedback) -> None:
        """One round's outcome, when it reaches the provider (every round it bid in, unless the result is lost;
        rounds may end out of order under network faults). The feedback is then appended to the history."""
        ...

    def get_state(self) -> dict[str, Any]:
        """Everything that decides its future bids (learner values, the position of its own coins), as plain
        values and arrays: a checkpoint stores it and ``set_state`` on a freshly built strategy must make it bid
        on exactly as this one. Asked between rounds, never during ``bid``. The history is kept by the provider."""
        ...

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what ``get_state`` returned, on a strategy fresh from its factory, before its next ``bid``."""
        ...


def call_style(strategy: object, method: str, legacy: tuple[str, ...]) -> str:
    """'observation' if ``strategy.method`` takes one observation, 'legacy' if it takes the deprecated arguments
    ``legacy`` (e.g. cost, context, rng); else a TypeError naming the strategy and the signature it has. Read once,
    when the strategy's driver is built, so the call in each round costs nothing more."""
    owner = f"strategy {getattr(strategy, 'name', type(strategy).__name__)!r}"
    fn = getattr(strategy, method, None)
    if not callable(fn):
        raise TypeError(f"{owner} lacks method `{method}(obs)`")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: assume the current contract
        return "observation"
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in sig.parameters.values() if p.kind in kinds]
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    star = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values())
    k = len(legacy)
    if len(required) <= 1 and (positional or star):
        named_obs = bool(positional) and positional[0].name in ("obs", "observation")
        return "legacy" if len(positional) >= k and not named_obs else "observation"
    if len(required) <= k and (len(positional) >= k or star):
        return "legacy"
    raise TypeError(f"{owner}: {method}{sig} takes {len(required)} arguments; expected {method}(obs) (or the "
                    f"deprecated {method}({', '.join(legacy)}))")


def bid_style(strategy: object) -> str:
    """'observation' for ``bid(obs)``, 'legacy' for the deprecated ``bid(cost, context, rng)``; else a TypeError
    naming the strategy and the signature it has."""
    return call_style(strategy, "bid", ("cost", "context", "rng"))


def warn_legacy(strategy: object, call: str, new: str) -> None:
    """The DeprecationWarning of a strategy written to an old signature, once per strategy object."""
    warnings.warn(f"strategy {getattr(strategy, 'name', type(strategy).__name__)!r}: {call} is deprecated; write "
                  f"{new}", DeprecationWarning, stacklevel=3)


class Memory(Generic[F]):
    """The last ``memory`` outcomes an agent learnt for its strategy (0: none, None: all), handed out as fixed
    ``History`` views. The list is only appended to, and replaced by its tail when it has grown well past
    ``memory``, so views already handed out never change and the memory stays bounded."""

    def __init__(self, strategy: object) -> None:
        memory = getattr(strategy, "memory", 0)
        if memory is not None and (isinstance(memory, bool) or not isinstance(memory, int) or memory < 0):
            raise TypeError(f"strategy {getattr(strategy, 'name', type(strategy).__name__)!r}: memory = {memory!r}; "
                            "expected an integer >= 0 or None (every round)")
        self.memory: int | None = memory
        self.items: list[F] = []

    def view(self) -> History[F]:
        """The rounds the strategy sees now (a fixed view)."""
        if self.memory == 0:
            return _NO_HISTORY  # read-only and empty: one for every strategy that keeps none
        start = 0 if self.memory is None else max(len(self.items) - self.memory, 0)
        return History(self.items, start)

    def add(self, item: F) -> None:
        if self.memory == 0:
            return
        self.items.append(item)
        if self.memory is not None and len(self.items) >= 2 * self.memory + 64:
            # a new list: views already handed out keep the old one, unchanged
            self.items = self.items[-self.memory:]


class Bidder:
    """Drives one provider's strategy: builds its observations, keeps the history it asked for, learns.

    The provider agent and the fast engine both bid through a ``Bidder``, so a strategy sees the same
    observations in both. The strategy's bid signature is read once, here: a deprecated
    ``bid(cost, context, rng)`` strategy is called with those three values (with a DeprecationWarning).
    """

    def __init__(self, strategy: Any) -> None:
        self.strategy = strategy
        self.legacy = bid_style(strategy) == "legacy"
        if self.legacy:
            warn_legacy(strategy, "bid(cost, context, rng)", "bid(obs) (agents.strategies.Observation)")
        self._memory: Memory[BidFeedback] = Memory(strategy)
        self.memory = self._memory.memory

    def history(self) -> History[BidFeedback]:
        """The rounds the strategy sees now (a fixed view)."""
        return self._memory.view()

    def bid(self, cost: float, context: np.ndarray, round_index: int, rng: np.random.Generator) -> float:
        """The strategy's bid in round ``round_index``, as a float."""
        return float(self.answer(cost, context, round_index, rng))

    def answer(self, cost: float, context: np.ndarray, round_index: int, rng: np.random.Generator) -> Any:
        """What the strategy's ``bid`` returns for round ``round_index``, unconverted (for checks of its type)."""
        if self.legacy:
            return self.strategy.bid(cost, context, rng)
        return self.strategy.bid(Observation(cost, context, round_index, self._memory.view(), rng))

    def learn(self, feedback: BidFeedback) -> None:
        """Give the strategy a round's outcome, then add it to the history (if the strategy keeps one)."""
        self.strategy.learn(feedback)
        self._memory.add(feedback)

    def get_state(self) -> list[list[Any]]:
        """The kept history for a checkpoint: [round, won, payment, cost, bid] per round, oldest first."""
        return [[f.round, f.won, f.payment, f.cost, f.bid] for f in self._memory.view()]

    def set_state(self, rows: Sequence[Sequence[Any]]) -> None:
        self._memory.items = [BidFeedback(int(r), bool(w), float(p), float(c), float(b)) for r, w, p, c, b in rows]


DEFAULT_GRID = tuple(round(0.8 + 0.1 * k, 2) for k in range(13))  # multipliers 0.8 .. 2.0


class Strategy:
    """Base of the strategies: bids are clipped into [cost_floor, cost_cap], the range every mechanism
    accepts, so a shaded bid above the cap becomes the cap (a bid the auctioneer would otherwise refuse)."""

    name = "strategy"
    memory: int | None = 0  # past rounds wanted in Observation.history (BiddingStrategy)

    def __init__(self, facts: BidderFacts = BidderFacts()) -> None:
        self.facts = facts

    def clip(self, bid: float) -> float:
        """``bid`` moved into [cost_floor, cost_cap]."""
        return min(max(bid, self.facts.cost_floor), self.facts.cost_cap)

    def bid(self, obs: Observation) -> float:
        return self.clip(obs.cost * self.multiplier)

    @property
    def multiplier(self) -> float:
        """The shading multiplier the strategy currently prefers (bid / cost before clipping)."""
        return 1.0

    def learn(self, feedback: BidFeedback) -> None:
        pass

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass


class Truthful(Strategy):
    """Bids its cost: the dominant strategy under a truthful mechanism."""

    name = "truthful"

    def bid(self, obs: Observation) -> float:
        return self.clip(obs.cost)


class Shade(Strategy):
    """Fixed shading: bid = cost x (1 + s); s < 0 underbids."""

    name = "shade"

    def __init__(self, facts: BidderFacts = BidderFacts(), s: float = 0.2) -> None:
        super().__init__(facts)
        if not (np.isfinite(s) and s > -1.0):
            raise ValueError(f"s = {s!r}: expected a finite shading above -1")
        self.s = float(s)

    @property
    def multiplier(self) -> float:
        return 1.0 + self.s


class _Randomised(Strategy):
    """A strategy with coins of its own, split off the provider's generator without advancing it, so
    the provider's cost draws stay those of its truthful twin (common random numbers)."""

    def __init__(self, facts: BidderFacts) -> None:
        super().__init__(facts)
        self._rng: np.random.Generator | None = None

    def coins(self, rng: np.random.Generator) -> np.random.Generator:
        if self._rng is None:
            self._rng = rng.spawn(1)[0]
        return self._rng

    # The coins' position is state: a restored strategy re-spawning them would replay its first rounds' coins.
    def get_state(self) -> dict[str, Any]:
        return {"coins": generator_state(self._rng)}

    def set_state(self, state: dict[str, Any]) -> None:
        if "coins" in state:  # a checkpoint written before the coins were kept leaves them running
            self._rng = generator_from_state(state["coins"])


class _GridLearner(_Randomised):
    """A learner choosing a multiplier from ``grid`` each round; ``arm`` is the last choice."""

    def __init__(self, facts: BidderFacts, grid: Sequence[float]) -> None:
        super().__init__(facts)
        self.grid = np.asarray(grid, dtype=float)
        if self.grid.ndim != 1 or self.grid.size < 1 or not np.all(self.grid > 0):
            raise ValueError(f"grid = {list(grid)!r}: expected a non-empty list of positive multipliers")
        self.arm = 0

    def choose(self, rng: np.random.Generator) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement choose(rng)")

    def bid(self, obs: Observation) -> float:
        self.arm = self.choose(self.coins(obs.rng))
        return self.clip(obs.cost * self.grid[self.arm])


class ExponentialWeights(_GridLearner):
    """EXP3 over a grid of multipliers, on importance-weighted profit estimates (profit / cost_cap).

    A provider sees only its own profit, so the Hedge update runs on unbiased bandit estimates;
    gamma mixes in uniform exploration (gamma = 0 is "hedge", gamma > 0 "exp3").
    """

    name = "exp3"

    def __init__(
        self, facts: BidderFacts = BidderFacts(), grid: Sequence[float] = DEFAULT_GRID, eta: float = 0.05,
        gamma: float = 0.1,
    ) -> None:
        super().__init__(facts, grid)
        if not (eta > 0 and 0 <= gamma < 1):
            raise ValueError(f"eta = {eta!r}, gamma = {gamma!r}: expected eta > 0 and gamma in [0, 1)")
        self.eta, self.gamma = float(eta), float(gamma)
        self.log_weights = np.zeros(self.grid.size)
        self.p = np.full(self.grid.size, 1.0 / self.grid.size)

    def _probabilities(self) -> np.ndarray:
        w = np.exp(self.log_weights - self.log_weights.max())
        return (1 - self.gamma) * w / w.sum() + self.gamma / self.grid.size

    def choose(self, rng: np.random.Generator) -> int:
        self.p = self._probabilities()
        pick = np.searchsorted(np.cumsum(self.p), rng.random() * self.p.sum(), side="right")
        return int(min(pick, self.grid.size - 1))

    def learn(self, feedback: BidFeedback) -> None:
        scale = self.facts.cost_cap - self.facts.cost_floor
        self.log_weights[self.arm] += self.eta * (feedback.profit / scale) / self.p[self.arm]

    @property
    def multiplier(self) -> float:
        return float(self.grid[int(np.argmax(self.log_weights))])

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "log_weights": self.log_weights.copy(), "arm": self.arm}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.log_weights = np.array(state["log_weights"], dtype=float)
        self.arm = int(state["arm"])


class GridUCB(_GridLearner):
    """UCB1 over a grid of multipliers: play each once, then argmax mean profit + width sqrt(2 ln t / n_k).

    width: a number, or "sd" (default) for the standard deviation of every profit seen so far, so the
    exploration bonus is on the scale of the profits: pay-as-bid profits lie within the cost range, ROSA's
    carry a resampling bonus up to (c_cap - b) / mu.
    """

    name = "ucb"

    def __init__(
        self, facts: BidderFacts = BidderFacts(), grid: Sequence[float] = DEFAULT_GRID, width: float | str = "sd"
    ) -> None:
        super().__init__(facts, grid)
        if width != "sd" and not (isinstance(width, (int, float)) and np.isfinite(width) and width >= 0):
            raise ValueError(f"width = {width!r}: expected 'sd' or a number >= 0")
        self.width = width
        self.counts = np.zeros(self.grid.size)
        self.sums = np.zeros(self.grid.size)
        self.squares = 0.0

    def _width(self, t: float) -> float:
        if self.width != "sd":
            return float(self.width)
        mean = self.sums.sum() / t
        return float(np.sqrt(max(self.squares / t - mean * mean, 0.0)))

    def choose(self, rng: np.random.Generator) -> int:
        untried = np.flatnonzero(self.counts == 0)
        if untried.size:
            return int(untried[0])
        t = self.counts.sum()
        return int(np.argmax(self.sums / self.counts + self._width(t) * np.sqrt(2 * np.log(t) / self.counts)))

    def learn(self, feedback: BidFeedback) -> None:
        profit = feedback.profit
        self.counts[self.arm] += 1
        self.sums[self.arm] += profit
        self.squares += profit * profit

    @property
    def multiplier(self) -> float:
        means = np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), -np.inf)
        return float(self.grid[int(np.argmax(means))]) if self.counts.any() else 1.0

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "counts": self.counts.copy(), "sums": self.sums.copy(),
                "squares": self.squares, "arm": self.arm}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.counts = np.array(state["counts"], dtype=float)
        self.sums = np.array(state["sums"], dtype=float)
        self.squares = float(state["squares"])
        self.arm = int(state["arm"])


class GradientShading(_Randomised):
    """Gradient ascent on the Gaussian-smoothed profit of the log-multiplier theta.

    Each round bids cost exp(theta + sigma eps), eps ~ N(0, 1); the score-function estimate
    (profit - baseline) eps / sigma of the smoothed gradient moves theta by lr; the running-mean baseline
    only lowers variance. theta stays in [log lo, log hi].
    """

    name = "gradient"

    def __init__(
        self, facts: BidderFacts = BidderFacts(), lr: float = 0.02, sigma: float = 0.1, lo: float = 0.5, hi: float = 3.0
    ) -> None:
        super().__init__(facts)
        if not (lr > 0 and sigma > 0 and 0 < lo < 1 < hi):
            raise ValueError(
                f"lr = {lr!r}, sigma = {sigma!r}, [lo, hi] = [{lo!r}, {hi!r}]: expected lr, sigma > 0, lo < 1 < hi"
            )
        self.lr, self.sigma = float(lr), float(sigma)
        self.bounds = (float(np.log(lo)), float(np.log(hi)))
        self.theta = 0.0
        self.baseline = 0.0
        self.rounds = 0
        self.eps = 0.0

    def bid(self, obs: Observation) -> float:
        self.eps = float(self.coins(obs.rng).standard_normal())
        return self.clip(obs.cost * np.exp(self.theta + self.sigma * self.eps))

    def learn(self, feedback: BidFeedback) -> None:
        scale = self.facts.cost_cap - self.facts.cost_floor
        profit = feedback.profit / scale
        self.rounds += 1
        step = self.lr * (profit - self.baseline) * self.eps / self.sigma
        self.theta = float(np.clip(self.theta + step, *self.bounds))
        self.baseline += (profit - self.baseline) / self.rounds

    @property
    def multiplier(self) -> float:
        return float(np.exp(self.theta))

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "theta": self.theta, "baseline": self.baseline, "rounds": self.rounds,
                "eps": self.eps}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.theta, self.baseline = float(state["theta"]), float(state["baseline"])
        self.rounds, self.eps = int(state["rounds"]), float(state["eps"])


class CoinPredictor(Strategy):
    """Predicts ROSA's coins of round t from the public stream ``public_coins(leak_seed, t, n)``.

    If its own bid is predicted to be resampled it bids cost_floor: the winner's bonus (c_cap - b)/mu
    is largest and its resampled bid lowest there. Otherwise it bids its cost. This pays only when the
    prediction is right, i.e. against LeakyROSA (whose t counts its selects: the round index while every round
    has a bid); ROSA draws its coins after the bids, so against it the predictor is an underbidder at random
    rounds. t is the market's round (``obs.round``), so a lost call for bids does not shift its predictions.
    """

    name = "coin-predictor"

    def __init__(self, facts: BidderFacts = BidderFacts(), leak_seed: int = 0) -> None:
        super().__init__(facts)
        if facts.mu is None:
            raise ValueError(
                "coin-predictor: facts.mu is None; expected a mechanism that resamples bids (mu in (0, 1))"
            )
        self.leak_seed = int(leak_seed)

    def bid(self, obs: Observation) -> float:
        coins = public_coins(self.leak_seed, obs.round, self.facts.n)
        # ROSA's own sampler says whether these coins would resample this provider's bid
        resampled = resample(np.full(self.facts.n, obs.cost), self.facts.mu, self.facts.cost_cap, coins)[1]
        return self.facts.cost_floor if resampled[self.facts.index] else self.clip(obs.cost)


class RotationRing(Strategy):
    """Bid rotation by the ring ``members`` (provider indices): in round t the member whose turn it is
    (t mod len(members)) bids cost x (1 + s), every other member bids cost_cap to stay out of its way. The
    members agree on t because it is the market's round (``obs.round``), not a count of their own bids."""

    name = "ring"

    def __init__(self, facts: BidderFacts = BidderFacts(), members: Sequence[int] = (0, 1), s: float = 0.3) -> None:
        super().__init__(facts)
        self.members = tuple(int(m) for m in members)
        if facts.index not in self.members:
            raise ValueError(f"ring: members = {list(self.members)} does not include this provider ({facts.index})")
        self.s = float(s)

    def bid(self, obs: Observation) -> float:
        turn = self.members[obs.round % len(self.members)]
        return self.clip(obs.cost * (1.0 + self.s)) if turn == self.facts.index else self.facts.cost_cap


def _hedge(facts: BidderFacts = BidderFacts(), **params: Any) -> ExponentialWeights:
    params.setdefault("gamma", 0.0)
    return ExponentialWeights(facts, **params)


def _underbid(facts: BidderFacts = BidderFacts(), s: float = -0.2) -> Shade:
    return Shade(facts, s)


STRATEGIES: Registry[Strategy] = Registry("strategy", {
    "truthful": Truthful,
    "shade": Shade,
    "underbid": _underbid,
    "hedge": _hedge,
    "exp3": ExponentialWeights,
    "ucb": GridUCB,
    "gradient": GradientShading,
    "coin-predictor": CoinPredictor,
    "ring": RotationRing,
    "policy": "agents.policy:PolicyStrategy",  # a saved policy (market.lab.rl trains one)
    "bidfunc": "agents.bidfuncs:BidFunction",  # a parameterised bidding function (attack --method search)
})

# Strategies played by several providers at once: the ring needs its members to play it together.
COALITIONS: dict[str, int] = {"ring": 2}


def build_strategy(name: str, facts: BidderFacts = BidderFacts(), **params: Any) -> Strategy:
    """The strategy registered as ``name`` for a provider bidding under ``facts``, with ``params``."""
    return STRATEGIES.build(name, facts, **params)
