"""The openai-compatible backend against a completions server started here on 127.0.0.1, backed by the bigram
LM, so every expected log-prob is exact: scoring (batched, EOS included, cached), sampling (the server's
draws, checked against a re-score), and the refusals: chat-only endpoint, no log-probs, tokens as text, a
re-tokenised prompt, a truncated sampler, a server that answers late or fails once."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from market.core.lm.base import Prompt
from market.core.lm.ngram import NGramLM
from market.lm.openai_compat import Endpoint, OpenAICompatible, ServerError

QUERY = "Which guitar app should I use?"
BRANDS = ("Chordify", "StrumMaster")
MAX_LEN = 2
# Prompt ids live above the reply vocabulary: a start id, the advertised brand (+1; 0: none), each mention.
START, ADVERTISE, MENTION, SEP = 1000, 1010, 1100, 1999


def make_lm() -> NGramLM:
    return NGramLM.random(2, 2, MAX_LEN, np.random.default_rng(3), advertise_gain=np.array([3.0, 4.0]),
                          rival_penalty=np.array([1.0, 0.5]), query=QUERY)


class Tokens:
    """The test's tokenizer: a role's prompt as ids the server decodes back into the Prompt."""

    tokenizer_id = "test-bigram"

    def __init__(self, lm: NGramLM) -> None:
        self.lm = lm
        self.eos_id = lm.eos

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        adv = 0 if prompt.advertise is None else prompt.advertise + 1
        return [START, ADVERTISE + adv, *(MENTION + k for k in prompt.mention), SEP]

    def decode(self, reply: tuple[int, ...]) -> str:
        return " ".join(f"w{t}" if t < self.lm.n_generic else BRANDS[t - self.lm.n_generic] for t in reply)


def decode_prompt(ids: list[int]) -> tuple[Prompt, list[int]]:
    cut = ids.index(SEP)
    adv = ids[1] - ADVERTISE
    return Prompt(QUERY, tuple(t - MENTION for t in ids[2:cut]), None if adv == 0 else adv - 1), ids[cut + 1:]


class QuietServer(HTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client gave up on a late answer: expected in the timeout test


class Server:
    """A completions server on 127.0.0.1 answering at most ``max_requests`` requests, stopping by itself
    (after them, or after ``idle`` seconds with none). ``mode`` makes it misbehave one way."""

    def __init__(self, lm: NGramLM, mode: str = "exact", max_requests: int = 40, idle: float = 20.0) -> None:
        self.lm, self.mode, self.requests = lm, mode, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                outer.requests += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = outer.answer(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 0.2
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.max_requests, self.idle = max_requests, idle
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        last = time.monotonic()
        while self.requests < self.max_requests and time.monotonic() - last < self.idle:
            before = self.requests
            self.httpd.handle_request()
            if self.requests != before:
                last = time.monotonic()
        self.httpd.server_close()

    def steps(self, prompt: Prompt, cont: list[int]) -> list[float]:
        table = self.lm.step_log_probs(prompt)
        prev, out = self.lm.vocab, []
        for t in cont:
            out.append(float(table[prev, t]))
            prev = t
        return out

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        if self.mode == "chat-only" or path != "/v1/completions":
            return 404, {"error": "only /v1/chat/completions here"}
        if self.mode == "flaky" and self.requests == 1:
            return 503, {"error": "warming up"}
        if self.mode == "slow":
            time.sleep(0.6)
        if body["max_tokens"] == 0:
            return 200, {"choices": [self.score(i, ids) for i, ids in enumerate(body["prompt"])]}
        return 200, {"choices": self.sample(body)}

    def score(self, index: int, ids: list[int]) -> dict:
        prompt, cont = decode_prompt(ids)
        logps = [None] + [0.0] * (len(ids) - len(cont) - 1) + self.steps(prompt, cont)
        if self.mode == "no-logprobs":
            return {"index": index, "text": "", "logprobs": None}
        if self.mode == "retokenise":
            logps = logps[:-1]
        return {"index": index, "text": "", "logprobs": {"token_logprobs": logps, "tokens": [str(t) for t in ids]}}

    def sample(self, body: dict) -> list[dict]:
        prompt, _ = decode_prompt(body["prompt"])
        rng = np.random.default_rng(body["seed"])
        lm = self.lm.with_decoding(top_p=0.5) if self.mode == "top-p" else self.lm
        out = []
        for i, reply in enumerate(lm.sample_many(prompt, body["n"], rng)):
            cont = list(reply) + ([self.lm.eos] if len(reply) < MAX_LEN else [])
            table = lm.step_log_probs(prompt)
            prev, logps = self.lm.vocab, []
            for t in cont:
                logps.append(float(table[prev, t]))
                prev = t
            tokens = [f"token_id:{t}" for t in cont] if self.mode != "text-tokens" else [f"w{t}" for t in cont]
            out.append({"index": i, "text": "", "finish_reason": "stop" if len(reply) < MAX_LEN else "length",
                        "logprobs": {"tokens": tokens, "token_logprobs": logps}})
        return out


def bound(server: Server, *, timeout: float = 5.0, retries: int = 0):
    lm = server.lm
    backend = OpenAICompatible(Endpoint(server.url, "bigram", timeout, retries), lambda q: Tokens(lm),
                               max_new_tokens=MAX_LEN)
    return backend.bind(QUERY)


ROLES = (Prompt(QUERY), Prompt(QUERY, advertise=0), Prompt(QUERY, advertise=1), Prompt(QUERY, (0, 0, 1)))


def test_scores_are_the_models_exact_log_probs_for_every_reply_and_role_and_sum_to_one():
    lm = make_lm()
    server = Server(lm)
    token_lm = bound(server)
    replies = lm.replies()  # every reply of at most MAX_LEN tokens
    for prompt in ROLES:
        got = token_lm.logprob_many(replies, prompt)
        np.testing.assert_allclose(got, lm.logprob_many(replies, prompt), rtol=0, atol=1e-12)
        assert np.exp(got).sum() == pytest.approx(1.0, abs=1e-12)
    assert server.requests == len(ROLES)  # one batched request per role
    single = token_lm.logprob(replies[5], ROLES[1])  # cached: no request
    assert single == pytest.approx(float(lm.logprob_many([replies[5]], ROLES[1])[0]), abs=1e-12)
    assert server.requests == len(ROLES)


def test_sampled_replies_are_the_servers_draws_from_the_scored_law_and_a_seed_repeats_them():
    lm = make_lm()
    server = Server(lm)
    token_lm = bound(server)
    prompt = ROLES[3]
    a = token_lm.sample_many(prompt, 50, np.random.default_rng(7))
    seed = int(np.random.default_rng(7).integers(0, 2**31 - 1))
    assert a == [tuple(y) for y in lm.sample_many(prompt, 50, np.random.default_rng(seed))]
    assert a == token_lm.sample_many(prompt, 50, np.random.default_rng(7))
    assert token_lm.decode((0, 3)) == "w0 StrumMaster"


@pytest.mark.parametrize("mode, needle", [
    ("chat-only", "chat-only server cannot score"),
    ("no-logprobs", "no log-prob per prompt token"),
    ("retokenise", "re-tokenised"),
])
def test_a_server_that_cannot_score_given_ids_is_refused_saying_why(mode, needle):
    token_lm = bound(Server(make_lm(), mode, max_requests=2))
    with pytest.raises(ServerError, match=needle):
        token_lm.logprob_many([(0,), (1, 2)], ROLES[0])


@pytest.mark.parametrize("mode, needle", [
    ("top-p", "processed distribution"),
    ("text-tokens", "never re-tokenised"),
])
def test_a_server_that_samples_another_law_or_returns_text_is_refused(mode, needle):
    token_lm = bound(Server(make_lm(), mode, max_requests=3))
    with pytest.raises(ServerError, match=needle):
        token_lm.sample_many(ROLES[0], 200, np.random.default_rng(1))


def test_a_failed_request_is_retried_and_a_late_answer_times_out():
    lm = make_lm()
    flaky = bound(Server(lm, "flaky", max_requests=3), retries=1)
    np.testing.assert_allclose(flaky.logprob_many([(0,)], ROLES[0]), lm.logprob_many([(0,)], ROLES[0]), atol=1e-12)
    slow = bound(Server(lm, "slow", max_requests=2), timeout=0.2, retries=1)
    with pytest.raises(ServerError, match="no answer after 2 attempts"):
        slow.logprob_many([(0,)], ROLES[0])
