"""Marginal law of the reply MOSAIC shows, for M i.i.d. candidates (sampling-importance-resampling).

pi_{r,M}(y) = M pi_gen(y) E_{c ~ Multinomial(M−1, pi_gen)}[ w(y) / (w(y) + Σ_z c_z w(z)) ], w ∝ pi*/pi_gen
(spec section 2.2): exact by enumerating compositions, or Rao-Blackwellised Monte Carlo over c.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.special import gammaln

MAX_COMPOSITIONS = 3_000_000


def _weights(
    log_target: np.ndarray, log_gen: np.ndarray, log_score: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    log_target, log_gen = np.asarray(log_target, dtype=float), np.asarray(log_gen, dtype=float)
    log_score = log_gen if log_score is None else np.asarray(log_score, dtype=float)
    if not (log_target.shape == log_gen.shape == log_score.shape) or log_target.ndim != 1:
        raise ValueError(f"log_target {log_target.shape}, log_gen, log_score must be equal (K,) shapes")
    reachable = ~np.isneginf(log_gen)
    log_w = np.where(reachable, log_target - np.where(reachable, log_score, 0.0), -np.inf)
    w = np.exp(log_w - log_w[reachable].max())  # SIR is invariant to the scale of w
    return w, np.exp(log_gen)


def shown_reply_law(
    log_target: np.ndarray, log_gen: np.ndarray, m: int, log_score: np.ndarray | None = None
) -> np.ndarray:
    """Exact (K,) law of the shown reply with m candidates drawn from exp(log_gen); small K and m only.

    log_score: (K,) proposal log-probs used in the weights, if not the sampling law (e.g. raw-scored).
    """
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    w, p_gen = _weights(log_target, log_gen, log_score)
    k = w.shape[0]
    n_comp = int(np.exp(gammaln(m + k - 1) - gammaln(k) - gammaln(m)).round())
    if n_comp > MAX_COMPOSITIONS:
        raise ValueError(f"{n_comp} compositions of M−1={m - 1} into K={k} parts; use shown_reply_law_mc")
    # stars and bars: each choice of K−1 bar positions among M−1+K−1 slots is one count vector c
    bars = np.array(list(itertools.combinations(range(m - 1 + k - 1), k - 1)), dtype=np.int64).reshape(-1, k - 1)
    edges = np.concatenate([np.full((bars.shape[0], 1), -1), bars, np.full((bars.shape[0], 1), m - 1 + k - 1)], 1)
    counts = np.diff(edges, axis=1) - 1
    reachable = p_gen > 0
    counts = counts[~(counts[:, ~reachable] > 0).any(axis=1)]  # unreachable replies are never drawn
    log_pg = np.log(p_gen[reachable])
    log_pmf = gammaln(m) - gammaln(counts + 1).sum(1) + counts[:, reachable] @ log_pg
    others = counts @ w
    ratio = w[None, :] / (w[None, :] + others[:, None])
    return m * p_gen * (np.exp(log_pmf) @ ratio)


def shown_reply_law_mc(
    log_target: np.ndarray,
    log_gen: np.ndarray,
    m: int,
    rng: np.random.Generator,
    n_draws: int = 20_000,
    log_score: np.ndarray | None = None,
) -> np.ndarray:
    """Rao-Blackwellised Monte Carlo estimate of the (K,) shown-reply law (unbiased, sums to ~1)."""
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    w, p_gen = _weights(log_target, log_gen, log_score)
    counts = rng.multinomial(m - 1, p_gen / p_gen.sum(), size=n_draws)
    others = counts @ w
    ratio = w[None, :] / (w[None, :] + others[:, None])
    return m * p_gen * ratio.mean(axis=0)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """TV distance ½ Σ |p − q| between two (K,) laws."""
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())
