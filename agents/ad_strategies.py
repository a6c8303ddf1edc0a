"""Reward-report strategies of advertisers in the MOSAIC market: ``report(true_rewards, rng)`` and ``learn(feedback)``.

Truthful reporting is a dominant strategy in expectation (arXiv 2405.05905, Thm 5.1) as long as the
candidates do not depend on reports; ``AD_STRATEGIES`` maps the names usable in scenario files to factories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


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


class AdStrategy(Protocol):
    """How an advertiser turns its true rewards on the candidates into the rewards it reports."""

    name: str

    def report(self, true_rewards: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(M,) rewards to report for (M,) true rewards."""
        ...

    def learn(self, feedback: AdFeedback) -> None: ...

    def get_state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any]) -> None: ...


class Truthful:
    """Reports its true rewards."""

    name = "truthful"

    def report(self, true_rewards: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(true_rewards, dtype=float)

    def learn(self, feedback: AdFeedback) -> None:
        pass

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass


AD_STRATEGIES: dict[str, Callable[..., AdStrategy]] = {"truthful": Truthful}


def build_ad_strategy(name: str, **params: Any) -> AdStrategy:
    """The report strategy registered under ``name``."""
    try:
        factory = AD_STRATEGIES[name]
    except KeyError:
        raise ValueError(f"strategy: unknown advertiser strategy {name!r}; known: {sorted(AD_STRATEGIES)}") from None
    return factory(**params)
