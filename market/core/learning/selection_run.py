"""Run a selection learner against a floor-1 environment and record the per-round trajectory.

Subset runs (C2MAB-V and baselines) record r(S_t; mu), realised and expected cost; single-arm runs
(TI-UCB and baselines) record the arm, observed reward and expected reward mu_i(n) of each pull.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from market.core.learning.reward_models import realised_reward


class SubsetLearner(Protocol):
    """Picks a subset of arms each round and learns from their qualities and costs (C2MAB-V, CUCB, ...)."""

    def select(self, rng: np.random.Generator) -> np.ndarray: ...
    def update(self, arms: np.ndarray, qualities: np.ndarray, costs: np.ndarray) -> None: ...


class SubsetArms(Protocol):
    """K arms with random quality and cost, played a subset at a time."""

    n_arms: int
    mean_cost: np.ndarray

    def draw(self, arms: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...
    def subset_rewards(self, masks: np.ndarray, reward_model: str) -> np.ndarray: ...


class PullLearner(Protocol):
    """Picks one arm each round and learns from its reward (TI-UCB, UCB1, ...)."""

    def select(self, rng: np.random.Generator) -> int: ...
    def update(self, arm: int, reward: float) -> None: ...


class RestedArms(Protocol):
    """Arms whose expected reward moves with their own pull count."""

    def pull(self, arm: int, rng: np.random.Generator) -> tuple[float, float]: ...


@dataclass(frozen=True, slots=True)
class SubsetTrajectory:
    """T rounds: masks (T, K) bool played subsets; expected_reward, reward, cost, expected_cost: (T,)."""

    masks: np.ndarray
    expected_reward: np.ndarray
    reward: np.ndarray
    cost: np.ndarray
    expected_cost: np.ndarray


def simulate_subsets(
    learner: SubsetLearner, env: SubsetArms, horizon: int, reward_model: str, rng: np.random.Generator
) -> SubsetTrajectory:
    """Play horizon rounds; one Generator drives both the learner and the environment."""
    k = env.n_arms
    masks = np.zeros((horizon, k), dtype=bool)
    reward = np.zeros(horizon)
    cost = np.zeros(horizon)
    for t in range(horizon):
        arms = learner.select(rng)
        x, y = env.draw(arms, rng)
        learner.update(arms, x, y)
        masks[t, arms] = True
        reward[t] = realised_reward(x, reward_model)
        cost[t] = y.sum()
    expected_cost = masks.astype(float) @ env.mean_cost
    # most rounds repeat a few subsets: evaluate each distinct subset once
    unique, inverse = np.unique(masks, axis=0, return_inverse=True)
    expected = env.subset_rewards(unique, reward_model)[inverse.reshape(-1)]
    return SubsetTrajectory(masks, expected, reward, cost, expected_cost)


@dataclass(frozen=True, slots=True)
class PullTrajectory:
    """T rounds: arms (T,) int, reward (T,) observed, expected (T,) mu_{I_t}(n) of the pull."""

    arms: np.ndarray
    reward: np.ndarray
    expected: np.ndarray


def simulate_pulls(learner: PullLearner, env: RestedArms, horizon: int, rng: np.random.Generator) -> PullTrajectory:
    """Play horizon rounds of a single-arm learner on rested arms (env.pull)."""
    arms = np.zeros(horizon, dtype=np.int64)
    reward = np.zeros(horizon)
    expected = np.zeros(horizon)
    for t in range(horizon):
        arm = learner.select(rng)
        y, mean = env.pull(arm, rng)
        learner.update(arm, y)
        arms[t], reward[t], expected[t] = arm, y, mean
    return PullTrajectory(arms, reward, expected)
