"""Token auction of Dütting, Mirrokni, Paes Leme, Xu, Zuo, "Mechanism Design for LLMs" (WWW 2024).

Per decoding step, agents' next-token distributions p_i are mixed by bids b_i: linear q = Σ b_i p_i / Σ b_i
(monotone, with the stable-sampling second-price payment) or log-linear (not monotone, no payment rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

import numpy as np

from market.core.mechanisms.base import MechanismError

Aggregation = Literal["linear", "log-linear"]


@dataclass(frozen=True, slots=True)
class TokenAuctionStep:
    """One decoding step. q: (V,) aggregated next-token law; payments: (n,) expected payment for the token."""

    q: np.ndarray
    payments: np.ndarray


@dataclass(frozen=True, slots=True)
class TokenAuctionReply:
    """A whole reply decoded token by token. reply: token ids (EOS excluded); payments: (n,) summed over steps."""

    reply: tuple[int, ...]
    payments: np.ndarray


def _validate(token_probs: np.ndarray, bids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(token_probs, dtype=float)
    b = np.asarray(bids, dtype=float)
    if p.ndim != 2 or p.shape[0] < 1:
        raise MechanismError(f"token_probs shape {p.shape}; expected (n >= 1, V)")
    if b.shape != (p.shape[0],):
        raise MechanismError(f"bids shape {b.shape}; expected ({p.shape[0]},)")
    if not np.all(np.isfinite(b)) or np.any(b < 0) or b.sum() <= 0:
        raise MechanismError(f"bids = {b.tolist()}; expected finite, >= 0, with a positive sum")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-9):
        raise MechanismError("token_probs rows must be probability vectors (finite, >= 0, summing to 1)")
    return p, b


def linear_payment(token_probs: np.ndarray, bids: np.ndarray) -> np.ndarray:
    """(n,) expected payments z_i(b_i) = ½ ∫_0^{b_i} (‖q(b')−p_i‖₁ − ‖q(b_i)−p_i‖₁) db' for linear aggregation.

    With B = Σ_{k≠i} b_k and D = ‖P_{-i} − p_i‖₁ (P_{-i} the others' bid-weighted mix), ‖q(b')−p_i‖₁ =
    B D / (b' + B), so z_i = ½ D B [ln((b_i + B)/B) − b_i/(b_i + B)] ≥ 0 (zero when B = 0). The integrand
    is oriented so payments are non-negative (Myerson's rule with "closeness" −½‖q−p_i‖₁ as allocation).
    """
    p, b = _validate(token_probs, bids)
    weighted = b @ p
    others = b.sum() - b  # B_{-i}
    safe = np.where(others > 0, others, 1.0)
    mix_others = (weighted[None, :] - b[:, None] * p) / safe[:, None]
    distance = np.abs(mix_others - p).sum(axis=1)
    z = 0.5 * distance * others * (np.log1p(b / safe) - b / (b + safe))
    return np.where(others > 0, z, 0.0)


def token_auction(
    token_probs: np.ndarray, bids: np.ndarray, aggregation: Aggregation = "linear", payment: str = "second-price"
) -> TokenAuctionStep:
    """Aggregate one step. token_probs: (n, V) agents' next-token laws; bids: (n,) scalar bids >= 0.

    payment: "second-price" (stable-sampling critical-bid payment, linear aggregation only) or "none".
    """
    p, b = _validate(token_probs, bids)
    if aggregation == "linear":
        q = b @ p / b.sum()
    elif aggregation == "log-linear":
        with np.errstate(divide="ignore"):
            logits = (b @ np.log(p)) / b.sum()
        q = np.exp(logits - logits.max())
        q /= q.sum()
    else:
        raise MechanismError(f"aggregation = {aggregation!r}; expected 'linear' or 'log-linear'")
    if payment == "none":
        return TokenAuctionStep(q, np.zeros(p.shape[0]))
    if payment != "second-price":
        raise MechanismError(f"payment = {payment!r}; expected 'second-price' or 'none'")
    if aggregation != "linear":
        raise MechanismError("payment 'second-price' needs a monotone rule: aggregation='linear' (log-linear is not)")
    return TokenAuctionStep(q, linear_payment(p, b))


class NextTokenModel(Protocol):
    """What decoding needs from an LM: the next-token law (EOS last) and the EOS id."""

    eos: int
    max_len: int

    def next_token_probs(self, prefix: Sequence[int], prompt: object) -> np.ndarray: ...


def run_token_auction(
    lm: NextTokenModel,
    prompts: Sequence[object],
    bids: np.ndarray,
    rng: np.random.Generator,
    aggregation: Aggregation = "linear",
    payment: str = "second-price",
) -> TokenAuctionReply:
    """Decode one reply: agent i's LLM is ``lm`` under prompts[i]; pay per token; stop at EOS or max_len."""
    prefix: list[int] = []
    total = np.zeros(len(prompts))
    while len(prefix) < lm.max_len:
        probs = np.stack([lm.next_token_probs(prefix, pr) for pr in prompts])
        step = token_auction(probs, bids, aggregation, payment)
        total += step.payments
        token = int(np.searchsorted(np.cumsum(step.q), (1.0 - rng.random()) * step.q.sum(), side="left"))
        token = min(token, len(step.q) - 1)
        if token == lm.eos:
            break
        prefix.append(token)
    return TokenAuctionReply(tuple(prefix), total)
