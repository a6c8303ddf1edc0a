"""A token-level LM (``TokenLM``) over the bigram ``NGramLM``, so the real-LM wiring runs without torch.

The bigram model already samples by inverting the CDF of the full temperature-1 softmax with uniforms from the
caller's ``rng`` and scores exactly, EOS step included (forced after ``max_len`` tokens, with log-prob 0 in both
sampling and scoring): it is what a real backend must reproduce, with a vocabulary small enough to enumerate.
Token ids are the bigram model's: generic words first, then one token per brand; EOS is ``vocab``.

Brand tokens are placeholders bound to the query's brands: token ``n_generic + k`` decodes to brand k's name,
so every query's model shares one tokenizer (same generic words, same number of brands) and ``tokenizer_id``
says so; the platform refuses to mix models whose ``tokenizer_id`` differ.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from market.core.lm.base import Prompt
from market.core.lm.ngram import NGramLM

# Generic words of the simulated vocabulary, in token-id order (the first ``n_generic`` are used).
WORDS = ("the", "best", "choice", "is", "really", "good", "for", "you", "and", "also", "a", "great", "option")


class SimulatedTokenLM:
    """``NGramLM`` behind the token-level interface, bound to one query's brands (for ``decode``).

    lm: the bigram model (its decoding must be temperature 1 without truncation, scored as sampled, so the
    candidates come from exactly the distribution whose log-probs the mechanism uses).
    brands: the query's brand names, in the model's brand order.
    """

    def __init__(self, lm: NGramLM, brands: Sequence[str], *, name: str = "ngram-sim") -> None:
        d = lm.decoding
        if (d.temperature, d.top_p, d.score) != (1.0, 1.0, "sampled"):
            raise ValueError(f"lm.decoding: got {d}, expected temperature 1, top_p 1, score 'sampled' (exact "
                             "sampling: replies drawn from the distribution that is scored)")
        if len(brands) != lm.n_brands:
            raise ValueError(f"brands: got {len(brands)} names, expected one per brand token ({lm.n_brands})")
        if lm.n_generic > len(WORDS):
            raise ValueError(f"lm.n_generic: got {lm.n_generic}, expected at most {len(WORDS)} generic words")
        self.lm = lm
        self.brands = tuple(brands)
        self.words = WORDS[: lm.n_generic]
        vocab = "\n".join(self.words) + f"\n<{lm.n_brands} brand tokens>\n<eos>"
        self.tokenizer_id = "sim-" + hashlib.sha256(vocab.encode()).hexdigest()[:16]
        self.name = f"{name}:{self.tokenizer_id}"
        self.eos_id = lm.eos
        self.max_new_tokens = lm.max_len

    def sample_many(self, prompt: Prompt, m: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
        """m i.i.d. replies (token ids, EOS not included), uniforms from ``rng`` only."""
        return [tuple(int(t) for t in y) for y in self.lm.sample_many(prompt, m, rng)]  # type: ignore[union-attr]

    def logprob_many(self, replies: Sequence[tuple[int, ...]], prompt: Prompt) -> np.ndarray:
        """(len(replies),) exact log-probs, the EOS step included."""
        return self.lm.logprob_many(list(replies), prompt)

    def sample(self, prompt: Prompt, rng: np.random.Generator) -> tuple[int, ...]:
        return self.sample_many(prompt, 1, rng)[0]

    def logprob(self, reply: tuple[int, ...], prompt: Prompt) -> float:
        return float(self.logprob_many([reply], prompt)[0])

    def decode(self, reply: tuple[int, ...]) -> str:
        """The reply's text: generic words and brand names joined by spaces."""
        out = []
        for t in reply:
            if not 0 <= t < self.lm.vocab:
                raise ValueError(f"reply token {t}: expected a token id in [0, {self.lm.vocab})")
            out.append(self.words[t] if t < self.lm.n_generic else self.brands[t - self.lm.n_generic])
        return " ".join(out)
