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
    (none, but the ``policy`` strategy's file: a small saved NumPy MLP, written to the test's tmp_path; the ad
    strategy ``ad-policy`` likewise, d unused)."""

    def params(name: str, d: int) -> dict:
        if name == "ad-policy":  # an advertiser's report policy: the ad env's observation, action "factor"
            from agents.ad_reportfuncs import AD_OBS_DIM, ad_normalisation
            from agents.policy import AD_ACTION, NumpyPolicy

            rng = np.random.default_rng(AD_OBS_DIM)
            policy = NumpyPolicy([rng.normal(0, 0.5, (3, AD_OBS_DIM)), rng.normal(0, 0.1, (1, 3))],
                                 [np.zeros(3), np.array([0.05])], "tanh", *ad_normalisation(), AD_ACTION, 40)
            return {"path": str(policy.save(tmp_path / "ad-policy.npz"))}
        if name != "policy":
            return {}
        from agents.policy import OBS_EXTRA, NumpyPolicy, default_normalisation

        rng = np.random.default_rng(d)
        policy = NumpyPolicy([rng.normal(0, 0.5, (3, d + OBS_EXTRA)), rng.normal(0, 0.1, (1, 3))],
                             [np.zeros(3), np.array([0.05])], "tanh", *default_normalisation(0.0, 1.0, d))
        return {"path": str(policy.save(tmp_path / f"policy-{d}.npz"))}

    return params


@pytest.fixture(scope="session")
def quick_verdicts(tmp_path_factory):
    """The directory of one ``verdicts --quick`` run (no second generation), computed once for the whole test run:
    the golden test compares its table and the verdict page draws it. Under pytest-xdist the processes share it
    through a lock in the run's common temporary directory: the first to come computes, the others wait and read."""
    import fcntl

    from market.lab import verdicts

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out, done = root / "quick-verdicts", root / "quick-verdicts.done"
    with open(root / "quick-verdicts.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            verdicts.run(out, quick=True, workers=2)
            done.write_text("ok")
    return out
