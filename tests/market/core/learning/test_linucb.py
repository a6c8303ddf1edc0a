"""LinUCB core: agrees with batch ridge regression, OFUL radius, state round trip, input errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.learning import LearningError
from market.core.learning.linucb import LinUCB


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.floats(0.1, 5.0), st.integers(0, 2**32 - 1))
def test_incremental_estimates_equal_batch_ridge_regression(n, d, ridge, seed):
    rng = np.random.default_rng(seed)
    learner = LinUCB(n, d, ridge=ridge, alpha=0.8)
    xs, rs, arms = rng.normal(size=(60, d)), rng.normal(size=60), rng.integers(0, n, 60)
    for x, r, a in zip(xs, rs, arms):
        learner.update(int(a), x, float(r))
    x = rng.normal(size=d)
    for i in range(n):
        v = ridge * np.eye(d) + xs[arms == i].T @ xs[arms == i]
        theta = np.linalg.solve(v, xs[arms == i].T @ rs[arms == i])
        width = np.sqrt(x @ np.linalg.solve(v, x))
        np.testing.assert_allclose(learner.theta_hat[i], theta, atol=1e-8)
        np.testing.assert_allclose(learner.v_inv[i], np.linalg.inv(v), atol=1e-8)
        assert learner.mean(x)[i] == pytest.approx(theta @ x, abs=1e-8)
        assert learner.ucb(x)[i] == pytest.approx(theta @ x + 0.8 * width, abs=1e-8)
        assert learner.lcb(x)[i] == pytest.approx(theta @ x - 0.8 * width, abs=1e-8)
        assert learner.width_of(x)[i] == pytest.approx(width, abs=1e-8)
    lcb, ucb = learner.bounds(x)
    np.testing.assert_allclose(lcb, learner.lcb(x))
    np.testing.assert_allclose(ucb, learner.ucb(x))


def test_oful_radius_follows_abbasi_yadkori_formula():
    learner = LinUCB(3, 2, ridge=2.0, width="oful", sigma=0.5, theta_bound=1.5, context_bound=1.0, delta=0.1)
    for _ in range(7):
        learner.update(1, np.array([0.6, 0.8]), 1.0)
    expected = lambda t: 0.5 * np.sqrt(2 * np.log(3 / 0.1) + 2 * np.log(1 + t / (2 * 2.0))) + np.sqrt(2.0) * 1.5
    np.testing.assert_allclose(learner.radius, [expected(0), expected(7), expected(0)])


def test_state_round_trip_restores_every_estimate():
    rng = np.random.default_rng(1)
    a = LinUCB(4, 3, width="oful")
    for _ in range(30):
        a.update(int(rng.integers(4)), rng.random(3), float(rng.random()))
    b = LinUCB(4, 3, width="oful")
    b.set_state(a.get_state())
    x = rng.random(3)
    np.testing.assert_array_equal(a.ucb(x), b.ucb(x))
    b.update(2, x, 0.3)
    a.update(2, x, 0.3)
    np.testing.assert_array_equal(a.get_state()["v_inv"], b.get_state()["v_inv"])
    with pytest.raises(LearningError, match="v_inv"):
        b.set_state({**a.get_state(), "v_inv": np.zeros((2, 3, 3))})


@pytest.mark.parametrize(
    "kwargs", [{"ridge": 0.0}, {"alpha": -1.0}, {"width": "wide"}, {"width": "oful", "delta": 1.5}, {"n": 0}]
)
def test_invalid_parameters_are_refused(kwargs):
    params = {"n": 2, "d": 2, **kwargs}
    with pytest.raises(LearningError):
        LinUCB(**params)
