"""Reward models of C2MAB-V (Dai et al., arXiv 2405.16587, Sec. 3): AWC, SUC and AIC.

Expected reward r(S; mu) of LLM subsets and the realised reward of one round's outcomes, following
the reconstruction in the spec (A.2): AWC = any correct, SUC = (weighted) sum, AIC = all correct.
"""

from __future__ import annotations

import numpy as np

from market.core.learning import LearningError

REWARD_MODELS = ("awc", "suc", "aic")


def check_reward_model(reward_model: str) -> str:
    """Normalise and validate a reward-model name."""
    name = str(reward_model).lower()
    if name not in REWARD_MODELS:
        raise LearningError(f"reward_model={reward_model!r}: expected one of {REWARD_MODELS}")
    return name


def expected_reward(
    masks: np.ndarray, mu: np.ndarray, reward_model: str, weights: np.ndarray | None = None
) -> np.ndarray:
    """Expected reward of each subset.

    masks: (m, K) bool, one row per subset; mu: (K,) mean qualities in [0, 1];
    weights: (K,) SUC weights (default 1). Returns (m,).
    AIC of the empty set is 0 (a pipeline with no stage answers nothing).
    """
    model = check_reward_model(reward_model)
    masks = np.atleast_2d(np.asarray(masks, dtype=bool))
    mu = np.asarray(mu, dtype=float)
    if model == "suc":
        w = np.ones_like(mu) if weights is None else np.asarray(weights, dtype=float)
        return masks.astype(float) @ (w * mu)
    if model == "awc":
        return 1.0 - np.prod(np.where(masks, 1.0 - mu, 1.0), axis=1)
    product = np.prod(np.where(masks, mu, 1.0), axis=1)
    return np.where(masks.any(axis=1), product, 0.0)


def realised_reward(
    qualities: np.ndarray, reward_model: str, weights: np.ndarray | None = None
) -> float:
    """Reward of one round from the selected arms' qualities X (shape (|S|,), in [0, 1]).

    weights: (|S|,) SUC weights of the selected arms (default 1).
    """
    model = check_reward_model(reward_model)
    x = np.asarray(qualities, dtype=float)
    if x.size == 0:
        return 0.0
    if model == "suc":
        return float(x.sum() if weights is None else np.dot(weights, x))
    if model == "awc":
        return float(x.max())
    return float(np.prod(x))


def all_subsets(n_arms: int) -> np.ndarray:
    """Every subset of [K] as a bool mask, in binary order: (2^K, K)."""
    if n_arms < 1 or n_arms > 20:
        raise LearningError(f"n_arms={n_arms}: expected 1..20 for subset enumeration")
    codes = np.arange(2**n_arms)[:, None]
    return ((codes >> np.arange(n_arms)[None, :]) & 1).astype(bool)


def feasible_subsets(n_arms: int, max_arms: int, reward_model: str) -> np.ndarray:
    """Subsets allowed as actions: 1 <= |S| <= N, or |S| = N for AIC. Returns (m, K) bool."""
    masks = all_subsets(n_arms)
    size = masks.sum(axis=1)
    if check_reward_model(reward_model) == "aic":
        return masks[size == max_arms]
    return masks[(size >= 1) & (size <= max_arms)]
