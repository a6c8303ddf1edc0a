"""Provider agents that sell answers at posted prices: each request is answered, drawn from the
provider's answer model with its own random stream, and billed (C2MAB-V market, spec A.5).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from market.core.wire import AnswerRequest, PostedAnswer
from market.runtime.agent import Agent


class PostedPriceProvider(Agent):
    """Answers every ``AnswerRequest`` with a ``PostedAnswer``.

    ``answer(query_id, rng) -> (correct, normalised cost in [0, 1])`` is the provider's hidden truth
    (a replayed accuracy, or a replayed question); the bill is that cost times ``price_unit`` credits.
    """

    def __init__(
        self,
        agent_id: str,
        answer: Callable[[int, np.random.Generator], tuple[bool, float]],
        price_unit: float = 1.0,
    ) -> None:
        super().__init__(agent_id)
        self.answer = answer
        self.price_unit = float(price_unit)
        self.served = 0

    async def run(self) -> None:
        while True:
            env = await self.recv()
            msg = env.msg
            if type(msg) is AnswerRequest:
                correct, cost = self.answer(msg.query_id, self.rng)
                self.served += 1
                self.send(env.src, PostedAnswer(msg.round, msg.query_id, bool(correct),
                                                float(cost) * self.price_unit))
