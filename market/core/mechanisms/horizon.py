"""Rules for one bid per horizon (ROSA spec 2.3): ex-post monotone separated elimination and HorizonROSA.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from market.core.learning.linucb import LinUCB
from market.core.mechanisms.base import MechanismError, ReverseOutcome
from market.core.mechanisms.priors import CostPrior, CostPriors, UniformCost
from market.core.mechanisms.rosa import ROSA, draw_coins, resample, validate_bids, winner_payment
from market.core.mechanisms.rules import _NO_ONE, _masked, _winner


class SeparatedElimination:
    """Ex-post monotone horizon rule (spec 2.3): exploration separated from a shrinking active set.

    Exploration rounds follow a bid-independent schedule (n * warmup round-robin rounds, then one more
    whenever floor(scale * t^(2/3)) increases) and are the only rounds the learner learns from, so the
    estimates never depend on bids. Other rounds go to argmax of UCB_i - phi_i(chi_i) over the active
    set (>= reserve). With eliminate, provider i leaves the active set for good once its UCB index falls
    below the best LCB index of all providers. Raising chi_i lowers i's indices and only helps others
    stay, so each round's allocation, and the count N_i, is non-increasing in chi_i for every reward
    table. Price of separation: regret O(T^(2/3)) rather than O(sqrt T).
    """

    def __init__(
        self,
        n: int,
        d: int,
        priors: CostPrior | Sequence[CostPrior] = UniformCost(),
        reserve: float | None = 0.0,
        alpha: float = 1.0,
        ridge: float = 1.0,
        warmup: int = 2,
        scale: float = 1.0,
        eliminate: bool = True,
    ) -> None:
        self.n, self.d = int(n), int(d)
        self.priors = CostPriors.of(priors, self.n)
        self.reserve = _NO_ONE if reserve is None else float(reserve)
        self.learner = LinUCB(self.n, self.d, ridge=ridge, alpha=alpha)
        self.warmup, self.scale, self.eliminate = int(warmup), float(scale), bool(eliminate)
        self.name = "separated-elimination"
        self.rounds = 0
        self.explorations = 0
        self.eliminated = np.zeros(self.n, dtype=bool)

    def exploring(self) -> bool:
        t = self.rounds
        if t < self.n * self.warmup:
            return True
        return int(self.scale * (t + 1) ** (2 / 3)) > int(self.scale * t ** (2 / 3))

    def _indices(
        self, context: np.ndarray, resampled: np.ndarray, active: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        lcb, ucb = self.learner.bounds(context)
        phi = self.priors.virtual_cost(resampled)
        idx, low = _masked(ucb - phi, active), _masked(lcb - phi, active)
        out = self.eliminated | (idx < low.max()) if self.eliminate else self.eliminated
        return idx, out

    def allocate(self, context: np.ndarray, resampled: np.ndarray, active: np.ndarray | None) -> int | None:
        if self.exploring():
            i = self.explorations % self.n
            return i if active is None or active[i] else None
        idx, out = self._indices(context, resampled, active)
        return _winner(np.where(out, _NO_ONE, idx), self.reserve)

    def update(self, context: np.ndarray, winner: int | None, resampled: np.ndarray, reward: float) -> None:
        if self.exploring():
            self.explorations += 1
            if winner is not None:
                self.learner.update(winner, context, reward)
        elif self.eliminate:
            self.eliminated = self._indices(context, resampled, None)[1]
        self.rounds += 1

    def get_state(self) -> dict[str, Any]:
        return {
            "learner": self.learner.get_state(),
            "rounds": self.rounds,
            "explorations": self.explorations,
            "eliminated": self.eliminated.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.learner.set_state(state["learner"])
        self.rounds = int(state["rounds"])
        self.explorations = int(state["explorations"])
        self.eliminated = np.asarray(state["eliminated"], bool).copy()


def run_horizon(rule: Any, contexts: np.ndarray, rewards: np.ndarray, resampled: np.ndarray) -> np.ndarray:
    """Play a rule for T rounds on fixed bids against a reward table; return N (n,) queries served.

    contexts: (T, d), rewards: (T, n) with rewards[t, i] what provider i would earn in round t.
    """
    counts = np.zeros(rule.n, dtype=np.int64)
    for t in range(contexts.shape[0]):
        w = rule.allocate(contexts[t], resampled, None)
        rule.update(contexts[t], w, resampled, float(rewards[t, w]) if w is not None else 0.0)
        if w is not None:
            counts[w] += 1
    return counts


class HorizonROSA:
    """Reading H (spec 1.3, 3.5): one bid per provider for the horizon, resampled once.

    The draw is made at the first select (or by commit) and reused; later rounds must carry the same
    bids. Each query served pays b_i + ((c_cap - b_i)/mu) 1{mod_i}, so the per-round payments add up to
    the settlement P_i = N_i (b_i + bonus_i). Truthful in expectation iff the rule is ex-post monotone.
    """

    def __init__(self, rule: Any, mu: float, cost_cap: float, cost_floor: float = 0.0) -> None:
        self._rosa = ROSA(rule, mu, cost_cap, cost_floor)
        self.rule, self.mu = rule, self._rosa.mu
        self.cost_cap, self.cost_floor = self._rosa.cost_cap, self._rosa.cost_floor
        self.n = rule.n
        self.name = f"horizon-rosa-{rule.name}"
        self.bids: np.ndarray | None = None
        self.resampled: np.ndarray | None = None
        self.modified: np.ndarray | None = None

    def commit(self, bids: np.ndarray, rng: np.random.Generator, active: np.ndarray | None = None) -> None:
        """Fix the horizon bids and draw ROSA's coins once."""
        bids = validate_bids(bids, active, self.cost_floor, self.cost_cap)
        self.bids = bids.copy()
        self.resampled, self.modified = resample(
            np.where(np.isnan(bids), self.cost_cap, bids), self.mu, self.cost_cap, draw_coins(rng, self.n)
        )

    def select(
        self,
        context: np.ndarray,
        bids: np.ndarray,
        rng: np.random.Generator,
        active: np.ndarray | None = None,
    ) -> ReverseOutcome:
        if self.bids is None:
            self.commit(bids, rng, active)
        else:
            same = np.asarray(bids, float) == self.bids
            if active is not None:
                same |= ~active
            if not np.all(same):
                i = int(np.argmin(same))
                raise MechanismError(
                    f"bids[{i}] = {bids[i]}: the horizon bid was committed as {self.bids[i]} and cannot change"
                )
        # commit() has set all three
        assert self.bids is not None and self.resampled is not None and self.modified is not None
        winner = self.rule.allocate(context, self.resampled, active)
        pay = np.zeros(self.n)
        if winner is not None:
            pay[winner] = winner_payment(self.bids.item(winner), self.modified.item(winner), self.mu, self.cost_cap)
        return ReverseOutcome(winner, pay, self.resampled.copy(), self.modified.copy())

    def update(self, context: np.ndarray, outcome: ReverseOutcome, reward: float) -> None:
        self.rule.update(context, outcome.winner, outcome.resampled, reward)

    def get_state(self) -> dict[str, Any]:
        return {
            "rule": self.rule.get_state(),
            "bids": None if self.bids is None else self.bids.copy(),
            "resampled": None if self.resampled is None else self.resampled.copy(),
            "modified": None if self.modified is None else self.modified.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.rule.set_state(state["rule"])
        for key in ("bids", "resampled", "modified"):
            value = state[key]
            setattr(self, key, None if value is None else np.array(value))
