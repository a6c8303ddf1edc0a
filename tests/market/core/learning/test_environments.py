"""Replay environments are built from the shipped data's rows and draw from the passed Generator only."""

import numpy as np
import pytest

from market.core.learning import LearningError
from market.core.learning.environments import (
    BernoulliCostArms,
    JointCorrectnessReplay,
    PiecewiseLinearArms,
    PythiaCurveArms,
    SaturatingArms,
    pythia_curves,
)
from market.core.learning.reward_models import all_subsets
from market.data import frugalgpt_sciq, pythia_checkpoints, routellm_gsm8k, routellm_gsm8k_prices


def test_sciq_arms_match_the_frugalgpt_table():
    env = BernoulliCostArms.from_frugalgpt_sciq(frugalgpt_sciq())
    assert env.n_arms == 9 and "jamba-1.5-large" not in env.names
    assert abs(env.mean_quality[env.names.index("gpt-4o-mini")] - 0.7557800993320775) < 1e-12
    assert env.mean_cost.max() == 1.0 and env.names[int(np.argmax(env.mean_cost))] == "gpt-4-turbo"


def test_bernoulli_draws_have_the_stated_means_within_three_standard_errors():
    env = BernoulliCostArms.from_frugalgpt_sciq(frugalgpt_sciq(), cost_spread=0.5)
    rng = np.random.default_rng(0)
    arms = np.arange(9)
    draws = [env.draw(arms, rng) for _ in range(4000)]
    x = np.array([d[0] for d in draws])
    y = np.array([d[1] for d in draws])
    assert np.all(np.abs(x.mean(0) - env.mean_quality) <= 3 * x.std(0) / np.sqrt(4000) + 1e-12)
    assert np.all(np.abs(y.mean(0) - env.mean_cost) <= 3 * y.std(0) / np.sqrt(4000) + 1e-12)
    assert y.max() <= 1.0


def test_gsm8k_replay_keeps_correlated_correctness():
    env = JointCorrectnessReplay(routellm_gsm8k(), routellm_gsm8k_prices())
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
    py = PythiaCurveArms(pythia_curves(pythia_checkpoints(), ("pythia-1.4b",)), steps_per_pull=1000.0)
    assert abs(py.curve(0, np.array([13.0]))[0] - 0.833) < 1e-12  # step 13000 checkpoint
    assert abs(py.limits[0] - 0.865) < 1e-12


SCIQ_ROWS = [
    {"model": "small", "test_acc": "0.5", "test_cost_usd": "0.001"},
    {"model": "large", "test_acc": "0.9", "test_cost_usd": "0.004"},
    {"model": "dropped", "test_acc": "0.9", "test_cost_usd": "0.1"},
]


def test_sciq_arms_are_built_from_the_rows_given_not_from_files():
    env = BernoulliCostArms.from_frugalgpt_sciq(SCIQ_ROWS, exclude=("dropped",))
    assert env.names == ("small", "large")
    np.testing.assert_allclose(env.mean_quality, [0.5, 0.9])
    np.testing.assert_allclose(env.mean_cost, [0.25, 1.0])


def test_gsm8k_replay_prices_calls_from_the_rows_given():
    rows = [
        {"contaminated": "0", "prompt_chars": "40", "mixtral_correct": "1", "gpt4_correct": "1",
         "mixtral_response_chars": "40", "gpt4_response_chars": "80"},
        {"contaminated": "1", "prompt_chars": "4000", "mixtral_correct": "0", "gpt4_correct": "0",
         "mixtral_response_chars": "4", "gpt4_response_chars": "4"},
        {"contaminated": "0", "prompt_chars": "40", "mixtral_correct": "0", "gpt4_correct": "1",
         "mixtral_response_chars": "0", "gpt4_response_chars": "0"},
    ]
    prices = [{"arm": "mixtral", "input_cost_per_token": "1", "output_cost_per_token": "1"},
              {"arm": "gpt4", "input_cost_per_token": "2", "output_cost_per_token": "3"}]
    env = JointCorrectnessReplay(rows, prices)
    assert env.n_questions == 2
    np.testing.assert_array_equal(env.correct, [[1.0, 1.0], [0.0, 1.0]])
    # tokens = chars / 4: gpt4 on question 0 costs 10 * 2 + 20 * 3 = 80, the largest call
    np.testing.assert_allclose(env.cost, [[20 / 80, 1.0], [10 / 80, 20 / 80]])
    with pytest.raises(LearningError, match="gpt4"):
        JointCorrectnessReplay(rows, prices[:1])


def test_pythia_curves_sort_steps_and_name_a_missing_model():
    rows = [{"model": "m", "task": "sciq", "metric": "acc", "step": s, "value": v}
            for s, v in (("2000", "0.7"), ("0", "0.2"), ("1000", "0.5"))]
    (curve,) = pythia_curves(rows, ("m",))
    np.testing.assert_array_equal(curve.steps, [0.0, 1000.0, 2000.0])
    arms = PythiaCurveArms([curve], steps_per_pull=500.0)
    assert abs(arms.curve(0, np.array([3.0]))[0] - 0.6) < 1e-12 and arms.limits[0] == 0.7
    with pytest.raises(LearningError, match="'absent'"):
        pythia_curves(rows, ("absent",))
