"""Reverse-auction allocation rules for buying one LLM answer per query, and the registry of mechanisms.

Myerson's optimal static rule (ROSA spec 1.2, Thm 2), TRCM-UCB on optimistic virtual surplus (spec 2.2),
the horizon rules of spec 2.3, and non-truthful baselines a strategic provider can exploit.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from market.learning.linucb import LinUCB
from market.mechanisms.base import MechanismError, ReverseOutcome
from market.mechanisms.priors import CostPrior, CostPriors, UniformCost
from market.mechanisms.rosa import ROSA, validate_bids

_NO_ONE = -np.inf


def _masked(index: np.ndarray, active: np.ndarray | None) -> np.ndarray:
    if active is None:
        return index
    return np.where(active, index, _NO_ONE)


def _winner(index: np.ndarray, reserve: float) -> int | None:
    """argmax with ties to the lowest provider index (a bid-independent order), or None below reserve."""
    i = int(np.argmax(index))
    return i if index[i] >= reserve else None


def critical_index(index: np.ndarray, i: int, reserve: float) -> float:
    """The smallest index provider i needs to win: max(reserve, best competing index)."""
    others = np.delete(index, i)
    return max(reserve, float(others.max())) if others.size else reserve


class MyersonRule:
    """Myerson's static reverse rule with known qualities: winner argmax_i (theta_i . x - phi_i(b_i)) >= reserve.

    theta: (n, d) known quality vectors. Deterministic and monotone; the critical bid is
    tau_i = phi_i^-1(theta_i . x - max(reserve, max_{j != i} index_j)), capped at c_cap.
    """

    def __init__(self, theta: np.ndarray, priors: CostPrior | Sequence[CostPrior], reserve: float = 0.0) -> None:
        self.theta = np.asarray(theta, float)
        if self.theta.ndim != 2:
            raise MechanismError(f"theta: shape {self.theta.shape}, expected (n, d)")
        self.n, self.d = self.theta.shape
        self.priors = CostPriors.of(priors, self.n)
        self.reserve = float(reserve)
        self.name = "myerson"

    def index(self, context: np.ndarray, bids: np.ndarray, active: np.ndarray | None) -> np.ndarray:
        """(n,) virtual surplus theta_i . x - phi_i(b_i); -inf for abstaining providers."""
        return _masked(self.theta @ context - self.priors.virtual_cost(bids), active)

    def allocate(self, context: np.ndarray, resampled: np.ndarray, active: np.ndarray | None) -> int | None:
        return _winner(self.index(context, resampled, active), self.reserve)

    def threshold(self, context: np.ndarray, bids: np.ndarray, i: int, active: np.ndarray | None = None) -> float:
        """Sup of provider i's winning bids given the others' bids (c_lo if it cannot win at all)."""
        idx = self.index(context, bids, active)
        need = critical_index(idx, i, self.reserve)
        value = float(self.theta[i] @ context)
        prior = self.priors.priors[i]
        if value - float(prior.virtual_cost(prior.c_lo)) < need:
            return prior.c_lo
        return float(prior.inverse_virtual_cost(value - need))

    def update(self, context: np.ndarray, winner: int | None, resampled: np.ndarray, reward: float) -> None:
        """Known qualities: nothing to learn."""

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass


class Myerson:
    """The Myerson-optimal static reverse auction as a mechanism: truthful, pays the winner its critical bid."""

    def __init__(self, theta: np.ndarray, priors: CostPrior | Sequence[CostPrior], reserve: float = 0.0) -> None:
        self.rule = MyersonRule(theta, priors, reserve)
        self.n = self.rule.n
        self.name = "myerson"
        lo, cap = self.rule.priors.c_lo, self.rule.priors.c_cap
        self.cost_floor, self.cost_cap = float(lo.min()), float(cap.max())
        self._no_modification = np.zeros(self.n, dtype=bool)

    def select(
        self,
        context: np.ndarray,
        bids: np.ndarray,
        rng: np.random.Generator,
        active: np.ndarray | None = None,
    ) -> ReverseOutcome:
        bids = validate_bids(bids, active, self.cost_floor, self.cost_cap)
        idx = self.rule.index(context, bids, active)
        winner = _winner(idx, self.rule.reserve)
        pay = np.zeros(self.n)
        if winner is not None:
            pay[winner] = self.rule.threshold(context, bids, winner, active)
        return ReverseOutcome(winner, pay, bids, self._no_modification.copy())

    def update(self, context: np.ndarray, outcome: ReverseOutcome, reward: float) -> None:
        """Known qualities: nothing to learn."""

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass
