"""Double-entry ledger in integer minor units (micro-credits).

Every transfer debits one account and credits another, so the sum of balances never changes.
Floats from mechanisms become minor units in exactly one place, ``to_minor``, and minor units become
currency units in exactly one place, ``to_units``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    import numpy as np

MINOR_PER_UNIT = 1_000_000
EXTERNAL = "external"  # the world outside the market: opening balances and serving costs


class LedgerError(ValueError):
    """A transfer the ledger refuses: unknown account, bad amount, or an overdraft."""


def to_minor(amount: float) -> int:
    """Currency units -> integer minor units, rounding half to even (Python's ``round``)."""
    if not math.isfinite(amount):
        raise LedgerError(f"amount: got {amount!r}, expected a finite number")
    return round(amount * MINOR_PER_UNIT)


@overload
def to_units(minor: int) -> float: ...
@overload
def to_units(minor: np.ndarray) -> np.ndarray: ...
def to_units(minor):
    """Integer minor units -> currency units (an int, or an array of them element by element)."""
    return minor / MINOR_PER_UNIT


@dataclass(frozen=True, slots=True)
class Transfer:
    src: str
    dst: str
    amount: int
    memo: str


class Ledger:
    """Accounts with integer balances. ``overdraft`` per account: how far below zero it may go
    (None = unlimited, as for ``EXTERNAL``)."""

    def __init__(self, on_transfer: Callable[[Transfer], None] | None = None) -> None:
        self._balances: dict[str, int] = {EXTERNAL: 0}
        self._overdraft: dict[str, int | None] = {EXTERNAL: None}
        self._on_transfer = on_transfer

    def open(self, account: str, *, balance: int = 0, overdraft: int | None = 0) -> None:
        """Open an account funded from ``EXTERNAL``; ``overdraft=None`` means no limit."""
        if account in self._balances:
            raise LedgerError(f"account: {account!r} is already open")
        if overdraft is not None and overdraft < 0:
            raise LedgerError(f"overdraft: got {overdraft}, expected >= 0 or None")
        self._balances[account] = 0
        self._overdraft[account] = overdraft
        if balance:
            self.transfer(EXTERNAL, account, balance, "opening balance")

    def transfer(self, src: str, dst: str, amount: int, memo: str) -> Transfer:
        """Move ``amount`` minor units from ``src`` to ``dst``."""
        if type(amount) is not int or amount < 0:
            raise LedgerError(f"amount: got {amount!r}, expected a non-negative integer of minor units")
        balances = self._balances
        if src not in balances:
            raise LedgerError(f"src: unknown account {src!r}")
        if dst not in balances:
            raise LedgerError(f"dst: unknown account {dst!r}")
        limit = self._overdraft[src]
        new_src = balances[src] - amount
        if limit is not None and new_src < -limit:
            raise LedgerError(
                f"amount: transfer of {amount} from {src!r} ({memo}) would leave {new_src}, "
                f"below its overdraft limit -{limit}"
            )
        balances[src] = new_src
        balances[dst] += amount
        t = Transfer(src, dst, amount, memo)
        if self._on_transfer is not None:
            self._on_transfer(t)
        return t

    def balance(self, account: str) -> int:
        try:
            return self._balances[account]
        except KeyError:
            raise LedgerError(f"account: unknown account {account!r}") from None

    def balances(self) -> dict[str, int]:
        return dict(self._balances)

    def total(self) -> int:
        """Sum of all balances: always 0, since every unit came from ``EXTERNAL``."""
        return sum(self._balances.values())

    def get_state(self) -> dict:
        return {"balances": dict(self._balances), "overdraft": dict(self._overdraft)}

    def set_state(self, state: dict) -> None:
        self._balances = dict(state["balances"])
        self._overdraft = dict(state["overdraft"])
