"""Rounding keeps marginals, cardinality and expected cost, with negative pairwise correlation."""

import numpy as np
import pytest

from market.core.learning.rounding import dependent_round, round_selection, systematic_round

DRAWS = 40_000  # 3-standard-error tolerances below scale with this count
P = np.array([0.3, 0.75, 0.5, 0.2, 0.25, 1.0, 0.0])  # sum 3.0: cardinality must be exactly 3
P_FRAC = np.array([0.3, 0.45, 0.5, 0.2, 0.25, 0.1])  # sum 1.8
COST = np.array([0.1, 0.4, 0.2, 0.9, 0.05, 0.3, 0.7])


def _draw(p, method, seed):
    rng = np.random.default_rng(seed)
    out = np.zeros((DRAWS, p.size), dtype=bool)
    for d in range(DRAWS):
        out[d, round_selection(p, rng, method)] = True
    return out


@pytest.fixture(scope="module")
def dependent_draws():
    return _draw(P, "dependent", 1), _draw(P_FRAC, "dependent", 2)


@pytest.mark.parametrize("method", ["dependent", "systematic"])
def test_rounding_keeps_marginals_within_three_standard_errors(method, dependent_draws):
    for p, draws in zip((P, P_FRAC), dependent_draws if method == "dependent" else
                        (_draw(P, method, 3), _draw(P_FRAC, method, 4))):
        se = np.sqrt(p * (1 - p) / DRAWS)
        assert np.all(np.abs(draws.mean(axis=0) - p) <= 3 * se + 1e-12)
        size = draws.sum(axis=1)
        assert set(np.unique(size)) <= {int(np.floor(p.sum() + 1e-9)), int(np.ceil(p.sum() - 1e-9))}


def test_integral_sum_gives_exact_cardinality(dependent_draws):
    draws, _ = dependent_draws
    assert np.all(draws.sum(axis=1) == 3)
    assert np.all(draws[:, 5]) and not np.any(draws[:, 6])


def test_rounding_keeps_expected_cost_within_three_standard_errors(dependent_draws):
    draws, _ = dependent_draws
    cost = draws.astype(float) @ COST
    se = cost.std() / np.sqrt(DRAWS)
    assert abs(cost.mean() - P @ COST) <= 3 * se


def test_dependent_rounding_inclusions_are_negatively_correlated(dependent_draws):
    for p, draws in zip((P, P_FRAC), dependent_draws):
        joint = (draws.astype(float).T @ draws.astype(float)) / DRAWS
        bound = np.outer(p, p)
        se = np.sqrt(bound * (1 - bound) / DRAWS)
        off = ~np.eye(p.size, dtype=bool)
        assert np.all(joint[off] <= bound[off] + 3 * se[off] + 1e-12)


def test_rounding_is_deterministic_given_the_generator():
    for fn in (dependent_round, systematic_round):
        a = [fn(P_FRAC, np.random.default_rng(7)).tolist() for _ in range(3)]
        assert a[0] == a[1] == a[2]
