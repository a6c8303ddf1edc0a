"""Replay environments load the shipped data and draw from the passed Generator only."""

import numpy as np

from market.core.learning.environments import (
    BernoulliCostArms,
    JointCorrectnessReplay,
    PiecewiseLinearArms,
    PythiaCurveArms,
    SaturatingArms,
)
from market.core.learning.reward_models import all_subsets


def test_sciq_arms_match_the_frugalgpt_table():
    env = BernoulliCostArms.from_frugalgpt_sciq()
    assert env.n_arms == 9 and "jamba-1.5-large" not in env.names
    assert abs(env.mean_quality[env.names.index("gpt-4o-mini")] - 0.7557800993320775) < 1e-12
    assert env.mean_cost.max() == 1.0 and env.names[int(np.argmax(env.mean_cost))] == "gpt-4-turbo"


def test_bernoulli_draws_have_the_stated_means_within_three_standard_errors():
    env = BernoulliCostArms.from_frugalgpt_sciq(cost_spread=0.5)
    rng = np.random.default_rng(0)
    arms = np.arange(9)
    draws = [env.draw(arms, rng) for _ in range(4000)]
    x = np.array([d[0] for d in draws])
    y = np.array([d[1] for d in draws])
    assert np.all(np.abs(x.mean(0) - env.mean_quality) <= 3 * x.std(0) / np.sqrt(4000) + 1e-12)
    assert np.all(np.abs(y.mean(0) - env.mean_cost) <= 3 * y.std(0) / np.sqrt(4000) + 1e-12)
    assert y.max() <= 1.0


def test_gsm8k_replay_keeps_correlated_correctness():
    env = JointCorrectnessReplay()
    assert env.n_questions == 1307
    assert abs(env.mean_quality[1] - env.correct[:, 1].mean()) < 1e-12
    awc_both = env.subset_rewards(all_subsets(2), "awc")[3]
    independent = 1 - np.prod(1 - env.mean_quality)
    assert awc_both < independent  # errors are positively correlated in the data
    x1, _ = env.draw(np.array([0, 1]), np.random.default_rng(4))
    x2, _ = env.draw(np.array([0, 1]), np.random.default_rng(4))
    assert np.array_equal(x1, x2)


def test_rising_curves_follow_their_formulas():
    pl = PiecewiseLinearArms.trap()
    assert abs(pl.curve(1, np.array([600.0]))[0] - 0.85) < 1e-12
    assert abs(pl.curve(1, np.array([1.0]))[0] - 0.20) < 1e-12
    sat = SaturatingArms.default()
    assert abs(sat.curve(0, np.array([1.0]))[0] - 0.60) < 1e-12
    py = PythiaCurveArms(models=("pythia-1.4b",), steps_per_pull=1000.0)
    assert abs(py.curve(0, np.array([13.0]))[0] - 0.833) < 1e-12  # step 13000 checkpoint
    assert abs(py.limits[0] - 0.865) < 1e-12
