"""Exact regularised optimum of MOSAIC's platform objective on an enumerable reply space.

pi*(y) = pi_ref(y) exp(r(y)/τ) / Z, J(pi) = E_pi[r] − τ KL(pi || pi_ref), J(pi*) = τ log Z
(arXiv 2405.05905 Eqs. 1-2), with the leave-one-out optima pi*_{-i} and the Lemma 4.2 variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Optimum:
    """pi* for one reward profile. log_pi: (K,); log_z: log Z; value: J(pi*) = τ log Z."""

    log_pi: np.ndarray
    log_z: float
    tau: float

    @property
    def value(self) -> float:
        return self.tau * self.log_z

    @property
    def entropy(self) -> float:
        return entropy(self.log_pi)


def logsumexp(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    """log Σ exp(x) along ``axis``; −inf for all −inf input."""
    x = np.asarray(x, dtype=float)
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.exp(x - top).sum(axis=axis, keepdims=True)) + top
    return np.squeeze(out, axis=axis) if axis is not None else out.reshape(())[()]


def optimum(log_ref: np.ndarray, rewards: np.ndarray, tau: float) -> Optimum:
    """pi* for log_ref: (K,) normalised reference log-probs and rewards: (n, K) or (K,) (summed over rows)."""
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    total = np.asarray(rewards, dtype=float)
    total = total.sum(axis=0) if total.ndim == 2 else total
    s = np.asarray(log_ref, dtype=float) + total / tau
    log_z = float(logsumexp(s))
    return Optimum(s - log_z, log_z, float(tau))


def leave_one_out(log_ref: np.ndarray, rewards: np.ndarray, tau: float) -> tuple[Optimum, ...]:
    """pi*_{-i} for each advertiser i: the optimum with row i of rewards (n, K) removed."""
    rewards = np.asarray(rewards, dtype=float)
    total = rewards.sum(axis=0)
    return tuple(optimum(log_ref, total - rewards[i], tau) for i in range(rewards.shape[0]))


def kl(log_p: np.ndarray, log_q: np.ndarray) -> float:
    """KL(p || q) for (K,) log-probs; inf if p puts mass where q has none."""
    log_p, log_q = np.asarray(log_p, dtype=float), np.asarray(log_q, dtype=float)
    p = np.exp(log_p)
    live = p > 0
    if np.any(np.isneginf(log_q[live])):
        return float("inf")
    return float(np.sum(p[live] * (log_p[live] - log_q[live])))


def entropy(log_p: np.ndarray) -> float:
    """Shannon entropy (nats) of (K,) log-probs."""
    log_p = np.asarray(log_p, dtype=float)
    p = np.exp(log_p)
    live = p > 0
    return float(-np.sum(p[live] * log_p[live]))


def objective(log_pi: np.ndarray, log_ref: np.ndarray, total_reward: np.ndarray, tau: float) -> float:
    """J(pi) = E_pi[r] − τ KL(pi || pi_ref) (paper Eq. 1); all arrays (K,)."""
    p = np.exp(np.asarray(log_pi, dtype=float))
    return float(p @ np.asarray(total_reward, dtype=float) - tau * kl(log_pi, log_ref))


def importance_rho(log_target: np.ndarray, log_gen: np.ndarray) -> float:
    """ρ = E_gen[w²]/E_gen[w]² = 1 + χ²(target || gen); inf under support failure."""
    log_target, log_gen = np.asarray(log_target, dtype=float), np.asarray(log_gen, dtype=float)
    live = ~np.isneginf(log_target)
    if np.any(np.isneginf(log_gen[live])):
        return float("inf")
    return float(np.exp(logsumexp(2 * log_target[live] - log_gen[live])))


def is_variance(log_target: np.ndarray, log_gen: np.ndarray, m: int) -> float:
    """Lemma 4.2: Var of (1/M) Σ_j pi*(y_j)²/pi_gen(y_j), y_j ~ pi_gen, = (Σ pi*⁴/pi_gen − (Σ pi*²)²)/M."""
    log_target, log_gen = np.asarray(log_target, dtype=float), np.asarray(log_gen, dtype=float)
    live = ~np.isneginf(log_target)
    fourth = np.exp(logsumexp(4 * log_target[live] - log_gen[live]))
    second = np.exp(logsumexp(2 * log_target[live]))
    return float((fourth - second**2) / m)
