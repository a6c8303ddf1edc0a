"""What a simulated language model is: ``sample(prompt, rng)`` and exact ``logprob(reply, prompt)``.

One model object plays every role of MOSAIC (arXiv 2405.05905, section 4.1): reference, advertisers'
prompted LLMs and the context-aware proposal differ only in the ``Prompt`` they are conditioned on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, Union, runtime_checkable

import numpy as np

# Replies travel over a MessagePack bus: an int (catalogue index) or a tuple of token ids.
Reply = Union[int, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class Prompt:
    """The conditioning of a reply: the user query plus the instructions prefixed to it.

    mention: brand indices the model is asked to "try to mention" (context-aware proposal pi_con); a brand
        listed c times gets c times the context gain (its advertiser's description pull, ``lm/ads.py``).
    advertise: brand index of the advertiser whose prompted LLM this is ("answer advertising <i>"), or None.
    """

    query: str
    mention: tuple[int, ...] = ()
    advertise: int | None = None

    def without(self, brand: int) -> Prompt:
        """The same prompt with ``brand`` dropped from the mention context (counterfactual pi_con^{-i})."""
        return Prompt(self.query, tuple(k for k in self.mention if k != brand), self.advertise)


@runtime_checkable
class LanguageModel(Protocol):
    """A conditional distribution over replies with exact log-probabilities."""

    def sample(self, prompt: Prompt, rng: np.random.Generator) -> Reply:
        """Draw one reply from the distribution actually sampled from."""
        ...

    def logprob(self, reply: Reply, prompt: Prompt) -> float:
        """Exact log-probability of ``reply`` (−inf outside the support)."""
        ...

    def sample_many(self, prompt: Prompt, m: int, rng: np.random.Generator) -> list[Reply]:
        """Draw m i.i.d. replies (duplicates kept)."""
        ...

    def logprob_many(self, replies: Sequence[Reply], prompt: Prompt) -> np.ndarray:
        """Exact log-probabilities, shape (len(replies),)."""
        ...


@runtime_checkable
class FiniteLanguageModel(LanguageModel, Protocol):
    """A language model whose reply space can be enumerated, so every target is exact."""

    def replies(self) -> list[Reply]:
        """The whole reply space Y, in a fixed order."""
        ...

    def log_probs(self, prompt: Prompt) -> np.ndarray:
        """Log-probabilities of every reply of ``replies()``, shape (|Y|,)."""
        ...

    def mentions(self) -> np.ndarray:
        """Brand-mention indicators of every reply, bool (|Y|, n_brands)."""
        ...


def missing_mass(log_ref: np.ndarray, log_gen: np.ndarray) -> float:
    """Reference mass on replies the proposal can never produce (support failure of Cor. 4.1).

    log_ref, log_gen: (|Y|,) log-probabilities over an enumerated reply space. Zero means
    pi_ref is absolutely continuous w.r.t. pi_gen and MOSAIC converges to pi*; a positive value is the
    mass the limit misses.
    """
    log_ref = np.asarray(log_ref, dtype=float)
    log_gen = np.asarray(log_gen, dtype=float)
    if log_ref.shape != log_gen.shape:
        raise ValueError(f"log_ref shape {log_ref.shape} != log_gen shape {log_gen.shape}")
    hole = np.isneginf(log_gen) & ~np.isneginf(log_ref)
    return float(np.exp(log_ref[hole]).sum())
