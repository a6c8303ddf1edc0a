"""Oracle mode of the C2MAB-V relaxation against the brute-force optima over all subsets (spec A.6.1)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.learning.knapsack_lp import box_cardinality_lp
from market.core.learning.relaxation import linear_lp, solve_relaxation
from market.core.learning.reward_models import expected_reward
from market.core.learning.rounding import dependent_round
from market.core.learning.subset_oracle import fractional_optimum, integer_optimum


@st.composite
def instances(draw, max_k=7):
    k = draw(st.integers(2, max_k))
    n = draw(st.integers(1, k))
    mu = np.array(draw(st.lists(st.floats(0.02, 0.98), min_size=k, max_size=k)))
    # costs on a 1e-4 grid: the HiGHS reference accepts violations near its 1e-9 tolerance
    cost = np.round(np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k))), 4)
    frac = draw(st.floats(0.0, 1.2))
    return mu, cost, n, frac * np.sort(cost)[-n:].sum()


def _rounded_mean(p, mu, model, draws, seed):
    rng = np.random.default_rng(seed)
    masks = np.zeros((draws, p.size), dtype=bool)
    for d in range(draws):
        masks[d, dependent_round(p, rng)] = True
    r = expected_reward(masks, mu, model)
    return r.mean(), r.std() / np.sqrt(draws)


@settings(max_examples=40, deadline=None)
@given(instances())
def test_suc_lp_equals_brute_force_fractional_optimum(inst):
    mu, cost, n, rho = inst
    sol = solve_relaxation(mu, cost, n, rho, "suc")
    opt = fractional_optimum(mu, cost, n, rho, "suc")
    assert abs(sol.value - opt.value) <= 1e-8
    assert sol.p.sum() <= n + 1e-9 and sol.p @ cost <= rho + 1e-9


@settings(max_examples=40, deadline=None)
@given(instances(), st.sampled_from([False, True]))
def test_lagrangian_solver_matches_highs_to_1e9(inst, exact):
    mu, cost, n, rho = inst
    values = np.log(mu) if exact else mu
    fast = linear_lp(values, cost, n, rho, exact_size=exact, solver="lagrangian")
    ref = linear_lp(values, cost, n, rho, exact_size=exact, solver="highs")
    assert (fast is None) == (ref is None)
    if fast is not None:
        assert abs(values @ fast - values @ ref) <= 1e-9
        assert fast @ cost <= rho + 1e-9


@settings(max_examples=15, deadline=None)
@given(instances(max_k=6))
def test_awc_rounded_reward_is_at_least_1_minus_1_over_e_of_fractional_optimum(inst):
    mu, cost, n, rho = inst
    sol = solve_relaxation(mu, cost, n, rho, "awc")
    opt = fractional_optimum(mu, cost, n, rho, "awc")
    assert sol.value >= opt.value - 1e-9  # min{1, sum p mu} is an upper bound
    mean, se = _rounded_mean(sol.p, mu, "awc", 3000, 0)
    bound = (1 - 1 / np.e) * opt.value
    # rewards lie in [0, 1]: at the bound the standard error is at most sqrt(b(1-b)/draws), which
    # covers rare inclusions the sample never hit
    se = max(se, np.sqrt(bound * (1 - bound) / 3000))
    assert mean >= bound - 3 * se - 1e-12


@settings(max_examples=15, deadline=None)
@given(instances(max_k=6))
def test_aic_rounded_reward_is_at_least_exp_of_lp_value(inst):
    mu, cost, n, rho = inst
    sol = solve_relaxation(mu, cost, n, rho, "aic")
    mean, se = _rounded_mean(sol.p, mu, "aic", 3000, 1)
    bound = np.exp(sol.value)
    se = max(se, np.sqrt(bound * (1 - bound) / 3000))
    assert mean >= bound - 3 * se - 1e-12
    if sol.feasible:
        assert sol.p @ cost <= rho + 1e-9
    assert abs(sol.p.sum() - min(n, mu.size)) <= 1e-9


def test_awc_ties_are_broken_towards_least_cost():
    mu = np.array([0.9, 0.6, 0.5])
    cost = np.array([1.0, 0.1, 0.1])
    sol = solve_relaxation(mu, cost, 2, 10.0, "awc")
    assert sol.value == 1.0
    assert sol.p @ cost <= 0.2 + 1e-9  # arms 1 and 2 reach sum mu >= 1 for 0.2


def test_multilinear_relaxation_is_feasible_and_beats_linear_on_awc_reward():
    mu = np.array([0.78, 0.77, 0.76, 0.75, 0.73, 0.44])
    cost = np.array([1.0, 0.33, 0.01, 0.02, 0.005, 0.002])
    lin = solve_relaxation(mu, cost, 2, 0.05, "awc")
    multi = solve_relaxation(mu, cost, 2, 0.05, "awc", relaxation="multilinear")
    assert multi.p.sum() <= 2 + 1e-9 and multi.p @ cost <= 0.05 + 1e-9
    r_lin = _rounded_mean(lin.p, mu, "awc", 2000, 2)[0]
    r_multi = _rounded_mean(multi.p, mu, "awc", 2000, 2)[0]
    assert r_multi >= r_lin


def test_integer_optimum_is_below_fractional_and_infeasible_aic_is_nan():
    mu = np.array([0.9, 0.5, 0.7])
    cost = np.array([0.8, 0.1, 0.3])
    for model in ("awc", "suc", "aic"):
        integer = integer_optimum(mu, cost, 2, 0.5, model).value
        assert integer <= fractional_optimum(mu, cost, 2, 0.5, model).value + 1e-12
    assert np.isnan(integer_optimum(mu, cost, 2, 0.3, "aic").value)
    assert box_cardinality_lp(np.log(mu), cost, 0.3, 2, exact_size=True) is None
