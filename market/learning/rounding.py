"""Marginal-preserving rounding of a fractional LLM selection p in [0,1]^K to a subset.

Dependent rounding (Gandhi, Khuller, Parthasarathy, Srinivasan, JACM 2006) and systematic sampling;
the "scheduling cloud" step of C2MAB-V (spec A.3). Both keep P(i in S) = p_i and |S| in
{floor(sum p), ceil(sum p)}; dependent rounding also makes inclusions negatively correlated.
"""

from __future__ import annotations

import numpy as np

from market.mechanisms.base import MechanismError

ROUNDINGS = ("dependent", "systematic")
_TOL = 1e-9


def _check(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any(p < -_TOL) or np.any(p > 1 + _TOL):
        raise MechanismError(f"p={p!r}: expected a 1-D array of probabilities in [0, 1]")
    return np.clip(p, 0.0, 1.0)


def dependent_round(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pairwise pipage rounding. p: (K,). Returns the sorted selected arm indices.

    At most K - 1 pairing steps, each making at least one coordinate integral.
    """
    q = _check(p).copy()
    # snap values that differ from an integer by solver noise, so an integral sum stays integral
    q[q < _TOL] = 0.0
    q[q > 1 - _TOL] = 1.0
    frac = np.flatnonzero((q > 0.0) & (q < 1.0))
    while frac.size >= 2:
        i, j = frac[0], frac[1]
        a = min(1.0 - q[i], q[j])
        b = min(q[i], 1.0 - q[j])
        if rng.random() < b / (a + b):
            q[i] += a
            q[j] -= a
        else:
            q[i] -= b
            q[j] += b
        for k in (i, j):
            if q[k] < _TOL:
                q[k] = 0.0
            elif q[k] > 1 - _TOL:
                q[k] = 1.0
        frac = np.flatnonzero((q > 0.0) & (q < 1.0))
    if frac.size == 1:
        k = frac[0]
        q[k] = 1.0 if rng.random() < q[k] else 0.0
    return np.flatnonzero(q == 1.0)


def systematic_round(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Systematic sampling: p laid end to end on [0, sum p), points U + m for m = 0, 1, ...

    p: (K,). Returns the sorted selected arm indices.
    """
    q = _check(p)
    upper = np.cumsum(q)
    lower = upper - q
    u = rng.random()
    # arm i is chosen when some U + m lies in [lower_i, upper_i): count points below each bound
    hits = np.ceil(upper - u) - np.ceil(lower - u)
    return np.flatnonzero(hits > 0)


def round_selection(p: np.ndarray, rng: np.random.Generator, method: str = "dependent") -> np.ndarray:
    """Round p (K,) with the named method ('dependent' or 'systematic')."""
    if method == "dependent":
        return dependent_round(p, rng)
    if method == "systematic":
        return systematic_round(p, rng)
    raise MechanismError(f"rounding={method!r}: expected one of {ROUNDINGS}")
