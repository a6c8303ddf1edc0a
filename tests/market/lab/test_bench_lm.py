"""``llm-market bench lm`` on the tiny stand-in model: every figure present, positive and consistent."""

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from market.lab.bench import BENCHMARKS  # noqa: E402
from market.lab.bench_lm import bench_lm  # noqa: E402


def test_bench_lm_on_the_tiny_model_reports_speeds_and_an_auction() -> None:
    assert "lm" in BENCHMARKS.names()
    out = bench_lm(quick=True, model="tiny", m=4, threads=1)
    assert out["threads"] == 1
    assert out["model"] == "tiny-llama@float32" and out["max_new_tokens"] == 16 and out["m"] == 4
    for key in ("sample_tokens_per_s", "score_tokens_per_s", "seconds_per_ad_auction", "sample_tokens_per_cpu_s",
                "score_tokens_per_cpu_s", "cpu_seconds_per_ad_auction"):
        assert out[key] > 0
    # sampling once, at most one scoring forward per role but the proposal (cache hits); the tiny tokenizer reads
    # both brands as <unk>, so the two advertisers' prompts may be one key
    work = out["auction_work"]
    assert 2 <= work["prompt_forwards"] <= 1 + 3 and work["score_forwards"] <= 3
    assert "reference" in work["scored_by_role"] and "proposal" not in work["scored_by_role"]
    assert work["seeded"] >= 1 and work["sampled_tokens"] >= 4
    assert 1 <= out["mean_reply_tokens"] <= 16
    assert out["sampled_vs_scored_max_abs"] < 1e-4
