"""The bid-acceptance rule every reverse-auction loop shares (``BidRange``)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.core.mechanisms.base import BidRange
from market.core.mechanisms.reverse import build_mechanism

EDGES = [0.1, 0.9, np.nextafter(0.1, 0.0), np.nextafter(0.9, 1.0), 0.5, -0.0, 0.0, math.nan, math.inf, -math.inf]


@given(st.lists(st.one_of(st.floats(), st.sampled_from(EDGES)), min_size=1, max_size=12))
def test_the_bidder_by_bidder_and_the_all_at_once_verdicts_agree(bids):
    taken = BidRange(0.1, 0.9)
    mask = taken.accepted(np.array(bids, dtype=float))
    assert [taken.refusal(b) is None for b in bids] == mask.tolist()


def test_the_edges_are_taken_and_nan_is_refused():
    taken = BidRange(0.1, 0.9)
    assert taken.accepted(np.array([0.1, 0.9, 0.5])).all()
    assert not taken.accepted(np.array([np.nextafter(0.1, 0.0), np.nextafter(0.9, 1.0), np.nan])).any()
    assert taken.refusal(1.5) == "got 1.5, expected a bid in [0.1, 0.9]"
    assert taken.refusal(math.nan) == "got nan, expected a bid in [0.1, 0.9]"


def test_the_range_is_the_one_the_mechanism_publishes():
    rosa = build_mechanism("rosa-trcm-ucb", n=2, d=2, mu=0.1)
    assert BidRange.of(rosa) == BidRange(rosa.cost_floor, rosa.cost_cap)
    assert BidRange.of(object()) == BidRange(0.0, math.inf)
    with pytest.raises(AttributeError):
        BidRange.of(rosa).cap = 2.0  # frozen: a round cannot widen it
