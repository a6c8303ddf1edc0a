"""Reverse-auction allocation rules for buying one LLM answer per query (monotone in each bid).

Myerson's optimal static rule with known qualities (ROSA spec 1.2, Thm 2), TRCM-UCB on optimistic
virtual surplus (spec 2.2), its non-contextual UCB variant and an epsilon-greedy rule.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from market.core.learning.linucb import LinUCB
from market.core.mechanisms.base import MechanismError
from market.core.mechanisms.priors import CostPrior, CostPriors, UniformCost
from market.core.parameters import forwards

_NO_ONE = -np.inf


def _masked(index: np.ndarray, active: np.ndarray | None) -> np.ndarray:
    if active is None:
        return index
    return np.where(active, index, _NO_ONE)


def _winner(index: np.ndarray, reserve: float) -> int | None:
    """argmax with ties to the lowest provider index (a bid-independent order), or None below reserve."""
    i = int(np.argmax(index))
    return i if index[i] >= reserve and index[i] > _NO_ONE else None


def critical_index(index: np.ndarray, i: int, reserve: float) -> float:
    """The smallest index provider i needs to win: max(reserve, best competing index)."""
    others = np.delete(index, i)
    return max(reserve, float(others.max())) if others.size else reserve


def _threshold(prior: CostPrior, score: float, need: float) -> float:
    """Largest bid b in [c_lo, c_cap] with score - phi(b) >= need; -inf if even c_lo loses."""
    if score - float(prior.virtual_cost(np.asarray(prior.c_lo))) < need:
        return _NO_ONE
    return float(prior.inverse_virtual_cost(np.asarray(score - need)))


class MyersonRule:
    """Myerson's static reverse rule with known qualities: winner argmax_i (theta_i . x - phi_i(b_i)) >= reserve.

    theta: (n, d) known quality vectors. Deterministic and monotone; the critical bid is
    tau_i = phi_i^-1(theta_i . x - max(reserve, max_{j != i} index_j)), capped at c_cap.
    reserve None: the query is always served (no "select nobody" outcome).
    """

    def __init__(
        self, theta: np.ndarray, priors: CostPrior | Sequence[CostPrior], reserve: float | None = 0.0
    ) -> None:
        self.theta = np.asarray(theta, float)
        if self.theta.ndim != 2:
            raise MechanismError(f"theta: shape {self.theta.shape}, expected (n, d)")
        self.n, self.d = self.theta.shape
        self.priors = CostPriors.of(priors, self.n)
        self.reserve = _NO_ONE if reserve is None else float(reserve)
        self.name = "myerson"

    def index(self, context: np.ndarray, bids: np.ndarray, active: np.ndarray | None) -> np.ndarray:
        """(n,) virtual surplus theta_i . x - phi_i(b_i); -inf for abstaining providers."""
        return _masked(self.theta @ context - self.priors.virtual_cost(bids), active)

    def allocate(self, context: np.ndarray, resampled: np.ndarray, active: np.ndarray | None) -> int | None:
        return _winner(self.index(context, resampled, active), self.reserve)

    def threshold(self, context: np.ndarray, bids: np.ndarray, i: int, active: np.ndarray | None = None) -> float:
        """Sup of provider i's winning bids given the others' bids (-inf if it cannot win at any bid)."""
        idx = self.index(context, bids, active)
        return _threshold(self.priors.priors[i], float(self.theta[i] @ context), critical_index(idx, i, self.reserve))

    def update(self, context: np.ndarray, winner: int | None, resampled: np.ndarray, reward: float) -> None:
        """Known qualities: nothing to learn."""

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass


@forwards(LinUCB)
class TRCMUCB:
    """TRCM-UCB per-round rule (spec 2.2): winner argmax_i UCB_i(x) - phi_i(chi_i) over the active set.

    Monotone in each provider's resampled bid for a fixed history (phi regular), with ties to the lowest
    index. Options for the spec's open points:
      reserve: select nobody when every optimistic virtual surplus is below it (None = must serve).
      eliminate: restrict the active set to providers whose UCB index reaches the best LCB index. For a
        per-round rule this never changes the winner (the argmax always passes); kept for reporting.
      surplus: "virtual" ranks by phi_i(chi_i) (Myerson, user-optimal); "welfare" by chi_i itself.
      width / alpha / ridge / OFUL constants: the LinUCB confidence width.
    """

    def __init__(
        self,
        n: int,
        d: int,
        priors: CostPrior | Sequence[CostPrior] = UniformCost(),
        reserve: float | None = 0.0,
        alpha: float = 1.0,
        ridge: float = 1.0,
        width: str = "constant",
        eliminate: bool = False,
        surplus: str = "virtual",
        **oful: float,
    ) -> None:
        if surplus not in ("virtual", "welfare"):
            raise MechanismError(f"surplus = {surplus!r}; expected 'virtual' or 'welfare'")
        self.n, self.d = int(n), int(d)
        self.priors = CostPriors.of(priors, self.n)
        self.reserve = _NO_ONE if reserve is None else float(reserve)
        self.eliminate = bool(eliminate)
        self.surplus = surplus
        self.learner = LinUCB(self.n, self.d, ridge=ridge, alpha=alpha, width=width, **oful)
        self.name = "trcm-ucb"
        self._lo = self.priors.uniform_c_lo
        # Common case (one uniform prior, no elimination): phi = 2 chi - c_lo with a shared c_lo, which
        # shifts every index equally, so it only enters the reserve test.
        self._shared_lo = (
            float(self._lo[0])
            if self._lo is not None and np.all(self._lo == self._lo[0]) and surplus == "virtual" and not eliminate
            else None
        )

    def _features(self, context: np.ndarray) -> np.ndarray:
        return context

    def _cost_index(self, resampled: np.ndarray) -> np.ndarray:
        if self.surplus == "welfare":
            return resampled
        if self._lo is not None:
            return 2.0 * resampled - self._lo
        return self.priors.virtual_cost(resampled)

    def index(self, context: np.ndarray, resampled: np.ndarray, active: np.ndarray | None) -> np.ndarray:
        """(n,) optimistic virtual surplus UCB_i - phi_i(chi_i); -inf outside the active set."""
        x = self._features(context)
        phi = self._cost_index(resampled)
        if not self.eliminate:
            return _masked(self.learner.ucb(x) - phi, active)
        lcb, ucb = self.learner.bounds(x)
        idx = _masked(ucb - phi, active)
        floor = _masked(lcb - phi, active).max()
        return np.where(idx >= floor, idx, _NO_ONE)

    def allocate(self, context: np.ndarray, resampled: np.ndarray, active: np.ndarray | None) -> int | None:
        lo = self._shared_lo
        if lo is None:
            return _winner(self.index(context, resampled, active), self.reserve)
        idx = self.learner.ucb(self._features(context))
        idx -= resampled
        idx -= resampled
        if active is not None:
            idx = np.where(active, idx, _NO_ONE)
        i = int(idx.argmax())
        return i if idx[i] + lo >= self.reserve and idx[i] > _NO_ONE else None

    def threshold(self, context: np.ndarray, resampled: np.ndarray, i: int, active: np.ndarray | None = None) -> float:
        """Provider i wins iff chi_i <= threshold (analytic, given history and the others' chi); -inf: never."""
        x = self._features(context)
        idx = _masked(self.learner.ucb(x) - self._cost_index(resampled), active)
        need = critical_index(idx, i, self.reserve)
        score = float(self.learner.ucb(x)[i])
        prior = self.priors.priors[i]
        if self.surplus == "welfare":
            if score - prior.c_lo < need:
                return _NO_ONE
            return min(score - need, prior.c_cap)
        return _threshold(prior, score, need)

    def update(self, context: np.ndarray, winner: int | None, resampled: np.ndarray, reward: float) -> None:
        if winner is not None:
            self.learner.update(winner, self._features(context), reward)

    def get_state(self) -> dict[str, Any]:
        return {"learner": self.learner.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.learner.set_state(state["learner"])


@forwards(TRCMUCB)
class UCBRule(TRCMUCB):
    """Non-contextual UCB on virtual surplus: one mean per provider, the context ignored (spec 6 baseline)."""

    _ONE = np.ones(1)

    def __init__(self, n: int, d: int, **params: Any) -> None:
        super().__init__(n, 1, **params)
        self.d = int(d)
        self.name = "ucb"

    def _features(self, context: np.ndarray) -> np.ndarray:
        return self._ONE


class EpsilonGreedyRule:
    """Greedy on estimated virtual surplus, with a deterministic bid-independent exploration schedule.

    Round t (counted by update calls) explores iff floor(epsilon (t+1)) > floor(epsilon t); explorations
    go round-robin over providers, skipping abstainers. A schedule instead of coins keeps the rule
    deterministic given history, so it stays monotone (exploration does not look at bids).
    """

    def __init__(
        self,
        n: int,
        d: int,
        priors: CostPrior | Sequence[CostPrior] = UniformCost(),
        epsilon: float = 0.1,
        reserve: float | None = 0.0,
        ridge: float = 1.0,
    ) -> None:
        if not (0.0 <= epsilon <= 1.0):
            raise MechanismError(f"epsilon = {epsilon}; expected a probability in [0, 1]")
        self.n, self.d = int(n), int(d)
        self.priors = CostPriors.of(priors, self.n)
        self.epsilon = float(epsilon)
        self.reserve = _NO_ONE if reserve is None else float(reserve)
        self.learner = LinUCB(self.n, self.d, ridge=ridge, alpha=0.0)
        self.name = "eps-greedy"
        self.rounds = 0
        self.explorations = 0

    def exploring(self) -> bool:
        t = self.rounds
        return int(self.epsilon * (t + 1)) > int(self.epsilon * t)

    def allocate(self, context: np.ndarray, resampled: np.ndarray, active: np.ndarray | None) -> int | None:
        if self.exploring():
            order = (self.explorations + np.arange(self.n)) % self.n
            if active is not None:
                order = order[active[order]]
            return int(order[0]) if order.size else None
        idx = _masked(self.learner.mean(context) - self.priors.virtual_cost(resampled), active)
        return _winner(idx, self.reserve)

    def update(self, context: np.ndarray, winner: int | None, resampled: np.ndarray, reward: float) -> None:
        if self.exploring():
            self.explorations += 1
        self.rounds += 1
        if winner is not None:
            self.learner.update(winner, context, reward)

    def get_state(self) -> dict[str, Any]:
        return {"learner": self.learner.get_state(), "rounds": self.rounds, "explorations": self.explorations}

    def set_state(self, state: dict[str, Any]) -> None:
        self.learner.set_state(state["learner"])
        self.rounds = int(state["rounds"])
        self.explorations = int(state["explorations"])
