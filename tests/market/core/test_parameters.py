"""accepted_keywords: a factory's named keywords, plus those of the factories its **kwargs are declared to
reach; None where **kwargs go somewhere undeclared. Every registered mechanism and selector is checkable."""

from __future__ import annotations

from functools import partial

import pytest

from market.core.learning.selectors import SELECTORS
from market.core.mechanisms.aggregation import AGGREGATIONS
from market.core.mechanisms.reverse import MECHANISMS
from market.core.parameters import accepted_keywords, forwards


class Learner:
    def __init__(self, n: int, ridge: float = 1.0, *, sigma: float = 0.1) -> None:
        pass


@forwards(Learner, bound=("ridge",))
class Rule:
    def __init__(self, n: int, alpha: float = 1.0, **learner: float) -> None:
        pass


class Unsaid(Rule):
    def __init__(self, n: int, **params: float) -> None:
        pass


def test_named_and_keyword_only_parameters_are_accepted_and_star_args_are_not():
    def factory(a, /, b, *rest, c=1):
        pass

    assert accepted_keywords(factory) == {"b", "c"}
    assert accepted_keywords(Learner) == {"n", "ridge", "sigma"}


def test_declared_forwarding_adds_the_targets_keywords_less_the_bound_ones():
    assert accepted_keywords(Rule) == {"n", "alpha", "sigma"}  # ridge is set by Rule itself


def test_undeclared_kwargs_accept_anything_and_a_subclass_does_not_inherit_a_declaration():
    assert accepted_keywords(lambda n, **kw: None) is None
    assert accepted_keywords(Unsaid) is None


def test_a_partial_accepts_what_its_function_accepts():
    assert accepted_keywords(partial(Learner, n=3)) == {"n", "ridge", "sigma"}


@pytest.mark.parametrize("registry", [MECHANISMS, SELECTORS, AGGREGATIONS],
                         ids=["mechanisms", "selectors", "aggregations"])
def test_every_registered_factory_says_which_keywords_it_accepts(registry):
    for name in registry:
        assert accepted_keywords(registry.get(name)) is not None, name


def test_rosa_over_trcm_ucb_reaches_the_linucb_keywords_and_first_price_does_not_take_surplus():
    rosa = accepted_keywords(MECHANISMS.get("rosa-trcm-ucb"))
    assert {"mu", "alpha", "reserve", "sigma", "delta", "clip_bids"} <= rosa and "muu" not in rosa
    assert {"mu", "epsilon"} <= accepted_keywords(MECHANISMS.get("rosa-eps-greedy"))
    assert "sigma" in accepted_keywords(MECHANISMS.get("rosa-ucb"))  # UCBRule -> TRCMUCB -> LinUCB
    assert "surplus" not in accepted_keywords(MECHANISMS.get("first-price-ucb"))
    assert "surplus" in accepted_keywords(MECHANISMS.get("pay-as-bid"))
