"""Attackers in the ad market: the search over report functions scores exactly what ``play_ads`` gives, finds the
exaggeration that pays without payments and nothing better than the truth under MOSAIC's offset payment; the
attack command and the verdict table's ad rows judge on held-out seeds; PPO trains on the ad env and its policy
plays as ``ad-policy``."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from market.lab.attackers import AttackSpec
from market.lab.deviation import play_ads
from market.runtime.config import ConfigError

pytest.importorskip("optuna")

from market.lab import verdicts_attackers as va  # noqa: E402
from market.lab.attack import run_attack  # noqa: E402
from market.lab.cli import main  # noqa: E402
from market.lab.search import search  # noqa: E402

TINY = {"train_seeds": 2, "test_seeds": 3, "rounds": 20, "trials": 4, "ppo_steps": 0}


def _quiet(what: str, done: int, total: int) -> None:
    pass


def test_search_scores_play_ads_exactly_and_finds_exaggeration_without_payments() -> None:
    spec = AttackSpec("ads", ("mechanism.name=mosaic-nopay",), "advertiser-0", (0, 1), 20)
    attacker = search(spec, _quiet, trials=6)
    assert attacker.strategy == "reportfunc" and attacker.train_gain > 0.5
    assert attacker.details["family"] in ("constant", "affine", "time", "threshold")
    sets = [*spec.overrides, *attacker.overrides]
    gains = [(play_ads("mosaic-nopay", "reportfunc", s, 20, sets).utilities["advertiser-0"]
              - play_ads("mosaic-nopay", "truthful", s, 20, sets).utilities["advertiser-0"]) / 20 for s in (0, 1)]
    assert attacker.train_gain == pytest.approx(float(np.mean(gains)), abs=1e-12)


def test_search_under_mosaic_finds_nothing_better_than_the_truth() -> None:
    """MOSAIC with offset payments is truthful in expectation on a fixed candidate set: every trial of a constant
    factor other than 1 loses on the training seeds, so the best is the enqueued truthful trial."""
    spec = AttackSpec("ads", ("mechanism.name=mosaic",), "advertiser-0", (0, 1), 20)
    attacker = search(spec, _quiet, families=("constant",), trials=8)
    assert attacker.details["theta"] == [1.0] and attacker.train_gain == 0.0
    assert all(v < 0 for v in attacker.details["trace"][1:])


def test_search_refuses_provider_families_and_other_deviators_in_the_ad_market() -> None:
    spec = AttackSpec("ads", ("mechanism.name=mosaic",), "advertiser-0", (0,), 10)
    with pytest.raises(ConfigError, match=r"--family: got 'multiplier', expected one of \['affine', 'constant'"):
        search(spec, _quiet, families=("multiplier",))
    with pytest.raises(ConfigError, match="--deviator: got 'advertiser-1'"):
        search(AttackSpec("ads", (), "advertiser-1", (0,), 10), _quiet, trials=1)


def test_an_ad_search_row_is_what_its_command_computes(tmp_path) -> None:
    row = va._learned_row("no payments", "mosaic-nopay", "search", TINY, 1, "ads")
    assert row["trained_on"] == "0..1" and row["seeds"] == "1000..1002" and row["verdict"] == "profitable"
    assert row["command"].startswith("llm-market attack ads --method search") and row["found"].startswith("family=")
    args = shlex.split(row["command"].replace("--out DIR", f"--out {tmp_path}"))
    assert main([*args[1:], "--workers", "1"]) == 0
    result = json.loads((tmp_path / "attack.json").read_text())
    assert result["deviator"] == "advertiser-0" and result["attacker"]["strategy"] == "reportfunc"
    held = result["held_out"]
    assert held["gain"] == pytest.approx(row["gain"], abs=1e-12)
    assert (held["ci_low"], held["ci_high"]) == pytest.approx((row["ci_low"], row["ci_high"]), abs=1e-12)


def test_the_attack_judges_on_held_out_seeds_with_the_deviation_experiment() -> None:
    result = run_attack("ads", "search", overrides=["mechanism.name=mosaic-nopay"], train_seeds=2, test_seeds=3,
                        budget=3, rounds=10, families=("constant",))
    assert result["held_out_seeds"] == [1000, 1001, 1002] and result["deviator"] == "advertiser-0"
    theta = result["attacker"]["details"]["theta"]
    sets = ["mechanism.name=mosaic-nopay", *result["attacker"]["overrides"]]
    gains = [play_ads("mosaic-nopay", "reportfunc", s, 10, sets).utilities["advertiser-0"]
             - play_ads("mosaic-nopay", "truthful", s, 10).utilities["advertiser-0"] for s in (1000, 1001, 1002)]
    assert result["held_out"]["gains"] == pytest.approx([g / 10 for g in gains], abs=1e-12)
    assert len(theta) == 1


@pytest.mark.slow
def test_ppo_trains_on_the_ad_env_and_its_policy_plays_as_ad_policy(tmp_path) -> None:
    """One PPO rollout (2,048 auctions, about 20 s with torch's import): the exported policy, loaded from its file
    as the platform loads it, gains what the attacker reports on the training seeds."""
    pytest.importorskip("stable_baselines3")
    from market.lab.rl.ppo import ppo_attacker

    spec = AttackSpec("ads", ("mechanism.name=mosaic-nopay", "market.queries=10"), "advertiser-0", (0, 1), 10,
                      budget=512, out_dir=str(tmp_path))
    attacker = ppo_attacker(spec, _quiet)
    assert attacker.strategy == "ad-policy" and (tmp_path / "policy.npz").is_file()
    assert attacker.overrides == (f"strategies.params.ad-policy.path={(tmp_path / 'policy.npz').resolve()}",)
    sets = [*spec.overrides, *attacker.overrides]
    gains = [(play_ads("mosaic-nopay", "ad-policy", s, 10, sets).utilities["advertiser-0"]
              - play_ads("mosaic-nopay", "truthful", s, 10, sets).utilities["advertiser-0"]) / 10 for s in (0, 1)]
    assert attacker.train_gain == pytest.approx(float(np.mean(gains)), abs=1e-12)
    assert attacker.details["train_gains"] == [round(g, 6) for g in gains]


def test_the_ad_rows_are_the_utility_loss_rows_mechanisms() -> None:
    """The learned attackers' ad rows sit next to the utility loss's: the same labels for the same mechanisms; each
    run asks all 50 queries at least once."""
    from market.lab.best_response import VERDICT_ADS

    assert va.LEARNED_ADS == VERDICT_ADS
    assert set(va.AD_SIZES) == set(va.SIZES) and all(s["rounds"] >= 50 for s in va.AD_SIZES.values())
