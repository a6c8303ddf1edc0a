"""``llm-market bench integrity`` and ``bench env``: every variant is timed and the ratios are given."""

from __future__ import annotations

import pytest

from market.lab.bench import BENCHMARKS, bench_integrity


def test_integrity_bench_times_every_variant_and_reports_ratios():
    assert "integrity" in BENCHMARKS
    out = bench_integrity(rounds=20, repeats=1)
    assert out["benchmark"] == "integrity" and out["rounds"] == 20 and out["log_bytes"] > 0
    for kind in ("wall_best", "cpu_best"):
        seconds = out[kind]["seconds"]
        assert set(seconds) == {"chain_fsync", "chain_no_fsync", "no_chain_no_fsync", "no_log"}
        assert all(0 < s < 60 for s in seconds.values())
        ratio = seconds["chain_fsync"] / seconds["no_chain_no_fsync"]
        assert abs(out[kind]["chain_fsync_over_no_chain"] - ratio) < 0.01 * ratio


def test_bench_env_reports_both_engines_against_their_baselines() -> None:
    from market.lab.bench import bench_env

    out = bench_env(steps=200, rounds=20, batches=(2, 4), vector_rounds=10, ppo_steps=0)
    assert out["benchmark"] == "env" and out["market"]["rounds"] == 20
    for mechanism in ("myerson", "pay-as-bid", "rosa-trcm-ucb"):
        fast = out["fast"][mechanism]
        assert fast["env_steps_per_s"] > 0 and fast["mechanism_rounds_per_s"] > 0 and fast["env_steps_per_cpu_s"] > 0
    vector = out["vector"]
    assert set(vector["batches"]) == {"2", "4"} and all(v["batched"] for v in vector["batches"].values())
    assert vector["best_steps_per_s"] == max(v["steps_per_s"] for v in vector["batches"].values())
    assert out["vector_over_fast"] == pytest.approx(
        vector["best_steps_per_s"] / out["fast"]["rosa-trcm-ucb"]["env_steps_per_s"], abs=0.01)
    assert out["ppo"] == {"skipped": "ppo_steps = 0"}
    m = out["market"]
    assert m["market_env_over_run"] == pytest.approx(m["market_env_rounds_per_s"] / m["run_rounds_per_s"], rel=0.05)


@pytest.mark.slow
def test_bench_env_times_ppo_on_both_envs() -> None:
    pytest.importorskip("stable_baselines3")
    from market.lab.bench import _ppo_rate

    out = _ppo_rate(2048)
    assert out["vectorised"]["n_envs"] == 32 and out["dummy"]["n_envs"] == 4
    assert all(0 < out[k]["learn_seconds"] <= out[k]["seconds"] for k in ("vectorised", "dummy"))
    assert out["dummy_over_vectorised"] == pytest.approx(out["dummy"]["seconds"] / out["vectorised"]["seconds"],
                                                         abs=0.01)
