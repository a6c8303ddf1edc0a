"""Disjoint LinUCB, vectorised across arms: one ridge regression per arm with Sherman-Morrison updates.

Li et al. (WWW 2010) with the OFUL radius of Abbasi-Yadkori, Pal, Szepesvari (NeurIPS 2011, Thm 2):
beta_i = sigma sqrt(2 log(n/delta) + d log(1 + n_i L^2/(d lambda))) + sqrt(lambda) S (union bound over arms).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from market.mechanisms.base import MechanismError


class LinUCB:
    """Per-arm ridge estimates theta_hat_i = V_i^-1 s_i with V_i = lambda I + sum x x^T.

    State: inverse Gram stack (n, d, d), s (n, d), theta_hat (n, d), pulls (n,).
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
            raise MechanismError(f"LinUCB: n = {n}, d = {d}; expected positive integers")
        if not ridge > 0:
            raise MechanismError(f"LinUCB: ridge = {ridge}; expected > 0")
        if not alpha >= 0:
            raise MechanismError(f"LinUCB: alpha = {alpha}; expected >= 0")
        if width not in ("constant", "oful"):
            raise MechanismError(f"LinUCB: width = {width!r}; expected 'constant' or 'oful'")
        if width == "oful" and not (0 < delta < 1 and sigma >= 0 and theta_bound >= 0 and context_bound > 0):
            raise MechanismError(
                f"LinUCB: oful needs 0 < delta < 1, sigma >= 0, theta_bound >= 0, context_bound > 0; "
                f"got delta = {delta}, sigma = {sigma}, theta_bound = {theta_bound}, context_bound = {context_bound}"
            )
        self.n, self.d = int(n), int(d)
        self.ridge, self.alpha, self.width = float(ridge), float(alpha), width
        self.sigma, self.theta_bound, self.context_bound, self.delta = (
            float(sigma), float(theta_bound), float(context_bound), float(delta))
        self.v_inv = np.broadcast_to(np.eye(self.d) / self.ridge, (self.n, self.d, self.d)).copy()
        self.s = np.zeros((self.n, self.d))
        self.theta_hat = np.zeros((self.n, self.d))
        self.pulls = np.zeros(self.n, dtype=np.int64)
        self._radius = np.full(self.n, self.alpha)
        self._refresh_radius()

    def _refresh_radius(self, arm: int | None = None) -> None:
        if self.width == "constant":
            return
        pulls = self.pulls if arm is None else self.pulls[arm]
        log_det = self.d * np.log1p(pulls * self.context_bound**2 / (self.d * self.ridge))
        beta = self.sigma * np.sqrt(2.0 * np.log(self.n / self.delta) + log_det) + np.sqrt(self.ridge) * self.theta_bound
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

    def bounds(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lcb, ucb), each (n,), sharing one matrix product."""
        m = self.theta_hat @ x
        w = self._radius * np.sqrt((self.v_inv @ x) @ x)
        return m - w, m + w

    def ucb(self, x: np.ndarray) -> np.ndarray:
        return self.theta_hat @ x + self._radius * np.sqrt((self.v_inv @ x) @ x)

    def lcb(self, x: np.ndarray) -> np.ndarray:
        return self.theta_hat @ x - self._radius * np.sqrt((self.v_inv @ x) @ x)

    def update(self, arm: int, x: np.ndarray, reward: float) -> None:
        """Add (x, reward) to arm's regression (Sherman-Morrison on V_arm^-1)."""
        a = self.v_inv[arm]
        ax = a @ x
        a -= np.outer(ax, ax) / (1.0 + x @ ax)
        s = self.s[arm]
        s += reward * x
        self.theta_hat[arm] = a @ s
        self.pulls[arm] += 1
        self._refresh_radius(arm)

    def get_state(self) -> dict[str, Any]:
        return {
            "v_inv": self.v_inv.copy(),
            "s": self.s.copy(),
            "theta_hat": self.theta_hat.copy(),
            "pulls": self.pulls.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        v_inv = np.asarray(state["v_inv"], float)
        if v_inv.shape != (self.n, self.d, self.d):
            raise MechanismError(f"LinUCB state: v_inv shape {v_inv.shape}, expected {(self.n, self.d, self.d)}")
        self.v_inv = v_inv.copy()
        self.s = np.asarray(state["s"], float).copy()
        self.theta_hat = np.asarray(state["theta_hat"], float).copy()
        self.pulls = np.asarray(state["pulls"], np.int64).copy()
        self._refresh_radius()
