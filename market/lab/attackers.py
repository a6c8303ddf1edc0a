"""What an attack produces, whatever found it: an attacker a deviation experiment can play.

An attack (a search over bidding functions, reinforcement learning, an exact best response) trains on some
seeds and hands back an ``Attacker``: the strategy it found, as the ``--set`` items that make the deviator
play it through the real bus, with what it could see and what it gained where it was found. Judging it is
then the deviation experiment's job, on held-out seeds, against its truthful twin.

Methods register in ``ATTACK_METHODS`` under the name ``llm-market attack --method`` takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from market.core.registry import Registry


@dataclass(frozen=True, slots=True)
class AttackSpec:
    """Where and how long to attack.

    scenario: a scenario name or TOML path; overrides: --set items for it (e.g. the mechanism);
    deviator: the participant that deviates (``provider-0``; ``advertiser-0`` in the ad market);
    train_seeds: the seeds the attack may look at; rounds: rounds per training run;
    budget: the method's effort (PPO environment steps, search trials, ...), 0 for the method's default;
    out_dir: where the attack may save what it found (a policy file), or None to keep nothing.
    """

    scenario: str
    overrides: tuple[str, ...] = ()
    deviator: str = "provider-0"
    train_seeds: tuple[int, ...] = tuple(range(8))
    rounds: int = 400
    budget: int = 0
    out_dir: str | None = None


@dataclass(frozen=True, slots=True)
class Attacker:
    """A strategy an attack found.

    overrides: the --set items that make ``spec.deviator`` play it (strategy name and its parameters), to be
        added to ``spec.overrides``; a deviation experiment plays it against the same profile with the
        deviator truthful.
    strategy: the strategy's registered name (``policy``, ``bidfunc``, ...), for tables.
    sees: what it could see when it bid (e.g. "own cost, context, round, last outcome and payment").
    train_gain: its mean per-round gain over the truthful twin on the training seeds (as the method measured).
    details: method-specific figures (trials, steps, best parameters), for the output files.
    """

    method: str
    strategy: str
    overrides: tuple[str, ...]
    sees: str
    train_gain: float
    train_seeds: tuple[int, ...]
    details: dict[str, object] = field(default_factory=dict)


# A progress callback: (what, done, total), called as the method goes.
Progress = Callable[[str, int, int], None]

AttackMethod = Callable[[AttackSpec, Progress], Attacker]

# Entries are "module:attr" strings, imported on first use: listing methods imports neither torch nor optuna.
ATTACK_METHODS: Registry[AttackMethod] = Registry("attack method", {
    "best-response": "market.lab.best_response:best_response_attacker",
    "ppo": "market.lab.rl.ppo:ppo_attacker",
    "search": "market.lab.search:search_attacker",
})
