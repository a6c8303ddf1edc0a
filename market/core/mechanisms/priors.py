"""Cost priors F_i on [c_lo, c_cap] and their virtual costs phi(c) = c + F(c)/f(c).

Reverse-auction Myerson theory (ROSA spec section 1.2, Theorem 2): the user-optimal mechanism ranks
providers by value minus virtual cost, which needs phi strictly increasing (regular priors).
We refuse irregular priors with a MechanismError rather than ironing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from market.core.mechanisms.base import MechanismError

_REGULARITY_GRID = 2049


class CostPrior(Protocol):
    """A regular cost distribution on [c_lo, c_cap]; every method is vectorised over its input."""

    # read-only: the priors are frozen dataclasses
    @property
    def c_lo(self) -> float: ...
    @property
    def c_cap(self) -> float: ...

    def cdf(self, c: np.ndarray) -> np.ndarray: ...
    def pdf(self, c: np.ndarray) -> np.ndarray: ...
    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray: ...
    def virtual_cost(self, c: np.ndarray) -> np.ndarray: ...
    def inverse_virtual_cost(self, v: np.ndarray) -> np.ndarray: ...
    def is_regular(self) -> bool: ...


def draw_cost(prior: CostPrior, rng: np.random.Generator) -> float:
    """One cost from ``prior``: ``float(prior.sample(rng, 1)[0])``, the same number from the same draw.

    A provider draws one cost per call for bids. For the uniform prior that is NumPy's
    ``low + (high - low) * next_double``, done here on one ``rng.random()``: ``Generator.uniform`` spends
    three times as long checking and broadcasting its arguments as drawing. Where NumPy's C code rounds
    differently (a fused multiply-add), ``_SCALAR_UNIFORM`` is False and the uniform prior samples as any other.
    """
    if _SCALAR_UNIFORM and type(prior) is UniformCost:
        lo = prior.c_lo
        return lo + (prior.c_cap - lo) * rng.random()
    return float(prior.sample(rng, 1)[0])


def _scalar_uniform_is_exact(draws: int = 500) -> bool:
    """Does ``lo + (hi - lo) * rng.random()`` give ``rng.uniform(lo, hi)`` bit for bit on this build of NumPy?"""
    ranges = np.random.default_rng(20261203).uniform(-4.0, 4.0, (draws, 2))
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    for lo, hi in np.sort(ranges, axis=1).tolist():
        if a.uniform(lo, hi, 1)[0] != lo + (hi - lo) * b.random():
            return False
    return True


_SCALAR_UNIFORM = _scalar_uniform_is_exact()


def _check_support(name: str, c_lo: float, c_cap: float) -> None:
    if not (np.isfinite(c_lo) and np.isfinite(c_cap) and c_lo < c_cap):
        raise MechanismError(
            f"{name}: support [c_lo, c_cap] = [{c_lo}, {c_cap}] must be finite with c_lo < c_cap"
        )


def _decrease_points(prior: CostPrior) -> np.ndarray:
    """Grid points of [c_lo, c_cap] where phi fails to increase strictly (empty if regular)."""
    grid = np.linspace(prior.c_lo, prior.c_cap, _REGULARITY_GRID)
    phi = prior.virtual_cost(grid)
    return grid[1:][np.diff(phi) <= 0.0]


def _refuse_if_irregular(prior: CostPrior) -> None:
    bad = _decrease_points(prior)
    if bad.size:
        raise MechanismError(
            f"{prior!r} is irregular: its virtual cost phi(c) = c + F(c)/f(c) does not increase "
            f"near c = {bad[:5].tolist()} (expected strictly increasing on [{prior.c_lo}, "
            f"{prior.c_cap}]); ironing is not supported"
        )


@dataclass(frozen=True, slots=True)
class UniformCost:
    """c ~ U[c_lo, c_cap]; phi(c) = 2c - c_lo (always regular)."""

    c_lo: float = 0.0
    c_cap: float = 1.0

    def __post_init__(self) -> None:
        _check_support("UniformCost", self.c_lo, self.c_cap)

    def cdf(self, c: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(c, float) - self.c_lo) / (self.c_cap - self.c_lo), 0.0, 1.0)

    def pdf(self, c: np.ndarray) -> np.ndarray:
        c = np.asarray(c, float)
        inside = (c >= self.c_lo) & (c <= self.c_cap)
        return np.where(inside, 1.0 / (self.c_cap - self.c_lo), 0.0)

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        return rng.uniform(self.c_lo, self.c_cap, size)

    def virtual_cost(self, c: np.ndarray) -> np.ndarray:
        return 2.0 * np.asarray(c, float) - self.c_lo

    def inverse_virtual_cost(self, v: np.ndarray) -> np.ndarray:
        """The cost in [c_lo, c_cap] whose virtual cost is v, saturating at the ends."""
        return np.clip(0.5 * (np.asarray(v, float) + self.c_lo), self.c_lo, self.c_cap)

    def is_regular(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class TruncatedExponentialCost:
    """c - c_lo ~ Exp(rate) truncated to [c_lo, c_cap]; phi(c) = c + (exp(rate (c - c_lo)) - 1)/rate.

    phi'(c) = 1 + exp(rate (c - c_lo)) > 0, so this family is regular for every finite rate != 0
    (a negative rate gives a density increasing in c).
    """

    rate: float = 2.0
    c_lo: float = 0.0
    c_cap: float = 1.0

    def __post_init__(self) -> None:
        _check_support("TruncatedExponentialCost", self.c_lo, self.c_cap)
        if not (np.isfinite(self.rate) and self.rate != 0.0):
            raise MechanismError(
                f"TruncatedExponentialCost: rate = {self.rate} must be finite and non-zero"
            )
        _refuse_if_irregular(self)

    @property
    def _mass(self) -> float:
        return -np.expm1(-self.rate * (self.c_cap - self.c_lo))

    def cdf(self, c: np.ndarray) -> np.ndarray:
        y = np.clip(np.asarray(c, float), self.c_lo, self.c_cap) - self.c_lo
        return -np.expm1(-self.rate * y) / self._mass

    def pdf(self, c: np.ndarray) -> np.ndarray:
        c = np.asarray(c, float)
        inside = (c >= self.c_lo) & (c <= self.c_cap)
        y = np.clip(c, self.c_lo, self.c_cap) - self.c_lo
        return np.where(inside, self.rate * np.exp(-self.rate * y) / self._mass, 0.0)

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        u = rng.random(size)
        return self.c_lo - np.log1p(-u * self._mass) / self.rate

    def virtual_cost(self, c: np.ndarray) -> np.ndarray:
        c = np.asarray(c, float)
        return c + np.expm1(self.rate * (c - self.c_lo)) / self.rate

    def inverse_virtual_cost(self, v: np.ndarray) -> np.ndarray:
        """The cost in [c_lo, c_cap] whose virtual cost is v, saturating at the ends.

        Solves z + e^z = k with z = rate (c - c_lo), k = rate (v - c_lo) + 1 by Newton's method
        started right of the root (the map is convex increasing, so the iterates decrease monotonically).
        """
        lo, hi = self.virtual_cost(np.array([self.c_lo, self.c_cap]))
        v = np.clip(np.asarray(v, float), lo, hi)
        k = self.rate * (v - self.c_lo) + 1.0
        z = np.where(k > 1.0, np.log(np.maximum(k, 1.0)), k)
        z = np.minimum(z, k)
        for _ in range(100):
            ez = np.exp(z)
            step = (z + ez - k) / (1.0 + ez)
            z = z - step
            if np.all(np.abs(step) <= 1e-15 * (1.0 + np.abs(z))):
                break
        return np.clip(self.c_lo + z / self.rate, self.c_lo, self.c_cap)

    def is_regular(self) -> bool:
        return _decrease_points(self).size == 0


@dataclass(frozen=True, slots=True)
class HistogramCost:
    """Piecewise-uniform cost density: bin k = [edges[k], edges[k+1]) has probability weights[k].

    Inside a bin phi has slope 2; at an edge phi jumps by F(e)(1/f_right - 1/f_left), so the prior
    is regular iff the density never increases from one bin to the next. Irregular ones are refused.
    edges: (k+1,) increasing, weights: (k,) positive (normalised on construction).
    """

    edges: tuple[float, ...]
    weights: tuple[float, ...]
    c_lo: float = field(init=False)
    c_cap: float = field(init=False)
    _cum: np.ndarray = field(init=False, repr=False, compare=False)
    _dens: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        e = np.asarray(self.edges, float)
        w = np.asarray(self.weights, float)
        if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0) or not np.all(np.isfinite(e)):
            raise MechanismError(f"HistogramCost: edges = {self.edges} must be finite and increasing")
        if w.shape != (e.size - 1,) or np.any(~(w > 0)) or not np.all(np.isfinite(w)):
            raise MechanismError(
                f"HistogramCost: weights = {self.weights} must be {e.size - 1} positive numbers"
            )
        w = w / w.sum()
        object.__setattr__(self, "c_lo", float(e[0]))
        object.__setattr__(self, "c_cap", float(e[-1]))
        object.__setattr__(self, "_cum", np.concatenate(([0.0], np.cumsum(w))))
        object.__setattr__(self, "_dens", w / np.diff(e))
        jumps = np.diff(self._dens) > 0
        if np.any(jumps):
            where = e[1:-1][jumps]
            raise MechanismError(
                f"HistogramCost(edges={self.edges}, weights={self.weights}) is irregular: its "
                f"virtual cost decreases at c = {where.tolist()} where the density increases "
                f"(expected a non-increasing density); ironing is not supported"
            )

    def _bin(self, c: np.ndarray) -> np.ndarray:
        e = np.asarray(self.edges, float)
        return np.clip(np.searchsorted(e, c, side="right") - 1, 0, e.size - 2)

    def cdf(self, c: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(c, float), np.asarray(self.edges, float), self._cum)

    def pdf(self, c: np.ndarray) -> np.ndarray:
        c = np.asarray(c, float)
        inside = (c >= self.c_lo) & (c <= self.c_cap)
        return np.where(inside, self._dens[self._bin(c)], 0.0)

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        return np.interp(rng.random(size), self._cum, np.asarray(self.edges, float))

    def virtual_cost(self, c: np.ndarray) -> np.ndarray:
        c = np.asarray(c, float)
        return c + self.cdf(c) / self._dens[self._bin(c)]

    def inverse_virtual_cost(self, v: np.ndarray) -> np.ndarray:
        """The cost in [c_lo, c_cap] whose virtual cost is v; v in a jump gap maps to the edge."""
        v = np.asarray(v, float)
        e = np.asarray(self.edges, float)
        # phi on bin k is 2c - e_k + F(e_k)/f_k; its left limit at the bin's upper edge ranks v.
        offset = self._cum[:-1] / self._dens - e[:-1]
        upper = 2.0 * e[1:] + offset
        k = np.minimum(np.searchsorted(upper, v, side="left"), e.size - 2)
        c = 0.5 * (v - offset[k])
        return np.clip(c, e[k], e[k + 1])

    def is_regular(self) -> bool:
        return bool(np.all(np.diff(self._dens) <= 0))


@dataclass(frozen=True, slots=True)
class CostPriors:
    """The n providers' priors, with virtual costs vectorised across providers.

    When all priors are UniformCost the map is one affine array operation (phi = 2b - c_lo);
    otherwise it falls back to one call per provider.
    """

    priors: tuple
    uniform_c_lo: np.ndarray | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for i, p in enumerate(self.priors):
            if not p.is_regular():
                raise MechanismError(f"priors[{i}] = {p!r} is irregular (refused, not ironed)")
        lo = None
        if all(type(p) is UniformCost for p in self.priors):
            lo = np.array([p.c_lo for p in self.priors], float)
        object.__setattr__(self, "uniform_c_lo", lo)

    @classmethod
    def of(cls, priors: "CostPrior | Sequence[CostPrior]", n: int) -> "CostPriors":
        """One prior for everyone, or one per provider (length must be n)."""
        if isinstance(priors, CostPriors):
            if len(priors.priors) != n:
                raise MechanismError(f"priors: {len(priors.priors)} given, expected n = {n}")
            return priors
        if isinstance(priors, (list, tuple)):
            if len(priors) != n:
                raise MechanismError(f"priors: {len(priors)} given, expected n = {n}")
            return cls(tuple(priors))
        return cls((priors,) * n)

    @property
    def c_lo(self) -> np.ndarray:
        return np.array([p.c_lo for p in self.priors], float)

    @property
    def c_cap(self) -> np.ndarray:
        return np.array([p.c_cap for p in self.priors], float)

    def virtual_cost(self, c: np.ndarray) -> np.ndarray:
        """phi_i(c_i) for each provider i. c: (n,) -> (n,)."""
        if self.uniform_c_lo is not None:
            return 2.0 * c - self.uniform_c_lo
        return np.array([float(p.virtual_cost(ci)) for p, ci in zip(self.priors, c)])

    def virtual_cost_of(self, i: int, c: np.ndarray) -> np.ndarray:
        """phi_i over an array of costs of provider i."""
        return self.priors[i].virtual_cost(c)

    def inverse_virtual_cost_of(self, i: int, v: np.ndarray) -> np.ndarray:
        return self.priors[i].inverse_virtual_cost(v)
