"""The hf backend on a tiny Llama built here (8-token vocabulary, replies of at most 3 tokens: 400 replies).

Small enough to enumerate every reply, so the claims are exact: scored probabilities sum to 1 (the length
rule gives a proper distribution), the sampler draws from that same distribution (chi-square), the log-prob
recorded while sampling equals the scored one, a batch scores as its members one by one, and cache hits
return the stored floats.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
stats = pytest.importorskip("scipy.stats")

from market.core.lm.base import Prompt  # noqa: E402
from market.lm.base import (  # noqa: E402
    LMExtraMissing,
    PromptRenderer,
    TokenLM,
    check_same_tokenizer,
    count_mentions,
    require_lm_extra,
)
from market.lm.cache import LogprobCache  # noqa: E402
from market.lm.hf import HFTokenLM  # noqa: E402

VOCAB = ["<eos>", "<unk>", "user", "assistant", "system", "Acme", "shoe", "run"]
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant{% endif %}"
)
T = 3
QUERY = "which shoe to run in"
BRANDS = ("Acme", "Zeta")


def tiny_tokenizer(vocab: list[str] = VOCAB) -> object:
    tok = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>")
    )
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok.decoder = tokenizers.decoders.WordPiece(prefix="##")  # joins words with spaces
    wrapped = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>")
    wrapped.chat_template = TEMPLATE
    return wrapped


def tiny_model(vocab_size: int = len(VOCAB), seed: int = 0) -> object:
    config = transformers.LlamaConfig(
        vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
        bos_token_id=None, eos_token_id=0, pad_token_id=0, tie_word_embeddings=False,
    )
    model = transformers.LlamaForCausalLM(config)
    rng = np.random.default_rng(seed)
    with torch.no_grad():  # weights from a seeded NumPy stream, large enough for a far-from-uniform law
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.from_numpy(rng.normal(0.0, 0.6, tuple(p.shape))).float())
    return model


@pytest.fixture(scope="module")
def lm() -> HFTokenLM:
    return HFTokenLM(tiny_model(), tiny_tokenizer(), name="tiny", max_new_tokens=T).bind(
        PromptRenderer(QUERY, BRANDS)
    )


def all_replies(lm: HFTokenLM) -> list[tuple[int, ...]]:
    tokens = [t for t in range(len(VOCAB)) if t != lm.eos_id]
    return [r for n in range(T + 1) for r in itertools.product(tokens, repeat=n)]


PROMPTS = [Prompt(QUERY), Prompt(QUERY, advertise=0), Prompt(QUERY, mention=(0, 0, 1))]


def test_is_a_token_lm_with_dtype_in_its_name(lm: HFTokenLM) -> None:
    assert isinstance(lm, TokenLM)
    assert lm.name == "tiny@float32" and lm.eos_id == 0 and lm.max_new_tokens == T


@pytest.mark.parametrize("prompt", PROMPTS)
def test_every_reply_enumerated_sums_to_one(lm: HFTokenLM, prompt: Prompt) -> None:
    replies = all_replies(lm)
    assert len(replies) == 1 + 7 + 49 + 343
    lp = lm.logprob_many(replies, prompt)
    assert np.all(np.isfinite(lp))
    assert abs(np.exp(lp).sum() - 1.0) < 1e-5


def test_roles_condition_the_reply(lm: HFTokenLM) -> None:
    replies = all_replies(lm)
    a, b = (lm.logprob_many(replies, p) for p in PROMPTS[:2])
    assert np.max(np.abs(a - b)) > 1e-3


def test_sampled_frequencies_match_scored_probabilities(lm: HFTokenLM) -> None:
    """Chi-square of 20,000 draws against the enumerated law (cells of expected count < 5 pooled);
    a sampler that truncated the vocabulary or used another temperature fails at this size."""
    prompt = PROMPTS[2]
    replies = all_replies(lm)
    p = np.exp(lm.logprob_many(replies, prompt))
    draws = lm.sample_many(prompt, 20_000, np.random.default_rng(7))
    index = {r: k for k, r in enumerate(replies)}
    counts = np.bincount([index[d] for d in draws], minlength=len(replies))
    expected = p / p.sum() * len(draws)
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    assert big.sum() > 50
    assert stats.chisquare(obs, exp).pvalue > 1e-4


def test_recorded_logprob_while_sampling_equals_scored(lm: HFTokenLM) -> None:
    for prompt in PROMPTS:
        replies, recorded = lm.sample_scored(prompt, 100, np.random.default_rng(1))
        lm.cache.clear()
        scored = lm.logprob_many(replies, prompt)
        assert np.max(np.abs(recorded - scored)) < 1e-5
        assert any(len(r) == T for r in replies) and any(len(r) < T for r in replies)


def test_truncation_rule_forced_eos_adds_zero(lm: HFTokenLM) -> None:
    """A full-length reply's probability is the total of all replies it starts (EOS forced with prob 1)."""
    prompt = PROMPTS[0]
    prefix = (5, 6)
    longer = [prefix + (t,) for t in range(1, len(VOCAB))]
    lp_prefix_any = np.logaddexp.reduce(lm.logprob_many([prefix] + longer, prompt))
    # P(reply starts with prefix) = P(prefix then EOS) + sum over the forced-EOS continuations
    first_two = lm.logprob_many([(5,)], prompt)  # sanity: a shorter reply is a different event
    assert np.isfinite(first_two[0])
    lp_tokens = _token_logprobs_sum(lm, prompt, prefix)
    assert abs(lp_prefix_any - lp_tokens) < 1e-5


def _token_logprobs_sum(lm: HFTokenLM, prompt: Prompt, prefix: tuple[int, ...]) -> float:
    """log P(the first tokens are ``prefix``), from a plain forward of the untruncated model."""
    ids = list(lm.prompt_ids(prompt)) + list(prefix)
    with torch.no_grad():
        logits = lm._s.model(torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    n = len(lm.prompt_ids(prompt))
    return float(sum(lp[n - 1 + j, t] for j, t in enumerate(prefix)))


def test_outside_support_is_minus_inf(lm: HFTokenLM) -> None:
    lp = lm.logprob_many([(5, 0, 6), (5, 5, 5, 5), (99,), ()], PROMPTS[0])
    assert np.isneginf(lp[:3]).all() and np.isfinite(lp[3])
    with pytest.raises(ValueError, match="non-negative token ids"):
        lm.logprob_many([(-1,)], PROMPTS[0])


def test_batch_equals_single(lm: HFTokenLM) -> None:
    replies = all_replies(lm)[::67]
    lm.cache.clear()
    batch = lm.logprob_many(replies, PROMPTS[1])
    single = []
    for r in replies:
        lm.cache.clear()
        single.append(lm.logprob(r, PROMPTS[1]))
    assert np.max(np.abs(batch - np.array(single))) < 1e-5


def test_cache_hits_return_identical_arrays(lm: HFTokenLM) -> None:
    replies = all_replies(lm)[:50] + all_replies(lm)[:5]  # duplicates scored once
    lm.cache.clear()
    first = lm.logprob_many(replies, PROMPTS[2])
    assert len(lm.cache) == 50 and lm.cache.hits == 0
    again = lm.logprob_many(replies, PROMPTS[2])
    assert np.array_equal(first, again) and lm.cache.hits == len(replies)
    other = lm.logprob_many(replies, PROMPTS[0])  # another prompt is another key
    assert not np.array_equal(first, other) and len(lm.cache) == 100


def test_cache_is_bounded() -> None:
    c = LogprobCache(max_entries=2)
    for k in range(3):
        c.put("m", (1,), (k,), -float(k))
    assert len(c) == 2 and c.get("m", (1,), (0,)) is None and c.get("m", (1,), (2,)) == -2.0
    with pytest.raises(ValueError, match="max_entries"):
        LogprobCache(0)


def test_seed_gives_same_replies_and_generator_advances_by_a_fixed_amount(lm: HFTokenLM) -> None:
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    a = lm.sample_many(PROMPTS[0], 64, r1)
    b = lm.sample_many(PROMPTS[0], 64, r2)
    assert a == b
    r3 = np.random.default_rng(3)
    r3.random((64, T))
    assert r1.random() == r3.random()  # m x max_new_tokens uniforms, whatever the replies


def test_shared_weights_and_cache_across_bindings(lm: HFTokenLM) -> None:
    other = lm.bind(PromptRenderer("another query", BRANDS))
    assert other.cache is lm.cache and other.tokenizer_id == lm.tokenizer_id
    assert other.prompt_ids(Prompt("another query")) != lm.prompt_ids(Prompt(QUERY))
    with pytest.raises(ValueError, match="not this renderer's query"):
        other.prompt_ids(Prompt(QUERY))
    unbound = HFTokenLM(lm._s.model, lm._s.tokenizer, name="tiny")
    with pytest.raises(ValueError, match="not bound to an ad query"):
        unbound.sample_many(Prompt(QUERY), 1, np.random.default_rng(0))


def test_mixing_tokenizers_is_refused(lm: HFTokenLM) -> None:
    vocab2 = VOCAB[:-1] + ["walk"]
    lm2 = HFTokenLM(tiny_model(len(vocab2), seed=1), tiny_tokenizer(vocab2), name="tiny2")
    same = HFTokenLM(tiny_model(seed=2), tiny_tokenizer(), name="tiny3")
    assert check_same_tokenizer([lm, same]) == lm.tokenizer_id
    with pytest.raises(ValueError, match=r"different tokenizers.*tiny@float32.*tiny2@float32"):
        check_same_tokenizer([lm, lm2])


def test_renderer_roles() -> None:
    r = PromptRenderer(QUERY, BRANDS)
    assert r.messages(Prompt(QUERY)) == [{"role": "user", "content": QUERY}]
    adv = r.messages(Prompt(QUERY, advertise=1))
    assert adv[0]["role"] == "system" and "advertising Zeta" in adv[0]["content"]
    con = r.messages(Prompt(QUERY, mention=(0, 0, 1)))
    assert "try to mention Acme, Acme, Zeta" in con[0]["content"]
    with pytest.raises(ValueError, match="brand index 2 out of range"):
        r.messages(Prompt(QUERY, advertise=2))


def test_mentions_are_whole_word_case_insensitive() -> None:
    assert count_mentions("ACME, acme! Acmes and Acme.", "Acme") == 3
    assert count_mentions("New Balance shoes", "new balance") == 1


def test_missing_extra_names_it() -> None:
    with pytest.raises(LMExtraMissing, match=r"needs the \[lm\] extra \(missing: no_such_module_xyz\)"):
        require_lm_extra("market.lm=hf", ("no_such_module_xyz",))


def test_sampling_seeds_the_cache_so_the_drawing_prompt_is_never_scored_again() -> None:
    """An ad auction's work: sampling under the proposal stores each recorded log-prob, so scoring under that
    prompt is a cache hit returning exactly the recorded float (the law the draw inverted); the reference is
    scored in one padded forward. A value already cached stays (the first computed wins)."""
    model = HFTokenLM(tiny_model(), tiny_tokenizer(), name="tiny", max_new_tokens=T).bind(
        PromptRenderer(QUERY, BRANDS))
    proposal, ref = PROMPTS[2], PROMPTS[0]
    replies = model.sample_many(proposal, 40, np.random.default_rng(5))
    model.cache.clear()
    old = replies[0]
    known = model.logprob(old, proposal)  # cached before the same draw is made again
    stats = model.stats
    before = stats.as_dict()
    again, recorded = model.sample_scored(proposal, 40, np.random.default_rng(5))
    assert again == replies
    length = {r: len(r) + (len(r) < T) for r in replies}  # tokens incl. a sampled EOS
    assert stats.prompt_forwards == before["prompt_forwards"] + 1
    assert stats.score_forwards == before["score_forwards"]
    assert stats.sampled_tokens == before["sampled_tokens"] + sum(length[r] for r in replies)
    assert stats.decode_steps - before["decode_steps"] <= T - 1
    assert stats.seeded - before["seeded"] == len(set(replies)) - 1  # the known reply kept its value
    hits = model.cache.hits
    log_gen = model.logprob_many(replies, proposal)
    assert model.cache.hits == hits + len(replies) and stats.score_forwards == before["score_forwards"]
    # a reply drawn twice keeps its first draw's value (rows of one batch may round differently)
    first = {r: recorded[replies.index(r)] for r in replies}
    expected = np.array([known if r == old else first[r] for r in replies])
    assert np.array_equal(log_gen, expected)
    assert np.max(np.abs(log_gen - recorded)) < 1e-5
    model.logprob_many(replies, ref)
    assert stats.score_forwards == before["score_forwards"] + 1
    assert stats.scored_by_role["reference"] == sum(length[r] for r in set(replies))
