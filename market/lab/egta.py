"""Empirical game-theoretic view of a small procurement game: a payoff table and the truthful profile's regret.

Two strategic roles (provider-0, provider-1; the other providers truthful) each pick a strategy from a short
list; every profile is simulated on the same seeds (common random numbers) in the fast engine. The regret of
the all-truthful profile is the most any role gains by a unilateral deviation, with a seeded bootstrap CI
over seeds (as in EGTA's deviation regret).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from market.lab.deviation import run_tasks

ROLES = ("provider-0", "provider-1")


@dataclass(frozen=True, slots=True)
class Game:
    """payoffs: (seeds, k, k, 2) per-round utility of each role in profile (s0, s1), per seed."""

    mechanism: str
    strategies: tuple[str, ...]
    payoffs: np.ndarray

    def mean_payoffs(self) -> np.ndarray:
        """(k, k, 2) payoff table averaged over seeds."""
        return self.payoffs.mean(axis=0)

    def regret(self, profile: tuple[int, int] = (0, 0), seeds: np.ndarray | None = None) -> float:
        """max over roles and unilateral deviations of the gain over ``profile`` (>= 0 by including staying)."""
        pay = self.mean_payoffs() if seeds is None else self.payoffs[seeds].mean(axis=0)
        a, b = profile
        gain0 = pay[:, b, 0] - pay[a, b, 0]
        gain1 = pay[a, :, 1] - pay[a, b, 1]
        return float(max(gain0.max(), gain1.max()))

    def regret_ci(self, profile: tuple[int, int] = (0, 0), seed: int = 0, resamples: int = 2000) -> tuple[float, float]:
        """Percentile bootstrap 95% CI of the regret, resampling seeds."""
        rng = np.random.default_rng(seed)
        n = self.payoffs.shape[0]
        stats = [self.regret(profile, rng.integers(0, n, n)) for _ in range(resamples)]
        return float(np.quantile(stats, 0.025)), float(np.quantile(stats, 0.975))


def play_game(mechanism: str, strategies: Sequence[str], seeds: int, rounds: int, workers: int = 1,
              scenario: str = "quickstart", overrides: Sequence[str] = ()) -> Game:
    """Simulate every profile of ``strategies`` for the two roles on seeds 0..seeds-1."""
    k = len(strategies)
    profiles = list(itertools.product(range(k), repeat=2))
    tasks = []
    for a, b in profiles:
        sets = [*overrides, f"mechanism.name={mechanism}",
                f"strategies.overrides.{ROLES[0]}={strategies[a]}", f"strategies.overrides.{ROLES[1]}={strategies[b]}"]
        tasks += [("fast", scenario, tuple(sets), seed, rounds, None) for seed in range(seeds)]
    results = run_tasks(tasks, workers)
    payoffs = np.empty((seeds, k, k, 2))
    for p, (a, b) in enumerate(profiles):
        for seed in range(seeds):
            r = results[p * seeds + seed]
            payoffs[seed, a, b] = [r.utilities[role] / r.rounds for role in ROLES]
    return Game(mechanism, tuple(strategies), payoffs)


def verdict_games(quick: bool, workers: int) -> list[Game]:
    """The games shown with the verdict table: truthful / shade / underbid under ROSA and pay-as-bid."""
    seeds, rounds = (20, 200) if quick else (40, 500)
    strategies = ("truthful", "shade", "underbid")
    return [play_game(m, strategies, seeds, rounds, workers, overrides=extra)
            for m, extra in (("rosa-trcm-ucb", ("mechanism.params.mu=0.1",)), ("pay-as-bid", ()))]


def write_csv(games: Sequence[Game], path: Path) -> None:
    """One row per (mechanism, profile): both roles' mean payoffs; then the truthful regret with its CI."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mechanism", "profile", "payoff_provider_0", "payoff_provider_1", "truthful_regret",
                    "regret_ci_low", "regret_ci_high"])
        for g in games:
            pay = g.mean_payoffs()
            low, high = g.regret_ci()
            for a, b in itertools.product(range(len(g.strategies)), repeat=2):
                w.writerow([g.mechanism, f"{g.strategies[a]}/{g.strategies[b]}", f"{pay[a, b, 0]:.6f}",
                            f"{pay[a, b, 1]:.6f}", f"{g.regret():.6f}", f"{low:.6f}", f"{high:.6f}"])


def format_games(games: Sequence[Game]) -> str:
    lines = []
    for g in games:
        pay = g.mean_payoffs()
        low, high = g.regret_ci()
        lines.append(f"EGTA, {g.mechanism}: per-round payoffs (provider-0, provider-1); rows provider-0's strategy")
        lines.append(" " * 12 + "".join(f"{s:>22}" for s in g.strategies))
        for a, s in enumerate(g.strategies):
            lines.append(f"{s:<12}" + "".join(f"{f'({pay[a, b, 0]:+.4f}, {pay[a, b, 1]:+.4f})':>22}"
                                               for b in range(len(g.strategies))))
        lines.append(f"regret of the truthful profile: {g.regret():.4f}  95% CI [{low:.4f}, {high:.4f}]")
        lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class OpenSpielView:
    """The payoff table as OpenSpiel sees it.

    nash_conv: OpenSpiel's NashConv of ``profile`` (sum over the two roles of the best unilateral gain; egta's
        ``regret`` is the largest of the two, ``improvements``).
    improvements: each role's best unilateral gain (>= 0) at ``profile``, from OpenSpiel's best responses.
    alpha_rank: stationary mass of each joint profile ("s0/s1") under alpha-rank in the infinite-alpha limit
        (ranking by who beats whom, independent of the payoffs' scale; ties broken with eps = 0.01).
    """

    mechanism: str
    profile: str
    nash_conv: float
    improvements: tuple[float, float]
    alpha_rank: dict[str, float]


def to_openspiel(game: Game) -> object:
    """The mean payoff table as an OpenSpiel normal-form game (``pyspiel.create_matrix_game``); the [rl] extra."""
    try:
        import pyspiel
    except ImportError:
        raise ImportError("egta --openspiel needs the [rl] extra (open_spiel): pip install 'llm-market-sim[rl]'") \
            from None
    pay = game.mean_payoffs()
    names = list(game.strategies)
    return pyspiel.create_matrix_game(f"egta-{game.mechanism}", f"EGTA payoff table, {game.mechanism}", names, names,
                                      pay[:, :, 0].tolist(), pay[:, :, 1].tolist())


def openspiel_view(game: Game, profile: tuple[int, int] = (0, 0)) -> OpenSpielView:
    """NashConv of ``profile`` (default all-truthful, the first strategy) and alpha-rank, computed by OpenSpiel."""
    matrix = to_openspiel(game)
    import pyspiel
    from open_spiel.python import policy as policies
    from open_spiel.python.algorithms import exploitability
    from open_spiel.python.egt import alpharank
    from open_spiel.python.egt import utils as egt_utils

    turn_based = pyspiel.convert_to_turn_based(matrix)
    pure = policies.TabularPolicy(turn_based)
    pure.action_probability_array[:] = 0.0
    for player, action in enumerate(profile):  # one information state per player in a matrix game
        for state in pure.states_per_player[player]:
            pure.action_probability_array[pure.state_lookup[state], action] = 1.0
    result = exploitability.nash_conv(turn_based, pure, return_only_nash_conv=False)
    pay = game.mean_payoffs()
    tables = [pay[:, :, 0], pay[:, :, 1]]
    _, _, pi, _, per_population = alpharank.compute(tables, use_inf_alpha=True, inf_alpha_eps=0.01)
    masses = {}
    for k, mass in enumerate(pi):
        a, b = egt_utils.get_strat_profile_from_id(per_population, k)
        masses[f"{game.strategies[a]}/{game.strategies[b]}"] = float(mass)
    improvements = tuple(float(max(v, 0.0)) for v in result.player_improvements)
    return OpenSpielView(game.mechanism, f"{game.strategies[profile[0]]}/{game.strategies[profile[1]]}",
                         float(result.nash_conv), (improvements[0], improvements[1]), masses)


def format_openspiel(views: Sequence[OpenSpielView]) -> str:
    lines = []
    for v in views:
        top = sorted(v.alpha_rank.items(), key=lambda kv: -kv[1])[:3]
        lines.append(f"OpenSpiel, {v.mechanism}: NashConv of {v.profile} = {v.nash_conv:.4f} (role gains "
                     f"{v.improvements[0]:.4f}, {v.improvements[1]:.4f}); alpha-rank (inf alpha) top: "
                     + ", ".join(f"{p} {m:.3f}" for p, m in top))
    return "\n".join(lines)
