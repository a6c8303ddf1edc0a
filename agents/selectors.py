"""User agents that choose models themselves: each query they ask the providers a bandit learner
picks (C2MAB-V and its baselines: a subset S_t, |S_t| <= N; TI-UCB and its baselines: one model),
pay the posted bills through the ledger and learn from the semi-bandit feedback.

An answer that has not come by the deadline counts as incorrect (score 0) at zero cost: the user
never pays for it, and the learner is told exactly that, so its budget bookkeeping matches the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from market.core.ledger import to_minor
from market.core.wire import AnswerRequest, Error, PostedAnswer, ScoredAnswer
from market.runtime.agent import Agent
from market.runtime.world import Wallet

POSTED_PRICE = "posted price"
FINE_TUNING_COST = "fine-tuning cost"


def net_reward(score: float, cost: float, cost_weight: float, price_unit: float) -> float:
    """What a model choice earns the fine-tuning user: quality minus weighted normalised cost."""
    return score - cost_weight * (cost / price_unit)


class _ChoosingUser(Agent):
    """The query loop shared by both users: ask, wait for answers until a deadline, pay, learn."""

    answer_kind: type

    def __init__(
        self,
        agent_id: str,
        queries: int,
        providers: Sequence[str],
        learner: Any,
        wallet: Wallet,
        questions: Callable[[np.random.Generator], int],
        question_rng: np.random.Generator,
        *,
        price_caps: Sequence[float],
        price_unit: float = 1.0,
        interarrival: float = 1.0,
        answer_timeout: float = 5.0,
        memos: Sequence[str] = (),
    ) -> None:
        super().__init__(agent_id)
        self.queries = int(queries)
        self.providers = tuple(providers)
        self.learner = learner
        self.wallet = wallet
        self.questions = questions
        # question draws have their own stream, so self.rng drives the learner alone
        self.question_rng = question_rng
        self.price_caps = tuple(float(c) for c in price_caps)
        self.price_unit = float(price_unit)
        self.interarrival = float(interarrival)
        self.answer_timeout = float(answer_timeout)
        self.memos = tuple(memos) or (POSTED_PRICE,) * len(self.providers)
        self.round = 0
        self.next_at = 0.0
        self.missing = 0  # answers that did not come by the deadline
        self.refused = 0  # bills above the posted price, or that the user could not pay

    async def run(self) -> None:
        while self.round < self.queries:
            if self.now() < self.next_at:
                await self.sleep(self.next_at - self.now())
            arms = self.choose()
            qid = int(self.questions(self.question_rng))
            for a in arms:
                self.send(self.providers[a], AnswerRequest(self.round, qid))
            answers = await self._collect({self.providers[a]: int(a) for a in arms}, qid)
            self.learn(arms, answers)
            self.round += 1
            self.next_at += self.interarrival

    async def _collect(self, asked: dict[str, int], qid: int) -> dict[int, Any]:
        """Answers by arm index; the ones that did not come, or were refused, are absent."""
        deadline = self.now() + self.answer_timeout
        got: dict[int, Any] = {}
        waiting = dict(asked)
        while waiting:
            try:
                env = await self.recv(until=deadline)
            except TimeoutError:
                break
            msg = env.msg
            if env.src not in self.providers and type(msg) is not Error:
                self.refuse(env.src, msg, "a provider")
                continue
            if type(msg) is not self.answer_kind or msg.round != self.round or msg.query_id != qid:
                continue  # late answers of earlier rounds, or errors
            arm = waiting.pop(env.src, None)
            if arm is None:
                continue
            if msg.cost > self.price_caps[arm] or self.wallet.balance < to_minor(msg.cost):
                self.refused += 1
                continue
            self.wallet.pay(env.src, to_minor(msg.cost), self.memos[arm])
            got[arm] = msg
        self.missing += len(waiting)
        return got

    def choose(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement choose()")

    def learn(self, arms: np.ndarray, answers: dict[int, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement learn(arms, answers)")


class SubsetBuyer(_ChoosingUser):
    """Buys the answers of a subset of providers per query with a budgeted subset learner (C2MAB-V,
    CUCB, epsilon-greedy, Thompson): feedback per asked provider is (correct, bill / price_unit)."""

    answer_kind = PostedAnswer

    def choose(self) -> np.ndarray:
        return np.asarray(self.learner.select(self.rng), dtype=np.int64)

    def learn(self, arms: np.ndarray, answers: dict[int, Any]) -> None:
        x = np.array([float(answers[a].correct) if a in answers else 0.0 for a in arms])
        y = np.array([answers[a].cost / self.price_unit if a in answers else 0.0 for a in arms])
        self.learner.update(arms, x, y)


class ModelChooser(_ChoosingUser):
    """Asks one model per query with a rising-bandit learner (TI-UCB, UCB1, SW-UCB, CD-UCB); the
    reward is the graded score minus ``cost_weight`` times the normalised bill (``net_reward``)."""

    answer_kind = ScoredAnswer

    def __init__(self, *args: Any, cost_weight: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cost_weight = float(cost_weight)

    def choose(self) -> np.ndarray:
        return np.array([int(self.learner.select(self.rng))], dtype=np.int64)

    def learn(self, arms: np.ndarray, answers: dict[int, Any]) -> None:
        arm = int(arms[0])
        msg = answers.get(arm)
        reward = 0.0 if msg is None else net_reward(msg.score, msg.cost, self.cost_weight, self.price_unit)
        self.learner.update(arm, reward)
