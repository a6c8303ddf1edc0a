"""The ad platform: runs a MOSAIC aggregation auction (arXiv 2405.05905, Algorithm 1) per user query.

It samples M candidates from pi_gen (reference or context-aware prompt), sends them sealed to the query's
advertisers, collects reward reports until a deadline, runs the aggregation mechanism, shows one reply, and
settles payments in the ledger. A missing report is an abstention (zero reward on every candidate, so zero
payment and utility, Lemma B.1); late, duplicate, wrong-length or out-of-range reports are refused with an
error and a log record.

The context-aware prompt is conditioned on the descriptions the advertisers sent (``ad_description``, at
most ``MAX_DESCRIPTION_LEN`` printable characters; the latest accepted one counts from the next auction),
never on reports: brand i's logit bonus is the context gain x ``description_pull`` (``market/lm/ads.py``),
the number of times the description names brand i, at least 1. An advertiser with no accepted description
is listed once, as are those with the built-in one-line descriptions.

A token-level LM (``market/lm``: replies are token ids of one tokenizer, recognised here by its
``tokenizer_id`` and ``decode``) may play every role; all the instances' models must then share one tokenizer.
Its auctions' records carry, under ``extra["lm"]``, every candidate's log-prob under every role (reference,
proposal, each advertiser's prompted model), which brands each candidate mentions and the shown reply's text,
so replay, metrics and the deviation experiments read them from the log and never load the model. The
catalogue and n-gram LMs, cheap to rebuild from the seed, log nothing more (their logs keep their bytes).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from market.core.ledger import Ledger, LedgerError, to_minor, to_units
from market.core.lm.ads import AdInstance
from market.core.lm.base import Reply
from market.core.lm.catalogue import CatalogueLM
from market.core.lm.ngram import NGramLM
from market.core.mechanisms.aggregation import AGGREGATIONS, build_aggregation, leave_one_out, sample_shown
from market.core.mechanisms.base import MechanismError
from market.core.wire import (
    MAX_DESCRIPTION_LEN,
    AdDescription,
    AdQuery,
    Candidates,
    Error,
    Feedback,
    ReplyShown,
    RewardReport,
)
from market.runtime.agent import Agent
from market.runtime.bus import BUS_ID, Envelope
from market.runtime.records import FeedbackAccepted, Record, Rejected, RoundClosed

PROPOSALS = ("baseline", "context")
REWARD_AUCTIONS = tuple(name for name in AGGREGATIONS if name.startswith("mosaic"))


def wire_reply(reply: Reply) -> tuple[int, ...]:
    """A reply as it travels: catalogue index i as the 1-tuple (i,), token replies as their token ids."""
    return (int(reply),) if isinstance(reply, (int, np.integer)) else tuple(int(t) for t in reply)


def lm_reply(instance: AdInstance, reply: tuple[int, ...]) -> Reply:
    """The LM's own form of a wire reply (inverse of ``wire_reply``)."""
    if isinstance(instance.lm, CatalogueLM):
        if len(reply) != 1:
            raise ValueError(f"reply {reply!r}: expected a 1-tuple (catalogue index,)")
        return reply[0]
    return tuple(reply)


def description_refusal(text: str) -> str | None:
    """Why the platform refuses a description (None: it is accepted): the wire already caps its length."""
    if len(text) > MAX_DESCRIPTION_LEN:
        return f"got {len(text)} characters, expected at most {MAX_DESCRIPTION_LEN}"
    if not text.isprintable():
        j = next(j for j, ch in enumerate(text) if not ch.isprintable())
        return f"got {text[j]!r} at position {j} of {text[:60]!r}, expected printable text"
    return None


def is_token_lm(lm: object) -> bool:
    """Is ``lm`` a token-level LM (``market/lm``)? It decodes replies to text and names its tokenizer, or, loaded
    on first use, the spec it will load (``lazy_identity``: asking for the tokenizer would load it)."""
    return hasattr(lm, "decode") and (hasattr(lm, "lazy_identity") or hasattr(lm, "tokenizer_id"))


def _identity(lm: Any) -> str:
    lazy = getattr(lm, "lazy_identity", None)
    return f"model {lazy!r}" if lazy is not None else f"tokenizer {lm.tokenizer_id!r}"


def text_mentions(text: str, brands: Sequence[str]) -> np.ndarray:
    """(n,) bool: which brands occur in ``text`` as a whole word, case-insensitive."""
    return np.array([re.search(rf"(?<!\w){re.escape(b)}(?!\w)", text, flags=re.IGNORECASE) is not None
                     for b in brands], dtype=bool)


def mention_mask(mentions: np.ndarray) -> int:
    """A candidate's mentions (n,) bool as an integer, bit k for brand k (as the log records them)."""
    return int(sum(1 << k for k, m in enumerate(mentions) if m))


def unmask(mask: int, n: int) -> np.ndarray:
    """(n,) bool from ``mention_mask``'s integer."""
    return np.array([(int(mask) >> k) & 1 for k in range(n)], dtype=bool)


def check_tokenizers(instances: Sequence[AdInstance]) -> None:
    """Refuse instances whose models mix tokenizers (or token-level and simulated LMs): a reply is token ids of
    one tokenizer and means nothing to a model that reads other ids."""
    models = [(k, role, lm) for k, inst in enumerate(instances)
              for role, lm in (("lm", inst.lm), ("proposal_lm", inst.proposal_lm))]
    token = [is_token_lm(lm) for _, _, lm in models]
    if any(token) and not all(token):
        k, role, lm = models[token.index(False)]
        raise MechanismError(f"instances[{k}].{role}: got a {type(lm).__name__}, expected a token-level LM like "
                             "the other models (token-level and simulated LMs cannot be mixed)")
    if not any(token):
        return
    first = _identity(models[0][2])
    for k, role, lm in models:
        if _identity(lm) != first:
            raise MechanismError(
                f"instances[{k}].{role}: {_identity(lm)}, expected {first} like instances[0].lm: models whose "
                "tokenizers differ cannot score each other's replies")


def reply_mentions(instance: AdInstance, reply: tuple[int, ...]) -> np.ndarray:
    """(n,) bool: which of the query's brands the wire ``reply`` mentions."""
    lm = instance.lm
    if is_token_lm(lm):
        return text_mentions(lm.decode(reply), instance.query.advertisers)  # type: ignore[attr-defined]
    if isinstance(lm, CatalogueLM):
        return lm.mentions()[reply[0]]
    if isinstance(lm, NGramLM):
        return np.isin(lm.n_generic + np.arange(lm.n_brands), reply)
    raise TypeError(f"instance.lm: got a {type(lm).__name__}, expected a CatalogueLM or an NGramLM")


@dataclass(slots=True)
class _OpenAuction:
    round: int
    query_id: int
    user: str
    proposal: str
    replies: tuple[tuple[int, ...], ...]
    log_ref: np.ndarray
    log_gen: np.ndarray
    deadline: float
    rewards: np.ndarray  # (n, M); rows of abstaining advertisers stay zero
    present: np.ndarray  # (n,) bool
    log_roles: np.ndarray | None = None  # (n, M) log pi_i of each candidate: token-level LMs only
    received: int = 0


class AdPlatform(Agent):
    """The auctioneer of the advertising market.

    instances[k] is query k's instance (the platform uses only its reference LM and proposal);
    advertisers[k] the bus ids of query k's advertisers, in the instance's brand order.
    proposals: the pi_gen of each round, cycled by round number (two entries: an A/B comparison).
    """

    def __init__(
        self,
        agent_id: str,
        mechanism: str,
        instances: Sequence[AdInstance],
        advertisers: Sequence[Sequence[str]],
        ledger: Ledger,
        record: Callable[[Record], None],
        mechanism_rng: np.random.Generator,
        *,
        candidates: int = 20,
        proposals: Sequence[str] = ("context",),
        report_window: float = 1.0,
        feedback_timeout: float = 60.0,
        account: str = "platform",
        max_abs_reward: float = 1e6,
        params: dict | None = None,
    ) -> None:
        super().__init__(agent_id)
        if mechanism not in REWARD_AUCTIONS:
            raise MechanismError(
                f"mechanism.name = {mechanism!r}; expected one of {REWARD_AUCTIONS} (the platform collects "
                "reward reports on candidates; the token auction needs per-token bids and distributions)"
            )
        if len(instances) != len(advertisers):
            raise MechanismError(f"advertisers: {len(advertisers)} lists for {len(instances)} queries")
        for k, (inst, names) in enumerate(zip(instances, advertisers)):
            if len(names) != inst.n:
                raise MechanismError(f"advertisers[{k}]: {len(names)} ids for {inst.n} brands")
        check_tokenizers(instances)
        if candidates < 1:
            raise MechanismError(f"candidates = {candidates}; expected M >= 1")
        bad = [p for p in proposals if p not in PROPOSALS]
        if bad or not proposals:
            raise MechanismError(f"proposals = {list(proposals)!r}; expected a non-empty list of {PROPOSALS}")
        self.mechanism = build_aggregation(mechanism, **(params or {}))
        self.instances = tuple(instances)
        self.advertisers = tuple(tuple(a) for a in advertisers)
        self.index = [{a: i for i, a in enumerate(names)} for names in self.advertisers]
        self.all_advertisers = frozenset(a for names in self.advertisers for a in names)
        self.descriptions = [[""] * len(names) for names in self.advertisers]  # "" until one is accepted
        self.ledger = ledger
        self.record = record
        self.mechanism_rng = mechanism_rng
        self.m = int(candidates)
        self.proposals = tuple(proposals)
        self.report_window = float(report_window)
        self.feedback_timeout = float(feedback_timeout)
        self.account = account
        self.max_abs_reward = float(max_abs_reward)
        self._next_round = 0
        self._queue: deque[Envelope] = deque()
        self._current: _OpenAuction | None = None
        self._awaiting: dict[int, tuple[str, float]] = {}  # round -> (user, feedback expiry)
        self.feedback_missing = 0

    async def run(self) -> None:
        while True:
            env = self._queue.popleft() if self._queue else await self.recv()
            self._dispatch(env)
            if self._current is not None:
                await self._collect()
                self._close()

    def _dispatch(self, env: Envelope) -> None:
        msg = env.msg
        if type(msg) is AdQuery:
            if self._current is not None:
                self._queue.append(env)
            else:
                self._open(env.src, msg)
        elif type(msg) is RewardReport:
            self._on_report(env.src, msg)
        elif type(msg) is Feedback:
            self._on_feedback(env.src, msg)
        elif type(msg) is AdDescription:
            self._on_description(env.src, msg)
        elif type(msg) is Error and env.src == BUS_ID:
            pass  # the bus refused one of our own sends; it is logged there
        else:
            self._refuse(env.src, "unexpected", "kind", f"the platform does not accept {msg.kind!r}")

    def _open(self, user: str, query: AdQuery) -> None:
        if query.query_id >= len(self.instances):
            self._refuse(user, "unknown_query", "query_id",
                         f"got {query.query_id}, expected a query id in [0, {len(self.instances)})")
            return
        self._expire_feedback()
        r = self._next_round
        self._next_round += 1
        inst = self.instances[query.query_id]
        proposal = self.proposals[r % len(self.proposals)]
        context_aware = proposal == "context"
        pulls = inst.pulls(self.descriptions[query.query_id])
        # Candidates come from the mechanism's stream before any report exists: pi_gen cannot depend on them.
        replies = inst.sample_candidates(self.m, self.mechanism_rng, context_aware, pulls=pulls)
        deadline = self.now() + self.report_window
        log_roles = None
        if is_token_lm(inst.lm):  # the log keeps every role's log-probs: replay never loads the model
            log_roles = np.stack([inst.lm.logprob_many(replies, inst.advertiser_prompt(i)) for i in range(inst.n)])
        self._current = _OpenAuction(
            r, query.query_id, user, proposal, tuple(wire_reply(y) for y in replies),
            inst.log_ref(replies), inst.log_gen(replies, context_aware, pulls=pulls), deadline,
            np.zeros((inst.n, self.m)), np.zeros(inst.n, dtype=bool), log_roles,
        )
        self.port.multicast(self.advertisers[query.query_id],
                            Candidates(r, query.query_id, self._current.replies, deadline))

    async def _collect(self) -> None:
        cur = self._current
        assert cur is not None, "collecting reports with no auction open"
        while cur.received < len(cur.present):
            timeout = cur.deadline - self.now()
            if timeout <= 0:
                return
            try:
                env = await self.recv(timeout)
            except TimeoutError:
                return
            self._dispatch(env)

    def _on_report(self, src: str, report: RewardReport) -> None:
        cur = self._current
        if src not in self.all_advertisers:
            self._refuse(src, "unknown_agent", "src", f"{src!r} is not an advertiser in this market")
        elif cur is None or report.round != cur.round:
            self._refuse(src, "late", "round", f"report for round {report.round} arrived when it was not open")
        elif src not in self.index[cur.query_id]:
            self._refuse(src, "not_invited", "src", f"{src!r} advertises on no brand of query {cur.query_id}")
        else:
            i = self.index[cur.query_id][src]
            rewards = np.asarray(report.rewards, dtype=float)
            if cur.present[i]:
                self._refuse(src, "duplicate", "round", f"second report for round {report.round}")
            elif rewards.shape != (self.m,):
                self._refuse(src, "wrong_length", "rewards",
                             f"got {rewards.size} rewards, expected one per candidate ({self.m})")
            elif not np.all(np.abs(rewards) <= self.max_abs_reward):
                j = int(np.argmax(~(np.abs(rewards) <= self.max_abs_reward)))
                self._refuse(src, "out_of_range", f"rewards[{j}]",
                             f"got {rewards[j]!r}, expected |reward| <= {self.max_abs_reward}")
            else:
                cur.rewards[i] = rewards
                cur.present[i] = True
                cur.received += 1

    def _close(self) -> None:
        cur = self._current
        assert cur is not None, "closing an auction that is not open"
        self._current = None
        inst = self.instances[cur.query_id]
        names = self.advertisers[cur.query_id]
        outcome = self.mechanism(cur.rewards, cur.log_ref, cur.log_gen, tau=inst.tau)
        shown = sample_shown(outcome.q, self.mechanism_rng)
        pay_minor = [to_minor(float(p)) for p in outcome.payments]
        for i, amount in enumerate(pay_minor):
            try:
                if amount > 0:
                    self.ledger.transfer(names[i], self.account, amount, "payment")
                elif amount < 0:
                    self.ledger.transfer(self.account, names[i], -amount, "rebate")
            except LedgerError as exc:
                # An advertiser that cannot pay is not charged; the refusal is on the record.
                self._refuse(names[i], "budget", "payment", str(exc), reply=False)
                pay_minor[i] = 0
        # q without i's report on the same candidates, for reward gains
        q_without = leave_one_out(cur.rewards, cur.log_ref - cur.log_gen, inst.tau)
        extra = {"shown": shown, "proposal": cur.proposal, "q": outcome.q.tolist(),
                 "q_without": q_without.tolist(), "ess": float(outcome.ess),
                 "revenue": to_units(sum(pay_minor)),
                 "abstained": [a for a, ok in zip(names, cur.present) if not ok]}
        if cur.log_roles is not None:
            extra["lm"] = self._lm_extra(inst, cur, shown)
        self.record(RoundClosed(self.now(), cur.round, cur.query_id, "", tuple(pay_minor), extra))
        reply = cur.replies[shown]
        self.send(cur.user, ReplyShown(cur.round, cur.query_id, reply, 0.0))
        for name, amount in zip(names, pay_minor):
            self.send(name, ReplyShown(cur.round, cur.query_id, reply, to_units(amount)))
        self._awaiting[cur.round] = (cur.user, self.now() + self.feedback_timeout)

    def _lm_extra(self, inst: AdInstance, cur: _OpenAuction, shown: int) -> dict[str, Any]:
        """What a token-level LM's auction adds to its record: the model, log pi_ref, log pi_gen and each
        advertiser's log pi_i of every candidate, each candidate's mentions (``mention_mask``) and the shown text."""
        lm: Any = inst.lm
        assert cur.log_roles is not None, "token-level record of an auction without role log-probs"
        return {
            "model": str(lm.name), "tokenizer": str(lm.tokenizer_id),
            "log_ref": cur.log_ref.tolist(), "log_gen": cur.log_gen.tolist(), "log_adv": cur.log_roles.tolist(),
            "mentions": [mention_mask(text_mentions(lm.decode(y), inst.query.advertisers)) for y in cur.replies],
            "shown_text": str(lm.decode(cur.replies[shown])),
        }

    def _on_description(self, src: str, msg: AdDescription) -> None:
        if src not in self.all_advertisers:
            self._refuse(src, "unknown_agent", "src", f"{src!r} is not an advertiser in this market")
        elif msg.query_id >= len(self.instances):
            self._refuse(src, "unknown_query", "query_id",
                         f"got {msg.query_id}, expected a query id in [0, {len(self.instances)})")
        elif src not in self.index[msg.query_id]:
            self._refuse(src, "not_invited", "src", f"{src!r} advertises on no brand of query {msg.query_id}")
        elif (why := description_refusal(msg.description)) is not None:
            self._refuse(src, "bad_description", "description", why)
        else:
            self.descriptions[msg.query_id][self.index[msg.query_id][src]] = msg.description

    def _on_feedback(self, src: str, fb: Feedback) -> None:
        pending = self._awaiting.get(fb.round)
        if pending is None:
            self._refuse(src, "unknown_round", "round", f"no shown round {fb.round} awaits feedback")
        elif pending[0] != src:
            self._refuse(src, "not_owner", "src", f"round {fb.round} belongs to {pending[0]!r}")
        else:
            del self._awaiting[fb.round]
            self.record(FeedbackAccepted(self.now(), fb.round, src, fb.reward))

    def _expire_feedback(self) -> None:
        now = self.now()
        for r in [r for r, (_, expires) in self._awaiting.items() if expires < now]:
            del self._awaiting[r]
            self.feedback_missing += 1

    def _refuse(self, src: str, code: str, field: str, detail: str, *, reply: bool = True) -> None:
        self.record(Rejected(self.now(), src, code, field, detail))
        if reply and src != BUS_ID:
            self.send(src, Error(code, field, detail[:1024]))
