"""Finite reply catalogue LM: level A of the MOSAIC simulator (arXiv 2405.05905, spec section 5.1).

pi(y | prompt) ∝ exp(u(y) − λ Σ_k m_k(y) − κ·max(0, Σ_k m_k(y) − 1) + γ Σ_k c_k m_k(y)
                   + [advertise i] (a_i m_i(y) − b_i Σ_{k≠i} m_k(y))), every quantity exact,
where c_k is the number of times brand k is listed in ``prompt.mention``.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from market.core.lm.base import Prompt, Reply


class CatalogueLM:
    """A finite set of K reply templates with brand-mention features and a usefulness score.

    usefulness: (K,) u(y), the user-quality log-score of each reply.
    mentions: (K, n) bool, m_k(y) = reply y mentions brand k.
    brand_penalty: λ >= 0, makes brand mentions rare under the reference prompt.
    incoherence: κ >= 0, extra penalty per brand beyond the first.
    context_gain: γ, logit bonus per mentioned brand, per time it is listed in ``prompt.mention`` (pi_con).
    advertise_gain: (n,) a_i, bonus for brand i when prompted to advertise i.
    rival_penalty: (n,) b_i, penalty per other brand when prompted to advertise i.
    query: the query this model answers; prompts for another query are rejected.
    """

    def __init__(
        self,
        usefulness: np.ndarray,
        mentions: np.ndarray,
        *,
        brand_penalty: float = 4.0,
        incoherence: float = 0.0,
        context_gain: float = 4.0,
        advertise_gain: np.ndarray | None = None,
        rival_penalty: np.ndarray | None = None,
        query: str = "",
    ) -> None:
        u = np.asarray(usefulness, dtype=float)
        m = np.asarray(mentions, dtype=bool)
        if u.ndim != 1 or not np.all(np.isfinite(u)):
            raise ValueError(f"usefulness must be a finite (K,) array, got shape {u.shape}")
        if m.ndim != 2 or m.shape[0] != u.shape[0]:
            raise ValueError(f"mentions must have shape (K={u.shape[0]}, n), got {m.shape}")
        n = m.shape[1]
        a = np.zeros(n) if advertise_gain is None else np.asarray(advertise_gain, dtype=float)
        b = np.zeros(n) if rival_penalty is None else np.asarray(rival_penalty, dtype=float)
        if a.shape != (n,) or b.shape != (n,):
            raise ValueError(f"advertise_gain and rival_penalty must have shape ({n},), got {a.shape}, {b.shape}")
        self.usefulness = u
        self._mentions = m
        self.brand_penalty = float(brand_penalty)
        self.incoherence = float(incoherence)
        self.context_gain = float(context_gain)
        self.advertise_gain = a
        self.rival_penalty = b
        self.query = query
        count = m.sum(axis=1)
        self._base = u - self.brand_penalty * count - self.incoherence * np.maximum(count - 1, 0)
        self._cache: dict[Prompt, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def n_brands(self) -> int:
        return self._mentions.shape[1]

    @property
    def size(self) -> int:
        """Number of replies K."""
        return self._base.shape[0]

    def replies(self) -> list[Reply]:
        return list(range(self.size))

    def mentions(self) -> np.ndarray:
        """(K, n) bool brand-mention indicators."""
        return self._mentions

    def log_probs(self, prompt: Prompt) -> np.ndarray:
        """(K,) exact log pi(y | prompt) for every reply."""
        return self._tables(prompt)[0]

    def sample(self, prompt: Prompt, rng: np.random.Generator) -> Reply:
        return int(self.sample_indices(prompt, 1, rng)[0])

    def sample_many(self, prompt: Prompt, m: int, rng: np.random.Generator) -> list[Reply]:
        return self.sample_indices(prompt, m, rng).tolist()

    def sample_indices(self, prompt: Prompt, shape: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """I.i.d. reply indices of the given shape, by inverse CDF (int64 array)."""
        cdf = self._tables(prompt)[1]
        u = 1.0 - rng.random(shape)  # in (0, 1], so a zero-mass reply is never returned
        return np.minimum(np.searchsorted(cdf, u, side="left"), self.size - 1)

    def logprob(self, reply: Reply, prompt: Prompt) -> float:
        return float(self.logprob_many([reply], prompt)[0])

    def logprob_many(self, replies: Sequence[Reply] | np.ndarray, prompt: Prompt) -> np.ndarray:
        idx = np.asarray(replies)
        if idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= self.size):
            raise ValueError(f"replies must be catalogue indices in [0, {self.size}), got {replies!r}")
        return self.log_probs(prompt)[idx.astype(np.int64)]

    def _tables(self, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        cached = self._cache.get(prompt)
        if cached is not None:
            return cached
        if self.query and prompt.query != self.query:
            raise ValueError(f"prompt.query {prompt.query!r} is not this model's query {self.query!r}")
        logits = self._base.copy()
        for k, times in sorted(Counter(prompt.mention).items()):
            self._check_brand(k, "prompt.mention")
            logits += (self.context_gain * times) * self._mentions[:, k]
        i = prompt.advertise
        if i is not None:
            self._check_brand(i, "prompt.advertise")
            rivals = self._mentions.sum(axis=1) - self._mentions[:, i]
            logits += self.advertise_gain[i] * self._mentions[:, i] - self.rival_penalty[i] * rivals
        top = logits.max()
        log_p = logits - (top + np.log(np.exp(logits - top).sum()))
        cdf = np.cumsum(np.exp(log_p))
        cdf /= cdf[-1]
        self._cache[prompt] = (log_p, cdf)
        return log_p, cdf

    def _check_brand(self, k: int, field: str) -> None:
        if not 0 <= k < self.n_brands:
            raise ValueError(f"{field} brand {k} out of range [0, {self.n_brands})")
