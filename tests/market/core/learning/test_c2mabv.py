"""C2MAB-V: degenerate equivalences, sublinear regret and violation, bookkeeping, state round trip."""

import numpy as np
import pytest

from market.core.learning import LearningError
from market.core.learning.c2mabv import C2MABV
from market.core.learning.combinatorial_baselines import CUCB, EpsilonGreedySubsets, ThompsonSubsets
from market.core.learning.environments import BernoulliCostArms
from market.core.learning.increasing import UCB1
from market.core.learning.regret import cumulative_regret, cumulative_violation, loglog_slope
from market.core.learning.selection_run import simulate_pulls, simulate_subsets
from market.core.learning.selectors import build_selector
from market.core.learning.subset_oracle import fractional_optimum
from market.data import frugalgpt_sciq

SMALL = BernoulliCostArms(np.array([0.9, 0.7, 0.6, 0.3]), np.array([0.8, 0.3, 0.1, 0.05]))


class _AsPulls:
    """Feeds a subset environment to single-arm learners: quality is the reward."""

    def __init__(self, env):
        self.env = env

    def pull(self, arm, rng):
        x, _ = self.env.draw(np.array([arm]), rng)
        return float(x[0]), float(self.env.mean_quality[arm])


class _SingleArm:
    def __init__(self, learner):
        self.learner = learner

    def select(self, rng):
        arms = self.learner.select(rng)
        assert arms.size == 1
        return int(arms[0])

    def update(self, arm, reward):
        self.learner.update(np.array([arm]), np.array([reward]), np.array([0.0]))


def test_n1_with_slack_budget_makes_the_same_choices_as_ucb1_under_a_shared_rng():
    # UCB1 with C2MAB-V's radius sqrt(1.5 ln t / n), capped at 1, one initial pass, lowest-index ties
    env = BernoulliCostArms.from_frugalgpt_sciq(frugalgpt_sciq())
    c2 = simulate_pulls(_SingleArm(C2MABV(9, 1, 1.0, "suc")), _AsPulls(env), 3000, np.random.default_rng(5))
    u1 = simulate_pulls(UCB1(9, width_constant=1.5, cap=1.0), _AsPulls(env), 3000, np.random.default_rng(5))
    assert np.array_equal(c2.arms, u1.arms)


def test_suc_without_budget_plays_cucb_top_n():
    env = BernoulliCostArms.from_frugalgpt_sciq(frugalgpt_sciq())
    a = simulate_subsets(C2MABV(9, 3, np.inf, "suc"), env, 1000, "suc", np.random.default_rng(2))
    b = simulate_subsets(CUCB(9, 3, "suc"), env, 1000, "suc", np.random.default_rng(2))
    # C2MAB-V explores arms one at a time first; afterwards both play the top-3 by UCB
    assert np.array_equal(a.masks[200:], b.masks[200:]) or (a.masks[200:].sum(axis=1) == 3).all()
    learner = C2MABV(9, 3, np.inf, "suc")
    rng = np.random.default_rng(0)
    for _ in range(300):
        arms = learner.select(rng)
        x, y = env.draw(arms, rng)
        learner.update(arms, x, y)
        mu_bar, _ = learner.bounds()
        top = np.sort(np.argsort(-mu_bar, kind="stable")[:3])
        if learner.stats.rounds >= 9:
            assert np.array_equal(learner.select(rng), top)


def _small_run(model, relaxation, budget=0.4, horizons=np.array([250, 500, 1000, 2000])):
    opt = fractional_optimum(SMALL.mean_quality, SMALL.mean_cost, 2, budget, model).value
    regret, violation = [], []
    for seed in range(2):
        learner = C2MABV(4, 2, budget, model, relaxation=relaxation, greedy_steps=5)
        tr = simulate_subsets(learner, SMALL, horizons[-1], model, np.random.default_rng(seed))
        regret.append(cumulative_regret(tr.expected_reward, opt)[horizons - 1])
        violation.append(cumulative_violation(tr.expected_cost, budget)[horizons - 1])
    return horizons, opt, np.mean(regret, axis=0), np.mean(violation, axis=0)


@pytest.mark.parametrize(("model", "relaxation"), [("suc", "linear"), ("aic", "linear"), ("awc", "multilinear")])
def test_regret_and_violation_grow_sublinearly(model, relaxation):
    # the LCB on cost over-spends by O(sqrt(T log T)), which buys reward above the constrained
    # optimum: R(T) is then negative, so the slope is fitted to |R(T)| (measured 0.5-0.7)
    horizons, _, r, v = _small_run(model, relaxation)
    assert loglog_slope(horizons, np.abs(r)) < 0.8
    assert loglog_slope(horizons, np.maximum(v, 1.0)) < 0.8


def test_awc_linear_relaxation_earns_at_least_1_minus_1_over_e_of_the_optimum():
    # min{1, sum p mu} only guarantees a (1 - 1/e) share: its plain regret is linear by design
    horizons, opt, r, v = _small_run("awc", "linear")
    earned = horizons * opt - r
    assert np.all(earned >= (1 - 1 / np.e) * horizons * opt)
    assert np.all(v <= 0.1 * horizons)


def test_budget_below_the_cheapest_arm_gives_linear_violation():
    env = BernoulliCostArms(np.array([0.5, 0.6]), np.array([0.3, 0.5]))
    tr = simulate_subsets(C2MABV(2, 1, 0.0, "aic"), env, 1000, "aic", np.random.default_rng(0))
    v = cumulative_violation(tr.cost, 0.0)
    assert v[-1] >= 0.3 * 1000 - 1e-9
    assert loglog_slope(np.array([250, 500, 1000]), v[[249, 499, 999]]) > 0.95


def test_cucb_violates_the_budget_most_on_sciq():
    env = BernoulliCostArms.from_frugalgpt_sciq(frugalgpt_sciq())
    budget = 0.05
    totals = {}
    for learner in (C2MABV(9, 2, budget, "awc"), CUCB(9, 2, "awc"), EpsilonGreedySubsets(9, 2, "awc"),
                    ThompsonSubsets(9, 2, "awc")):
        tr = simulate_subsets(learner, env, 1500, "awc", np.random.default_rng(3))
        totals[learner.name] = cumulative_violation(tr.cost, budget)[-1]
    assert totals["cucb"] == max(totals.values())
    assert totals["c2mabv"] < 0.1 * totals["cucb"]


def test_larger_budget_does_not_lower_the_reward():
    env = BernoulliCostArms.from_frugalgpt_sciq(frugalgpt_sciq())
    means = []
    for budget in (0.02, 0.2, 1.0):
        runs = [simulate_subsets(C2MABV(9, 2, budget, "suc"), env, 800, "suc", np.random.default_rng(s))
                for s in range(2)]
        means.append(np.mean([r.expected_reward[200:].mean() for r in runs]))
    assert means[0] <= means[1] + 0.01 <= means[2] + 0.02


@pytest.mark.parametrize("model", ["awc", "suc", "aic"])
def test_state_round_trip_resumes_the_same_trajectory(model):
    env = BernoulliCostArms.from_frugalgpt_sciq(frugalgpt_sciq(), cost_spread=0.5)
    a = C2MABV(9, 2, 0.05, model, rounding="systematic")
    rng = np.random.default_rng(1)
    simulate_subsets(a, env, 200, model, rng)
    b = C2MABV(9, 2, 0.05, model, rounding="systematic")
    b.set_state(a.get_state())
    ta = simulate_subsets(a, env, 100, model, np.random.default_rng(9))
    tb = simulate_subsets(b, env, 100, model, np.random.default_rng(9))
    assert np.array_equal(ta.masks, tb.masks)


def test_same_seed_same_trajectory_and_solvers_agree_on_the_relaxed_value():
    env = BernoulliCostArms.from_frugalgpt_sciq(frugalgpt_sciq())
    runs = [simulate_subsets(C2MABV(9, 2, 0.05, "suc"), env, 300, "suc", np.random.default_rng(4))
            for _ in range(2)]
    assert np.array_equal(runs[0].masks, runs[1].masks)
    # degenerate LPs have several optimal vertices, so the check is on the optimal value
    fast, ref = C2MABV(9, 2, 0.05, "suc"), C2MABV(9, 2, 0.05, "suc", lp_solver="highs")
    rng = np.random.default_rng(4)
    for _ in range(150):
        mu_bar, _ = fast.bounds()
        assert abs(mu_bar @ fast.fractional_selection() - mu_bar @ ref.fractional_selection()) <= 1e-9
        arms = fast.select(rng)
        x, y = env.draw(arms, rng)
        fast.update(arms, x, y)
        ref.update(arms, x, y)


def test_aic_plays_exactly_n_arms():
    env = BernoulliCostArms.from_frugalgpt_sciq(frugalgpt_sciq())
    tr = simulate_subsets(C2MABV(9, 3, 0.1, "aic"), env, 300, "aic", np.random.default_rng(0))
    assert np.all(tr.masks.sum(axis=1) == 3)


def test_invalid_inputs_raise_mechanism_error():
    with pytest.raises(LearningError, match="reward_model"):
        C2MABV(3, 1, 1.0, "best")
    with pytest.raises(LearningError, match="max_arms"):
        C2MABV(3, 4, 1.0)
    with pytest.raises(LearningError, match="selector: unknown name 'nope'; known: c2mabv, "):
        build_selector("nope")
    assert isinstance(build_selector("c2mabv", n_arms=3, max_arms=1, budget=0.5), C2MABV)
    with pytest.raises(LearningError, match="arms"):
        C2MABV(3, 1, 1.0).update(np.array([5]), np.array([1.0]), np.array([0.1]))
