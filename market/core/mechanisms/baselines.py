"""Critical-bid and pay-as-bid wrappers over an allocation rule: Myerson (truthful with known
qualities), and the non-truthful pay-as-bid baselines a strategic provider can exploit.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from market.core.mechanisms.base import ReverseOutcome
from market.core.mechanisms.priors import CostPrior
from market.core.mechanisms.rosa import validate_bids
from market.core.mechanisms.rules import MyersonRule


class PayAsBid:
    """Non-truthful baseline: the rule runs on the reported bids and the winner is paid its own bid."""

    def __init__(self, rule: Any, cost_cap: float, cost_floor: float = 0.0, name: str = "pay-as-bid") -> None:
        self.rule, self.n, self.name = rule, rule.n, name
        self.cost_cap, self.cost_floor = float(cost_cap), float(cost_floor)
        self._no_modification = np.zeros(self.n, dtype=bool)

    def select(
        self,
        context: np.ndarray,
        bids: np.ndarray,
        rng: np.random.Generator,
        active: np.ndarray | None = None,
    ) -> ReverseOutcome:
        bids = validate_bids(bids, active, self.cost_floor, self.cost_cap)
        winner = self.rule.allocate(context, bids, active)
        pay = np.zeros(self.n)
        if winner is not None:
            pay[winner] = bids[winner]
        return ReverseOutcome(winner, pay, bids, self._no_modification.copy())

    def update(self, context: np.ndarray, outcome: ReverseOutcome, reward: float) -> None:
        self.rule.update(context, outcome.winner, outcome.resampled, reward)

    def get_state(self) -> dict[str, Any]:
        return {"rule": self.rule.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rule.set_state(state["rule"])


class CriticalBid(PayAsBid):
    """Per-round LinUCB on the true bids paying the winner its critical bid: truthful per round (Reading P)."""

    def __init__(self, rule: Any, cost_cap: float, cost_floor: float = 0.0) -> None:
        super().__init__(rule, cost_cap, cost_floor, name=f"critical-{rule.name}")

    def select(
        self,
        context: np.ndarray,
        bids: np.ndarray,
        rng: np.random.Generator,
        active: np.ndarray | None = None,
    ) -> ReverseOutcome:
        outcome = super().select(context, bids, rng, active)
        if outcome.winner is not None:
            outcome.payments[outcome.winner] = self.rule.threshold(context, outcome.resampled, outcome.winner, active)
        return outcome


class Myerson(CriticalBid):
    """The Myerson-optimal static reverse auction as a mechanism: truthful, pays the winner its critical bid."""

    def __init__(
        self, theta: np.ndarray, priors: CostPrior | Sequence[CostPrior], reserve: float | None = 0.0
    ) -> None:
        rule = MyersonRule(theta, priors, reserve)
        super().__init__(rule, float(rule.priors.c_cap.max()), float(rule.priors.c_lo.min()))
        self.name = "myerson"
