"""What a reverse-auction mechanism is to the auctioneer: ``select`` then ``update``.

``select`` draws an outcome from committed bids and never changes learner state;
``update`` learns from the user's reward for the winner. See ARCHITECTURE "Mechanisms".
"""

from __future__ import annotations

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


@runtime_checkable
class ReverseMechanism(Protocol):
    """A mechanism the auctioneer can run: n providers, contexts of dimension d."""

    name: str
    n: int

    def select(
        self,
        context: np.ndarray,
        bids: np.ndarray,
        rng: np.random.Generator,
        active: np.ndarray | None = None,
    ) -> ReverseOutcome:
        """Choose a winner and payments. context: (d,), bids: (n,), active: (n,) bool or None.

        Providers with active[i] False abstained: their bid entry is ignored (it may be NaN),
        they cannot win and are paid 0.
        """
        ...

    def update(self, context: np.ndarray, outcome: ReverseOutcome, reward: float) -> None:
        """Learn from the reward the user observed for outcome.winner (no-op if None)."""
        ...

    def get_state(self) -> dict[str, Any]:
        """Learner state as plain values and arrays (for checkpoints)."""
        ...

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what get_state returned."""
        ...
