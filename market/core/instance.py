"""A procurement market as a value: who sells, what serving costs them, what their answers are worth to the
user, how queries arrive, and which reverse-auction mechanism runs. The runtime's builder turns it into
agents on a bus; the fast engine (market/lab/deviation.py) plays the same instance in a plain loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from market.core.mechanisms.priors import CostPrior
from market.core.mechanisms.reverse import build_mechanism


class Quality(Protocol):
    """What an answer is worth to the user: ``mean(x)`` (n,) expected rewards, ``sample`` one draw."""

    def mean(self, x: np.ndarray) -> np.ndarray: ...
    def sample(self, arm: int, x: np.ndarray, rng: np.random.Generator) -> float: ...


@dataclass(frozen=True, slots=True)
class MechanismSpec:
    """A registered reverse mechanism by name, with every keyword its factory gets (those the market
    supplies, such as n, d, priors or theta, included). ``build`` makes a fresh one: mechanisms learn."""

    name: str
    params: Mapping[str, Any]

    def build(self) -> Any:
        return build_mechanism(self.name, **self.params)


@dataclass(frozen=True, slots=True)
class MarketInstance:
    """The market's hidden truth and rules. providers: bus ids in the mechanism's index order; priors: one
    cost prior each; contexts(rng): a query's (dim,) context; user: the buyer's id, whose random stream
    draws the contexts and the rewards."""

    providers: tuple[str, ...]
    priors: tuple[CostPrior, ...]
    quality: Quality
    contexts: Callable[[np.random.Generator], np.ndarray]
    dim: int
    mechanism: MechanismSpec
    user: str = "user"

    @property
    def n(self) -> int:
        return len(self.providers)
