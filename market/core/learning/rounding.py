"""Marginal-preserving rounding of a fractional LLM selection p in [0,1]^K to a subset.

Dependent rounding (Gandhi, Khuller, Parthasarathy, Srinivasan, JACM 2006) and systematic sampling;
the "scheduling cloud" step of C2MAB-V (spec A.3). Both keep P(i in S) = p_i and |S| in
{floor(sum p), ceil(sum p)}; dependent rounding also makes inclusions negatively correlated.
"""

from __future__ import annotations

import numpy as np

from market.core.learning import LearningError

ROUNDINGS = ("dependent", "systematic")
_TOL = 1e-9


def _check(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    # NaN fails both comparisons, so it is rejected too
    if p.ndim != 1 or p.size == 0 or not (p.min() >= -_TOL and p.max() <= 1 + _TOL):
        raise LearningError(f"p={p!r}: expected a non-empty 1-D array of probabilities in [0, 1]")
    return p


def _snap(v: float) -> float:
    # values within solver noise of 0 or 1 are integral, so an integral sum stays integral
    return 0.0 if v < _TOL else 1.0 if v > 1.0 - _TOL else v


def dependent_round(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pairwise pipage rounding. p: (K,). Returns the sorted selected arm indices.

    At most K - 1 pairing steps, each making at least one coordinate integral. Plain floats:
    K is small and this runs once per round.
    """
    q = [_snap(min(max(v, 0.0), 1.0)) for v in _check(p).tolist()]
    frac = [i for i, v in enumerate(q) if 0.0 < v < 1.0]
    while len(frac) >= 2:
        i, j = frac[0], frac[1]
        a = min(1.0 - q[i], q[j])
        b = min(q[i], 1.0 - q[j])
        if rng.random() < b / (a + b):
            q[i], q[j] = _snap(q[i] + a), _snap(q[j] - a)
        else:
            q[i], q[j] = _snap(q[i] - b), _snap(q[j] + b)
        frac = [k for k in frac if 0.0 < q[k] < 1.0]
    if frac:
        k = frac[0]
        q[k] = 1.0 if rng.random() < q[k] else 0.0
    return np.array([i for i, v in enumerate(q) if v == 1.0], dtype=np.int64)


def systematic_round(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Systematic sampling: p laid end to end on [0, sum p), points U + m for m = 0, 1, ...

    p: (K,). Returns the sorted selected arm indices.
    """
    q = np.clip(_check(p), 0.0, 1.0)
    upper = np.cumsum(q)
    lower = upper - q
    u = rng.random()
    # arm i is chosen when some U + m lies in [lower_i, upper_i): count the points below each end
    hits = np.ceil(upper - u) - np.ceil(lower - u)
    return np.flatnonzero(hits > 0)


def round_selection(p: np.ndarray, rng: np.random.Generator, method: str = "dependent") -> np.ndarray:
    """Round p (K,) with the named method ('dependent' or 'systematic')."""
    if method == "dependent":
        return dependent_round(p, rng)
    if method == "systematic":
        return systematic_round(p, rng)
    raise LearningError(f"rounding={method!r}: expected one of {ROUNDINGS}")
