"""C2MAB-V: cost-effective combinatorial bandit with versatile reward models (Dai et al., 2405.16587).

Each round: UCB on quality, LCB on cost (spec A.3), the relaxed selection LP (relaxation.py), then
marginal-preserving rounding (rounding.py) to at most N LLMs; semi-bandit feedback updates the means.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from market.core.learning import LearningError
from market.core.learning.arm_statistics import ArmStatistics
from market.core.learning.relaxation import LP_SOLVERS, RELAXATIONS, solve_relaxation
from market.core.learning.reward_models import check_reward_model
from market.core.learning.rounding import ROUNDINGS, round_selection

COST_BOUNDS = ("lcb", "mean")


class C2MABV:
    """C2MAB-V learner over K LLMs.

    Options for the spec's open points (A.7):
      alpha, radius_constant: radius alpha sqrt(radius_constant ln t / n) (default 1, 3/2: CUCB);
      relaxation: 'linear' (AWC: min{1, sum p mu}) or 'multilinear' (AWC continuous greedy);
      rounding: 'dependent' (pipage) or 'systematic';
      cost_bound: 'lcb' (pessimistic, default) or 'mean' (plain estimate);
      weights: SUC weights (default 1); AIC always uses exactly N LLMs;
      initial_exploration: play each arm once first (AIC: blocks of N, wrapping around);
      clip_quality: cap the UCB at 1 (the SUC index may exceed 1 when False);
      lp_solver: 'lagrangian' (exact one-multiplier dual, fast) or 'highs' (scipy linprog).
    """

    name = "c2mabv"

    def __init__(
        self,
        n_arms: int,
        max_arms: int,
        budget: float,
        reward_model: str = "awc",
        alpha: float = 1.0,
        radius_constant: float = 1.5,
        relaxation: str = "linear",
        rounding: str = "dependent",
        cost_bound: str = "lcb",
        weights: np.ndarray | None = None,
        initial_exploration: bool = True,
        clip_quality: bool = True,
        greedy_steps: int = 20,
        lp_solver: str = "lagrangian",
    ) -> None:
        self.reward_model = check_reward_model(reward_model)
        if not 1 <= int(max_arms) <= int(n_arms):
            raise LearningError(f"max_arms={max_arms}: expected 1..n_arms={n_arms}")
        if not budget >= 0:
            raise LearningError(f"budget={budget}: expected a non-negative number (inf allowed)")
        if alpha < 0 or radius_constant < 0:
            raise LearningError(f"alpha={alpha}, radius_constant={radius_constant}: expected >= 0")
        if relaxation not in RELAXATIONS:
            raise LearningError(f"relaxation={relaxation!r}: expected one of {RELAXATIONS}")
        if rounding not in ROUNDINGS:
            raise LearningError(f"rounding={rounding!r}: expected one of {ROUNDINGS}")
        if cost_bound not in COST_BOUNDS:
            raise LearningError(f"cost_bound={cost_bound!r}: expected one of {COST_BOUNDS}")
        self.n_arms = int(n_arms)
        self.max_arms = int(max_arms)
        self.budget = float(budget)
        self.alpha = float(alpha)
        self.radius_constant = float(radius_constant)
        self.relaxation = relaxation
        self.rounding = rounding
        self.cost_bound = cost_bound
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        if self.weights is not None and self.weights.shape != (self.n_arms,):
            raise LearningError(f"weights shape {self.weights.shape}: expected ({self.n_arms},)")
        self.initial_exploration = bool(initial_exploration)
        self.clip_quality = bool(clip_quality)
        self.greedy_steps = int(greedy_steps)
        if lp_solver not in LP_SOLVERS:
            raise LearningError(f"lp_solver={lp_solver!r}: expected one of {LP_SOLVERS}")
        self.lp_solver = lp_solver
        self.stats = ArmStatistics(self.n_arms)

    def _initial_block(self) -> np.ndarray | None:
        t = self.stats.rounds
        if not self.initial_exploration:
            return None
        if self.reward_model == "aic":
            start = t * self.max_arms
            if start >= self.n_arms:
                return None
            return np.sort((start + np.arange(self.max_arms)) % self.n_arms)
        return np.array([t]) if t < self.n_arms else None

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Optimistic quality mu_bar (K,) and pessimistic cost c_low (K,) for the next round."""
        t = self.stats.rounds + 1
        mu_hat, c_hat = self.stats.means()
        rad = self.stats.radius(t, self.alpha, self.radius_constant)
        mu_bar = mu_hat + rad
        if self.clip_quality or self.reward_model != "suc":
            mu_bar = np.minimum(mu_bar, 1.0)
        c_low = np.maximum(c_hat - rad, 0.0) if self.cost_bound == "lcb" else c_hat
        return mu_bar, c_low

    def fractional_selection(self) -> np.ndarray:
        """The relaxed solution p (K,) for the next round (before rounding)."""
        mu_bar, c_low = self.bounds()
        return solve_relaxation(
            mu_bar, c_low, self.max_arms, self.budget, self.reward_model,
            self.relaxation, self.weights, self.greedy_steps, self.lp_solver,
        ).p

    def select(self, rng: np.random.Generator) -> np.ndarray:
        """Indices of the LLMs to run on this query, sorted: (|S|,) with |S| <= N."""
        block = self._initial_block()
        if block is not None:
            return block
        return round_selection(self.fractional_selection(), rng, self.rounding)

    def update(self, arms: np.ndarray, qualities: np.ndarray, costs: np.ndarray) -> None:
        """Semi-bandit feedback: arms (m,), qualities (m,) and costs (m,) of the played LLMs."""
        self.stats.update(arms, qualities, costs)

    def get_state(self) -> dict[str, Any]:
        return self.stats.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.stats.set_state(state)
