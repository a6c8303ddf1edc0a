"""Bidding strategies of LLM providers: small objects with ``bid(cost, context, rng)`` and ``learn(feedback)``.

A strategy decides what a provider bids given its private cost; learners adapt from the profit
they realise. ``STRATEGIES`` maps the names usable in scenario files to factories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


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


class Truthful:
    """Bids its cost: the dominant strategy under a truthful mechanism."""

    name = "truthful"

    def bid(self, cost: float, context: np.ndarray, rng: np.random.Generator) -> float:
        return cost

    def learn(self, feedback: BidFeedback) -> None:
        pass

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass


STRATEGIES: dict[str, Callable[..., Any]] = {"truthful": Truthful}


def build_strategy(name: str, **params: Any) -> Any:
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"strategy: unknown strategy {name!r}; known: {sorted(STRATEGIES)}") from None
    return factory(**params)
