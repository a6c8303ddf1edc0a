"""The truthfulness kit passes ROSA and MOSAIC.

It finds the counterexamples of pay-as-bid and of no-payment aggregation.
"""

from functools import partial

import numpy as np
import pytest

from market.conformance.truthfulness import (
    AggregationInstance,
    ReverseInstance,
    TruthfulnessViolation,
    assert_dominant_strategy,
    assert_truthful_in_expectation,
    expected_utilities,
    search_dominant_strategy,
    search_truthful_in_expectation,
)
from market.core.mechanisms.aggregation import mosaic
from market.core.mechanisms.reverse import build_mechanism


def rosa(n, d):
    return build_mechanism("rosa-trcm-ucb", n=n, d=d, mu=0.2, alpha=0.5)


def pay_as_bid(n, d):
    return build_mechanism("pay-as-bid", n=n, d=d, alpha=0.5)


def test_rosa_is_truthful_in_expectation_on_generated_instances():
    search_truthful_in_expectation(rosa, examples=12, draws=400)


def test_exact_threshold_method_agrees_with_plain_monte_carlo_for_rosa():
    inst = ReverseInstance(2, 2, (0.5, 0.5), (0.0, 0.6), 0.3, (((1.0, 0.0), 1, 0.5),))
    grid = np.array([0.1, 0.3, 0.6])
    exact = expected_utilities(rosa, inst, grid, draws=4000)
    # a wrapper that is not ROSA itself forces the common-random-numbers path
    crn = expected_utilities(lambda n, d: _Opaque(rosa(n, d)), inst, grid, draws=4000)
    np.testing.assert_allclose(exact, crn, atol=0.05)


class _Opaque:
    def __init__(self, inner):
        self.inner, self.n, self.cost_floor, self.cost_cap = inner, inner.n, inner.cost_floor, inner.cost_cap

    def select(self, *args):
        return self.inner.select(*args)

    def update(self, *args):
        self.inner.update(*args)

    def get_state(self):
        return self.inner.get_state()

    def set_state(self, state):
        self.inner.set_state(state)


def test_kit_finds_and_shrinks_the_pay_as_bid_counterexample():
    with pytest.raises(TruthfulnessViolation) as err:
        search_truthful_in_expectation(pay_as_bid, examples=60, draws=1, grid=np.linspace(0, 1, 21))
    message = str(err.value)
    assert "ReverseInstance(" in message and "instead of the cost" in message


def test_mosaic_has_no_profitable_misreport_on_fixed_candidates():
    search_dominant_strategy(mosaic, examples=40)


def test_kit_finds_and_shrinks_the_no_payment_counterexample():
    with pytest.raises(TruthfulnessViolation) as err:
        search_dominant_strategy(partial(mosaic, payment="none"), examples=40)
    message = str(err.value)
    assert "AggregationInstance(" in message and "raises its utility" in message


def test_single_checks_name_the_instance():
    inst = AggregationInstance(((0.0, 1.0),), (0.0, 0.0), (0.0, 0.0), 1.0)
    assert_dominant_strategy(mosaic, inst)
    with pytest.raises(TruthfulnessViolation, match=r"tau=1\.0"):
        assert_dominant_strategy(partial(mosaic, payment="none"), inst)
    with pytest.raises(TruthfulnessViolation, match="cost=0.2"):
        assert_truthful_in_expectation(pay_as_bid, ReverseInstance(2, 1, (1.0,), (0.0, 0.9), 0.2), draws=1)
