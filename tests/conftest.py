"""Test-suite settings. Under CI (``CI`` set) hypothesis draws a fixed sequence of examples, so a
run on a clean machine checks exactly what a developer's run with ``CI=1`` checked."""

import os

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def strategy_params(tmp_path):
    """``f(name, d)``: the parameters a registered provider strategy needs to be built for contexts of d entries
    (none, but the ``policy`` strategy's file: a small saved NumPy MLP, written to the test's tmp_path)."""

    def params(name: str, d: int) -> dict:
        if name != "policy":
            return {}
        from agents.policy import OBS_EXTRA, NumpyPolicy, default_normalisation

        rng = np.random.default_rng(d)
        policy = NumpyPolicy([rng.normal(0, 0.5, (3, d + OBS_EXTRA)), rng.normal(0, 0.1, (1, 3))],
                             [np.zeros(3), np.array([0.05])], "tanh", *default_normalisation(0.0, 1.0, d))
        return {"path": str(policy.save(tmp_path / f"policy-{d}.npz"))}

    return params
