"""Cost priors: closed forms, inverse virtual costs, sampling laws and the regularity guard."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from market.core.mechanisms.base import MechanismError
from market.core.mechanisms.priors import CostPriors, HistogramCost, TruncatedExponentialCost, UniformCost

supports = st.tuples(st.floats(-2.0, 2.0), st.floats(0.05, 3.0)).map(lambda t: (t[0], t[0] + t[1]))
rates = st.floats(-6.0, 6.0).filter(lambda r: abs(r) > 1e-3)


@settings(max_examples=40, deadline=None)
@given(supports, st.floats(0.0, 1.0))
def test_uniform_virtual_cost_is_two_c_minus_c_lo_and_inverts(support, u):
    lo, cap = support
    prior = UniformCost(lo, cap)
    c = lo + u * (cap - lo)
    assert prior.virtual_cost(c) == pytest.approx(2 * c - lo)
    assert prior.virtual_cost(c) == pytest.approx(c + prior.cdf(c) / prior.pdf(c))
    assert prior.inverse_virtual_cost(prior.virtual_cost(c)) == pytest.approx(c, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(rates, supports, st.floats(0.0, 1.0))
def test_truncated_exponential_phi_is_c_plus_cdf_over_pdf_and_inverts(rate, support, u):
    lo, cap = support
    prior = TruncatedExponentialCost(rate, lo, cap)
    c = np.array(lo + u * (cap - lo))
    assert prior.virtual_cost(c) == pytest.approx(c + prior.cdf(c) / prior.pdf(c), rel=1e-9, abs=1e-9)
    assert prior.inverse_virtual_cost(prior.virtual_cost(c)) == pytest.approx(c, abs=1e-9)
    assert prior.is_regular()


@pytest.mark.parametrize("rate", [-3.0, 0.5, 4.0])
def test_truncated_exponential_cdf_integrates_pdf(rate):
    prior = TruncatedExponentialCost(rate, 0.2, 1.5)
    for c in (0.3, 0.9, 1.5):
        area, _ = integrate.quad(lambda z: float(prior.pdf(z)), 0.2, c)
        assert area == pytest.approx(float(prior.cdf(c)), abs=1e-9)


@pytest.mark.parametrize(
    "prior",
    [
        UniformCost(0.1, 0.9),
        TruncatedExponentialCost(3.0, 0.0, 1.0),
        HistogramCost((0.0, 0.3, 0.6, 1.0), (0.5, 0.3, 0.2)),
    ],
)
def test_samples_follow_the_cdf(prior):
    # KS at the 1e-3 level on 20k draws: a wrong sampler fails with overwhelming probability.
    draws = prior.sample(np.random.default_rng(7), 20_000)
    assert draws.min() >= prior.c_lo and draws.max() <= prior.c_cap
    assert stats.kstest(draws, lambda a: prior.cdf(a)).pvalue > 1e-3


def test_histogram_with_decreasing_density_is_regular_and_inverts():
    prior = HistogramCost((0.0, 0.3, 0.6, 1.0), (0.5, 0.3, 0.2))
    grid = np.linspace(0.0, 1.0, 1001)
    phi = prior.virtual_cost(grid)
    assert np.all(np.diff(phi) > 0)
    np.testing.assert_allclose(prior.inverse_virtual_cost(phi), grid, atol=1e-12)
    # v inside the jump of phi at an edge maps to that edge
    left = 0.3 + float(prior.cdf(0.3)) / (0.5 / 0.3)
    right = float(prior.virtual_cost(0.3))
    assert left < right
    assert prior.inverse_virtual_cost(0.5 * (left + right)) == pytest.approx(0.3)


def test_irregular_prior_is_refused_naming_where_phi_decreases():
    with pytest.raises(MechanismError, match=r"HistogramCost.*irregular.*0\.4"):
        HistogramCost((0.0, 0.4, 1.0), (0.2, 0.8))


@pytest.mark.parametrize(
    "build",
    [lambda: UniformCost(1.0, 1.0), lambda: UniformCost(0.0, np.inf), lambda: TruncatedExponentialCost(0.0),
     lambda: TruncatedExponentialCost(np.nan), lambda: HistogramCost((0.0, 1.0), (0.0,))],
)
def test_invalid_prior_parameters_raise(build):
    with pytest.raises(MechanismError):
        build()


def test_cost_priors_vectorise_like_each_prior():
    mixed = CostPriors.of([UniformCost(0.0, 1.0), TruncatedExponentialCost(2.0), UniformCost(0.2, 1.0)], 3)
    uniform = CostPriors.of([UniformCost(0.0, 1.0), UniformCost(0.2, 1.0)], 2)
    c = np.array([0.3, 0.5, 0.7])
    np.testing.assert_allclose(mixed.virtual_cost(c), [p.virtual_cost(ci) for p, ci in zip(mixed.priors, c)])
    np.testing.assert_allclose(uniform.virtual_cost(c[:2]), [0.6, 0.8])
    with pytest.raises(MechanismError, match="expected n = 4"):
        CostPriors.of([UniformCost()] * 3, 4)
