"""The search attack: finds a profitable bidding function under pay-as-bid that holds on held-out seeds, is
reproducible, starts from truthful play, and names the [rl] extra when Optuna is missing."""

import sys

import pytest

from market.lab.attackers import Attacker, AttackSpec
from market.lab.deviation import deviate
from market.runtime.config import ConfigError

pytest.importorskip("optuna")

from market.lab.search import horizon_player, search, search_attacker  # noqa: E402

SPEC = AttackSpec("quickstart", ("mechanism.name=pay-as-bid",), train_seeds=(0, 1, 2), rounds=120, budget=8)


def quiet(what: str, done: int, total: int) -> None:
    assert 0 <= done <= total


@pytest.fixture(scope="module")
def found() -> Attacker:
    return search_attacker(SPEC, quiet)


def test_search_finds_a_function_that_gains_on_held_out_seeds_under_pay_as_bid(found):
    assert found.method == "search" and found.strategy == "bidfunc"
    assert found.train_seeds == (0, 1, 2) and found.details["trials"] == 8
    assert found.train_gain > 0
    assert found.details["trace"][0] == 0.0  # the first trial is the truthful function: no gain at all
    assert found.train_gain == max(found.details["trace"])
    held = deviate(SPEC.scenario, found.strategy, rounds=SPEC.rounds, overrides=(*SPEC.overrides, *found.overrides),
                   seed_list=range(1000, 1006))
    assert held.ci_low > 0, held


def test_search_is_reproducible_and_the_truthful_start_scores_zero():
    spec = AttackSpec("quickstart", ("mechanism.name=pay-as-bid",), train_seeds=(4, 5), rounds=60, budget=3)
    a, b = search(spec, quiet, ("affine", "lastwin")), search(spec, quiet, ("affine", "lastwin"))
    assert a.overrides == b.overrides and a.train_gain == b.train_gain
    assert a.details["trace"][0] == 0.0 and a.details["families"] == ["affine", "lastwin"]


def test_search_under_rosa_reports_what_it_found_without_a_claim_of_gain():
    """Under ROSA the search hands back its best trial whatever it is; the judging says whether it gains."""
    spec = AttackSpec("quickstart", ("mechanism.name=rosa-trcm-ucb",), train_seeds=(0, 1), rounds=60, budget=3)
    a = search(spec, quiet, ("time", "winrate"))
    assert a.details["family"] in ("time", "winrate") and len(a.details["trace"]) == 3


def test_horizon_player_plays_one_bid_per_horizon():
    spec = AttackSpec("quickstart", train_seeds=(0, 1), rounds=50, budget=2)
    a = search(spec, quiet, ("multiplier",), player=horizon_player(spec, 0.3, 5, 8))
    assert a.details["trace"][0] == 0.0 and len(a.details["trace"]) == 2


def test_unknown_family_and_missing_optuna_are_refused(monkeypatch):
    with pytest.raises(ConfigError, match="--family: got 'bogus'"):
        search(SPEC, quiet, ("bogus",))
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"\[rl\] extra"):
        search(SPEC, quiet)
