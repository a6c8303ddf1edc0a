"""Advertising instances for MOSAIC built from the paper's 50 queries (arXiv 2405.05905, Appendix D).

One LM per query plays all roles (section 4.1): reference, advertisers' prompted LLMs with rewards
r_i = τ_i (log pi_i − log pi_ref) (Eq. 18 with Z_i = 1) and the context-aware proposal pi_con.

pi_con is conditioned on the advertisers' descriptions, as text: its prompt lists brand i ``pull_i`` times,
where pull_i = ``description_pull`` = the number of whole-word, case-insensitive occurrences of brand i's name
in the description its advertiser supplied, at least 1 (the prompt names every brand; the built-in one-line
descriptions never name theirs, so they give pull 1 and the usual proposal). Each listing adds γ to the
logits of replies mentioning the brand, so brand i's bonus is γ x pull_i.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from market.core.lm.base import FiniteLanguageModel, Prompt, Reply
from market.core.lm.catalogue import CatalogueLM
from market.core.lm.ngram import NGramLM, Score


@dataclass(frozen=True, slots=True)
class AdQuery:
    """One user query with its advertisers: names and one-line descriptions (same length)."""

    qid: int
    query: str
    advertisers: tuple[str, ...]
    descriptions: tuple[str, ...]


def parse_ad_queries(text: str) -> tuple[AdQuery, ...]:
    """The queries of ad_queries.csv (the paper's Table 3), each with its first two advertisers."""
    return tuple(
        AdQuery(
            int(row["qid"]),
            row["query"],
            (row["advertiser1"], row["advertiser2"]),
            (row["description1"], row["description2"]),
        )
        for row in csv.DictReader(io.StringIO(text))
    )


def with_advertisers(queries: Sequence[AdQuery], index: int, n: int, rng: np.random.Generator) -> AdQuery:
    """Query ``index`` with n advertisers: its own first, then others borrowed from the other queries.

    The paper's extra advertisers for n = 5, 10 are only in its code supplement, so we borrow
    (off-topic) advertisers drawn without replacement by ``rng``.
    """
    base = queries[index]
    if n <= len(base.advertisers):
        return AdQuery(base.qid, base.query, base.advertisers[:n], base.descriptions[:n])
    pool = [(a, d) for j, q in enumerate(queries) if j != index for a, d in zip(q.advertisers, q.descriptions)]
    if n - len(base.advertisers) > len(pool):
        raise ValueError(f"n = {n} advertisers requested but only {len(pool) + len(base.advertisers)} exist")
    extra = [pool[k] for k in rng.choice(len(pool), size=n - len(base.advertisers), replace=False)]
    return AdQuery(
        base.qid,
        base.query,
        base.advertisers + tuple(a for a, _ in extra),
        base.descriptions + tuple(d for _, d in extra),
    )


def description_pull(description: str, brand: str) -> int:
    """How many times the context-aware prompt lists ``brand``: whole-word, case-insensitive occurrences of the
    brand's name in its advertiser's ``description``, at least 1."""
    return max(1, len(re.findall(rf"(?<!\w){re.escape(brand)}(?!\w)", description, flags=re.IGNORECASE)))


def default_tau(n: int) -> float:
    """The platform's τ of the paper's experiments: 1 for two advertisers, n/2 for 5 and 10."""
    return n / 2.0


@dataclass(frozen=True, slots=True)
class AdInstance:
    """One auction instance. lm scores pi_ref and the advertisers' LLMs; proposal_lm samples and scores pi_gen.

    advertiser_tau: (n,) τ_i of the reward mapping; tau: the platform's regularisation weight.
    """

    query: AdQuery
    lm: FiniteLanguageModel
    proposal_lm: FiniteLanguageModel
    tau: float
    advertiser_tau: np.ndarray

    @property
    def n(self) -> int:
        return len(self.query.advertisers)

    @property
    def ref_prompt(self) -> Prompt:
        return Prompt(self.query.query)

    def advertiser_prompt(self, i: int) -> Prompt:
        """"Answer the question advertising <i>, <description i>"."""
        return Prompt(self.query.query, advertise=i)

    def pulls(self, descriptions: Sequence[str]) -> tuple[int, ...]:
        """(n,) ``description_pull`` of each brand, from its advertiser's description (brand order)."""
        if len(descriptions) != self.n:
            raise ValueError(f"descriptions: got {len(descriptions)}, expected one per brand ({self.n})")
        return tuple(description_pull(d, a) for d, a in zip(descriptions, self.query.advertisers))

    def proposal_prompt(
        self, context_aware: bool, without: int | None = None, pulls: Sequence[int] | None = None
    ) -> Prompt:
        """pi_ref's prompt (baseline) or pi_con's "try to mention" prompt, brand k listed pulls[k] times (default
        once each), optionally dropping advertiser ``without``."""
        if not context_aware:
            return self.ref_prompt
        times = (1,) * self.n if pulls is None else tuple(int(p) for p in pulls)
        if len(times) != self.n or min(times) < 1:
            raise ValueError(f"pulls: got {list(times)}, expected {self.n} integers >= 1")
        return Prompt(self.query.query, tuple(k for k in range(self.n) if k != without for _ in range(times[k])))

    def sample_candidates(
        self, m: int, rng: np.random.Generator, context_aware: bool, without: int | None = None,
        pulls: Sequence[int] | None = None,
    ) -> list[Reply]:
        """M i.i.d. candidates from the proposal (duplicates kept)."""
        return self.proposal_lm.sample_many(self.proposal_prompt(context_aware, without, pulls), m, rng)

    def log_ref(self, replies: Sequence[Reply]) -> np.ndarray:
        """(M,) log pi_ref(y_j | x)."""
        return self.lm.logprob_many(replies, self.ref_prompt)

    def log_gen(
        self, replies: Sequence[Reply], context_aware: bool, without: int | None = None,
        pulls: Sequence[int] | None = None,
    ) -> np.ndarray:
        """(M,) log pi_gen(y_j | x) of the distribution the candidates were drawn from."""
        return self.proposal_lm.logprob_many(replies, self.proposal_prompt(context_aware, without, pulls))

    def rewards(self, replies: Sequence[Reply]) -> np.ndarray:
        """(n, M) truthful rewards r_i(y_j) = τ_i (log pi_i(y_j) − log pi_ref(y_j))."""
        ref = self.log_ref(replies)
        rows = [self.lm.logprob_many(replies, self.advertiser_prompt(i)) - ref for i in range(self.n)]
        return self.advertiser_tau[:, None] * np.stack(rows)

    def reward_table(self) -> np.ndarray:
        """(n, |Y|) rewards on the whole reply space, in ``lm.replies()`` order."""
        ref = self.lm.log_probs(self.ref_prompt)
        rows = [self.lm.log_probs(self.advertiser_prompt(i)) - ref for i in range(self.n)]
        return self.advertiser_tau[:, None] * np.stack(rows)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], size=n)


def catalogue_instance(
    query: AdQuery,
    rng: np.random.Generator,
    *,
    tau: float | None = None,
    variants: int = 4,
    max_mentions: int = 2,
    usefulness_scale: float = 1.0,
    brand_penalty: float = 4.0,
    incoherence: float = 1.0,
    context_gain: float = 4.0,
    advertise_gain: tuple[float, float] = (4.0, 7.0),
    rival_penalty: tuple[float, float] = (0.0, 0.5),
    advertiser_tau: float = 1.0,
) -> AdInstance:
    """A catalogue instance: every brand subset of size <= max_mentions, ``variants`` replies each.

    Per-query parameters come from ``rng``: usefulness u ~ N(0, usefulness_scale²), a_i and b_i uniform
    on the given bounds.
    """
    n = len(query.advertisers)
    subsets = [s for size in range(min(max_mentions, n) + 1) for s in itertools.combinations(range(n), size)]
    mentions = np.zeros((len(subsets) * variants, n), dtype=bool)
    for k, s in enumerate(subsets):
        mentions[k * variants : (k + 1) * variants, list(s)] = True
    lm = CatalogueLM(
        rng.normal(0.0, usefulness_scale, size=mentions.shape[0]),
        mentions,
        brand_penalty=brand_penalty,
        incoherence=incoherence,
        context_gain=context_gain,
        advertise_gain=_uniform(rng, advertise_gain, n),
        rival_penalty=_uniform(rng, rival_penalty, n),
        query=query.query,
    )
    return AdInstance(query, lm, lm, default_tau(n) if tau is None else tau, np.full(n, advertiser_tau))


def ngram_instance(
    query: AdQuery,
    rng: np.random.Generator,
    *,
    tau: float | None = None,
    n_generic: int = 4,
    max_len: int = 3,
    logit_scale: float = 1.0,
    brand_penalty: float = 3.0,
    context_gain: float = 3.0,
    advertise_gain: tuple[float, float] = (3.0, 5.0),
    rival_penalty: tuple[float, float] = (0.5, 1.5),
    temperature: float = 1.0,
    top_p: float = 1.0,
    score: Score = "sampled",
    advertiser_tau: float = 1.0,
) -> AdInstance:
    """A bigram-LM instance; the proposal decodes with temperature/top-p and is scored per ``score``.

    pi_ref and the advertisers' LLMs are always scored at temperature 1 without truncation.
    """
    n = len(query.advertisers)
    lm = NGramLM.random(
        n_generic, n, max_len, rng, scale=logit_scale, brand_penalty=brand_penalty, context_gain=context_gain,
        advertise_gain=_uniform(rng, advertise_gain, n), rival_penalty=_uniform(rng, rival_penalty, n),
        query=query.query,
    )
    proposal = lm.with_decoding(temperature, top_p, score)
    return AdInstance(query, lm, proposal, default_tau(n) if tau is None else tau, np.full(n, advertiser_tau))
