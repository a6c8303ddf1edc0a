"""Reverse-auction allocation rules for buying one LLM answer per query, and the registry of mechanisms.

Myerson's optimal static rule (ROSA spec 1.2, Thm 2), TRCM-UCB on optimistic virtual surplus (spec 2.2),
the horizon rules of spec 2.3, and non-truthful baselines a strategic provider can exploit.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from market.learning.linucb import LinUCB
from market.mechanisms.base import MechanismError, ReverseOutcome
from market.mechanisms.leaky import LeakyROSA
from market.mechanisms.priors import CostPrior, CostPriors, UniformCost
from market.mechanisms.rosa import ROSA, resample, validate_bids

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
    if score - float(prior.virtual_cost(prior.c_lo)) < need:
        return _NO_ONE
    return float(prior.inverse_virtual_cost(score - need))


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

    def _indices(self, context: np.ndarray, resampled: np.ndarray, active: np.ndarray | None):
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
        self.resampled, self.modified = resample(np.where(np.isnan(bids), self.cost_cap, bids), self.mu, self.cost_cap, rng)

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
        winner = self.rule.allocate(context, self.resampled, active)
        pay = np.zeros(self.n)
        if winner is not None:
            b = self.bids[winner]
            pay[winner] = b + (self.cost_cap - b) / self.mu if self.modified[winner] else b
        return ReverseOutcome(winner, pay, self.resampled.copy(), self.modified.copy())

    def update(self, context: np.ndarray, outcome: ReverseOutcome, reward: float) -> None:
        self.rule.update(context, outcome.winner, outcome.resampled, reward)

    def get_state(self) -> dict[str, Any]:
        committed = self.bids is not None
        return {
            "rule": self.rule.get_state(),
            "bids": self.bids.copy() if committed else None,
            "resampled": self.resampled.copy() if committed else None,
            "modified": self.modified.copy() if committed else None,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.rule.set_state(state["rule"])
        for key in ("bids", "resampled", "modified"):
            value = state[key]
            setattr(self, key, None if value is None else np.array(value))


class PayAsBid:
    """Non-truthful baseline: the rule runs on the reported bids and the winner is paid its own bid."""

    def __init__(self, rule: Any, cost_cap: float, cost_floor: float = 0.0, name: str = "pay-as-bid") -> None:
        self.rule, self.n, self.name = rule, rule.n, name
        self.cost_cap, self.cost_floor = float(cost_cap), float(cost_floor)
        self._no_modification = np.zeros(self.n, dtype=bool)

    def select(
        self,
        context: np.ndarray,
        bids: np.ndarray,
        rng: np.random.Generator,
        active: np.ndarray | None = None,
    ) -> ReverseOutcome:
        bids = validate_bids(bids, active, self.cost_floor, self.cost_cap)
        winner = self.rule.allocate(context, bids, active)
        pay = np.zeros(self.n)
        if winner is not None:
            pay[winner] = bids[winner]
        return ReverseOutcome(winner, pay, bids, self._no_modification.copy())

    def update(self, context: np.ndarray, outcome: ReverseOutcome, reward: float) -> None:
        self.rule.update(context, outcome.winner, outcome.resampled, reward)

    def get_state(self) -> dict[str, Any]:
        return {"rule": self.rule.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rule.set_state(state["rule"])


class CriticalBid(PayAsBid):
    """Per-round LinUCB on the true bids paying the winner its critical bid: truthful per round (Reading P)."""

    def __init__(self, rule: Any, cost_cap: float, cost_floor: float = 0.0) -> None:
        super().__init__(rule, cost_cap, cost_floor, name=f"critical-{rule.name}")

    def select(
        self,
        context: np.ndarray,
        bids: np.ndarray,
        rng: np.random.Generator,
        active: np.ndarray | None = None,
    ) -> ReverseOutcome:
        outcome = super().select(context, bids, rng, active)
        if outcome.winner is not None:
            outcome.payments[outcome.winner] = self.rule.threshold(context, outcome.resampled, outcome.winner, active)
        return outcome


class Myerson(CriticalBid):
    """The Myerson-optimal static reverse auction as a mechanism: truthful, pays the winner its critical bid."""

    def __init__(
        self, theta: np.ndarray, priors: CostPrior | Sequence[CostPrior], reserve: float | None = 0.0
    ) -> None:
        rule = MyersonRule(theta, priors, reserve)
        super().__init__(rule, float(rule.priors.c_cap.max()), float(rule.priors.c_lo.min()))
        self.name = "myerson"


def _support(priors: Any, n: int, cost_floor: float | None, cost_cap: float | None) -> tuple[float, float]:
    profile = CostPriors.of(priors, n)
    lo = float(profile.c_lo.min()) if cost_floor is None else float(cost_floor)
    cap = float(profile.c_cap.max()) if cost_cap is None else float(cost_cap)
    return lo, cap


def _rosa_of(rule_cls: type) -> Callable[..., ROSA]:
    def build(n: int, d: int, mu: float, priors: Any = UniformCost(), cost_floor: float | None = None,
              cost_cap: float | None = None, clip_bids: bool = False, **rule_params: Any) -> ROSA:
        lo, cap = _support(priors, n, cost_floor, cost_cap)
        return ROSA(rule_cls(n, d, priors=priors, **rule_params), mu, cap, lo, clip_bids)
    return build


def _leaky_rosa(n: int, d: int, mu: float, priors: Any = UniformCost(), cost_floor: float | None = None,
                cost_cap: float | None = None, leak_seed: int = 0, **rule_params: Any) -> LeakyROSA:
    lo, cap = _support(priors, n, cost_floor, cost_cap)
    return LeakyROSA(TRCMUCB(n, d, priors=priors, **rule_params), mu, cap, lo, leak_seed)


def _horizon_of(rule_cls: type) -> Callable[..., HorizonROSA]:
    def build(n: int, d: int, mu: float, priors: Any = UniformCost(), cost_floor: float | None = None,
              cost_cap: float | None = None, **rule_params: Any) -> HorizonROSA:
        lo, cap = _support(priors, n, cost_floor, cost_cap)
        return HorizonROSA(rule_cls(n, d, priors=priors, **rule_params), mu, cap, lo)
    return build


def _pay_as_bid(n: int, d: int, priors: Any = UniformCost(), cost_floor: float | None = None,
                cost_cap: float | None = None, **rule_params: Any) -> PayAsBid:
    lo, cap = _support(priors, n, cost_floor, cost_cap)
    return PayAsBid(TRCMUCB(n, d, priors=priors, **rule_params), cap, lo)


def _first_price_ucb(n: int, d: int, priors: Any = UniformCost(), cost_floor: float | None = None,
                     cost_cap: float | None = None, **rule_params: Any) -> PayAsBid:
    lo, cap = _support(priors, n, cost_floor, cost_cap)
    rule = TRCMUCB(n, d, priors=priors, surplus="welfare", **rule_params)
    return PayAsBid(rule, cap, lo, name="first-price-ucb")


def _linucb_critical(n: int, d: int, priors: Any = UniformCost(), cost_floor: float | None = None,
                     cost_cap: float | None = None, **rule_params: Any) -> CriticalBid:
    lo, cap = _support(priors, n, cost_floor, cost_cap)
    return CriticalBid(TRCMUCB(n, d, priors=priors, **rule_params), cap, lo)


MECHANISMS: dict[str, Callable[..., Any]] = {
    "myerson": Myerson,
    "rosa-trcm-ucb": _rosa_of(TRCMUCB),
    "rosa-eps-greedy": _rosa_of(EpsilonGreedyRule),
    "rosa-ucb": _rosa_of(UCBRule),
    "rosa-leaky": _leaky_rosa,
    "horizon-rosa": _horizon_of(SeparatedElimination),
    "horizon-rosa-linucb": _horizon_of(TRCMUCB),
    "pay-as-bid": _pay_as_bid,
    "first-price-ucb": _first_price_ucb,
    "linucb-critical": _linucb_critical,
}


def build_mechanism(name: str, **params: Any) -> Any:
    """Build a registered mechanism, e.g. build_mechanism("rosa-trcm-ucb", n=5, d=8, mu=0.05)."""
    factory = MECHANISMS.get(name)
    if factory is None:
        raise MechanismError(f"mechanism = {name!r} is unknown; known: {sorted(MECHANISMS)}")
    try:
        return factory(**params)
    except TypeError as err:
        raise MechanismError(f"mechanism {name!r}: bad parameters {sorted(params)}: {err}") from err
