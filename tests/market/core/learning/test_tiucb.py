"""TI-UCB: least squares, UCB1 equivalence, detection accuracy, late bloomer, state round trip."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.learning.environments import PiecewiseLinearArms
from market.core.learning.increasing import UCB1, ChangeDetectionUCB, SlidingWindowUCB
from market.core.learning.selection_run import simulate_pulls
from market.core.learning.tiucb import TIUCB
from market.core.learning.trend_fit import LeastSquaresTrend, fit_line


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=60), st.integers(0, 20000))
def test_incremental_and_batch_least_squares_agree(ys, offset):
    x = offset + np.arange(len(ys), dtype=float)
    fit = LeastSquaresTrend(origin=float(offset))
    for xi, yi in zip(x, ys):
        fit.add(xi, yi)
    slope, intercept = fit.line()
    ref = fit_line(x, np.array(ys))
    assert abs(slope - ref[0]) <= 1e-10 * max(1, abs(ref[0]))
    assert abs(fit.predict(x[-1] + 1) - (ref[0] * (x[-1] + 1) + ref[1])) <= 1e-9


def test_noiseless_line_is_recovered_exactly():
    x = np.arange(1, 50, dtype=float)
    fit = LeastSquaresTrend()
    fit.fit(x, 0.3 + 0.01 * x)
    assert np.allclose(fit.line(), (0.01, 0.3), atol=1e-12)
    assert abs(fit.predict(100.0) - 1.3) < 1e-12


def test_without_detection_and_slope_it_equals_ucb1_under_a_shared_rng():
    a = simulate_pulls(TIUCB(5, trend=False, detect=False), PiecewiseLinearArms.trap(), 3000, np.random.default_rng(3))
    b = simulate_pulls(UCB1(5, width_constant=4.0, initial_rounds=2), PiecewiseLinearArms.trap(), 3000,
                       np.random.default_rng(3))
    assert np.array_equal(a.arms, b.arms)


def test_detection_falls_within_a_window_after_the_converging_point():
    # slope 0.0015, tau* = 500, sigma = 0.03, w = 100, gamma = 0.1: a (w + 1) = 0.15 > gamma.
    # Pulls after tau* + w cannot help the median into [tau*, tau* + w]: a seed without a detection
    # by then counts as never detecting, which can only raise the median, so stopping there is as strict
    tau, w, seeds = 500, 100, 40
    first, early = [], 0
    for seed in range(seeds):
        env = PiecewiseLinearArms(np.array([0.9]), np.array([0.0015]), np.array([float(tau)]), noise=0.03)
        learner = TIUCB(1, window=w, gamma=0.1)
        rng = np.random.default_rng(seed)
        for _ in range(tau + w):
            y, _ = env.pull(0, rng)
            learner.update(0, y)
        pulls = [d[1] for d in learner.detections]
        early += any(p < tau for p in pulls)
        first.append(min([p for p in pulls if p >= tau], default=10**9))
    assert tau <= np.median(first) <= tau + w
    assert early <= 0.05 * seeds


def test_finds_the_late_bloomer_that_ucb1_abandons():
    share_ti, share_ucb = [], []
    for seed in range(3):
        ti = simulate_pulls(TIUCB(5, window=50, gamma=0.1), PiecewiseLinearArms.trap(), 6000,
                            np.random.default_rng(seed))
        ucb = simulate_pulls(UCB1(5), PiecewiseLinearArms.trap(), 6000, np.random.default_rng(seed))
        share_ti.append((ti.arms[3000:] == 1).mean())
        share_ucb.append((ucb.arms[3000:] == 1).mean())
    assert np.median(share_ti) > 0.8
    assert np.median(share_ucb) < 0.2


def test_stationary_arms_give_at_most_one_false_alarm_per_arm():
    env = PiecewiseLinearArms(np.array([0.5, 0.6, 0.4]), np.zeros(3), np.ones(3), noise=0.05)
    learner = TIUCB(3, window=50, gamma=0.15)
    simulate_pulls(learner, env, 5000, np.random.default_rng(0))
    assert len(learner.detections) <= 3


@pytest.mark.parametrize("time_index", ["rested", "port", "restless"])
def test_every_time_index_runs_and_state_round_trips(time_index):
    a = TIUCB(5, window=20, gamma=0.1, time_index=time_index)
    env = PiecewiseLinearArms.trap()
    simulate_pulls(a, env, 800, np.random.default_rng(1))
    b = TIUCB(5, window=20, gamma=0.1, time_index=time_index)
    b.set_state(a.get_state())
    env_state = env.get_state()
    ta = simulate_pulls(a, env, 300, np.random.default_rng(2))
    env.set_state(env_state)
    tb = simulate_pulls(b, env, 300, np.random.default_rng(2))
    assert np.array_equal(ta.arms, tb.arms)
    assert a.detections == b.detections


@pytest.mark.parametrize("make", [lambda: UCB1(5), lambda: SlidingWindowUCB(5, 200), lambda: ChangeDetectionUCB(5)])
def test_baseline_state_round_trip(make):
    a = make()
    env = PiecewiseLinearArms.trap()
    simulate_pulls(a, env, 500, np.random.default_rng(1))
    b = make()
    b.set_state(a.get_state())
    s = env.get_state()
    ta = simulate_pulls(a, env, 200, np.random.default_rng(2))
    env.set_state(s)
    tb = simulate_pulls(b, env, 200, np.random.default_rng(2))
    assert np.array_equal(ta.arms, tb.arms)
