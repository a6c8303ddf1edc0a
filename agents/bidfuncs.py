"""Bidding functions: a provider's bid as a parameterised function of what it sees when it bids.

The strategy ``bidfunc`` (params ``family`` and ``theta``) is what an attack that searches over bidding
functions hands back: the family names the shape, theta its parameters, and the bid is clipped into the
mechanism's accepted range [cost_floor, cost_cap] (``BidderFacts``). It sees only what an ``Observation``
carries (its cost, the query's context, the market's round index, its own past rounds), so whatever an attack
finds is a strategy a provider could play through the real bus.

Families (theta, in order):

- ``multiplier`` [m]: bid = m * cost.
- ``affine`` [a, b]: bid = a + b * cost.
- ``cluster`` [m_0, ..., m_{k-1}]: bid = m_j * cost with j = argmax of context[:k], a public and deterministic
  cluster of the query (context-dependent shading).
- ``time`` [m_early, m_late, switch]: bid = m_early * cost in rounds before ``switch``, m_late * cost from it on
  (early/late shading; m_early large is deliberately losing early, so a learning mechanism sees the provider
  win only later, on the rounds it then chooses).
- ``threshold`` [t, m]: bid = cost_cap when cost >= t (stay out of the rounds it would serve at a high
  cost), else m * cost.
- ``lastwin`` [m_won, m_lost]: bid = m_won * cost after a round it won, m_lost * cost after one it lost (or
  before any outcome): a response to its own last outcome.
- ``winrate`` [m_low, m_high, target], param ``window`` (default 20): bid = m_high * cost when its win rate
  over its last ``window`` outcomes is at least ``target``, else m_low * cost (shade harder while winning,
  come back cheap when the mechanism stops choosing it); before any outcome the win rate counts as 0.

``FAMILIES`` gives each family's theta length (None: any length >= 1) and ``SEARCH_SPACE`` the box a search
looks in; history families (``HISTORY_FAMILIES``) are the ones that can attack what a learning mechanism
learns, since they condition on their own outcomes or the round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .strategies import BidderFacts, Observation, Strategy

# theta length per family (None: one value or more, e.g. one multiplier per context cluster)
FAMILIES: dict[str, int | None] = {
    "multiplier": 1,
    "affine": 2,
    "cluster": None,
    "time": 3,
    "threshold": 2,
    "lastwin": 2,
    "winrate": 3,
}

# The families whose bid depends on the round or on the provider's own past outcomes.
HISTORY_FAMILIES = ("time", "lastwin", "winrate")

MULTIPLIERS = (0.5, 3.0)

# The box a search draws each theta component from, per family: (low, high) per component, "rounds" as the
# high end meaning the run's length. cluster's box is repeated once per cluster.
SEARCH_SPACE: dict[str, tuple[tuple[float, float | str], ...]] = {
    "multiplier": (MULTIPLIERS,),
    "affine": ((-0.5, 1.0), MULTIPLIERS),
    "cluster": (MULTIPLIERS,),
    "time": (MULTIPLIERS, MULTIPLIERS, (0.0, "rounds")),
    "threshold": ((0.0, 1.0), MULTIPLIERS),
    "lastwin": (MULTIPLIERS, MULTIPLIERS),
    "winrate": (MULTIPLIERS, MULTIPLIERS, (0.0, 1.0)),
}


def check_theta(family: str, theta: Any) -> tuple[float, ...]:
    """``theta`` as a tuple of floats for ``family``; a ValueError naming the family, the value and what is
    allowed if the family is unknown, theta is not a list of finite numbers, or its length is wrong."""
    if family not in FAMILIES:
        raise ValueError(f"family = {family!r}: expected one of {sorted(FAMILIES)}")
    if isinstance(theta, (str, bytes)) or not isinstance(theta, Sequence):
        raise ValueError(f"theta = {theta!r}: expected a list of numbers for family {family!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in theta):
        raise ValueError(f"theta = {list(theta)!r}: expected numbers only (family {family!r})")
    values = tuple(float(v) for v in theta)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"theta = {list(values)!r}: expected finite numbers (no NaN or infinity)")
    want = FAMILIES[family]
    if want is None and not values:
        raise ValueError(f"theta = []: family {family!r} expects at least one multiplier (one per cluster)")
    if want is not None and len(values) != want:
        raise ValueError(f"theta = {list(values)!r}: family {family!r} expects {want} values, got {len(values)}")
    if family == "time" and values[2] < 0:
        raise ValueError(f"theta = {list(values)!r}: family 'time' expects a switch round theta[2] >= 0")
    if family == "winrate" and not 0.0 <= values[2] <= 1.0:
        raise ValueError(f"theta = {list(values)!r}: family 'winrate' expects a target win rate theta[2] in [0, 1]")
    return values


class BidFunction(Strategy):
    """bid = f_theta(cost, context, round, own history), clipped into [cost_floor, cost_cap]; deterministic
    (no coins), so a provider and its truthful twin draw the same costs."""

    name = "bidfunc"

    def __init__(self, facts: BidderFacts = BidderFacts(), family: str = "multiplier",
                 theta: Sequence[float] = (1.0,), window: int = 20) -> None:
        super().__init__(facts)
        self.family = family
        self.theta = check_theta(family, theta)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window = {window!r}: expected an integer >= 1 (outcomes the win rate is taken over)")
        self.window = window
        self.memory = {"lastwin": 1, "winrate": window}.get(family, 0)
        self.last_multiplier = 1.0

    def raw(self, obs: Observation) -> float:
        """The bid before clipping."""
        th, cost = self.theta, obs.cost
        f = self.family
        if f == "multiplier":
            m = th[0]
        elif f == "affine":
            self.last_multiplier = (th[0] + th[1] * cost) / cost if cost > 0 else th[1]
            return th[0] + th[1] * cost
        elif f == "cluster":
            k = min(len(th), len(obs.context))
            m = th[int(np.argmax(obs.context[:k]))] if k > 0 else th[0]
        elif f == "time":
            m = th[0] if obs.round < th[2] else th[1]
        elif f == "threshold":
            if cost >= th[0]:
                self.last_multiplier = self.facts.cost_cap / cost if cost > 0 else th[1]
                return self.facts.cost_cap
            m = th[1]
        elif f == "lastwin":
            m = th[0] if obs.history and obs.history[-1].won else th[1]
        else:  # winrate
            rate = sum(h.won for h in obs.history) / len(obs.history) if obs.history else 0.0
            m = th[1] if rate >= th[2] else th[0]
        self.last_multiplier = m
        return m * cost

    def bid(self, obs: Observation) -> float:
        return self.clip(self.raw(obs))

    @property
    def multiplier(self) -> float:
        """bid / cost of the last bid before clipping (1 before any), for traces."""
        return float(self.last_multiplier)

    def get_state(self) -> dict[str, Any]:
        return {"last_multiplier": self.last_multiplier}

    def set_state(self, state: dict[str, Any]) -> None:
        self.last_multiplier = float(state.get("last_multiplier", 1.0))


def bidfunc_overrides(deviator: str, family: str, theta: Sequence[float], window: int | None = None) -> tuple[str, ...]:
    """The --set items that make ``deviator`` play ``family`` with ``theta`` (checked here, so a bad theta is
    refused before any run)."""
    values = check_theta(family, theta)
    sets = [f"strategies.overrides.{deviator}=bidfunc", f"strategies.params.bidfunc.family={family}",
            f"strategies.params.bidfunc.theta=[{', '.join(repr(v) for v in values)}]"]
    if window is not None:
        sets.append(f"strategies.params.bidfunc.window={int(window)}")
    return tuple(sets)
