"""Registry of LLM-selection learners by name: budgeted subset learners (C2MAB-V, CUCB,
epsilon-greedy, Thompson sampling) and single-arm rising-bandit learners (TI-UCB, UCB1, SW-UCB,
CD-UCB). build_selector(name, **params) constructs one.
"""

from __future__ import annotations

from typing import Any

from market.core.learning import LearningRegistryError
from market.core.learning.c2mabv import C2MABV
from market.core.learning.combinatorial_baselines import CUCB, EpsilonGreedySubsets, ThompsonSubsets
from market.core.learning.increasing import UCB1, ChangeDetectionUCB, SlidingWindowUCB
from market.core.learning.tiucb import TIUCB
from market.core.registry import Registry

SELECTORS: Registry[Any] = Registry("selector", {
    "c2mabv": C2MABV,
    "cucb": CUCB,
    "epsilon_greedy": EpsilonGreedySubsets,
    "thompson": ThompsonSubsets,
    "tiucb": TIUCB,
    "ucb1": UCB1,
    "sw_ucb": SlidingWindowUCB,
    "cd_ucb": ChangeDetectionUCB,
}, error=LearningRegistryError)


def build_selector(name: str, **params: Any) -> Any:
    """Construct the learner registered under name with its keyword parameters."""
    return SELECTORS.build(name, **params)
