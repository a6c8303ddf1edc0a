"""Model agents of the fine-tuning market (TI-UCB, spec B.5): a model being fine-tuned improves with
its own use (rested: quality mu(n) at its n-th answer); an API model is the constant curve.
"""

from __future__ import annotations

from collections.abc import Callable

from market.core.wire import AnswerRequest, ScoredAnswer
from market.runtime.agent import Agent


class CurveModel(Agent):
    """Answers every ``AnswerRequest`` with a ``ScoredAnswer``: score mu(n) + noise N(0, 1) drawn with
    its own stream (or Bernoulli(mu(n)) when ``noise`` is 'bernoulli'), billed ``cost`` credits.

    ``curve(n)`` is the expected quality of the n-th answer (n = 1, 2, ...); each answer is one
    fine-tuning step, so n counts the requests this model has received.
    """

    def __init__(self, agent_id: str, curve: Callable[[int], float], cost: float,
                 noise: float | str = 0.05) -> None:
        super().__init__(agent_id)
        self.curve = curve
        self.cost = float(cost)
        self.noise = noise
        self.pulls = 0

    async def run(self) -> None:
        while True:
            env = await self.recv()
            msg = env.msg
            if type(msg) is AnswerRequest:
                self.pulls += 1
                mean = float(self.curve(self.pulls))
                if self.noise == "bernoulli":
                    score = float(self.rng.random() < mean)
                else:
                    score = mean + float(self.noise) * float(self.rng.standard_normal())
                self.send(env.src, ScoredAnswer(msg.round, msg.query_id, score, self.cost))
