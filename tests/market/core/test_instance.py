"""MarketInstance: a procurement market as a floor-1 value; its mechanism spec builds fresh, equal mechanisms."""

from __future__ import annotations

import numpy as np

from market.core.instance import MarketInstance, MechanismSpec
from market.core.mechanisms.priors import UniformCost
from market.core.quality import LinearQuality


def test_each_build_is_a_fresh_mechanism_with_the_specs_parameters():
    spec = MechanismSpec("rosa-trcm-ucb", {"n": 2, "d": 3, "mu": 0.25, "priors": [UniformCost()] * 2})
    a, b = spec.build(), spec.build()
    assert a is not b and a.mu == b.mu == 0.25 and a.n == 2
    x, rng = np.ones(3) / 3, np.random.default_rng(0)
    out = a.select(x, np.array([0.2, 0.4]), rng)
    assert out.winner is not None
    a.update(x, out, 1.0)  # learning in one leaves the other untouched
    assert a.rule.learner.pulls.sum() == 1 and b.rule.learner.pulls.sum() == 0


def test_an_instance_holds_the_hidden_truth_and_the_rules():
    theta = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    inst = MarketInstance(("a", "b", "c"), (UniformCost(),) * 3, LinearQuality(theta), lambda rng: rng.uniform(0, 1, 2),
                          2, MechanismSpec("myerson", {"theta": theta, "priors": [UniformCost()] * 3}))
    assert inst.n == 3 and inst.user == "user"
    assert inst.quality.mean(np.array([1.0, 0.0])).tolist() == [1.0, 0.0, 0.5]
    assert inst.mechanism.build().n == inst.n and inst.contexts(np.random.default_rng(0)).shape == (inst.dim,)
