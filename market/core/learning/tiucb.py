"""TI-UCB: time-increasing UCB with convergence-aware change detection (Xia, Kong, Yu, Guo, Rossi,
Kim, Li; WWW 2024, arXiv 2403.07213), reconstructed as in spec B.3: per-arm least-squares trend
since the last change point, index = trend prediction + sqrt(c ln t / n), and a detector comparing
the predictions of two consecutive windows of w+1 pulls; a detection restarts the trend fit.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from market.core.learning import LearningError
from market.core.learning.trend_fit import LeastSquaresTrend, fit_line

TIME_INDICES = ("rested", "port", "restless")
WIDTH_PULLS = ("all", "segment")


class TIUCB:
    """TI-UCB over K arms.

    Options for the spec's open points (B.7):
      time_index: 'rested' (x = own pull number, predict at n_i + 1; default), 'port' (x = pull
        number, predict at global round t as the public C port does), 'restless' (x = global round
        of each pull, predict at t);
      window w, threshold gamma: detection when u1 - u2 > gamma (one-sided, as in the port);
      width_constant c and width_pulls ('all' pulls or pulls of the current 'segment') in
        sqrt(c ln t / n); initial_rounds m0 round-robin passes;
      clamp_negative: a negative window prediction is replaced by the window mean (port);
      trend=False forces slope 0 (index = segment mean + width); detect=False disables detection.
    """

    name = "tiucb"

    def __init__(
        self,
        n_arms: int,
        window: int = 100,
        gamma: float = 0.15,
        width_constant: float = 4.0,
        initial_rounds: int = 2,
        time_index: str = "rested",
        width_pulls: str = "all",
        clamp_negative: bool = True,
        trend: bool = True,
        detect: bool = True,
    ) -> None:
        if int(n_arms) < 1:
            raise LearningError(f"n_arms={n_arms}: expected >= 1")
        if int(window) < 2:
            raise LearningError(f"window={window}: expected >= 2 pulls")
        if gamma < 0 or width_constant < 0 or int(initial_rounds) < 0:
            raise LearningError(
                f"gamma={gamma}, width_constant={width_constant}, initial_rounds={initial_rounds}:"
                " expected non-negative values"
            )
        if time_index not in TIME_INDICES:
            raise LearningError(f"time_index={time_index!r}: expected one of {TIME_INDICES}")
        if width_pulls not in WIDTH_PULLS:
            raise LearningError(f"width_pulls={width_pulls!r}: expected one of {WIDTH_PULLS}")
        self.n_arms = int(n_arms)
        self.window = int(window)
        self.gamma = float(gamma)
        self.width_constant = float(width_constant)
        self.initial_rounds = int(initial_rounds)
        self.time_index = time_index
        self.width_pulls = width_pulls
        self.clamp_negative = bool(clamp_negative)
        self.trend = bool(trend)
        self.detect = bool(detect)
        self.t = 0
        self.counts = np.zeros(self.n_arms, dtype=np.int64)
        self.segment_start = np.zeros(self.n_arms, dtype=np.int64)  # pulls before the segment
        self.fits = [LeastSquaresTrend() for _ in range(self.n_arms)]
        # the detector only ever looks at the last 2w + 1 pulls of an arm
        self.xs: list[deque[float]] = [deque(maxlen=2 * self.window + 1) for _ in range(self.n_arms)]
        self.ys: list[deque[float]] = [deque(maxlen=2 * self.window + 1) for _ in range(self.n_arms)]
        self.detections: list[tuple[int, int, int]] = []
        self._refresh_cache()

    def _refresh_cache(self) -> None:
        # per-arm (slope, intercept, segment mean, segment count), so indices() is vectorised
        lines = np.array([f.line() for f in self.fits]).reshape(self.n_arms, 2)
        self.slope, self.intercept = lines[:, 0].copy(), lines[:, 1].copy()
        self.segment_mean = np.array([f.mean for f in self.fits])
        self.segment_count = np.array([f.count for f in self.fits], dtype=np.int64)

    def _refresh_arm(self, arm: int) -> None:
        fit = self.fits[arm]
        self.slope[arm], self.intercept[arm] = fit.line()
        self.segment_mean[arm] = fit.mean
        self.segment_count[arm] = fit.count

    def _target(self, arm: int, t: int) -> float:
        # t: the round being decided (1-based)
        return float(self.counts[arm] + 1) if self.time_index == "rested" else float(t)

    def indices(self) -> np.ndarray:
        """UCB index of every arm for the next round: (K,); +inf for unplayed arms."""
        t = self.t + 1
        played = self.counts > 0
        if self.trend:
            target = self.counts + 1.0 if self.time_index == "rested" else np.full(self.n_arms, float(t))
            pred = self.slope * target + self.intercept
        else:
            pred = self.segment_mean
        n = self.counts if self.width_pulls == "all" else self.segment_count
        width = np.sqrt(self.width_constant * np.log(t) / np.maximum(n, 1))
        return np.where(played, pred + width, np.inf)

    def select(self, rng: np.random.Generator) -> int:
        """Arm to pull next (round robin for the first m0 K rounds, then the largest index)."""
        if self.t < self.initial_rounds * self.n_arms:
            return self.t % self.n_arms
        return int(np.argmax(self.indices()))

    def _window_prediction(self, x: np.ndarray, y: np.ndarray, target: float) -> float:
        slope, intercept = fit_line(x, y)
        u = slope * target + intercept
        return float(y.mean()) if (self.clamp_negative and u < 0) else u

    def update(self, arm: int, reward: float) -> None:
        """Observe the reward of the pulled arm and run change detection on it."""
        if not 0 <= arm < self.n_arms:
            raise LearningError(f"arm={arm}: expected an index in [0, {self.n_arms})")
        self.t += 1
        self.counts[arm] += 1
        n = int(self.counts[arm])
        x = float(self.t) if self.time_index == "restless" else float(n)
        self.xs[arm].append(x)
        self.ys[arm].append(float(reward))
        w = self.window
        # pulls n-2w..n-w and n-w..n (w+1 points each) must lie in the current segment
        if self.detect and n - int(self.segment_start[arm]) >= 2 * w + 1:
            xs = np.asarray(self.xs[arm])
            ys = np.asarray(self.ys[arm])
            target = self._target(arm, self.t + 1)
            u1 = self._window_prediction(xs[: w + 1], ys[: w + 1], target)
            u2 = self._window_prediction(xs[w:], ys[w:], target)
            if u1 - u2 > self.gamma:
                # growth slowed: the new segment starts with the newer window
                self.segment_start[arm] = n - w - 1
                self.fits[arm].fit(xs[w:], ys[w:])
                self.detections.append((arm, n, self.t))
                self._refresh_arm(arm)
                return
        self.fits[arm].add(x, float(reward))
        self._refresh_arm(arm)

    def get_state(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "counts": self.counts.copy(),
            "segment_start": self.segment_start.copy(),
            "fits": [f.get_state() for f in self.fits],
            "xs": [np.asarray(v, dtype=float) for v in self.xs],
            "ys": [np.asarray(v, dtype=float) for v in self.ys],
            "detections": np.asarray(self.detections, dtype=np.int64).reshape(-1, 3),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        self.counts = np.asarray(state["counts"], dtype=np.int64).copy()
        self.segment_start = np.asarray(state["segment_start"], dtype=np.int64).copy()
        for fit, s in zip(self.fits, state["fits"]):
            fit.set_state(s)
        size = 2 * self.window + 1
        self.xs = [deque(map(float, v), maxlen=size) for v in state["xs"]]
        self.ys = [deque(map(float, v), maxlen=size) for v in state["ys"]]
        self.detections = [(int(arm), int(n), int(t)) for arm, n, t in np.asarray(state["detections"])]
        self._refresh_cache()
