"""Token-level bigram LM: level B of the MOSAIC simulator (arXiv 2405.05905, spec section 5.2).

Generic words, one token per brand and EOS; EOS is forced after ``max_len`` tokens so the law over replies
is proper. Prompts shift the next-token logits; sampling uses temperature and top-p (spec ambiguity 8.1).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from market.core.lm.base import Prompt, Reply

Score = Literal["sampled", "raw"]


@dataclass(frozen=True, slots=True)
class Decoding:
    """How replies are drawn and scored.

    temperature, top_p: the sampling distribution is softmax(logits / temperature) cut to its top-p nucleus.
    score: "sampled" gives log-probs of that exact distribution (the proposal actually used, so importance
    weights are right); "raw" scores under the untempered, untruncated model, as a practitioner reading the
    model's log-probs would, which biases MOSAIC towards the wrong target.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    score: Score = "sampled"

    def __post_init__(self) -> None:
        if not self.temperature > 0 or not np.isfinite(self.temperature):
            raise ValueError(f"temperature must be finite and > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.score not in ("sampled", "raw"):
            raise ValueError(f"score must be 'sampled' or 'raw', got {self.score!r}")


class NGramLM:
    """Bigram LM over V = n_generic + n_brands tokens plus EOS; replies are tuples of token ids (no EOS).

    bigram_logits: (V + 1, V + 1) logits of the next token (columns: tokens then EOS) given the previous
    one (rows: tokens then BOS). Brand columns also get −brand_penalty, so brands are rare by default.
    Prompt shifts (added to every row): +context_gain for each time a brand is listed in ``prompt.mention``; for
    ``prompt.advertise = i``, +advertise_gain[i] on brand i and −rival_penalty[i] on other brands.
    """

    def __init__(
        self,
        bigram_logits: np.ndarray,
        n_brands: int,
        max_len: int,
        *,
        brand_penalty: float = 3.0,
        context_gain: float = 3.0,
        advertise_gain: np.ndarray | None = None,
        rival_penalty: np.ndarray | None = None,
        decoding: Decoding = Decoding(),
        query: str = "",
    ) -> None:
        logits = np.asarray(bigram_logits, dtype=float)
        if logits.ndim != 2 or logits.shape[0] != logits.shape[1] or not np.all(np.isfinite(logits)):
            raise ValueError(f"bigram_logits must be a finite square (V+1, V+1) array, got shape {logits.shape}")
        vocab = logits.shape[0] - 1
        if not 0 <= n_brands <= vocab:
            raise ValueError(f"n_brands must be in [0, {vocab}], got {n_brands}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        a = np.zeros(n_brands) if advertise_gain is None else np.asarray(advertise_gain, dtype=float)
        b = np.zeros(n_brands) if rival_penalty is None else np.asarray(rival_penalty, dtype=float)
        if a.shape != (n_brands,) or b.shape != (n_brands,):
            raise ValueError(f"advertise_gain and rival_penalty must have shape ({n_brands},)")
        self.bigram_logits = logits
        self.vocab = vocab
        self.n_brands = n_brands
        self.n_generic = vocab - n_brands
        self.max_len = max_len
        self.eos = vocab
        self.brand_penalty = float(brand_penalty)
        self.context_gain = float(context_gain)
        self.advertise_gain = a
        self.rival_penalty = b
        self.decoding = decoding
        self.query = query
        self._tables_cache: dict[tuple[Prompt, bool], np.ndarray] = {}
        self._space: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def random(
        cls, n_generic: int, n_brands: int, max_len: int, rng: np.random.Generator, *, scale: float = 1.0,
        **kwargs: Any,
    ) -> NGramLM:
        """A bigram table with N(0, scale²) logits drawn from ``rng``; kwargs as in the constructor."""
        vocab = n_generic + n_brands
        return cls(rng.normal(0.0, scale, size=(vocab + 1, vocab + 1)), n_brands, max_len, **kwargs)

    def with_decoding(self, temperature: float = 1.0, top_p: float = 1.0, score: Score = "sampled") -> NGramLM:
        """The same model under another decoding rule."""
        lm = NGramLM(
            self.bigram_logits, self.n_brands, self.max_len, brand_penalty=self.brand_penalty,
            context_gain=self.context_gain, advertise_gain=self.advertise_gain, rival_penalty=self.rival_penalty,
            decoding=Decoding(temperature, top_p, score), query=self.query,
        )
        lm._space = self._space
        return lm

    # --- per-step distributions -------------------------------------------------------------------

    def step_log_probs(self, prompt: Prompt, raw: bool = False) -> np.ndarray:
        """(V + 1, V + 1) log P(next | prev): the sampling distribution, or the raw model if ``raw``."""
        key = (prompt, raw)
        table = self._tables_cache.get(key)
        if table is None:
            table = self._step_table(prompt, raw)
            self._tables_cache[key] = table
        return table

    def next_token_probs(self, prefix: Sequence[int], prompt: Prompt) -> np.ndarray:
        """(V + 1,) next-token probabilities of the sampling distribution after ``prefix`` (EOS last)."""
        if len(prefix) >= self.max_len:
            out = np.zeros(self.vocab + 1)
            out[self.eos] = 1.0
            return out
        prev = prefix[-1] if len(prefix) else self.vocab
        return np.exp(self.step_log_probs(prompt)[prev])

    def _step_table(self, prompt: Prompt, raw: bool) -> np.ndarray:
        if self.query and prompt.query != self.query:
            raise ValueError(f"prompt.query {prompt.query!r} is not this model's query {self.query!r}")
        shift = np.zeros(self.vocab + 1)
        brand_cols = self.n_generic + np.arange(self.n_brands)
        shift[brand_cols] -= self.brand_penalty
        for k, times in sorted(Counter(prompt.mention).items()):
            self._check_brand(k, "prompt.mention")
            shift[brand_cols[k]] += self.context_gain * times
        i = prompt.advertise
        if i is not None:
            self._check_brand(i, "prompt.advertise")
            shift[brand_cols] -= self.rival_penalty[i]
            shift[brand_cols[i]] += self.rival_penalty[i] + self.advertise_gain[i]
        logits = self.bigram_logits + shift
        temperature = 1.0 if raw else self.decoding.temperature
        top_p = 1.0 if raw else self.decoding.top_p
        logits = logits / temperature
        log_p = logits - _logsumexp_rows(logits)
        if top_p < 1.0:
            log_p = _nucleus(log_p, top_p)
        return log_p

    # --- replies ------------------------------------------------------------------------------------

    def sample(self, prompt: Prompt, rng: np.random.Generator) -> Reply:
        return self.sample_many(prompt, 1, rng)[0]

    def sample_many(self, prompt: Prompt, m: int, rng: np.random.Generator) -> list[Reply]:
        """m i.i.d. replies from the sampling distribution, token by token for all m at once."""
        cdf = np.cumsum(np.exp(self.step_log_probs(prompt)), axis=1)
        cdf /= cdf[:, -1:]
        tokens = np.full((m, self.max_len), self.eos, dtype=np.int64)
        prev = np.full(m, self.vocab, dtype=np.int64)
        alive = np.ones(m, dtype=bool)
        for t in range(self.max_len):
            u = 1.0 - rng.random(m)  # in (0, 1]: a zero-mass token is never chosen
            nxt = (cdf[prev] < u[:, None]).sum(axis=1)
            nxt = np.where(alive, nxt, self.eos)
            tokens[:, t] = nxt
            alive &= nxt != self.eos
            prev = np.where(alive, nxt, prev)
            if not alive.any():
                break
        return [tuple(int(x) for x in row[row != self.eos]) for row in tokens]

    def logprob(self, reply: Reply, prompt: Prompt) -> float:
        return float(self.logprob_many([reply], prompt)[0])

    def logprob_many(self, replies: Sequence[Reply], prompt: Prompt) -> np.ndarray:
        """Exact log-probs (len(replies),), including the EOS step unless the reply has max_len tokens."""
        padded = np.full((len(replies), self.max_len + 1), self.eos, dtype=np.int64)
        lengths = np.empty(len(replies), dtype=np.int64)
        for r, reply in enumerate(replies):
            seq = np.asarray(reply, dtype=np.int64).reshape(-1)
            if seq.size > self.max_len or (seq.size and (seq.min() < 0 or seq.max() >= self.vocab)):
                raise ValueError(
                    f"reply {reply!r} must be at most {self.max_len} token ids in [0, {self.vocab}) (EOS implicit)"
                )
            padded[r, : seq.size] = seq
            lengths[r] = seq.size
        return self._score_padded(padded, lengths, prompt)

    def _score_padded(self, padded: np.ndarray, lengths: np.ndarray, prompt: Prompt) -> np.ndarray:
        table = self.step_log_probs(prompt, raw=self.decoding.score == "raw")
        prev = np.concatenate([np.full((padded.shape[0], 1), self.vocab), padded[:, :-1]], axis=1)
        prev = np.where(prev == self.eos, self.vocab, prev)  # rows after EOS are masked out below anyway
        steps = table[prev, padded]
        t = np.arange(self.max_len + 1)
        live = (t[None, :] <= lengths[:, None]) & (t[None, :] < self.max_len)  # EOS is forced at max_len
        return np.where(live, steps, 0.0).sum(axis=1)

    # --- enumeration --------------------------------------------------------------------------------

    def replies(self) -> list[Reply]:
        """Every reply of at most max_len tokens, shortest first (sum_{l<=L} V^l of them)."""
        padded, lengths = self._enumerated()
        return [tuple(int(x) for x in row[:n]) for row, n in zip(padded, lengths)]

    def log_probs(self, prompt: Prompt) -> np.ndarray:
        """(|Y|,) log-probs of every reply of ``replies()`` under the scoring rule."""
        padded, lengths = self._enumerated()
        return self._score_padded(padded, lengths, prompt)

    def mentions(self) -> np.ndarray:
        """(|Y|, n_brands) bool: reply contains brand k's token."""
        padded, lengths = self._enumerated()
        live = np.arange(self.max_len + 1)[None, :] < lengths[:, None]
        brand_cols = self.n_generic + np.arange(self.n_brands)
        return ((padded[:, :, None] == brand_cols[None, None, :]) & live[:, :, None]).any(axis=1)

    def _enumerated(self) -> tuple[np.ndarray, np.ndarray]:
        if self._space is None:
            rows, lengths = [], []
            for length in range(self.max_len + 1):
                for seq in itertools.product(range(self.vocab), repeat=length):
                    rows.append(list(seq) + [self.eos] * (self.max_len + 1 - length))
                    lengths.append(length)
            self._space = (np.asarray(rows, dtype=np.int64), np.asarray(lengths, dtype=np.int64))
        return self._space

    def _check_brand(self, k: int, field: str) -> None:
        if not 0 <= k < self.n_brands:
            raise ValueError(f"{field} brand {k} out of range [0, {self.n_brands})")


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=1, keepdims=True))


def _nucleus(log_p: np.ndarray, top_p: float) -> np.ndarray:
    """Keep, per row, the most likely tokens until their mass reaches top_p; renormalise (−inf elsewhere)."""
    order = np.argsort(-log_p, axis=1, kind="stable")
    sorted_p = np.exp(np.take_along_axis(log_p, order, axis=1))
    mass_before = np.cumsum(sorted_p, axis=1) - sorted_p
    keep_sorted = mass_before < top_p
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    cut = np.where(keep, log_p, -np.inf)
    return cut - _logsumexp_rows(np.where(keep, log_p, -np.inf))
