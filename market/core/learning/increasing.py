"""Single-arm UCB baselines for rising-quality model selection, compared with TI-UCB (spec B.5):
UCB1 (Auer et al. 2002), sliding-window UCB (Garivier & Moulines 2011) and a change-detection UCB
(CD-UCB framework of Liu et al. 2018 with the windowed mean-shift test of M-UCB, Cao et al. 2019).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from market.core.learning import LearningError


def _check_arms(n_arms: int) -> int:
    if int(n_arms) < 1:
        raise LearningError(f"n_arms={n_arms}: expected >= 1")
    return int(n_arms)


class UCB1:
    """Index mean + sqrt(c ln t / n) (c = 2 classic; TI-UCB uses 4, C2MAB-V 3/2), optionally
    capped at `cap`; initial_rounds round-robin passes; ties go to the lowest index."""

    name = "ucb1"

    def __init__(
        self, n_arms: int, width_constant: float = 2.0, initial_rounds: int = 1,
        cap: float | None = None,
    ) -> None:
        self.n_arms = _check_arms(n_arms)
        if width_constant < 0 or int(initial_rounds) < 0:
            raise LearningError(
                f"width_constant={width_constant}, initial_rounds={initial_rounds}: expected >= 0"
            )
        self.width_constant = float(width_constant)
        self.initial_rounds = int(initial_rounds)
        self.cap = cap
        self.t = 0
        self.counts = np.zeros(self.n_arms, dtype=np.int64)
        self.sums = np.zeros(self.n_arms)

    def indices(self) -> np.ndarray:
        t = self.t + 1
        n = np.maximum(self.counts, 1)
        idx = self.sums / n + np.sqrt(self.width_constant * np.log(t) / n)
        if self.cap is not None:
            idx = np.minimum(idx, self.cap)
        return np.where(self.counts > 0, idx, np.inf)

    def select(self, rng: np.random.Generator) -> int:
        if self.t < self.initial_rounds * self.n_arms:
            return self.t % self.n_arms
        return int(np.argmax(self.indices()))

    def update(self, arm: int, reward: float) -> None:
        if not 0 <= arm < self.n_arms:
            raise LearningError(f"arm={arm}: expected an index in [0, {self.n_arms})")
        self.t += 1
        self.counts[arm] += 1
        self.sums[arm] += reward

    def get_state(self) -> dict[str, Any]:
        return {"t": self.t, "counts": self.counts.copy(), "sums": self.sums.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        self.counts = np.asarray(state["counts"], dtype=np.int64).copy()
        self.sums = np.asarray(state["sums"], dtype=float).copy()


class SlidingWindowUCB:
    """SW-UCB: statistics over the last `horizon_window` rounds only; index
    mean_W + sqrt(xi ln min(t, W) / n_W), unplayed-in-window arms first."""

    name = "sw_ucb"

    def __init__(self, n_arms: int, horizon_window: int = 1000, xi: float = 0.6) -> None:
        self.n_arms = _check_arms(n_arms)
        if int(horizon_window) < 1 or xi < 0:
            raise LearningError(
                f"horizon_window={horizon_window}, xi={xi}: expected a window >= 1 and xi >= 0"
            )
        self.horizon_window = int(horizon_window)
        self.xi = float(xi)
        self.t = 0
        self.history: deque[tuple[int, float]] = deque()
        self.counts = np.zeros(self.n_arms, dtype=np.int64)
        self.sums = np.zeros(self.n_arms)

    def select(self, rng: np.random.Generator) -> int:
        if np.any(self.counts == 0):
            return int(np.flatnonzero(self.counts == 0)[0])
        n = self.counts
        width = np.sqrt(self.xi * np.log(min(self.t + 1, self.horizon_window)) / n)
        return int(np.argmax(self.sums / n + width))

    def update(self, arm: int, reward: float) -> None:
        if not 0 <= arm < self.n_arms:
            raise LearningError(f"arm={arm}: expected an index in [0, {self.n_arms})")
        self.t += 1
        self.history.append((arm, float(reward)))
        self.counts[arm] += 1
        self.sums[arm] += reward
        if len(self.history) > self.horizon_window:
            old_arm, old_reward = self.history.popleft()
            self.counts[old_arm] -= 1
            self.sums[old_arm] -= old_reward

    def get_state(self) -> dict[str, Any]:
        h = np.asarray(list(self.history), dtype=float).reshape(-1, 2)
        return {"t": self.t, "history": h, "counts": self.counts.copy(), "sums": self.sums.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        self.history = deque((int(a), float(r)) for a, r in np.asarray(state["history"]))
        self.counts = np.asarray(state["counts"], dtype=np.int64).copy()
        self.sums = np.asarray(state["sums"], dtype=float).copy()


class ChangeDetectionUCB:
    """UCB1 whose per-arm statistics restart when the last `window` rewards of that arm show a
    mean shift |mean(second half) - mean(first half)| > threshold; with probability `explore`
    a uniformly random arm is pulled so that every arm keeps being tested."""

    name = "cd_ucb"

    def __init__(
        self, n_arms: int, window: int = 100, threshold: float = 0.1, explore: float = 0.01,
        width_constant: float = 2.0,
    ) -> None:
        self.n_arms = _check_arms(n_arms)
        if int(window) < 2 or int(window) % 2:
            raise LearningError(f"window={window}: expected an even number >= 2")
        if threshold < 0 or not 0 <= explore <= 1 or width_constant < 0:
            raise LearningError(
                f"threshold={threshold}, explore={explore}, width_constant={width_constant}:"
                " expected threshold >= 0, explore in [0, 1], width_constant >= 0"
            )
        self.window, self.threshold = int(window), float(threshold)
        self.explore, self.width_constant = float(explore), float(width_constant)
        self.t = 0
        self.counts = np.zeros(self.n_arms, dtype=np.int64)
        self.sums = np.zeros(self.n_arms)
        self.recent: list[deque[float]] = [deque(maxlen=self.window) for _ in range(self.n_arms)]
        self.detections: list[tuple[int, int, int]] = []
        self.total_pulls = np.zeros(self.n_arms, dtype=np.int64)

    def select(self, rng: np.random.Generator) -> int:
        if rng.random() < self.explore:
            return int(rng.integers(self.n_arms))
        if np.any(self.counts == 0):
            return int(np.flatnonzero(self.counts == 0)[0])
        total = int(self.counts.sum())
        n = self.counts
        return int(np.argmax(self.sums / n + np.sqrt(self.width_constant * np.log(total) / n)))

    def update(self, arm: int, reward: float) -> None:
        if not 0 <= arm < self.n_arms:
            raise LearningError(f"arm={arm}: expected an index in [0, {self.n_arms})")
        self.t += 1
        self.total_pulls[arm] += 1
        self.counts[arm] += 1
        self.sums[arm] += reward
        buf = self.recent[arm]
        buf.append(float(reward))
        if len(buf) == self.window:
            half = self.window // 2
            r = np.asarray(buf)
            if abs(r[half:].mean() - r[:half].mean()) > self.threshold:
                self.detections.append((arm, int(self.total_pulls[arm]), self.t))
                # restart on the newer half, which follows the change
                self.counts[arm] = half
                self.sums[arm] = float(r[half:].sum())
                buf.clear()
                buf.extend(r[half:])

    def get_state(self) -> dict[str, Any]:
        return {
            "t": self.t, "counts": self.counts.copy(), "sums": self.sums.copy(),
            "total_pulls": self.total_pulls.copy(),
            "recent": [np.asarray(b, dtype=float) for b in self.recent],
            "detections": np.asarray(self.detections, dtype=np.int64).reshape(-1, 3),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        self.counts = np.asarray(state["counts"], dtype=np.int64).copy()
        self.sums = np.asarray(state["sums"], dtype=float).copy()
        self.total_pulls = np.asarray(state["total_pulls"], dtype=np.int64).copy()
        self.recent = [deque(map(float, b), maxlen=self.window) for b in state["recent"]]
        self.detections = [(int(arm), int(n), int(t)) for arm, n, t in np.asarray(state["detections"])]
