"""What a reverse-auction mechanism is to the auctioneer: ``select`` then ``update``, on the bids its range takes.

``ReverseMechanism`` is the contract (a Protocol) a factory ``make(n, d)`` must return, with the timing of each
call: ``select`` draws an outcome from committed bids, drawing its coins only from the generator it is given, and
never changes learner state; ``update`` learns from the user's reward for the winner; ``get_state`` and
``set_state`` carry it through checkpoints. ``BidRange`` says which bids enter a round. The README's "Writing
your own" section walks through one; ``market.conformance.check_reverse_mechanism`` checks yours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from market.core.registry import RegistryError


class MechanismError(ValueError):
    """Invalid input to a mechanism (bids, parameters); names the field and the value."""


class MechanismRegistryError(RegistryError, MechanismError):
    """An unknown mechanism or aggregation name, or parameters its factory does not take."""


@dataclass(frozen=True, slots=True)
class ReverseOutcome:
    """One round of a reverse auction.

    winner: index of the provider that serves the query, or None (nobody bought).
    payments: (n,) money from the user to each provider, in currency units (floats).
    resampled: (n,) the bids the allocation rule actually saw (equal to the bids without ROSA).
    modified: (n,) bool, True where a provider's bid was resampled.
    """

    winner: int | None
    payments: np.ndarray
    resampled: np.ndarray
    modified: np.ndarray


@dataclass(frozen=True, slots=True)
class BidRange:
    """The bids a reverse auction takes: numbers in [floor, cap], the mechanism's [cost_floor, cost_cap].

    A provider with no bid in a round abstains; a bid outside the range (NaN included) is refused, and its
    sender abstains from that round too. The auctioneer asks ``refusal`` bid by bid; loops that draw every
    bid at once ask ``accepted``. Both are the one comparison floor <= bid <= cap.
    """

    floor: float = 0.0
    cap: float = math.inf

    @classmethod
    def of(cls, mechanism: object) -> BidRange:
        """The range ``mechanism`` publishes; [0, inf) where it has no cost_floor or cost_cap."""
        return cls(float(getattr(mechanism, "cost_floor", 0.0)), float(getattr(mechanism, "cost_cap", math.inf)))

    def refusal(self, amount: float) -> str | None:
        """None if the bid ``amount`` is taken, else why not (the detail of an "out_of_range" error)."""
        if self.floor <= amount <= self.cap:
            return None
        return f"got {amount!r}, expected a bid in [{self.floor}, {self.cap}]"

    def accepted(self, bids: np.ndarray) -> np.ndarray:
        """(n,) bool, the ``active`` mask of ``select``: which of the bids (n,) are taken; the rest abstain."""
        return (bids >= self.floor) & (bids <= self.cap)


@runtime_checkable
class ReverseMechanism(Protocol):
    """A mechanism the auctioneer (``market.runtime.auctioneer``) and the fast engine (``market.lab.deviation``)
    can run: n providers, contexts of dimension d, built by a factory ``make(n, d, **params)`` once per run.

    name: a label for logs and tables. n: the number of providers (the auctioneer refuses a mismatch).
    cost_floor, cost_cap: the bids it takes (``BidRange.of``; strategies clip into it). A mechanism that
    resamples bids also publishes ``mu``, its resampling probability (strategies read it from ``BidderFacts``).

    The order of calls in a run: ``select`` once per round that received a bid, in round order; ``update`` for
    that round when the user's reward arrives, which may be after later rounds' ``select`` (rewards travel over
    the network) and never for a round without a winner, whose reward is lost or late (``feedback_timeout``);
    ``get_state`` between rounds, at checkpoints; ``set_state`` on a fresh ``make(n, d)`` before its first
    ``select`` when a run resumes or a checkpoint is restored.
    """

    name: str
    n: int
    cost_floor: float
    cost_cap: float

    def select(
        self,
        context: np.ndarray,
        bids: np.ndarray,
        rng: np.random.Generator,
        active: np.ndarray | None = None,
    ) -> ReverseOutcome:
        """Choose a winner and payments. context: (d,), bids: (n,), active: (n,) bool or None.

        Called once the round's bids are committed (sealed, the deadline passed). Its coins (ROSA's resampling,
        a random tie-break, exploration) come from ``rng`` alone, the auctioneer's mechanism stream, drawn here
        and never before the bids: coins a provider could know in advance make a truthful design manipulable
        (``leaky.py``). It may draw any number of them. It must not change what ``get_state`` returns (only
        ``update`` learns), so the outcome depends only on the state, the arguments and ``rng``.
        Providers with active[i] False abstained: their bid entry is ignored (it may be NaN),
        they cannot win and are paid 0. An active bid that is NaN, infinite or outside [cost_floor, cost_cap]
        raises MechanismError (or is treated as the nearest bid inside).
        """
        ...

    def update(self, context: np.ndarray, outcome: ReverseOutcome, reward: float) -> None:
        """Learn from the reward the user observed for outcome.winner (no-op if None).

        ``context`` and ``outcome`` are those of the round being rewarded, which need not be the latest one.
        Draws no coins: an update is a deterministic function of the state and its arguments.
        """
        ...

    def get_state(self) -> dict[str, Any]:
        """Learner state as plain values and arrays (for checkpoints): everything that decides future outcomes
        besides the rng, so that a fresh mechanism given it selects and learns exactly as this one."""
        ...

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what get_state returned, on a mechanism fresh from its factory."""
        ...
