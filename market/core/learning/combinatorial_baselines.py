"""Baselines for budgeted LLM-subset selection, as compared with C2MAB-V (spec A.1/A.5).

CUCB (Chen, Wang, Yuan 2013): budget-blind top-N by UCB. Epsilon-greedy and Thompson sampling
(Beta posteriors on quality and cost) maximising the cost-penalised index r(S) - penalty * C(S)
over all subsets of size <= N (AIC: = N), by enumeration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from market.core.learning import LearningError
from market.core.learning.arm_statistics import ArmStatistics
from market.core.learning.reward_models import check_reward_model, expected_reward, feasible_subsets


def _check_sizes(n_arms: int, max_arms: int) -> None:
    if not 1 <= int(max_arms) <= int(n_arms):
        raise LearningError(f"max_arms={max_arms}: expected 1..n_arms={n_arms}")


class CUCB:
    """Combinatorial UCB without a budget: the N arms with the largest mu_bar (ties: lowest index).

    Top-N maximises AWC, SUC and AIC alike because all three are monotone in each arm's quality.
    """

    name = "cucb"

    def __init__(
        self, n_arms: int, max_arms: int, reward_model: str = "awc", alpha: float = 1.0,
        radius_constant: float = 1.5, budget: float | None = None,
    ) -> None:
        _check_sizes(n_arms, max_arms)
        self.reward_model = check_reward_model(reward_model)
        self.n_arms, self.max_arms = int(n_arms), int(max_arms)
        self.alpha, self.radius_constant = float(alpha), float(radius_constant)
        self.stats = ArmStatistics(self.n_arms)

    def select(self, rng: np.random.Generator) -> np.ndarray:
        mu_hat, _ = self.stats.means()
        rad = self.stats.radius(self.stats.rounds + 1, self.alpha, self.radius_constant)
        mu_bar = np.minimum(mu_hat + rad, 1.0)
        return np.sort(np.argsort(-mu_bar, kind="stable")[: self.max_arms])

    def update(self, arms: np.ndarray, qualities: np.ndarray, costs: np.ndarray) -> None:
        self.stats.update(arms, qualities, costs)

    def get_state(self) -> dict[str, Any]:
        return self.stats.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.stats.set_state(state)


class _PenalisedSubsets:
    """Common part of the cost-penalised baselines: candidate subsets and the index."""

    def __init__(self, n_arms: int, max_arms: int, reward_model: str, penalty: float) -> None:
        _check_sizes(n_arms, max_arms)
        if penalty < 0:
            raise LearningError(f"penalty={penalty}: expected >= 0")
        self.reward_model = check_reward_model(reward_model)
        self.n_arms, self.max_arms = int(n_arms), int(max_arms)
        self.penalty = float(penalty)
        self.masks = feasible_subsets(self.n_arms, self.max_arms, self.reward_model)
        self.stats = ArmStatistics(self.n_arms)

    def _best(self, mu: np.ndarray, cost: np.ndarray) -> np.ndarray:
        index = expected_reward(self.masks, mu, self.reward_model) - self.penalty * (
            self.masks.astype(float) @ cost
        )
        return np.flatnonzero(self.masks[int(np.argmax(index))])

    def update(self, arms: np.ndarray, qualities: np.ndarray, costs: np.ndarray) -> None:
        self.stats.update(arms, qualities, costs)

    def get_state(self) -> dict[str, Any]:
        return self.stats.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.stats.set_state(state)


class EpsilonGreedySubsets(_PenalisedSubsets):
    """With probability epsilon a uniform random candidate subset, else the best penalised index
    on sample means (unplayed arms: quality 1, cost 0, so each is tried)."""

    name = "epsilon_greedy"

    def __init__(
        self, n_arms: int, max_arms: int, reward_model: str = "awc", epsilon: float = 0.1,
        penalty: float = 1.0, budget: float | None = None,
    ) -> None:
        super().__init__(n_arms, max_arms, reward_model, penalty)
        if not 0.0 <= epsilon <= 1.0:
            raise LearningError(f"epsilon={epsilon}: expected a probability in [0, 1]")
        self.epsilon = float(epsilon)

    def select(self, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < self.epsilon:
            return np.flatnonzero(self.masks[rng.integers(len(self.masks))])
        mu, cost = self.stats.means(default_quality=1.0, default_cost=0.0)
        return self._best(mu, cost)


class ThompsonSubsets(_PenalisedSubsets):
    """Beta(1 + sum x, 1 + n - sum x) samples of quality and cost (fractional outcomes counted as
    fractional successes), then the best penalised index on the samples."""

    name = "thompson"

    def __init__(
        self, n_arms: int, max_arms: int, reward_model: str = "awc", penalty: float = 1.0,
        budget: float | None = None,
    ) -> None:
        super().__init__(n_arms, max_arms, reward_model, penalty)

    def select(self, rng: np.random.Generator) -> np.ndarray:
        s = self.stats
        theta = rng.beta(1.0 + s.quality_sum, 1.0 + s.counts - s.quality_sum)
        kappa = rng.beta(1.0 + s.cost_sum, 1.0 + s.counts - s.cost_sum)
        return self._best(theta, kappa)
