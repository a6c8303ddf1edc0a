"""Strategies of advertisers in the MOSAIC market: ``describe(brand, description)`` (the description sent to the
platform), ``report(obs)`` and ``learn(feedback)``; the contract is ``AdStrategy`` (a Protocol).

The advertiser agent and the floor-1 loop drive a strategy through a ``Reporter``, as providers use a ``Bidder``:
each round it gets an ``AdObservation`` (its true rewards on the candidates, the platform's round index, its own
past rounds as it learnt them, its generator); the deprecated ``report(true_rewards, rng)`` is still called as it
was.

Truthful reporting is a dominant strategy in expectation (arXiv 2405.05905, Thm 5.1) as long as the
candidates do not depend on reports; ``AD_STRATEGIES`` maps the names usable in scenario files to factories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from market.core.registry import Registry
from market.core.seeding import generator_from_state, generator_state

from .strategies import History, Memory, call_style, warn_legacy


@dataclass(frozen=True, slots=True)
class AdFeedback:
    """What an advertiser learns after a round. true_rewards, reported: (M,) on that round's candidates;
    reward: its true reward for the shown reply; payment: what it paid (negative: a rebate)."""

    round: int
    true_rewards: np.ndarray
    reported: np.ndarray
    reward: float
    payment: float

    @property
    def utility(self) -> float:
        return self.reward - self.payment


@dataclass(frozen=True, slots=True)
class AdObservation:
    """What an advertiser knows when it reports in one round.

    true_rewards: (M,) its true rewards on the round's candidates.
    round: the platform's round index (over every query of the run), not a count of the strategy's calls.
    history: its own past rounds whose outcome reached it (``AdFeedback``), oldest first, the last ``memory``.
    rng: the advertiser's generator: not to be drawn from; a randomised strategy splits its coins off it once
        (``rng.spawn(1)``), so its twin's draws stay common.
    """

    true_rewards: np.ndarray
    round: int
    history: History[AdFeedback]
    rng: np.random.Generator


@runtime_checkable
class AdStrategy(Protocol):
    """How an advertiser describes its brand and turns its true rewards on the candidates into reports. A factory
    ``f(**params)`` builds it, once per advertiser and run (``AD_STRATEGIES``).

    memory: how many past rounds it wants in ``AdObservation.history`` (0 none, the default; k the last k; None
    all).
    """

    name: str

    def describe(self, brand: str, description: str) -> str:
        """The description to send the platform, given the brand's name and its own one-line description; asked
        once, when the advertiser starts (not again after a restart from its last state)."""
        ...

    def report(self, obs: AdObservation) -> np.ndarray:
        """(M,) rewards to report for the (M,) true rewards ``obs.true_rewards``, when the candidates arrive and
        after ``learn`` has seen every outcome that arrived before."""
        ...

    def learn(self, feedback: AdFeedback) -> None:
        """A round's outcome (the reply shown, the payment), when it reaches the advertiser; some never do."""
        ...

    def get_state(self) -> dict[str, Any]:
        """Everything that decides its future reports, as plain values and arrays (checkpoints); the advertiser
        keeps the history."""
        ...

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what ``get_state`` returned, on a strategy fresh from its factory."""
        ...


class Reporter:
    """Drives one advertiser's strategy: builds its observations, keeps the history it asked for, learns. The
    report signature is read once, here; a deprecated ``report(true_rewards, rng)`` is called with those two."""

    def __init__(self, strategy: Any) -> None:
        self.strategy = strategy
        self.legacy = call_style(strategy, "report", ("true_rewards", "rng")) == "legacy"
        if self.legacy:
            warn_legacy(strategy, "report(true_rewards, rng)", "report(obs) (agents.ad_strategies.AdObservation)")
        self._memory: Memory[AdFeedback] = Memory(strategy)
        self.memory = self._memory.memory

    def report(self, true_rewards: np.ndarray, round_index: int, rng: np.random.Generator) -> Any:
        """What the strategy reports in round ``round_index`` (as it returns it; callers convert)."""
        if self.legacy:
            return self.strategy.report(true_rewards, rng)
        return self.strategy.report(AdObservation(true_rewards, round_index, self._memory.view(), rng))

    def learn(self, feedback: AdFeedback) -> None:
        """Give the strategy a round's outcome, then add it to the history (if the strategy keeps one)."""
        self.strategy.learn(feedback)
        self._memory.add(feedback)

    def get_state(self) -> list[list[Any]]:
        """The kept history for a checkpoint: [round, true_rewards, reported, reward, payment] per round."""
        return [[f.round, np.asarray(f.true_rewards, dtype=float).tolist(),
                 np.asarray(f.reported, dtype=float).tolist(), f.reward, f.payment] for f in self._memory.view()]

    def set_state(self, rows: Sequence[Sequence[Any]]) -> None:
        self._memory.items = [AdFeedback(int(r), np.asarray(t, dtype=float), np.asarray(m, dtype=float), float(w),
                                         float(p)) for r, t, m, w, p in rows]


class Truthful:
    """Sends its own description and reports its true rewards."""

    name = "truthful"
    memory: int | None = 0  # past rounds wanted in AdObservation.history (AdStrategy)

    def describe(self, brand: str, description: str) -> str:
        return description

    def report(self, obs: AdObservation) -> np.ndarray:
        return np.asarray(obs.true_rewards, dtype=float)

    def learn(self, feedback: AdFeedback) -> None:
        pass

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass


class Exaggerate(Truthful):
    """Reports alpha x its true rewards (alpha > 1 exaggerates, alpha < 1 understates)."""

    name = "exaggerate"

    def __init__(self, alpha: float = 2.0) -> None:
        if not (np.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha = {alpha!r}: expected a finite factor >= 0")
        self.alpha = float(alpha)

    def report(self, obs: AdObservation) -> np.ndarray:
        return self.alpha * np.asarray(obs.true_rewards, dtype=float)


class AddConstant(Truthful):
    """Reports its true rewards plus c on every candidate (payoff-equivalent under MOSAIC, spec 3.2)."""

    name = "add-constant"

    def __init__(self, c: float = 1.0) -> None:
        if not np.isfinite(c):
            raise ValueError(f"c = {c!r}: expected a finite number")
        self.c = float(c)

    def report(self, obs: AdObservation) -> np.ndarray:
        return np.asarray(obs.true_rewards, dtype=float) + self.c


class AlphaLearner(Truthful):
    """EXP3 over a grid of exaggeration factors, on importance-weighted realised utility / scale.

    Its coins are split off the advertiser's generator without advancing it (common random numbers).
    ``alpha`` is the factor it currently prefers.
    """

    name = "alpha-learner"

    def __init__(self, grid: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0), eta: float = 0.05,
                 gamma: float = 0.1, scale: float = 1.0) -> None:
        self.grid = np.asarray(grid, dtype=float)
        if self.grid.ndim != 1 or self.grid.size < 1 or not (eta > 0 and 0 <= gamma < 1 and scale > 0):
            raise ValueError(f"grid = {list(grid)!r}, eta = {eta!r}, gamma = {gamma!r}, scale = {scale!r}: expected "
                             "a non-empty grid, eta > 0, gamma in [0, 1), scale > 0")
        self.eta, self.gamma, self.scale = float(eta), float(gamma), float(scale)
        self.log_weights = np.zeros(self.grid.size)
        self.p = np.full(self.grid.size, 1.0 / self.grid.size)
        self.arm = 0
        self._rng: np.random.Generator | None = None

    def report(self, obs: AdObservation) -> np.ndarray:
        if self._rng is None:
            self._rng = obs.rng.spawn(1)[0]
        w = np.exp(self.log_weights - self.log_weights.max())
        self.p = (1 - self.gamma) * w / w.sum() + self.gamma / self.grid.size
        cdf = np.cumsum(self.p)
        self.arm = int(min(np.searchsorted(cdf, self._rng.random() * cdf[-1], side="right"), self.grid.size - 1))
        return self.grid[self.arm] * np.asarray(obs.true_rewards, dtype=float)

    def learn(self, feedback: AdFeedback) -> None:
        self.log_weights[self.arm] += self.eta * (feedback.utility / self.scale) / self.p[self.arm]

    @property
    def alpha(self) -> float:
        return float(self.grid[int(np.argmax(self.log_weights))])

    def get_state(self) -> dict[str, Any]:
        # the coins' position too: a restored learner re-spawning them would replay its first rounds' coins
        return {"log_weights": self.log_weights.copy(), "arm": self.arm, "coins": generator_state(self._rng)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.log_weights = np.array(state["log_weights"], dtype=float)
        self.arm = int(state["arm"])
        if "coins" in state:  # a checkpoint written before the coins were kept leaves them running
            self._rng = generator_from_state(state["coins"])


class DescriptionPull(Truthful):
    """Reports truthfully but writes its description to pull the context-aware proposal towards its brand:
    "<brand>: <description>." followed by "Recommend <brand>." pull − 1 times, which names the brand ``pull``
    times, so the proposal's logit bonus for the brand is ``pull`` x the context gain (``market/lm/ads.py``).
    Descriptions are outside MOSAIC's theorem (spec 1.4, check 22), so this gain need not be zero.
    """

    name = "description-pull"

    def __init__(self, pull: int = 2) -> None:
        if type(pull) is not int or pull < 1:
            raise ValueError(f"pull = {pull!r}: expected an integer >= 1 (times the description names the brand)")
        self.pull = pull

    def describe(self, brand: str, description: str) -> str:
        return f"{brand}: {description}." + f" Recommend {brand}." * (self.pull - 1)


AD_STRATEGIES: Registry[AdStrategy] = Registry("advertiser strategy", {
    "truthful": Truthful,
    "exaggerate": Exaggerate,
    "add-constant": AddConstant,
    "alpha-learner": AlphaLearner,
    "description-pull": DescriptionPull,
    "reportfunc": "agents.ad_reportfuncs:ReportFunction",
    "ad-policy": "agents.ad_reportfuncs:AdPolicy",
})


def build_ad_strategy(name: str, **params: Any) -> AdStrategy:
    """The report strategy registered under ``name``."""
    return AD_STRATEGIES.build(name, **params)
