"""Disjoint LinUCB, vectorised across arms: one ridge regression per arm with Sherman-Morrison updates.

Li et al. (WWW 2010) with the OFUL radius of Abbasi-Yadkori, Pal, Szepesvari (NeurIPS 2011, Thm 2):
beta_i = sigma sqrt(2 log(n/delta) + d log(1 + n_i L^2/(d lambda))) + sqrt(lambda) S (union bound over arms).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from market.core.learning import LearningError


class LinUCB:
    """Per-arm ridge estimates theta_hat_i = V_i^-1 s_i with V_i = lambda I + sum x x^T.

    State: inverse Gram stack (n, d, d), theta_hat (n, d), pulls (n,).
    width: "constant" uses alpha; "oful" uses the radius above with (sigma, S, L, delta).
    """

    def __init__(
        self,
        n: int,
        d: int,
        ridge: float = 1.0,
        alpha: float = 1.0,
        width: str = "constant",
        sigma: float = 0.1,
        theta_bound: float = 1.0,
        context_bound: float = 1.0,
        delta: float = 0.05,
    ) -> None:
        if n < 1 or d < 1:
            raise LearningError(f"LinUCB: n = {n}, d = {d}; expected positive integers")
        if not ridge > 0:
            raise LearningError(f"LinUCB: ridge = {ridge}; expected > 0")
        if not alpha >= 0:
            raise LearningError(f"LinUCB: alpha = {alpha}; expected >= 0")
        if width not in ("constant", "oful"):
            raise LearningError(f"LinUCB: width = {width!r}; expected 'constant' or 'oful'")
        if width == "oful" and not (0 < delta < 1 and sigma >= 0 and theta_bound >= 0 and context_bound > 0):
            raise LearningError(
                f"LinUCB: oful needs 0 < delta < 1, sigma >= 0, theta_bound >= 0, context_bound > 0; "
                f"got delta = {delta}, sigma = {sigma}, theta_bound = {theta_bound}, context_bound = {context_bound}"
            )
        self.n, self.d = int(n), int(d)
        self.ridge, self.alpha, self.width = float(ridge), float(alpha), width
        self.sigma, self.theta_bound, self.context_bound, self.delta = (
            float(sigma), float(theta_bound), float(context_bound), float(delta))
        # Per arm, one (d + 1, d) block: theta_hat_i on row 0 above V_i^-1, so one matrix-vector product
        # gives every estimate and every V_i^-1 x, and one rank-one step updates both.
        self._block = np.zeros((self.n, self.d + 1, self.d))
        self._rows = self._block.reshape(self.n * (self.d + 1), self.d)
        self._lifted = np.zeros(self.d + 1)
        self._alpha_sq = self.alpha**2
        self.theta_hat = self._block[:, 0, :]
        self.v_inv = self._block[:, 1:, :]
        self.v_inv[:] = np.eye(self.d) / self.ridge
        self.pulls = np.zeros(self.n, dtype=np.int64)
        self._radius = np.full(self.n, self.alpha)
        self._refresh_radius()

    def _refresh_radius(self, arm: int | None = None) -> None:
        if self.width == "constant":
            return
        pulls = self.pulls if arm is None else self.pulls[arm]
        log_det = self.d * np.log1p(pulls * self.context_bound**2 / (self.d * self.ridge))
        beta = (self.sigma * np.sqrt(2.0 * np.log(self.n / self.delta) + log_det)
                + np.sqrt(self.ridge) * self.theta_bound)
        if arm is None:
            self._radius = np.asarray(beta, float)
        else:
            self._radius[arm] = beta

    @property
    def radius(self) -> np.ndarray:
        """(n,) confidence radius per arm (alpha, or the OFUL beta_i)."""
        return self._radius

    def mean(self, x: np.ndarray) -> np.ndarray:
        """(n,) estimated mean reward theta_hat_i . x for context x (d,)."""
        return self.theta_hat @ x

    def width_of(self, x: np.ndarray) -> np.ndarray:
        """(n,) ||x||_{V_i^-1}."""
        return np.sqrt((self.v_inv @ x) @ x)

    def _mean_and_width(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = (self._rows @ x).reshape(self.n, self.d + 1)
        lifted = self._lifted
        lifted[1:] = x
        # Row i of y is [theta_i . x, V_i^-1 x]; dotting with [0, x] leaves x^T V_i^-1 x.
        return y[:, 0], np.sqrt(y @ lifted)

    def bounds(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lcb, ucb), each (n,), sharing one matrix product."""
        m, w = self._mean_and_width(x)
        w *= self._radius
        return m - w, m + w

    def ucb(self, x: np.ndarray) -> np.ndarray:
        """(n,) theta_hat_i . x + radius_i ||x||_{V_i^-1}."""
        # _mean_and_width inlined: this is the hot path of every auction round.
        y = (self._rows @ x).reshape(self.n, self.d + 1)
        if self.width == "constant":
            # alpha^2 folded into the lifted context: sqrt(V^-1 x . alpha^2 x) = alpha ||x||_{V^-1}
            np.multiply(x, self._alpha_sq, out=self._lifted[1:])
            w = np.sqrt(y @ self._lifted)
        else:
            self._lifted[1:] = x
            w = np.sqrt(y @ self._lifted)
            w *= self._radius
        w += y[:, 0]
        return w

    def lcb(self, x: np.ndarray) -> np.ndarray:
        m, w = self._mean_and_width(x)
        w *= self._radius
        return m - w

    def update(self, arm: int, x: np.ndarray, reward: float) -> None:
        """Add (x, reward) to arm's regression.

        Sherman-Morrison V^-1 -= k ax ax^T and the matching step theta += k (r - theta . x) ax, with
        ax = V^-1 x and k = 1/(1 + x . ax), done as one rank-one update of the arm's block; this equals
        V_new^-1 s_new without keeping s.
        """
        block = self._block[arm]
        z = block @ x
        ax = z[1:]
        k = 1.0 / (1.0 + float(ax @ x))
        g = z * k
        g[0] -= k * reward
        block -= np.multiply.outer(g, ax)
        self.pulls[arm] += 1
        if self.width == "oful":
            self._refresh_radius(arm)

    def get_state(self) -> dict[str, Any]:
        return {"v_inv": self.v_inv.copy(), "theta_hat": self.theta_hat.copy(), "pulls": self.pulls.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        v_inv = np.asarray(state["v_inv"], float)
        theta_hat = np.asarray(state["theta_hat"], float)
        if v_inv.shape != (self.n, self.d, self.d) or theta_hat.shape != (self.n, self.d):
            raise LearningError(
                f"LinUCB state: v_inv {v_inv.shape}, theta_hat {theta_hat.shape}; "
                f"expected {(self.n, self.d, self.d)} and {(self.n, self.d)}"
            )
        self.v_inv[:] = v_inv
        self.theta_hat[:] = theta_hat
        self.pulls = np.asarray(state["pulls"], np.int64).copy()
        self._refresh_radius()
