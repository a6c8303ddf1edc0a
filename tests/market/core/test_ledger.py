"""Ledger: double entry in integer minor units; the sum of balances never changes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.ledger import EXTERNAL, Ledger, LedgerError, to_minor, to_units

ACCOUNTS = ["a", "b", "c", "d"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(ACCOUNTS + [EXTERNAL]), st.sampled_from(ACCOUNTS + [EXTERNAL]),
                          st.integers(0, 10**9)), max_size=60))
def test_sum_of_balances_never_changes(transfers):
    ledger = Ledger()
    for i, acc in enumerate(ACCOUNTS):
        ledger.open(acc, balance=10**6 * i, overdraft=None if acc == "d" else 0)
    assert ledger.total() == 0
    for src, dst, amount in transfers:
        before = ledger.balances()
        try:
            ledger.transfer(src, dst, amount, "t")
        except LedgerError:
            assert ledger.balances() == before  # a refused transfer changes nothing
        assert ledger.total() == 0
        for acc in ("a", "b", "c"):
            assert ledger.balance(acc) >= 0


def test_errors_name_the_problem():
    ledger = Ledger()
    ledger.open("user", balance=100)
    with pytest.raises(LedgerError, match="overdraft"):
        ledger.transfer("user", EXTERNAL, 101, "too much")
    with pytest.raises(LedgerError, match="unknown account 'ghost'"):
        ledger.transfer("user", "ghost", 1, "x")
    with pytest.raises(LedgerError, match="non-negative integer"):
        ledger.transfer("user", EXTERNAL, -1, "x")
    with pytest.raises(LedgerError, match="non-negative integer"):
        ledger.transfer("user", EXTERNAL, 1.5, "x")  # type: ignore[arg-type]
    with pytest.raises(LedgerError, match="already open"):
        ledger.open("user")


def test_to_minor_rounds_once_half_to_even():
    assert to_minor(0.0000005) == 0
    assert to_minor(0.0000015) == 2
    assert to_minor(1.25) == 1_250_000
    with pytest.raises(LedgerError):
        to_minor(float("nan"))


@given(st.lists(st.integers(-(10**15), 10**15), min_size=1, max_size=8))  # up to a billion units
def test_to_units_undoes_to_minor_for_ints_and_arrays_alike(minor):
    units = [to_units(m) for m in minor]
    assert [to_minor(u) for u in units] == minor
    assert units == [m / 1e6 for m in minor]  # the float division every report did by hand
    assert to_units(np.asarray(minor, dtype=float)).tolist() == units
