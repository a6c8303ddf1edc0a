"""A deliberately broken ROSA whose coins come from a public stream a provider can compute before bidding.

ROSA is truthful only in expectation over coins drawn after the bids are committed (ROSA spec 3.4);
``LeakyROSA`` draws round t's coins from ``public_coins(leak_seed, t, n)`` to show what goes wrong otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from market.core.mechanisms.base import ReverseOutcome
from market.core.mechanisms.rosa import ROSA, draw_coins
from market.core.seeding import derive_rng


def public_coins(leak_seed: int, round_index: int, n: int) -> np.ndarray:
    """(2, n) uniforms [modification coin, U] of round ``round_index``: anyone knowing the seed can compute them."""
    return draw_coins(derive_rng(int(leak_seed), int(round_index)), n)


class LeakyROSA(ROSA):
    """ROSA with round t's coins taken from ``public_coins(leak_seed, t, n)`` instead of the private stream.

    t counts select calls. Everything else (sampler, allocation, payment) is ROSA's.
    """

    def __init__(self, rule: Any, mu: float, cost_cap: float, cost_floor: float = 0.0, leak_seed: int = 0) -> None:
        super().__init__(rule, mu, cost_cap, cost_floor, clip_bids=False)
        self.leak_seed = int(leak_seed)
        self.rounds = 0
        self.name = f"rosa-leaky-{rule.name}"

    def select(
        self,
        context: np.ndarray,
        bids: np.ndarray,
        rng: np.random.Generator,
        active: np.ndarray | None = None,
    ) -> ReverseOutcome:
        coins = public_coins(self.leak_seed, self.rounds, self.n)
        self.rounds += 1
        return self.select_on_coins(context, self.accept_bids(bids, active), coins, active)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "rounds": self.rounds}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.rounds = int(state["rounds"])

