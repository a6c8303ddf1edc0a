"""``draw_cost`` (one cost per call for bids) is ``prior.sample(rng, 1)[0]``: the same double, the same stream after."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.mechanisms import priors
from market.core.mechanisms.priors import HistogramCost, TruncatedExponentialCost, UniformCost, draw_cost

_FINITE = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=80, deadline=None)
@given(lo=_FINITE, width=st.floats(1e-6, 1e3), seed=st.integers(0, 2**32 - 1))
def test_a_uniform_cost_is_the_arrays_first_draw(lo: float, width: float, seed: int) -> None:
    prior = UniformCost(lo, lo + width)
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    for _ in range(20):
        got = draw_cost(prior, a)
        assert type(got) is float and got == float(prior.sample(b, 1)[0])
    assert a.random() == b.random()  # the stream is where sample would have left it


def test_this_numpy_takes_the_scalar_path() -> None:
    # the test above is only the scalar path's if the build's uniform rounds as lo + (hi - lo) * u
    assert priors._SCALAR_UNIFORM is priors._scalar_uniform_is_exact()
    assert priors._SCALAR_UNIFORM


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_other_priors_draw_through_their_sample(seed: int) -> None:
    for prior in (TruncatedExponentialCost(2.0, 0.1, 1.0), HistogramCost((0.0, 0.3, 0.6, 1.0), (0.5, 0.3, 0.2))):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        for _ in range(10):
            assert draw_cost(prior, a) == float(prior.sample(b, 1)[0])
