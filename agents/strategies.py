"""Bidding strategies of LLM providers: small objects with ``bid(cost, context, rng)`` and ``learn(feedback)``.

Truthful and fixed shading; learners that adapt a shading multiplier from realised profit (EXP3/Hedge and
UCB over a grid, gradient ascent on a Gaussian-smoothed profit); a coin predictor; a bid-rotation ring.
``STRATEGIES`` maps the names usable in scenario files to factories ``f(facts, **params)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


DEFAULT_GRID = tuple(round(0.8 + 0.1 * k, 2) for k in range(13))  # multipliers 0.8 .. 2.0


class Strategy:
    """Base of the strategies: bids are clipped into [cost_floor, cost_cap], the range every mechanism
    accepts, so a shaded bid above the cap becomes the cap (a bid the auctioneer would otherwise refuse)."""

    name = "strategy"

    def __init__(self, facts: BidderFacts = BidderFacts()) -> None:
        self.facts = facts

    def clip(self, bid: float) -> float:
        return min(max(bid, self.facts.cost_floor), self.facts.cost_cap)

    def bid(self, cost: float, context: np.ndarray, rng: np.random.Generator) -> float:
        return self.clip(cost * self.multiplier)

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

    def bid(self, cost: float, context: np.ndarray, rng: np.random.Generator) -> float:
        return self.clip(cost)


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

    def bid(self, cost: float, context: np.ndarray, rng: np.random.Generator) -> float:
        self.arm = self.choose(self.coins(rng))
        return self.clip(cost * self.grid[self.arm])


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

    def bid(self, cost: float, context: np.ndarray, rng: np.random.Generator) -> float:
        self.eps = float(self.coins(rng).standard_normal())
        return self.clip(cost * np.exp(self.theta + self.sigma * self.eps))

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
    """Predicts ROSA's coins from the public stream ``public_coins(leak_seed, t, n)`` of its t-th bid.

    If its own bid is predicted to be resampled it bids cost_floor: the winner's bonus (c_cap - b)/mu
    is largest and its resampled bid lowest there. Otherwise it bids its cost. This pays only when the
    prediction is right, i.e. against LeakyROSA; ROSA draws its coins after the bids, so against it the
    predictor is an underbidder at random rounds.
    """

    name = "coin-predictor"

    def __init__(self, facts: BidderFacts = BidderFacts(), leak_seed: int = 0) -> None:
        super().__init__(facts)
        if facts.mu is None:
            raise ValueError(
                "coin-predictor: facts.mu is None; expected a mechanism that resamples bids (mu in (0, 1))"
            )
        self.leak_seed = int(leak_seed)
        self.rounds = 0

    def bid(self, cost: float, context: np.ndarray, rng: np.random.Generator) -> float:
        coins = public_coins(self.leak_seed, self.rounds, self.facts.n)
        self.rounds += 1
        # ROSA's own sampler says whether these coins would resample this provider's bid
        resampled = resample(np.full(self.facts.n, cost), self.facts.mu, self.facts.cost_cap, coins)[1]
        return self.facts.cost_floor if resampled[self.facts.index] else self.clip(cost)

    def get_state(self) -> dict[str, Any]:
        return {"rounds": self.rounds}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rounds = int(state["rounds"])


class RotationRing(Strategy):
    """Bid rotation by the ring ``members`` (provider indices): in its t-th round the member whose turn
    it is (t mod len(members)) bids cost x (1 + s), every other member bids cost_cap to stay out of its way."""

    name = "ring"

    def __init__(self, facts: BidderFacts = BidderFacts(), members: Sequence[int] = (0, 1), s: float = 0.3) -> None:
        super().__init__(facts)
        self.members = tuple(int(m) for m in members)
        if facts.index not in self.members:
            raise ValueError(f"ring: members = {list(self.members)} does not include this provider ({facts.index})")
        self.s = float(s)
        self.rounds = 0

    def bid(self, cost: float, context: np.ndarray, rng: np.random.Generator) -> float:
        turn = self.members[self.rounds % len(self.members)]
        self.rounds += 1
        return self.clip(cost * (1.0 + self.s)) if turn == self.facts.index else self.facts.cost_cap

    def get_state(self) -> dict[str, Any]:
        return {"rounds": self.rounds}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rounds = int(state["rounds"])


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
})

# Strategies played by several providers at once: the ring needs its members to play it together.
COALITIONS: dict[str, int] = {"ring": 2}


def build_strategy(name: str, facts: BidderFacts = BidderFacts(), **params: Any) -> Strategy:
    """The strategy registered as ``name`` for a provider bidding under ``facts``, with ``params``."""
    return STRATEGIES.build(name, facts, **params)
