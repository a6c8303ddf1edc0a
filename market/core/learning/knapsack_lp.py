"""Exact solver for max v.p s.t. p in [0,1]^K, sum p <= N (or = N), a.p <= b.

The relaxed C2MAB-V problems (spec A.3) have this form. Dualising a.p <= b leaves a top-N greedy
problem, so the dual L(lam) = b lam + topN(v - lam a) is piecewise linear in one variable; its
minimum lies at a breakpoint, and the primal optimum mixes the greedy sets on both sides of it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_TOL = 1e-12


@lru_cache(maxsize=64)
def _pairs(k: int) -> tuple[np.ndarray, np.ndarray]:
    # i < j index pairs of K items; built once per K because the solver runs every round
    i, j = np.triu_indices(k, 1)
    i.flags.writeable = False
    j.flags.writeable = False
    return i, j


def _greedy(v: np.ndarray, a: np.ndarray, lams: np.ndarray, n: int, exact_size: bool) -> np.ndarray:
    """Greedy (Lagrangian-optimal) sets for each lam: (B,) -> (B, K) bool; ties: lowest index."""
    vals = v[None, :] - lams[:, None] * a[None, :]
    order = np.argsort(-vals, axis=1, kind="stable")[:, :n]
    mask = np.zeros(vals.shape, dtype=bool)
    mask[np.arange(vals.shape[0])[:, None], order] = True
    if not exact_size:
        mask &= vals > 0
    return mask


def box_cardinality_lp(
    v: np.ndarray, a: np.ndarray, b: float, n: int, exact_size: bool = False
) -> np.ndarray | None:
    """Optimal p (K,) with at most two fractional entries, or None when infeasible.

    v, a: (K,); b: bound of a.p (may be inf); n: cardinality bound N (equality if exact_size).
    """
    v = np.asarray(v, dtype=float)
    a = np.asarray(a, dtype=float)
    k = v.size
    n = min(int(n), k)
    a_low = np.sort(a)[:n]
    least = a_low.sum() if exact_size else np.minimum(a_low, 0.0).sum()
    if least > b + 1e-12 * max(1.0, abs(b)):
        return None
    zero = np.zeros(1)
    first = _greedy(v, a, zero, n, exact_size)[0]
    if not np.isfinite(b) or a @ first <= b:
        # the unconstrained greedy set can still have a tie broken towards a costlier item;
        # the set just right of lam = 0 prefers cheaper items among ties
        return first.astype(float)
    i, j = _pairs(k)
    da = a[i] - a[j]
    ok = np.abs(da) > _TOL
    crossings = [(v[i][ok] - v[j][ok]) / da[ok]]
    if not exact_size:
        nz = np.abs(a) > _TOL
        crossings.append(v[nz] / a[nz])
    lams = np.concatenate([zero, *crossings])
    lams = np.sort(lams[np.isfinite(lams) & (lams >= 0.0)])
    # one filter drops repeats and breakpoints equal up to rounding, which would leave a sliver
    # where ties decide the greedy set
    lams = lams[np.concatenate([[True], lams[1:] - lams[:-1] > 1e-9 * (1.0 + lams[1:])])]
    vals = v[None, :] - lams[:, None] * a[None, :]
    top = -np.sort(-vals, axis=1)[:, :n]
    if not exact_size:
        top = np.maximum(top, 0.0)
    dual = b * lams + top.sum(axis=1)
    s = int(np.argmin(dual))
    right = lams[s + 1] if s + 1 < lams.size else lams[s] + 1.0
    left = lams[s - 1] if s > 0 else lams[s]
    sides = _greedy(v, a, np.array([(lams[s] + right) / 2, (left + lams[s]) / 2]), n, exact_size)
    plus, minus = sides[0].astype(float), sides[1].astype(float)
    c_plus, c_minus = a @ plus, a @ minus
    if c_plus > b + 1e-9 * max(1.0, abs(b)):
        return None
    if c_minus <= b or c_minus - c_plus <= _TOL:
        return plus
    theta = (b - c_plus) / (c_minus - c_plus)
    return np.clip(theta * minus + (1.0 - theta) * plus, 0.0, 1.0)
