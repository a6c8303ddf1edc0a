"""MOSAIC: truthful aggregation auction over sampled LLM replies (Soumalias, Curry, Seuken, arXiv 2405.05905).

Allocation q = softmax(Σ_i r_i/τ + log pi_ref − log pi_gen) over the M candidates (Algorithm 1); payments
are Rochet payments of the LogSumExp utility (Eq. 17) with the offset of section 5.3 by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Literal

import numpy as np

from market.core.mechanisms.base import MechanismError, MechanismRegistryError
from market.core.mechanisms.token_auction import token_auction
from market.core.registry import Registry

Payment = Literal["offset", "rochet", "none"]
PAYMENTS = ("offset", "rochet", "none")


class SupportFailure(MechanismError):
    """A candidate has proposal log-prob −inf but reference mass: pi_ref is not ≪ pi_gen (Cor. 4.1 fails)."""


@dataclass(frozen=True, slots=True)
class AggregationOutcome:
    """One MOSAIC auction on a fixed candidate set (arrays may carry leading batch axes (S, ...)).

    q: (M,) interim allocation, the law of the shown candidate index.
    payments: (n,) money each advertiser pays, deterministic given the candidates.
    utilities: (n,) truthful expected utilities q·r_i − p_i (reports taken as true values).
    log_weights: (M,) log pi_ref − log pi_gen of the candidates.
    payment: the payment rule used ("offset", "rochet" or "none").
    """

    q: np.ndarray
    payments: np.ndarray
    utilities: np.ndarray
    log_weights: np.ndarray
    tau: float
    payment: str

    @property
    def revenue(self) -> np.ndarray | float:
        """Σ_i p_i (per batch element)."""
        return self.payments.sum(axis=-1)

    @property
    def ess(self) -> np.ndarray | float:
        """Effective sample size of the allocation weights, (Σ w)² / Σ w² = 1 / Σ q²."""
        return 1.0 / np.sum(self.q**2, axis=-1)


def _lse(x: np.ndarray) -> np.ndarray:
    """log Σ exp along the last axis, shifted by the row maximum (rows are never all −inf here)."""
    top = np.maximum.reduce(x, axis=-1)
    shifted = x - top[..., None]
    np.exp(shifted, out=shifted)
    return np.log(np.add.reduce(shifted, axis=-1)) + top


def _check_finite(name: str, x: np.ndarray, allow_neg_inf: bool = False) -> None:
    bad = np.isnan(x) | (np.isposinf(x)) | (np.isneginf(x) & (not allow_neg_inf))
    if bad.any():
        where = tuple(int(v) for v in np.argwhere(bad)[0])
        expected = "finite or −inf" if allow_neg_inf else "finite"
        raise MechanismError(f"{name}{list(where)} = {x[where]!r}; expected {expected} values")


def _validate(rewards: Any, log_ref: Any, log_gen: Any, tau: float, payment: str) -> tuple[np.ndarray, ...]:
    rewards = np.asarray(rewards, dtype=float)
    log_ref = np.asarray(log_ref, dtype=float)
    log_gen = np.asarray(log_gen, dtype=float)
    if rewards.ndim < 2 or rewards.shape[-1] < 1 or rewards.shape[-2] < 1:
        raise MechanismError(f"rewards shape {rewards.shape}; expected (n >= 1, M >= 1)")
    m = rewards.shape[-1]
    batch = rewards.shape[:-2]
    for name, arr in (("log_ref", log_ref), ("log_gen", log_gen)):
        if arr.shape != batch + (m,):
            raise MechanismError(f"{name} shape {arr.shape}; expected {batch + (m,)} to match rewards {rewards.shape}")
    if not (isinstance(tau, (int, float, np.floating, np.integer)) and 0 < tau < float("inf")):
        raise MechanismError(f"tau = {tau!r}; expected a finite number > 0")
    if payment not in PAYMENTS:
        raise MechanismError(f"payment = {payment!r}; expected one of {PAYMENTS}")
    if np.isfinite(rewards).all() and np.isfinite(log_ref).all() and np.isfinite(log_gen).all():
        return rewards, log_ref, log_gen  # the common case; the slow checks below explain failures
    _check_finite("rewards", rewards)
    _check_finite("log_ref", log_ref, allow_neg_inf=True)
    _check_finite("log_gen", log_gen, allow_neg_inf=True)
    gen_hole = np.isneginf(log_gen)
    if gen_hole.any():
        hole_with_mass = gen_hole & ~np.isneginf(log_ref)
        where = tuple(int(v) for v in np.argwhere(gen_hole)[0])
        if hole_with_mass.any():
            where = tuple(int(v) for v in np.argwhere(hole_with_mass)[0])
            raise SupportFailure(
                f"log_gen{list(where)} = -inf but log_ref = {log_ref[where]!r}: the proposal cannot produce a "
                "reply the reference can, so pi_ref is not absolutely continuous w.r.t. pi_gen"
            )
        raise MechanismError(f"log_gen{list(where)} = -inf and log_ref = -inf: candidate impossible under both")
    if np.isneginf(log_ref).all(axis=-1).any():
        raise MechanismError("log_ref is −inf on every candidate of a set; expected at least one reachable reply")
    return rewards, log_ref, log_gen


def _auction(rewards: np.ndarray, log_w: np.ndarray, tau: float, payment: str) -> AggregationOutcome:
    scaled = rewards / tau
    s = np.add.reduce(scaled, axis=-2) + log_w  # (..., M)
    lse_s = _lse(s)
    q = np.exp(s - lse_s[..., None])
    expected_reward = np.matmul(rewards, q[..., None])[..., 0]
    if payment == "offset":
        # β_{-i} = s − r_i/τ; offset C = −τ log Σ exp(β_{-i}) charges i her zero-reward utility (section 5.3)
        lse_beta = _lse(s[..., None, :] - scaled)
        utilities = tau * (lse_s[..., None] - lse_beta)
    elif payment == "rochet":
        # C chosen so utility is G(r) = τ log Σ_j w̄_j e^{r(y_j)/τ} with normalised weights (ambiguity: scale)
        utilities = np.broadcast_to((tau * (lse_s - _lse(log_w)))[..., None], expected_reward.shape).copy()
    else:
        utilities = expected_reward
    payments = expected_reward - utilities
    return AggregationOutcome(q, payments, utilities, log_w, float(tau), payment)


def mosaic(
    rewards: np.ndarray, log_ref: np.ndarray, log_gen: np.ndarray, tau: float, payment: Payment = "offset"
) -> AggregationOutcome:
    """Run MOSAIC on fixed candidates. rewards: (n, M) reported r_i(y_j); log_ref, log_gen: (M,).

    Duplicated candidates stay separate entries (SIR). Payments: "offset" (section 5.3, default), "rochet"
    (Eq. 17 with the utility G(r) = τ log Σ w̄ e^{r/τ} common to all advertisers), "none" (pure aggregation).
    Raises SupportFailure if a candidate has log_gen = −inf and finite log_ref, MechanismError otherwise.
    """
    rewards, log_ref, log_gen = _validate(rewards, log_ref, log_gen, tau, payment)
    if rewards.ndim != 2:
        raise MechanismError(f"rewards shape {rewards.shape}; expected (n, M) (use mosaic_batch for batches)")
    return _auction(rewards, log_ref - log_gen, float(tau), payment)


def mosaic_batch(
    rewards: np.ndarray, log_ref: np.ndarray, log_gen: np.ndarray, tau: float, payment: Payment = "offset"
) -> AggregationOutcome:
    """MOSAIC on S candidate sets at once. rewards: (S, n, M); log_ref, log_gen: (S, M); outcome arrays (S, ...)."""
    rewards, log_ref, log_gen = _validate(rewards, log_ref, log_gen, tau, payment)
    return _auction(rewards, log_ref - log_gen, float(tau), payment)


def leave_one_out(rewards: np.ndarray, log_weights: np.ndarray, tau: float) -> np.ndarray:
    """(..., n, M): q_{-i}, the allocation on the same candidates had advertiser i reported nothing.

    The counterfactual of the offset payment (section 5.3): q_{-i} = softmax(Σ_{k≠i} r_k/τ + log w), so
    E_q[r_i] − E_{q_{-i}}[r_i] is the reward i's report gains it. rewards: (..., n, M) reports; log_weights:
    (..., M) log pi_ref − log pi_gen.
    """
    s = rewards.sum(axis=-2) / tau + log_weights
    beta = s[..., None, :] - rewards / tau
    q_without = np.exp(beta - beta.max(axis=-1, keepdims=True))
    q_without /= q_without.sum(axis=-1, keepdims=True)
    return q_without


def sample_shown(q: np.ndarray, rng: np.random.Generator) -> int:
    """Index of the shown reply, drawn from the allocation q: (M,)."""
    cdf = np.cumsum(q)
    return int(min(np.searchsorted(cdf, (1.0 - rng.random()) * cdf[-1], side="left"), len(q) - 1))


def ess(log_weights: np.ndarray) -> float:
    """Effective sample size (Σ w)² / Σ w² of (M,) log importance weights (log-space, scale-free)."""
    lw = np.asarray(log_weights, dtype=float)
    if lw.ndim != 1 or lw.size == 0 or np.isnan(lw).any() or np.isposinf(lw).any() or np.isneginf(lw).all():
        raise MechanismError(f"log_weights {lw!r}; expected a non-empty (M,) array, not all −inf, no NaN/+inf")
    return float(np.exp(2 * _lse(lw) - _lse(2 * lw)))


AGGREGATIONS: Registry[Any] = Registry("aggregation", {
    "mosaic": partial(mosaic, payment="offset"),
    "mosaic-rochet": partial(mosaic, payment="rochet"),
    "mosaic-nopay": partial(mosaic, payment="none"),
    "token-auction": token_auction,
}, error=MechanismRegistryError)


def build_aggregation(name: str, **params: Any) -> Callable[..., Any]:
    """The aggregation mechanism registered under ``name`` with ``params`` bound (e.g. tau=1.0)."""
    return partial(AGGREGATIONS.get(name), **params)
