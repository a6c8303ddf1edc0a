"""What a real, token-level language model is to the market: ``TokenLM`` over one tokenizer's ids.

The simulated LMs of ``market.core.lm`` and a real model (``market.lm.hf``, a model server) play MOSAIC's
roles the same way: one model, conditioned on a different ``Prompt`` per role (reference, advertiser i's
prompted LLM, the context-aware proposal). For a real model the ``Prompt`` is rendered as chat messages by a
``PromptRenderer`` bound to one ad query's text and brand names, then turned into token ids by the model's own
chat template.

Replies are tuples of token ids of the model's tokenizer, never re-tokenised text: decoding then encoding
again does not give the same ids back, and the log-probs MOSAIC weighs must be those of the exact token
sequence that was sampled. Two models may only share a market if their ``tokenizer_id`` agree
(``check_same_tokenizer``), since otherwise the same ids mean different text.

Length rule (shared by sampling and scoring, so that the log-probs are those of the distribution sampled
from, and the reply space is a proper distribution): a reply holds at most ``max_new_tokens`` tokens and
never contains EOS. A reply of k < max_new_tokens tokens ended with a sampled EOS, and its log-prob includes
that EOS step. After max_new_tokens tokens EOS is forced: the truncated law puts probability 1 on it, so the
forced step adds log 1 = 0, and a full-length reply's probability is that of its tokens, the exact
probability under the untruncated model that a reply starts with them. A tuple that contains EOS, or is
longer than max_new_tokens, lies outside the support: log-prob -inf.

Heavy libraries (torch, transformers) are imported only by the backends that need them; ``require_lm_extra``
turns their absence into an error naming the [lm] extra.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from market.core.lm.base import Prompt

TokenReply = tuple[int, ...]

LM_EXTRA_HINT = "pip install 'llm-market-sim[lm]'"


class LMExtraMissing(ImportError):
    """A real-LM feature was asked for without the [lm] extra installed."""


def require_lm_extra(feature: str, modules: Sequence[str] = ("torch", "transformers")) -> None:
    """Raise ``LMExtraMissing`` naming ``feature`` and the [lm] extra if any of ``modules`` cannot be imported."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise LMExtraMissing(
            f"{feature} needs the [lm] extra (missing: {', '.join(missing)}): {LM_EXTRA_HINT}"
        )


def count_mentions(text: str, brand: str) -> int:
    """Whole-word, case-insensitive occurrences of ``brand`` in ``text`` (the mention rule for real replies)."""
    return len(re.findall(rf"(?<!\w){re.escape(brand)}(?!\w)", text, flags=re.IGNORECASE))


@dataclass(frozen=True, slots=True)
class PromptRenderer:
    """Chat messages for each MOSAIC role of one ad query: the query's text and its brands' names.

    reference (no mention, no advertise): the user's query alone.
    advertiser i (``prompt.advertise = i``): a system instruction to answer advertising brands[i].
    proposal (``prompt.mention`` non-empty): a system instruction to try to mention the listed brands, each
    named as many times as it is listed (its description pull), in the listed order.
    A prompt with both gets both instructions, advertising first.
    """

    query: str
    brands: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.query.strip():
            raise ValueError(f"PromptRenderer.query must be non-empty text, got {self.query!r}")
        for b in self.brands:
            if not b.strip():
                raise ValueError(f"PromptRenderer.brands must be non-empty names, got {self.brands!r}")

    def messages(self, prompt: Prompt) -> list[dict[str, str]]:
        """The chat messages (role, content) that condition a reply under ``prompt``."""
        if prompt.query != self.query:
            raise ValueError(
                f"prompt.query {prompt.query!r} is not this renderer's query {self.query!r}: bind the model to it"
            )
        for k in (*prompt.mention, *(() if prompt.advertise is None else (prompt.advertise,))):
            if not 0 <= k < len(self.brands):
                raise ValueError(f"prompt brand index {k} out of range: this query has {len(self.brands)} brands")
        instructions = []
        if prompt.advertise is not None:
            instructions.append(
                f"Answer the user's question while advertising {self.brands[prompt.advertise]}."
            )
        if prompt.mention:
            names = ", ".join(self.brands[k] for k in prompt.mention)
            instructions.append(f"Answer the user's question and try to mention {names}.")
        msgs = [{"role": "system", "content": " ".join(instructions)}] if instructions else []
        msgs.append({"role": "user", "content": self.query})
        return msgs


@runtime_checkable
class TokenLM(Protocol):
    """A real LM over one tokenizer's ids; satisfies ``market.core.lm.base.LanguageModel`` with token replies.

    name: model identity (part of cache keys, of the run's config and log).
    tokenizer_id: identity of the tokenizer (hash of its vocabulary and EOS); models that differ cannot mix.
    eos_id: the end-of-reply token (never inside a reply; see the module's length rule).
    max_new_tokens: most tokens in a reply; EOS is forced after that many.
    renderer: the ad query this model is bound to (None until ``bind``); sampling and scoring need one.
    Randomness comes only from ``rng``: a seed gives the same replies on any run of the same backend and dtype.
    """

    name: str
    tokenizer_id: str
    eos_id: int
    max_new_tokens: int
    renderer: PromptRenderer | None

    def bind(self, renderer: PromptRenderer) -> TokenLM:
        """The same model (weights, tokenizer, cache shared) rendering prompts of ``renderer``'s query."""
        ...

    def prompt_ids(self, prompt: Prompt) -> TokenReply:
        """Token ids of the rendered chat for ``prompt``, generation prompt included (what replies follow)."""
        ...

    def sample(self, prompt: Prompt, rng: np.random.Generator) -> TokenReply:
        """One reply at temperature 1 from the full softmax (no truncation of the vocabulary)."""
        ...

    def logprob(self, reply: TokenReply, prompt: Prompt) -> float:
        """Log-probability of ``reply`` under the distribution ``sample`` draws from (EOS step included)."""
        ...

    def sample_many(self, prompt: Prompt, m: int, rng: np.random.Generator) -> list[TokenReply]:
        """m i.i.d. replies (duplicates kept), drawn batched."""
        ...

    def logprob_many(self, replies: Sequence[TokenReply], prompt: Prompt) -> np.ndarray:
        """Log-probabilities of ``replies`` under ``prompt``, float64 shape (len(replies),), batched."""
        ...

    def decode(self, reply: TokenReply) -> str:
        """The reply's text (special tokens dropped)."""
        ...


def vocab_fingerprint(vocab: dict[str, int], eos_id: int) -> str:
    """A tokenizer's identity: sha256 of its (token, id) pairs in id order and its EOS id, 16 hex digits."""
    h = hashlib.sha256()
    for token, idx in sorted(vocab.items(), key=lambda kv: (kv[1], kv[0])):
        h.update(f"{idx}\t{token}\n".encode("utf-8", "surrogatepass"))
    h.update(f"eos\t{eos_id}\n".encode())
    return h.hexdigest()[:16]


def check_same_tokenizer(models: Sequence[TokenLM]) -> str:
    """The one ``tokenizer_id`` shared by ``models``; ValueError naming each model and its id if they differ.

    Replies travel as token ids, so a market whose roles use models with different tokenizers would score
    one model's ids as another's text.
    """
    if not models:
        raise ValueError("check_same_tokenizer: no models given")
    ids = {m.tokenizer_id for m in models}
    if len(ids) != 1:
        listing = ", ".join(f"{m.name} (tokenizer {m.tokenizer_id})" for m in models)
        raise ValueError(
            f"models with different tokenizers cannot share a market, since replies are token ids: {listing}; "
            "use models that share one tokenizer"
        )
    return ids.pop()


def check_reply(reply: object) -> TokenReply:
    """``reply`` as a tuple of ints; ValueError if it is not a sequence of non-negative ints."""
    if not isinstance(reply, (tuple, list)) or not all(
        isinstance(t, (int, np.integer)) and not isinstance(t, bool) and t >= 0 for t in reply
    ):
        raise ValueError(f"reply must be a tuple of non-negative token ids, got {reply!r:.80}")
    return tuple(int(t) for t in reply)


def in_support(reply: TokenReply, eos_id: int, max_new_tokens: int) -> bool:
    """Whether the length rule allows ``reply``: at most max_new_tokens tokens, none of them EOS."""
    return len(reply) <= max_new_tokens and eos_id not in reply
