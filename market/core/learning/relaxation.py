"""Relaxed (continuous) C2MAB-V selection problem, the "local server" step (spec A.3).

max_p R~(p; mu_bar) s.t. sum p <= N (AIC: = N), sum p c_low <= rho, p in [0,1]^K, with
SUC: linear LP; AWC: concave bound min{1, sum p mu} as a two-stage LP (ties -> least cost) or the
multilinear extension by continuous greedy; AIC: LP in sum p ln mu (Jensen lower bound). Solved with
an exact Lagrangian solver (knapsack_lp.py) or scipy's HiGHS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from market.core.learning import LearningError
from market.core.learning.knapsack_lp import box_cardinality_lp
from market.core.learning.reward_models import check_reward_model

RELAXATIONS = ("linear", "multilinear")
LP_SOLVERS = ("lagrangian", "highs")
LP_TOL = 1e-9
_HIGHS = {"primal_feasibility_tolerance": LP_TOL, "dual_feasibility_tolerance": LP_TOL}
_LOG_FLOOR = 1e-12


@dataclass(frozen=True, slots=True)
class RelaxedSolution:
    """p: (K,) fractional selection; value: relaxed objective at p (AIC: sum p ln mu).

    feasible: False when no p meets the budget (AIC only); p is then the least-cost N-set.
    """

    p: np.ndarray
    value: float
    feasible: bool = True


def _top(values: np.ndarray, count: int) -> np.ndarray:
    # stable order: among equal values the lowest index wins, like np.argmax
    return np.argsort(-values, kind="stable")[:count]


def _linprog(objective, a_ub, b_ub, a_eq=None, b_eq=None):
    res = linprog(
        objective, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0.0, 1.0),
        method="highs", options=_HIGHS,
    )
    if res.status != 0:
        return None
    return np.clip(res.x, 0.0, 1.0)


def linear_lp(
    values: np.ndarray, cost: np.ndarray, max_arms: int, budget: float, exact_size: bool = False,
    solver: str = "lagrangian",
) -> np.ndarray | None:
    """argmax values.p over {p in [0,1]^K : sum p <= N (or = N), cost.p <= budget}; None if empty.

    values, cost: (K,). Returns p (K,). solver: 'lagrangian' (exact, knapsack_lp.py) or 'highs'.
    """
    if solver == "lagrangian":
        return box_cardinality_lp(values, cost, budget, max_arms, exact_size)
    if solver != "highs":
        raise LearningError(f"solver={solver!r}: expected one of {LP_SOLVERS}")
    k = values.size
    n = min(max_arms, k)
    order = _top(values, n)
    if not exact_size:
        order = order[values[order] > 0]
    if cost[order].sum() <= budget:
        p = np.zeros(k)
        p[order] = 1.0
        return p
    rows = [np.ones(k), cost] if not exact_size else [cost]
    bounds = [float(n), float(budget)] if not exact_size else [float(budget)]
    a_eq, b_eq = (np.ones((1, k)), [float(n)]) if exact_size else (None, None)
    return _linprog(-values, np.vstack(rows), bounds, a_eq, b_eq)


def _lp_from_nothing(values: np.ndarray, cost: np.ndarray, max_arms: int, budget: float, solver: str) -> np.ndarray:
    """linear_lp without a fixed size, where p = 0 is feasible for any budget >= 0 (costs are >= 0)."""
    p = linear_lp(values, cost, max_arms, budget, solver=solver)
    if p is None:
        raise LearningError(f"budget={budget!r}: expected >= 0")
    return p


def solve_relaxation(
    mu_bar: np.ndarray,
    c_low: np.ndarray,
    max_arms: int,
    budget: float,
    reward_model: str,
    relaxation: str = "linear",
    weights: np.ndarray | None = None,
    greedy_steps: int = 20,
    solver: str = "lagrangian",
) -> RelaxedSolution:
    """Solve the relaxed problem. mu_bar, c_low: (K,) optimistic quality, pessimistic cost."""
    model = check_reward_model(reward_model)
    if relaxation not in RELAXATIONS:
        raise LearningError(f"relaxation={relaxation!r}: expected one of {RELAXATIONS}")
    if solver not in LP_SOLVERS:
        raise LearningError(f"solver={solver!r}: expected one of {LP_SOLVERS}")
    mu = np.clip(np.asarray(mu_bar, dtype=float), 0.0, None)
    cost = np.clip(np.asarray(c_low, dtype=float), 0.0, None)
    k = mu.size
    if model == "suc":
        values = mu if weights is None else mu * np.asarray(weights, dtype=float)
        p = _lp_from_nothing(values, cost, max_arms, budget, solver)
        return RelaxedSolution(p, float(values @ p))
    if model == "aic":
        logs = np.log(np.clip(mu, _LOG_FLOOR, 1.0))
        n = min(max_arms, k)
        pipeline = linear_lp(logs, cost, n, budget, exact_size=True, solver=solver)
        if pipeline is None:
            # no N-pipeline meets the budget even optimistically: spend the least
            p = np.zeros(k)
            p[_top(-cost, n)] = 1.0
            return RelaxedSolution(p, float(logs @ p), feasible=False)
        return RelaxedSolution(pipeline, float(logs @ pipeline))
    if relaxation == "multilinear":
        return _continuous_greedy(mu, cost, max_arms, budget, greedy_steps, solver)
    p = _lp_from_nothing(mu, cost, max_arms, budget, solver)
    total = float(mu @ p)
    if total < 1.0:
        return RelaxedSolution(p, total)
    # min{1, .} is flat once the sum reaches 1: among those optima pay the least expected cost
    # the least-cost p with sum p mu >= 1 costs no more than the stage-one p, so it meets the budget
    if solver == "lagrangian":
        tight = box_cardinality_lp(-cost, -mu, -(1.0 - LP_TOL), max_arms)
    else:
        a_ub = np.vstack([np.ones(k), -mu])
        tight = _linprog(cost, a_ub, [float(max_arms), -(1.0 - LP_TOL)])
    return RelaxedSolution(p if tight is None else tight, 1.0)


def multilinear_awc(p: np.ndarray, mu: np.ndarray) -> float:
    """Multilinear extension of AWC: 1 - prod(1 - p_i mu_i). p, mu: (K,)."""
    return float(1.0 - np.prod(1.0 - np.asarray(p) * np.asarray(mu)))


def _continuous_greedy(
    mu: np.ndarray, cost: np.ndarray, max_arms: int, budget: float, steps: int, solver: str
) -> RelaxedSolution:
    if steps < 1:
        raise LearningError(f"greedy_steps={steps}: expected >= 1")
    mu = np.clip(mu, 0.0, 1.0)
    p = np.zeros(mu.size)
    skip_self = np.eye(mu.size, dtype=bool)
    for _ in range(steps):
        miss = 1.0 - p * mu
        # d/dp_i of 1 - prod(1 - p_j mu_j) = mu_i prod_{j != i}(1 - p_j mu_j); form without division:
        # row i holds miss with a 1 in place of miss_i
        others = np.where(skip_self, 1.0, miss[None, :]).prod(axis=1)
        direction = _lp_from_nothing(mu * others, cost, max_arms, budget, solver)
        p = p + direction / steps
    p = np.clip(p, 0.0, 1.0)
    return RelaxedSolution(p, multilinear_awc(p, mu))
