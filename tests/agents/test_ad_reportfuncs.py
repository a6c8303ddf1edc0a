"""Advertisers' report functions and report policies: each family's factor, refused parameters, and the same
utilities through the platform as in the floor-1 loop (a static strategy; a policy blind to its last outcome)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.ad_reportfuncs import (
    AD_OBS_DIM,
    FACTOR_MAX,
    FAMILIES,
    TRUTHFUL,
    AdPolicy,
    ReportFunction,
    action_to_factor,
    ad_normalisation,
    check_theta,
    reportfunc_overrides,
)
from agents.ad_strategies import AdFeedback, AdObservation, Reporter, build_ad_strategy
from agents.policy import AD_ACTION, NumpyPolicy, PolicyStrategy
from agents.strategies import BidderFacts, History
from market.lab.deviation import play_ads, play_ads_market
from market.runtime.config import ConfigError, resolve

R = np.array([-1.0, 0.5, 2.0, 3.5])  # std 1.6770509831


def obs(r: np.ndarray, t: int = 0) -> AdObservation:
    return AdObservation(r, t, History(), np.random.default_rng(0))


def test_each_family_reports_its_factor_times_the_truth() -> None:
    s = float(np.std(R))
    cases = [("constant", (2.5,), 2.5), ("affine", (0.5, 1.0), 0.5 + s), ("affine", (1.0, -2.0), 0.0),
             ("threshold", (1.0, 0.5, 3.0), 3.0), ("threshold", (2.0, 0.5, 3.0), 0.5),
             ("constant", (100.0,), FACTOR_MAX)]
    for family, theta, factor in cases:
        f = ReportFunction(family, theta)
        np.testing.assert_allclose(f.report(obs(R)), factor * R, rtol=1e-12)
        assert f.alpha == pytest.approx(factor)
    late = ReportFunction("time", (3.0, 0.5, 10))
    np.testing.assert_allclose(late.report(obs(R, 9)), 3.0 * R)
    np.testing.assert_allclose(late.report(obs(R, 10)), 0.5 * R)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(FAMILIES)), st.lists(st.floats(-5, 5), min_size=2, max_size=12), st.integers(0, 500))
def test_the_truthful_parameters_report_the_truth(family: str, rewards: list[float], t: int) -> None:
    r = np.array(rewards)
    assert np.array_equal(ReportFunction(family, TRUTHFUL[family]).report(obs(r, t)), r)


def test_bad_parameters_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match=r"family = 'shade': expected one of \['affine', 'constant'"):
        ReportFunction("shade", (1.0,))
    with pytest.raises(ValueError, match="family 'affine' expects 2 values, got 1"):
        ReportFunction("affine", (1.0,))
    with pytest.raises(ValueError, match="finite numbers"):
        check_theta("constant", [float("nan")])
    with pytest.raises(ValueError, match="switch round"):
        check_theta("time", [1.0, 1.0, -1.0])
    assert reportfunc_overrides("affine", [1, 0.5]) == ("strategies.params.reportfunc.family=affine",
                                                        "strategies.params.reportfunc.theta=[1.0, 0.5]")


def test_ads_takes_strategy_params_only_when_given() -> None:
    assert "params" not in resolve("ads", [])[0]["strategies"]  # a config without them logs as before
    config = resolve("ads", ["strategies.params.reportfunc.family=time"])[0]
    assert config["strategies"]["params"] == {"reportfunc": {"family": "time"}}
    with pytest.raises(ConfigError, match=r"strategies.params.reportfunc: theta = \[1.0\]: family 'time' expects 3"):
        play_ads("mosaic", "reportfunc", 0, 2, ["strategies.params.reportfunc.family=time",
                                                 "strategies.params.reportfunc.theta=[1.0]"])


def test_a_report_function_gives_the_same_utilities_through_the_platform() -> None:
    """A static report function (its factor depends on the round): the floor-1 loop and the real platform agree to
    the micro-credit, so the platform numbers rounds as the loop does."""
    sets = ["strategies.params.reportfunc.family=time", "strategies.params.reportfunc.theta=[3.0, 0.5, 4]",
            "market.queries=6"]
    for mechanism in ("mosaic", "mosaic-nopay"):
        fast, real = play_ads(mechanism, "reportfunc", 2, 8, sets), play_ads_market(mechanism, "reportfunc", 2, 8, sets)
        assert fast.rounds == real.rounds == 8
        for a in fast.utilities:
            assert real.utilities[a] == pytest.approx(fast.utilities[a], abs=1e-5)


def _policy(tmp_path, blind: bool) -> str:
    rng = np.random.default_rng(1)
    w0 = rng.normal(0, 0.8, (4, AD_OBS_DIM))
    if blind:
        w0[:, 6:] = 0.0  # blind to its last outcome (the platform keeps one history per query's advertiser)
    policy = NumpyPolicy([w0, rng.normal(0, 0.8, (1, 4))], [np.zeros(4), np.array([0.3])], "tanh",
                         *ad_normalisation(), AD_ACTION, 8)
    return str(policy.save(tmp_path / "ad.npz"))


def test_a_report_policy_reports_its_factor_and_plays_through_the_platform(tmp_path) -> None:
    path = _policy(tmp_path, blind=True)
    strategy = build_ad_strategy("ad-policy", path=path)
    reporter = Reporter(strategy)
    first = reporter.report(R, 0, np.random.default_rng(0))
    assert 0.25 <= strategy.alpha <= 4.0 and np.allclose(first, strategy.alpha * R)
    reporter.learn(AdFeedback(0, R, first, 2.0, 0.7))
    assert len(reporter._memory.view()) == 1  # it keeps its last round for the observation
    sets = [f"strategies.params.ad-policy.path={path}", "market.queries=6"]
    fast, real = play_ads("mosaic-nopay", "ad-policy", 4, 8, sets), play_ads_market("mosaic-nopay", "ad-policy", 4, 8,
                                                                                   sets)
    assert fast.utilities["advertiser-0"] != play_ads("mosaic-nopay", "truthful", 4, 8, sets).utilities["advertiser-0"]
    for a in fast.utilities:
        assert real.utilities[a] == pytest.approx(fast.utilities[a], abs=1e-5)


def test_policies_of_the_wrong_kind_are_refused(tmp_path) -> None:
    path = _policy(tmp_path, blind=False)
    with pytest.raises(ValueError, match="action 'factor'; expected one of \\('markup', 'bid'\\)"):
        PolicyStrategy(BidderFacts(0, 3, 0.0, 1.0), path=path)
    bidder = NumpyPolicy([np.zeros((1, 7))], [np.zeros(1)], "tanh", np.zeros(7), np.ones(7))
    with pytest.raises(ValueError, match="expected action 'factor' over 8"):
        AdPolicy(str(bidder.save(tmp_path / "bid.npz")))
    with pytest.raises(ValueError, match="expected a policy file"):
        AdPolicy()
    assert action_to_factor(0.0) == 1.0 and action_to_factor(1.0) == 4.0 and action_to_factor(-3.0) == 0.25


def test_a_run_with_report_function_params_verifies_and_resimulates(tmp_path) -> None:
    """The optional strategies.params table is logged with the config, so a run that uses it rebuilds the same
    strategies when it is verified and resimulated (the same bytes)."""
    from market.runtime.run import run_scenario
    from market.runtime.verify import verify_run

    config, _, _ = run_scenario("ads", seed=1, rounds=4, out=tmp_path / "run", overrides=[
        "strategies.default=reportfunc", "strategies.params.reportfunc.family=constant",
        "strategies.params.reportfunc.theta=[2.0]", "market.queries=4"])
    assert config["strategies"]["params"] == {"reportfunc": {"family": "constant", "theta": [2.0]}}
    report = verify_run(tmp_path / "run", resimulate=True)
    assert report.ok and [c.name for c in report.checks if not c.ok] == []
