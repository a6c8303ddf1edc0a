"""The ``ppo`` attack method: under pay-as-bid the trained attacker gains on held-out seeds, judged by the
deviation experiment against its truthful twin; without the [rl] extra it says which extra it needs."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from market.lab.attackers import ATTACK_METHODS, AttackSpec


def test_missing_extra_names_it(monkeypatch) -> None:
    from market.lab.rl import ppo

    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    with pytest.raises(ImportError, match=r"attack --method ppo needs the \[rl\] extra"):
        ppo.ppo_attacker(AttackSpec("quickstart"), lambda *_: None)


@pytest.mark.slow
def test_ppo_attacker_gains_under_pay_as_bid_on_held_out_seeds(tmp_path) -> None:
    pytest.importorskip("stable_baselines3")
    from market.lab.deviation import deviate

    spec = AttackSpec("quickstart", ("mechanism.name=pay-as-bid",), train_seeds=(100, 101, 102, 103), rounds=200,
                      budget=8192, out_dir=str(tmp_path))
    seen: list[int] = []
    attacker = ATTACK_METHODS.build("ppo", spec, lambda what, done, total: seen.append(done))
    assert attacker.method == "ppo" and attacker.strategy == "policy" and attacker.train_gain > 0
    assert seen and seen[-1] == 8192 and (tmp_path / "policy.npz").is_file()
    # held-out seeds 0..5 (training used 100..103), through the deviation experiment
    verdict = deviate("quickstart", "policy", seeds=6, rounds=200, engine="fast",
                      overrides=[*spec.overrides, *attacker.overrides])
    assert verdict.ci_low > 0, verdict
    assert np.isfinite(verdict.gain)
