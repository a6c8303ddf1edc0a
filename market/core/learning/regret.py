"""Regret and long-term budget violation of a selection run (C2MAB-V, spec A.2).

R(t) = sum_{s<=t} (r* - r(S_s; mu)) against an integer or fractional optimum r*;
V(t) = max{sum_{s<=t} (C_s - rho), 0} on realised or expected costs (the max operator of Thm 2).
"""

from __future__ import annotations

import numpy as np


def cumulative_regret(expected_rewards: np.ndarray, optimum: float) -> np.ndarray:
    """expected_rewards: (T,) r(S_t; mu) of the played subsets. Returns (T,) R(1..T)."""
    return np.cumsum(optimum - np.asarray(expected_rewards, dtype=float))


def cumulative_violation(costs: np.ndarray, budget: float) -> np.ndarray:
    """costs: (T,) per-round cost C(S_t). Returns (T,) V(1..T) = max(cumsum(C - rho), 0)."""
    return np.maximum(np.cumsum(np.asarray(costs, dtype=float) - budget), 0.0)


def loglog_slope(horizons: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of log(values) against log(horizons); values must be positive."""
    x = np.log(np.asarray(horizons, dtype=float))
    y = np.log(np.maximum(np.asarray(values, dtype=float), 1e-300))
    return float(np.polyfit(x, y, 1)[0])
