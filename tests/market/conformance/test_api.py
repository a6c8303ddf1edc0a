"""The conformance kit on every registered mechanism, aggregation and strategy, and on planted defects that each
check must catch (so none of them can pass by doing nothing)."""

from __future__ import annotations

import random
from functools import partial
from typing import Any

import numpy as np
import pytest

from agents.ad_strategies import AD_STRATEGIES, AlphaLearner
from agents.strategies import STRATEGIES, ExponentialWeights, Strategy, Truthful
from market.conformance.api import (
    ConformanceError,
    check_ad_strategy,
    check_aggregation,
    check_reverse_mechanism,
    check_strategy,
    check_token_aggregation,
    same_state,
)
from market.core.mechanisms.aggregation import AGGREGATIONS, mosaic
from market.core.mechanisms.base import ReverseOutcome
from market.core.mechanisms.baselines import PayAsBid
from market.core.mechanisms.priors import UniformCost
from market.core.mechanisms.reverse import MECHANISMS
from market.core.mechanisms.rules import TRCMUCB
from market.core.mechanisms.token_auction import token_auction

# Mechanisms that count their selects by design: LeakyROSA's round counter indexes its public coins.
COUNTS_SELECTS = {"rosa-leaky"}
# Aggregations over token laws and bids rather than reward reports on candidates.
TOKEN_LEVEL = {"token-auction"}


def registered_mechanism(name: str) -> Any:
    """``factory(n, d)`` for a registered mechanism: Myerson knows fixed qualities, the learners get (n, d)."""
    if name == "myerson":
        return lambda n, d: MECHANISMS.build(name, theta=np.random.default_rng(3).random((n, d)), priors=UniformCost())
    return lambda n, d: MECHANISMS.build(name, n=n, d=d, **({"mu": 0.2} if "rosa" in name else {}))


@pytest.mark.parametrize("name", MECHANISMS.names())
def test_every_registered_mechanism_passes_the_api_and_seed_checks(name):
    check_reverse_mechanism(registered_mechanism(name), stateless_select=name not in COUNTS_SELECTS)


@pytest.mark.parametrize("name", AGGREGATIONS.names())
def test_every_registered_aggregation_passes_the_api_checks(name):
    check = check_token_aggregation if name in TOKEN_LEVEL else check_aggregation
    check(AGGREGATIONS.get(name))


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_registered_strategy_passes_the_api_and_seed_checks(name, strategy_params):
    check_strategy(partial(STRATEGIES.build, name, **strategy_params(name, 3)), d=3)


@pytest.mark.parametrize("name", AD_STRATEGIES.names())
def test_every_registered_ad_strategy_passes_the_api_and_seed_checks(name, strategy_params):
    check_ad_strategy(partial(AD_STRATEGIES.build, name, **strategy_params(name, 0)))


def test_states_compare_structurally_with_nan_equal_to_nan():
    assert same_state({"a": np.array([1.0, np.nan]), "b": [1, (2, 3)]},
                      {"a": np.array([1.0, np.nan]), "b": [1, [2, 3]]})
    assert not same_state({"a": np.array([1.0, 2.0])}, {"a": np.array([1.0, 2.5])})
    assert not same_state({"a": 1}, {"a": 1, "b": 2})
    assert same_state(float("nan"), float("nan")) and not same_state([1, 2], [1, 2, 3])


# -- planted defects: mechanisms -------------------------------------------------------------


def _pay_as_bid(cls: type, n: int, d: int) -> Any:
    return cls(TRCMUCB(n, d, priors=UniformCost()), 1.0, 0.0)


class LearnsInSelect(PayAsBid):
    """Counts its selects in its state: select must not learn."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seen = 0

    def select(self, context, bids, rng, active=None):
        self.seen += 1
        return super().select(context, bids, rng, active)

    def get_state(self):
        return {**super().get_state(), "seen": self.seen}

    def set_state(self, state):
        super().set_state(state)
        self.seen = int(state["seen"])


class GlobalCoins(PayAsBid):
    """Adds a bonus drawn from the process-wide random module instead of the rng it is given."""

    def select(self, context, bids, rng, active=None):
        out = super().select(context, bids, rng, active)
        pay = out.payments.copy()
        if out.winner is not None:
            pay[out.winner] += random.random()
        return ReverseOutcome(out.winner, pay, out.resampled, out.modified)


class TakesNaN(PayAsBid):
    """Skips the bid check: a NaN bid from an active provider goes through as the cap."""

    def select(self, context, bids, rng, active=None):
        return super().select(context, np.nan_to_num(np.asarray(bids, float), nan=1.0, posinf=1.0, neginf=0.0),
                              rng, active)


class ForgetfulState(PayAsBid):
    """get_state leaves out what it learned, so a restored mechanism chooses differently."""

    def get_state(self):
        return {}

    def set_state(self, state):
        pass


class PaysLosers(PayAsBid):
    def select(self, context, bids, rng, active=None):
        out = super().select(context, bids, rng, active)
        return ReverseOutcome(out.winner, out.payments + 0.01, out.resampled, out.modified)


class ListPayments(PayAsBid):
    def select(self, context, bids, rng, active=None):
        out = super().select(context, bids, rng, active)
        return ReverseOutcome(out.winner, out.payments.tolist(), out.resampled, out.modified)


@pytest.mark.parametrize("cls, message", [
    (LearnsInSelect, "select changed get_state"),
    (GlobalCoins, "two selects from one state with rng seed"),
    (TakesNaN, r"bids\[0\] = nan from an active provider was accepted"),
    (ForgetfulState, "a fresh mechanism given get_state"),
    (PaysLosers, "expected 0 for everyone else"),
    (ListPayments, r"outcome.payments is list, expected a \(4,\) float array"),
])
def test_the_mechanism_check_catches_a_planted_defect(cls, message):
    with pytest.raises(ConformanceError, match=message):
        check_reverse_mechanism(partial(_pay_as_bid, cls))


def test_the_mechanism_check_catches_a_winner_paid_below_its_bid():
    class PaysHalf(PayAsBid):
        def select(self, context, bids, rng, active=None):
            out = super().select(context, bids, rng, active)
            return ReverseOutcome(out.winner, out.payments / 2, out.resampled, out.modified)

    with pytest.raises(ConformanceError, match="expected at least its bid"):
        check_reverse_mechanism(partial(_pay_as_bid, PaysHalf))


# -- planted defects: strategies -------------------------------------------------------------


class GlobalRandomShade(Strategy):
    name = "global-random"

    def bid(self, obs):
        return self.clip(obs.cost * (1.0 + random.random()))


class NaNBidder(Strategy):
    name = "nan"

    def bid(self, obs):
        return float("nan")


class AboveCap(Strategy):
    name = "above-cap"

    def bid(self, obs):
        return self.facts.cost_cap + 0.5


class DrawsFromProvider(Strategy):
    """Draws from the provider's own generator: its costs would no longer match its truthful twin's."""

    name = "draws"

    def bid(self, obs):
        return self.clip(obs.cost * (1.0 + 0.1 * obs.rng.random()))


class OldStyleDrawsFromProvider(Strategy):
    """The same defect in a strategy written to the deprecated bid(cost, context, rng): still caught."""

    name = "old-draws"

    def bid(self, cost, context, rng):
        return self.clip(cost * (1.0 + 0.1 * rng.random()))


class CoinsOutOfState(ExponentialWeights):
    """EXP3 whose checkpoint leaves out where its coins are."""

    def get_state(self):
        return {"log_weights": self.log_weights.copy(), "arm": self.arm}


class ObjectInState(Truthful):
    def get_state(self):
        return {"clock": object()}


@pytest.mark.parametrize("cls, message", [
    (GlobalRandomShade, "one seed gave bids"),
    (NaNBidder, "bid = nan, expected a finite number"),
    (AboveCap, r"expected a bid in \[cost_floor, cost_cap\] = \[0.0, 1.0\]"),
    (DrawsFromProvider, "bid advanced the provider's generator"),
    (OldStyleDrawsFromProvider, "bid advanced the provider's generator"),
    (CoinsOutOfState, "a fresh strategy given get_state"),
    (ObjectInState, "get_state\\(\\) cannot be checkpointed"),
])
@pytest.mark.filterwarnings("ignore:strategy 'old-draws'")
def test_the_strategy_check_catches_a_planted_defect(cls, message):
    with pytest.raises(ConformanceError, match=message):
        check_strategy(cls)


def test_the_ad_strategy_check_catches_coins_left_out_of_the_state():
    class Forgetful(AlphaLearner):
        def get_state(self):
            return {"log_weights": self.log_weights.copy(), "arm": self.arm}

    with pytest.raises(ConformanceError, match="a fresh strategy given get_state"):
        check_ad_strategy(Forgetful)


# -- planted defects: aggregations -----------------------------------------------------------


def first_candidate_bias(rewards, log_ref, log_gen, tau):
    bonus = np.zeros(np.shape(log_ref))
    bonus[0] = 1.0
    return mosaic(rewards, log_ref + bonus, log_gen, tau)


def nan_as_zero(rewards, log_ref, log_gen, tau):
    return mosaic(np.nan_to_num(rewards), log_ref, log_gen, tau)


def scribbles_on_rewards(rewards, log_ref, log_gen, tau):
    rewards *= 1.0 + 1e-12
    return mosaic(rewards, log_ref, log_gen, tau)


@pytest.mark.parametrize("aggregate, message", [
    (first_candidate_bias, "relabelling the candidates"),
    (nan_as_zero, "a NaN reward was accepted"),
    (scribbles_on_rewards, "modified its inputs"),
])
def test_the_aggregation_check_catches_a_planted_defect(aggregate, message):
    with pytest.raises(ConformanceError, match=message):
        check_aggregation(aggregate)


def test_the_token_check_catches_payments_above_the_bid():
    def overcharges(token_probs, bids):
        step = token_auction(token_probs, bids)
        return type(step)(step.q, step.payments + np.asarray(bids))

    with pytest.raises(ConformanceError, match=r"expected \(3,\) amounts in \[0, bid\]"):
        check_token_aggregation(overcharges)

