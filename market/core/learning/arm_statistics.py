"""Per-arm semi-bandit statistics for budgeted LLM-subset selection: pulls, quality and cost sums.

Shared by C2MAB-V (spec A.3 "feedback") and its baselines; means are sums / counts so that learners
fed the same outcomes compute bit-identical estimates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from market.core.learning import LearningError


class ArmStatistics:
    """counts, quality_sum, cost_sum: (K,); rounds: number of update() calls so far."""

    def __init__(self, n_arms: int) -> None:
        if int(n_arms) < 1:
            raise LearningError(f"n_arms={n_arms}: expected >= 1")
        self.n_arms = int(n_arms)
        self.counts = np.zeros(self.n_arms, dtype=np.int64)
        self.quality_sum = np.zeros(self.n_arms)
        self.cost_sum = np.zeros(self.n_arms)
        self.rounds = 0

    def update(self, arms: np.ndarray, qualities: np.ndarray, costs: np.ndarray) -> None:
        """arms: (m,) distinct indices played; qualities, costs: (m,) observed X and Y in [0, 1]."""
        arms = np.asarray(arms, dtype=np.int64).reshape(-1)
        x = np.asarray(qualities, dtype=float).reshape(-1)
        y = np.asarray(costs, dtype=float).reshape(-1)
        if not (arms.size == x.size == y.size):
            raise LearningError(
                f"arms/qualities/costs sizes {arms.size}/{x.size}/{y.size}: expected equal lengths"
            )
        if arms.size and (arms.min() < 0 or arms.max() >= self.n_arms):
            raise LearningError(f"arms={arms.tolist()}: expected indices in [0, {self.n_arms})")
        # a set is cheaper than np.unique on the few arms of one round
        if len(set(arms.tolist())) != arms.size:
            raise LearningError(f"arms={arms.tolist()}: expected distinct indices")
        self.counts[arms] += 1
        self.quality_sum[arms] += x
        self.cost_sum[arms] += y
        self.rounds += 1

    def means(self, default_quality: float = 0.0, default_cost: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Sample means (K,), (K,); unplayed arms get the defaults."""
        played = self.counts > 0
        n = np.maximum(self.counts, 1)
        mu = np.where(played, self.quality_sum / n, default_quality)
        c = np.where(played, self.cost_sum / n, default_cost)
        return mu, c

    def radius(self, t: int, alpha: float, radius_constant: float) -> np.ndarray:
        """CUCB radius alpha sqrt(radius_constant ln t / n_i), +inf for unplayed arms: (K,)."""
        n = self.counts
        rad = alpha * np.sqrt(radius_constant * np.log(max(t, 1)) / np.maximum(n, 1))
        return np.where(n > 0, rad, np.inf)

    def get_state(self) -> dict[str, Any]:
        return {
            "counts": self.counts.copy(), "quality_sum": self.quality_sum.copy(),
            "cost_sum": self.cost_sum.copy(), "rounds": self.rounds,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        counts = np.asarray(state["counts"], dtype=np.int64)
        if counts.shape != (self.n_arms,):
            raise LearningError(f"state counts shape {counts.shape}: expected ({self.n_arms},)")
        self.counts = counts.copy()
        self.quality_sum = np.asarray(state["quality_sum"], dtype=float).copy()
        self.cost_sum = np.asarray(state["cost_sum"], dtype=float).copy()
        self.rounds = int(state["rounds"])
