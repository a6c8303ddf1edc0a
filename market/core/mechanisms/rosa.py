"""ROSA: reverse self-resampling, turning any monotone allocation rule into a truthful reverse auction.

Patra, Damle, Padala, Gujar (AAMAS 2026), reconstructed in the ROSA spec section 3: bids are moved up
toward c_cap with probability mu (closed form chi = c_cap - (c_cap - b) U^(1/(1-mu))) and the winner is
paid P = b + ((c_cap - b)/mu) 1{modified}, whose expectation is Myerson's reverse payment (section 3.4).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from market.core.mechanisms.base import MechanismError, ReverseOutcome


class AllocationRule(Protocol):
    """A per-round allocation rule, monotone (non-increasing) in each provider's resampled bid."""

    name: str
    n: int

    def allocate(self, context: np.ndarray, resampled: np.ndarray, active: np.ndarray | None) -> int | None:
        """Winner for context (d,) and resampled bids (n,), or None; never changes state."""
        ...

    def update(self, context: np.ndarray, winner: int | None, resampled: np.ndarray, reward: float) -> None: ...

    def get_state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any]) -> None: ...


def check_mu(mu: float) -> float:
    """mu must lie in (0, 1): the payment bonus divides by mu and mu = 1 modifies every bid."""
    mu = float(mu)
    if not (0.0 < mu < 1.0):
        raise MechanismError(f"mu = {mu}: the resampling probability must lie in (0, 1)")
    return mu


def validate_bids(bids: np.ndarray, active: np.ndarray | None, cost_floor: float, cost_cap: float) -> np.ndarray:
    """Return bids as a float array; raise naming the first active provider with a bid outside [floor, cap].

    Abstaining providers (active False) may carry any value, NaN included.
    """
    bids = np.asarray(bids, dtype=float)
    inside = (bids >= cost_floor) & (bids <= cost_cap)  # NaN compares False
    if active is not None:
        inside |= ~active
    if not inside.all():
        i = int(np.argmin(inside))
        raise MechanismError(
            f"bids[{i}] = {bids[i]}: expected a number in [cost_floor, cost_cap] = [{cost_floor}, {cost_cap}]"
        )
    return bids


def draw_coins(rng: np.random.Generator, n: int) -> np.ndarray:
    """ROSA's coins for n bids: (2, n) uniforms [modification coin, U] in one draw, the order every ROSA
    stream is consumed in (so a run's coins are the same whichever caller draws them)."""
    return rng.random((2, n))


def resample(bids: np.ndarray, mu: float, cost_cap: float, coins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROSA's sampler: (resampled chi (n,), modified (n,) bool) for bids (n,) and coins (2, n) (``draw_coins``).

    With probability 1 - mu a bid is kept; otherwise chi = c_cap - (c_cap - b) U^(1/(1-mu)), whose law
    is that of the recursive procedure (spec 3.2) and lies in (b, c_cap] (= c_cap when b = c_cap).
    For fixed coins chi is non-decreasing in b (monotone coupling). When no bid is modified, chi is
    ``bids`` itself (no copy): most rounds at small mu, and ``ROSA.select`` runs every round.
    """
    bids = np.asarray(bids, dtype=float)
    modified = coins[0] < mu
    if not np.count_nonzero(modified):
        return bids, modified
    # U in [0, 1) makes U^(1/(1-mu)) < 1, so a modified bid is strictly above b when b < c_cap.
    raised = cost_cap - (cost_cap - bids) * coins[1] ** (1.0 / (1.0 - mu))
    return np.where(modified, raised, bids), modified


def winner_payment(bid: Any, modified: Any, mu: float, cost_cap: float) -> Any:
    """ROSA's payment for serving one query at bid b: P = b + ((c_cap - b)/mu) 1{modified} (spec 3.3).

    Scalars or arrays of the same shape (a bool multiplies as 0/1, so a kept bid is paid exactly b).
    Over the coins its expectation is Myerson's threshold payment (spec 3.4); P >= b on every coin.
    """
    return bid + modified * (cost_cap - bid) / mu


def resample_recursive(
    bids: np.ndarray, mu: float, cost_cap: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROSA's recursive sampler as spec 3.2 defines it: (chi (n,), psi (n,), modified (n,) bool).

    `resample` is its closed form; this one also returns psi, the first resampled value, which a payment
    with a non-uniform F needs (spec 3.3) and the self-resampling property is stated on: given psi = b',
    chi has the law of ROSA's chi at b'. Unmodified (probability 1 - mu): chi = psi = b. Modified:
    psi ~ U(b, c_cap], then chi = RECUR(psi), where RECUR(z) stops at z with probability 1 - mu and
    otherwise restarts at U(z, c_cap]. How many uniforms a step draws depends on the coins only, never on
    b, so for a fixed seed chi and psi are non-decreasing in b (monotone coupling).
    """
    mu = check_mu(mu)  # mu = 1 would never stop
    bids = np.asarray(bids, dtype=float)
    coins = draw_coins(rng, bids.shape[0])
    modified = coins[0] < mu
    # U in [0, 1): c_cap - (c_cap - b) U is uniform on (b, c_cap] and non-decreasing in b.
    psi = np.where(modified, cost_cap - (cost_cap - bids) * coins[1], bids)
    chi = psi.copy()
    moving = np.flatnonzero(modified)
    while moving.size:
        step = rng.random((2, moving.size))
        going = step[0] < mu
        moving = moving[going]
        chi[moving] = cost_cap - (cost_cap - chi[moving]) * step[1][going]
    return chi, psi, modified


def payments(
    bids: np.ndarray, allocation: np.ndarray, modified: np.ndarray, mu: float, cost_cap: float
) -> np.ndarray:
    """ROSA payments (n,): P_i = A_i (b_i + ((c_cap - b_i)/mu) 1{mod_i}) (spec 3.3).

    allocation: (n,) 0/1 (or counts N_i of queries served, for the horizon settlement).
    Losers get 0 and P_i >= b_i A_i on every coin (no loss).
    """
    bids = np.asarray(bids, dtype=float)
    allocation = np.asarray(allocation, dtype=float)
    return np.where(allocation > 0, allocation * winner_payment(bids, np.asarray(modified), mu, cost_cap), 0.0)


def threshold_expectations(
    bid: np.ndarray, threshold: np.ndarray, mu: float, cost_cap: float
) -> tuple[np.ndarray, np.ndarray]:
    """Closed forms (spec 3.6) for a provider who wins iff its resampled bid is <= threshold.

    Returns (expected allocation, expected payment) over its own ROSA coins, broadcast over bid and
    threshold: for z <= tau, with r = (c_cap - tau)/(c_cap - z),
    abar(z) = 1 - mu r^(1-mu) and E[P](z) = c_cap - r^(1-mu) (mu z + c_cap - z); both 0 for z > tau.
    threshold = -inf means the provider cannot win.
    """
    z = np.asarray(bid, dtype=float)
    tau = np.minimum(np.asarray(threshold, dtype=float), cost_cap)
    wins = z <= tau
    gap = np.where(wins, cost_cap - z, 1.0)
    r = np.where(wins & (gap > 0), np.clip(cost_cap - tau, 0.0, None) / np.where(gap > 0, gap, 1.0), 0.0)
    rp = r ** (1.0 - mu)
    abar = np.where(wins, 1.0 - mu * rp, 0.0)
    pay = np.where(wins, cost_cap - rp * (mu * z + cost_cap - z), 0.0)
    return abar, pay


class ROSA:
    """A reverse mechanism: ROSA resampling around a per-round monotone allocation rule.

    Coins are drawn inside select, i.e. after the bids are committed (per-coin truthfulness fails by
    design; truthfulness holds in expectation over the coins).
    clip_bids: bids outside [cost_floor, cost_cap] are refused (False, default) or clipped into it (True);
    NaN bids of active providers are always refused.
    """

    def __init__(
        self, rule: AllocationRule, mu: float, cost_cap: float, cost_floor: float = 0.0, clip_bids: bool = False
    ) -> None:
        self.mu = check_mu(mu)
        self.clip_bids = bool(clip_bids)
        if not (np.isfinite(cost_floor) and np.isfinite(cost_cap) and cost_floor < cost_cap):
            raise MechanismError(
                f"cost_floor = {cost_floor}, cost_cap = {cost_cap}: expected finite cost_floor < cost_cap"
            )
        self.rule = rule
        self.cost_cap = float(cost_cap)
        self.cost_floor = float(cost_floor)
        self.n = rule.n
        self.name = f"rosa-{rule.name}"

    def select(
        self,
        context: np.ndarray,
        bids: np.ndarray,
        rng: np.random.Generator,
        active: np.ndarray | None = None,
    ) -> ReverseOutcome:
        return self.select_on_coins(context, self.accept_bids(bids, active), draw_coins(rng, self.n), active)

    def accept_bids(self, bids: np.ndarray, active: np.ndarray | None) -> np.ndarray:
        """The bids as floats, clipped into [cost_floor, cost_cap] with clip_bids; MechanismError otherwise."""
        bids = np.asarray(bids, dtype=float)
        listed = bids.tolist()
        # A NaN makes the sum NaN (min/max of a list would skip it depending on its position).
        total = sum(listed)
        if active is not None or not (
            self.cost_floor <= min(listed) and max(listed) <= self.cost_cap and total == total
        ):
            if self.clip_bids and not np.isnan(bids if active is None else bids[active]).any():
                bids = np.clip(bids, self.cost_floor, self.cost_cap)
            bids = validate_bids(bids, active, self.cost_floor, self.cost_cap)
        return bids

    def select_on_coins(
        self, context: np.ndarray, bids: np.ndarray, coins: np.ndarray, active: np.ndarray | None = None
    ) -> ReverseOutcome:
        """The round on accepted bids (n,) and given coins (2, n): resample, allocate, pay the winner."""
        resampled, modified = resample(bids, self.mu, self.cost_cap, coins)
        winner = self.rule.allocate(context, resampled, active)
        pay = np.zeros(self.n)
        if winner is not None:
            # Python scalars (item): arithmetic on NumPy scalars would cost more than the rest of the payment
            pay[winner] = winner_payment(bids.item(winner), modified.item(winner), self.mu, self.cost_cap)
        return ReverseOutcome(winner, pay, resampled, modified)

    def update(self, context: np.ndarray, outcome: ReverseOutcome, reward: float) -> None:
        self.rule.update(context, outcome.winner, outcome.resampled, reward)

    def get_state(self) -> dict[str, Any]:
        return {"rule": self.rule.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rule.set_state(state["rule"])
