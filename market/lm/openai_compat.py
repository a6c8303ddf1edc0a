"""A token-level LM served by an openai-compatible completions server (vLLM, llama.cpp's server, ...).

Replies and prompts are token ids of a tokenizer held here (``QueryTokens``): the backend never sends text
to be tokenised by the server, since a re-tokenised reply is another reply. The completions API takes a
prompt given as token ids, so:

* scoring sends prompt + reply (+ EOS) as ids with ``echo`` and ``logprobs`` (and vLLM's
  ``prompt_logprobs``) and ``max_tokens = 0``, for every reply of a role in one request, and sums the
  reply's per-token log-probs. A server that returns no log-prob for every prompt token, or a different
  number of tokens than it was sent (it re-tokenised), or that has no completions endpoint (chat-only), is
  refused with an error saying why.
* sampling asks for ``n`` completions at temperature 1 with no truncation (``top_p = 1``, ``top_k = -1``,
  a ``seed`` drawn from the caller's rng), with the sampled token ids (``return_tokens_as_token_ids`` or
  ``token_ids``) and their log-probs, and checks those log-probs against a re-score of the same ids: a
  server whose sampling distribution is not the one it scores (a default top-k, a temperature) is refused,
  since MOSAIC's importance weights need exactly the sampled distribution.

A reply is its token ids without EOS; its log-prob includes the EOS step, except for a reply of
``max_new_tokens`` tokens, which stops there with probability 1 (so the replies' law is proper, as for the
n-gram LM). Requests time out after ``timeout`` seconds and are retried at most ``retries`` times on a
timeout, a lost connection or a 5xx; a 4xx is refused at once with the server's message. Scores are cached
by (model, prompt ids, reply ids).
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from market.core.lm.base import Prompt

# Sampled and re-scored log-probs of one token may differ by the server's float arithmetic (batching,
# kernels); a truncated or tempered distribution differs by far more on some token.
SAMPLE_CHECK_TOL = 1e-3


class ServerError(RuntimeError):
    """The server cannot serve what MOSAIC needs (the message says why), or did not answer in time."""


class QueryTokens(Protocol):
    """A tokenizer bound to one query: the prompt of each role as token ids, and replies' text."""

    tokenizer_id: str
    eos_id: int

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """The role's prompt (chat template applied) as token ids, ready for the reply's first token."""
        ...

    def decode(self, reply: tuple[int, ...]) -> str:
        ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to reach the server: base URL (``.../v1``), model name, timeout in seconds, retries."""

    base_url: str
    model: str
    timeout: float = 60.0
    retries: int = 2

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON, return the JSON answer; retried on timeouts, lost connections and 5xx."""
        url = self.base_url.rstrip("/") + path
        data = json.dumps(body).encode()
        last = ""
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the user's server
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode("utf-8", "replace")
                if exc.code == 404:
                    raise ServerError(
                        f"{url}: 404 (no completions endpoint: a chat-only server cannot score given token ids; "
                        f"MOSAIC needs /completions with echo and logprobs): {detail}") from exc
                if exc.code < 500:
                    raise ServerError(f"{url}: HTTP {exc.code}: {detail}") from exc
                last = f"HTTP {exc.code}: {detail}"
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            except json.JSONDecodeError as exc:
                raise ServerError(f"{url}: the answer is not JSON ({exc})") from exc
        raise ServerError(f"{url}: no answer after {self.retries + 1} attempts (timeout {self.timeout} s): {last}")


class OpenAICompatible:
    """A model on a completions server plus the tokenizer whose ids it reads; ``bind(query)`` gives the
    query's TokenLM.

    tokens: query -> QueryTokens (the user's tokenizer, the same as the server's model uses): e.g. a local
    ``TokenLM`` bound to the query, whose ``prompt_ids``, ``decode``, ``eos_id`` and ``tokenizer_id`` it reads.
    """

    def __init__(self, endpoint: Endpoint, tokens: Callable[[Any], QueryTokens], *, max_new_tokens: int = 64) -> None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: got {max_new_tokens}, expected >= 1")
        self.endpoint = endpoint
        self.tokens = tokens
        self.max_new_tokens = int(max_new_tokens)
        self.cache: dict[tuple[str, tuple[int, ...], tuple[int, ...]], float] = {}

    def bind(self, query: Any) -> OpenAICompatLM:
        """The TokenLM of one query (its text and brands name the roles' prompts)."""
        return OpenAICompatLM(self, self.tokens(query))


class OpenAICompatLM:
    """``TokenLM`` of one query on an openai-compatible server."""

    def __init__(self, server: OpenAICompatible, tokens: QueryTokens) -> None:
        self.server = server
        self.tokens = tokens
        self.name = f"openai:{server.endpoint.model}@{server.endpoint.base_url}"
        self.tokenizer_id = tokens.tokenizer_id
        self.eos_id = int(tokens.eos_id)
        self.max_new_tokens = server.max_new_tokens

    def decode(self, reply: tuple[int, ...]) -> str:
        return self.tokens.decode(reply)

    def sample(self, prompt: Prompt, rng: np.random.Generator) -> tuple[int, ...]:
        return self.sample_many(prompt, 1, rng)[0]

    def logprob(self, reply: tuple[int, ...], prompt: Prompt) -> float:
        return float(self.logprob_many([reply], prompt)[0])

    def logprob_many(self, replies: Sequence[tuple[int, ...]], prompt: Prompt) -> np.ndarray:
        """(len(replies),) log-probs, EOS step included (but after max_new_tokens tokens), one request for the
        replies not in the cache."""
        ids = tuple(self.tokens.prompt_ids(prompt))
        key = self.server.endpoint.model
        todo = sorted({tuple(int(t) for t in y) for y in replies} - {y for (m, p, y) in self.server.cache
                                                                     if m == key and p == ids})
        if todo:
            for y, steps in zip(todo, self._score(ids, todo)):
                self.server.cache[(key, ids, y)] = float(np.sum(steps))
        return np.array([self.server.cache[(key, ids, tuple(int(t) for t in y))] for y in replies])

    def _continuation(self, reply: tuple[int, ...]) -> list[int]:
        for t in reply:
            if t == self.eos_id:
                raise ValueError(f"reply {reply!r}: EOS ({self.eos_id}) inside a reply; a reply is ids before EOS")
        if len(reply) > self.max_new_tokens:
            raise ValueError(f"reply of {len(reply)} tokens: expected at most max_new_tokens = {self.max_new_tokens}")
        return list(reply) + ([self.eos_id] if len(reply) < self.max_new_tokens else [])

    def _score(self, ids: tuple[int, ...], replies: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        """Per-token log-probs of each reply's continuation (its tokens, then EOS unless at max length)."""
        conts = [self._continuation(y) for y in replies]
        body = {"model": self.server.endpoint.model, "prompt": [list(ids) + c for c in conts], "max_tokens": 0,
                "echo": True, "logprobs": 0, "prompt_logprobs": 0, "temperature": 1.0}
        answer = self.server.endpoint.post("/completions", body)
        choices = sorted(answer.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != len(conts):
            raise ServerError(f"scoring: got {len(choices)} choices for {len(conts)} prompts")
        out = []
        for c, cont in zip(choices, conts):
            per_token = _prompt_logprobs(c, len(ids) + len(cont))
            out.append(np.asarray(per_token[len(ids):], dtype=float))
        return out

    def sample_many(self, prompt: Prompt, m: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
        """m replies at temperature 1, no truncation; the server's seed comes from ``rng``; the sampled tokens'
        log-probs are checked against a re-score (exact sampling)."""
        ids = self.tokens.prompt_ids(prompt)
        seed = int(rng.integers(0, 2**31 - 1))
        body = {"model": self.server.endpoint.model, "prompt": list(ids), "max_tokens": self.max_new_tokens,
                "n": int(m), "temperature": 1.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0, "seed": seed,
                "logprobs": 0, "return_tokens_as_token_ids": True, "skip_special_tokens": False}
        answer = self.server.endpoint.post("/completions", body)
        choices = sorted(answer.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != m:
            raise ServerError(f"sampling: got {len(choices)} completions, expected n = {m}")
        replies, sampled = [], []
        for c in choices:
            tokens, logps = _sampled_tokens(c)
            stopped = bool(tokens) and tokens[-1] == self.eos_id
            body_tokens = tokens[:-1] if stopped else tokens
            if not stopped and len(body_tokens) < self.max_new_tokens and c.get("finish_reason") != "stop":
                raise ServerError(f"sampling: a completion of {len(body_tokens)} tokens ended by "
                                  f"{c.get('finish_reason')!r}, expected EOS or max_new_tokens")
            if self.eos_id in body_tokens:
                raise ServerError(f"sampling: EOS ({self.eos_id}) inside a completion: the server sampled past it")
            replies.append(tuple(body_tokens))
            sampled.append(logps[: len(body_tokens) + (1 if stopped else 0)])
        scored = self._score(tuple(ids), replies)
        for j, (got, want) in enumerate(zip(sampled, scored)):
            want = want[: len(got)]
            if len(got) and not np.allclose(got, want, rtol=0.0, atol=SAMPLE_CHECK_TOL):
                k = int(np.argmax(np.abs(np.asarray(got) - want)))
                raise ServerError(
                    f"sampling: completion {j} token {k} was sampled with log-prob {got[k]:.4f} but scores "
                    f"{want[k]:.4f} at temperature 1: the server samples from a processed distribution (top-k, "
                    "top-p, temperature or penalties), not the one MOSAIC weighs")
        return replies


def _prompt_logprobs(choice: dict[str, Any], n_tokens: int) -> list[float]:
    """Per-token log-probs of an echoed prompt of n_tokens ids (the first token has none: 0 is used)."""
    plp = choice.get("prompt_logprobs")
    if plp is not None:  # vLLM: [None, {id: {logprob, ...}, ...}, ...], the sent token first in each dict
        if len(plp) != n_tokens:
            raise ServerError(f"scoring: {len(plp)} prompt_logprobs for {n_tokens} prompt tokens (re-tokenised?)")
        out = [0.0]
        for entry in plp[1:]:
            if not entry:
                raise ServerError("scoring: a prompt token without a log-prob in prompt_logprobs")
            first = next(iter(entry.values()))
            out.append(float(first["logprob"] if isinstance(first, dict) else first))
        return out
    lp = choice.get("logprobs")
    values = lp.get("token_logprobs") if isinstance(lp, dict) else None
    if values is None:
        raise ServerError("scoring: the server returned no log-prob per prompt token (it needs completions with "
                          "echo = true and logprobs, or vLLM's prompt_logprobs)")
    if len(values) < n_tokens:
        raise ServerError(f"scoring: {len(values)} echoed log-probs for {n_tokens} prompt tokens (re-tokenised?)")
    values = values[:n_tokens]
    if any(v is None or not math.isfinite(float(v)) for v in values[1:]):
        raise ServerError("scoring: a prompt token's log-prob is missing or not finite")
    return [0.0] + [float(v) for v in values[1:]]


def _sampled_tokens(choice: dict[str, Any]) -> tuple[list[int], list[float]]:
    """The token ids a completion sampled (``token_ids``, or logprobs.tokens as "token_id:N") and their log-probs."""
    lp = choice.get("logprobs") or {}
    logps = lp.get("token_logprobs")
    if logps is None:
        raise ServerError("sampling: the server returned no log-prob per sampled token (logprobs = 0 ignored)")
    ids = choice.get("token_ids")
    if ids is None:
        names = lp.get("tokens") or []
        if not all(isinstance(t, str) and t.startswith("token_id:") for t in names):
            raise ServerError("sampling: the server returned tokens as text, not ids (it needs vLLM's "
                              "return_tokens_as_token_ids or a token_ids field): text is never re-tokenised")
        ids = [int(t.split(":", 1)[1]) for t in names]
    if len(ids) != len(logps):
        raise ServerError(f"sampling: {len(ids)} token ids but {len(logps)} log-probs")
    return [int(t) for t in ids], [float(v) for v in logps]


def tokenizer_digest(vocab: Sequence[str]) -> str:
    """A tokenizer identity from its vocabulary in id order (two tokenizers with one vocabulary read ids alike)."""
    return hashlib.sha256("\n".join(vocab).encode()).hexdigest()[:16]
