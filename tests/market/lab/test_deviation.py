"""Deviation experiments: the fast engine mirrors the market, verdicts of the issue's claims, determinism."""

import numpy as np
import pytest

from market.lab.deviation import bootstrap_ci, classify, deviate, play_fast, play_market
from market.runtime.config import ConfigError

PAB = ["mechanism.name=pay-as-bid"]


def test_fast_engine_reproduces_the_market_run_to_the_micro_credit():
    sets = ["mechanism.name=rosa-trcm-ucb", "strategies.overrides.provider-0=exp3",
            "strategies.overrides.provider-2=shade"]
    fast = play_fast("quickstart", sets, 3, 150, "provider-0")
    market = play_market("quickstart", sets, 3, 150)
    assert fast.utilities.keys() == market.utilities.keys()
    for p in fast.utilities:
        assert fast.utilities[p] == pytest.approx(market.utilities[p], abs=150e-6)
    assert fast.user == pytest.approx(market.user, abs=150e-6)
    assert fast.spend == pytest.approx(market.spend, abs=150e-6)
    assert fast.served == market.served > 0
    assert len(fast.trace) == 20


def test_fast_engine_plays_the_scenarios_market_instance_without_building_a_world(monkeypatch):
    from market.lab.deviation import FastMarket
    from market.runtime.world import World

    def no_world(*args, **kwargs):
        raise AssertionError("the fast engine built a World")

    monkeypatch.setattr(World, "__init__", no_world)
    market = FastMarket("quickstart", ["mechanism.name=rosa-trcm-ucb"], 3, 150)
    assert market.ids == tuple(f"provider-{i}" for i in range(5)) and market.queries == 150
    assert market.mechanism.mu == pytest.approx(150 ** -0.5)  # ROSA's mu from the run's horizon, as in a run
    with pytest.raises(ConfigError, match="engine fast: scenario 'multi-llm' .* has no MarketInstance"):
        FastMarket("multi-llm", [], 0, 10)


def test_both_engines_give_the_same_verdict_on_a_small_instance():
    fast = deviate("quickstart", "shade", seeds=4, rounds=80, overrides=PAB, engine="fast")
    market = deviate("quickstart", "shade", seeds=4, rounds=80, overrides=PAB, engine="market")
    assert fast.verdict == market.verdict == "profitable"
    np.testing.assert_allclose(fast.gains, market.gains, atol=1e-5)


def test_under_pay_as_bid_learners_bid_above_cost_gain_and_the_user_pays():
    v = deviate("quickstart", "ucb", seeds=6, rounds=400, overrides=PAB, workers=2)
    assert v.ci_low > 0 and v.verdict == "profitable"
    assert v.trace[-1] > 1.3  # learned to bid well above cost
    assert v.user < 0  # the user pays the margin


def test_under_rosa_the_learners_gain_is_not_positive_and_it_shades_less_than_under_pay_as_bid():
    sets = ["strategies.params.ucb.grid=[0.5, 1.0, 1.5, 2.0]"]
    rosa = deviate("quickstart", "ucb", seeds=12, rounds=800, workers=2,
                   overrides=[*sets, "mechanism.name=rosa-trcm-ucb", "mechanism.params.mu=0.3"])
    pab = deviate("quickstart", "ucb", seeds=12, rounds=800, workers=2, overrides=[*sets, *PAB])
    assert rosa.ci_low <= 0  # the CI contains 0 or lies below it
    assert pab.ci_low > 0
    assert np.mean(rosa.trace[-5:]) < np.mean(pab.trace[-5:])


def test_coin_predictor_gains_only_when_the_coins_leak():
    leaky = deviate("quickstart", "coin-predictor", seeds=8, rounds=300, overrides=["mechanism.name=rosa-leaky",
                    "mechanism.params.mu=0.1"], workers=2)
    sealed = deviate("quickstart", "coin-predictor", seeds=8, rounds=300, overrides=["mechanism.name=rosa-trcm-ucb",
                     "mechanism.params.mu=0.1"], workers=2)
    assert leaky.verdict == "profitable"
    assert sealed.ci_low <= 0


def test_ring_members_deviate_together():
    v = deviate("quickstart", "ring", seeds=4, rounds=150, overrides=PAB)
    assert v.verdict == "profitable"  # the pair shares the margin under pay-as-bid


def test_exaggeration_does_not_pay_under_mosaic_but_pays_without_payments():
    mosaic = deviate("ads", "exaggerate", seeds=4, rounds=60, overrides=["mechanism.name=mosaic"])
    nopay = deviate("ads", "exaggerate", seeds=4, rounds=60, overrides=["mechanism.name=mosaic-nopay"])
    assert mosaic.verdict == "loses" and nopay.verdict == "profitable"
    assert mosaic.platform > 0  # the exaggerator's extra payments go to the platform


def test_a_pulling_description_can_gain_under_mosaic_the_boundary_of_the_theorem():
    v = deviate("ads", "description-pull", seeds=4, rounds=60, overrides=["mechanism.name=mosaic"])
    assert v.verdict == "profitable"


def test_deviation_runs_are_deterministic():
    a = deviate("quickstart", "exp3", seeds=3, rounds=60, overrides=PAB, workers=2)
    b = deviate("quickstart", "exp3", seeds=3, rounds=60, overrides=PAB, workers=1)
    assert a == b


def test_bootstrap_ci_is_seeded_and_classify_names_the_three_verdicts():
    x = np.random.default_rng(0).normal(1.0, 1.0, 50)
    assert bootstrap_ci(x, 3) == bootstrap_ci(x, 3)
    low, high = bootstrap_ci(x, 3)
    assert low < x.mean() < high
    assert [classify(0.1, 0.2), classify(-0.2, -0.1), classify(-0.1, 0.1)] == [
        "profitable", "loses", "not distinguishable from 0"]


def test_bad_requests_are_refused_by_name():
    with pytest.raises(ConfigError, match="--seeds"):
        deviate("quickstart", "shade", seeds=1)
    with pytest.raises(ConfigError, match="--engine"):
        deviate("quickstart", "shade", engine="warp")
    with pytest.raises(ConfigError, match="provider-4"):
        deviate("quickstart", "ring", deviator="provider-4")


def test_under_rosa_the_ucb_learners_multiplier_moves_towards_1_and_stays_below_pay_as_bid():
    """Expected profit peaks at the truthful multiplier under ROSA, but the peak is flat (the gradient
    vanishes at 1) and payments are heavy-tailed, so a learner closes in on 1 slowly: over 5,000 rounds
    its preferred multiplier (mean of 6 seeds) falls to within 0.15 of 1 (neighbouring grid multipliers
    differ by 0.0003 in expected profit per round, see test_curve), while pay-as-bid drives it above 1.4."""
    rosa = deviate("quickstart", "ucb", seeds=6, rounds=5000, workers=2,
                   overrides=["mechanism.name=rosa-trcm-ucb", "mechanism.params.mu=0.3"])
    pab = deviate("quickstart", "ucb", seeds=6, rounds=5000, workers=2, overrides=PAB)
    early, late = np.mean(rosa.trace[1:6]), np.mean(rosa.trace[-5:])
    assert late < early  # moving towards 1 from above
    assert abs(late - 1.0) < 0.15
    assert np.mean(pab.trace[-5:]) > 1.4  # pay-as-bid rewards the margin
    assert rosa.ci_low <= 0 < pab.ci_low


def test_twin_is_truthful_even_when_the_scenario_presets_the_deviators_strategy():
    plain = deviate("quickstart", "shade", seeds=3, rounds=120, overrides=PAB)
    preset = deviate("quickstart", "shade", seeds=3, rounds=120,
                     overrides=[*PAB, "strategies.overrides.provider-0=shade"])
    assert preset.twin == plain.twin == "provider-0=truthful"
    assert preset.profile == "provider-0=shade"
    assert preset.gains == plain.gains
    assert plain.verdict == "profitable"
