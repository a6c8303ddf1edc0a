"""Incremental least-squares line y = a x + b over a stream of points, the trend model of TI-UCB
(Xia et al., WWW 2024, spec B.3): sums S0..S4 kept relative to an origin so that large pull or
time indices do not cancel catastrophically. Also the batch fit used on detection windows.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Batch ordinary least squares: (slope, intercept). x, y: (m,). Slope 0 if x is constant."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    # sum / size is what ndarray.mean computes, without its per-call overhead (run every pull)
    xm, ym = x.sum() / x.size, y.sum() / y.size
    sxx = float(((x - xm) ** 2).sum())
    if sxx <= 0.0:
        return 0.0, float(ym)
    slope = float(((x - xm) * (y - ym)).sum() / sxx)
    return slope, float(ym - slope * xm)


class LeastSquaresTrend:
    """Running sums S0 = #points, S1 = sum x', S2 = sum y, S3 = sum x'^2, S4 = sum x'y, x' = x - origin."""

    def __init__(self, origin: float = 0.0) -> None:
        self.reset(origin)

    def reset(self, origin: float = 0.0) -> None:
        self.origin = float(origin)
        self.s = np.zeros(5)

    def add(self, x: float, y: float) -> None:
        d = x - self.origin
        self.s += (1.0, d, y, d * d, d * y)

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        """Replace the points by (x, y): (m,), (m,); origin moves to x[0]."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        self.reset(float(x[0]) if x.size else 0.0)
        d = x - self.origin
        self.s = np.array([x.size, d.sum(), y.sum(), (d * d).sum(), (d * y).sum()], dtype=float)

    @property
    def count(self) -> int:
        return int(self.s[0])

    @property
    def mean(self) -> float:
        return float(self.s[2] / self.s[0]) if self.s[0] > 0 else 0.0

    def line(self) -> tuple[float, float]:
        """(slope, intercept) in the original x; slope 0 with fewer than two distinct x."""
        s0, s1, s2, s3, s4 = self.s
        if s0 == 0:
            return 0.0, 0.0
        det = s0 * s3 - s1 * s1
        if det <= 1e-12 * max(1.0, s0 * s3):
            return 0.0, float(s2 / s0)
        slope = (s0 * s4 - s1 * s2) / det
        intercept = (s2 - slope * s1) / s0
        return float(slope), float(intercept - slope * self.origin)

    def predict(self, x: float) -> float:
        slope, intercept = self.line()
        return slope * x + intercept

    def get_state(self) -> dict[str, Any]:
        return {"origin": self.origin, "s": self.s.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.origin = float(state["origin"])
        self.s = np.asarray(state["s"], dtype=float).copy()
