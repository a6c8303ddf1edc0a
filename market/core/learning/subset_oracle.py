"""Brute-force benchmarks for budgeted LLM-subset selection (C2MAB-V, spec A.2 "Benchmark").

Integer optimum S* = argmax {r(S): |S| <= N (AIC: = N), C(S) <= rho} and the fractional (BwK-style)
optimum over distributions on subsets with expected cost <= rho, by enumerating all 2^K subsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from market.core.learning.reward_models import all_subsets, check_reward_model, expected_reward


@dataclass(frozen=True, slots=True)
class SubsetOptimum:
    """masks: (m, K) candidate subsets; weights: (m,) probability of each (one-hot if integer);
    value: expected reward; cost: expected cost. value is NaN when nothing is feasible (AIC)."""

    masks: np.ndarray
    weights: np.ndarray
    value: float
    cost: float


def candidate_subsets(n_arms: int, max_arms: int, reward_model: str) -> np.ndarray:
    """Actions of the benchmark: |S| <= N including the empty set (skip the query), AIC |S| = N."""
    masks = all_subsets(n_arms)
    size = masks.sum(axis=1)
    if check_reward_model(reward_model) == "aic":
        return masks[size == min(max_arms, n_arms)]
    return masks[size <= max_arms]


def integer_optimum(
    mu: np.ndarray, cost: np.ndarray, max_arms: int, budget: float, reward_model: str,
    weights: np.ndarray | None = None,
) -> SubsetOptimum:
    """Best single subset within budget. mu, cost: (K,)."""
    masks = candidate_subsets(mu.size, max_arms, reward_model)
    rewards = expected_reward(masks, mu, reward_model, weights)
    costs = masks.astype(float) @ cost
    ok = costs <= budget + 1e-12
    w = np.zeros(len(masks))
    if not ok.any():
        return SubsetOptimum(masks, w, float("nan"), float("nan"))
    best = np.flatnonzero(ok)[np.argmax(rewards[ok])]
    w[best] = 1.0
    return SubsetOptimum(masks, w, float(rewards[best]), float(costs[best]))


def fractional_optimum(
    mu: np.ndarray, cost: np.ndarray, max_arms: int, budget: float, reward_model: str,
    weights: np.ndarray | None = None,
) -> SubsetOptimum:
    """Best distribution q over subsets with sum_S q_S C(S) <= rho. mu, cost: (K,)."""
    masks = candidate_subsets(mu.size, max_arms, reward_model)
    rewards = expected_reward(masks, mu, reward_model, weights)
    return mixture_optimum(masks, rewards, masks.astype(float) @ cost, budget)


def mixture_optimum(masks: np.ndarray, rewards: np.ndarray, costs: np.ndarray, budget: float) -> SubsetOptimum:
    """Best distribution over the subsets masks (m, K) with rewards, costs (m,) and expected cost <= rho;
    rewards need not come from independent arms (e.g. a joint-correctness replay)."""
    if not np.isfinite(budget):
        best = int(np.argmax(rewards))
        w = np.zeros(len(masks))
        w[best] = 1.0
        return SubsetOptimum(masks, w, float(rewards[best]), float(costs[best]))
    res = linprog(
        -rewards, A_ub=costs[None, :], b_ub=[budget], A_eq=np.ones((1, len(masks))), b_eq=[1.0],
        bounds=(0.0, 1.0), method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    if res.status != 0:
        return SubsetOptimum(masks, np.zeros(len(masks)), float("nan"), float("nan"))
    q = np.clip(res.x, 0.0, 1.0)
    return SubsetOptimum(masks, q, float(rewards @ q), float(costs @ q))
