"""Provider agents: what they keep while a round is open, under loss."""

from market.agent import OPEN_ROUNDS, remember_round
from market.config import resolve
from market.world import World


def test_remember_round_forgets_the_oldest_rounds_beyond_the_bound():
    open_rounds: dict[int, str] = {}
    for r in range(OPEN_ROUNDS + 10):
        remember_round(open_rounds, r, f"round {r}")
    assert len(open_rounds) == OPEN_ROUNDS
    assert min(open_rounds) == 10 and open_rounds[OPEN_ROUNDS + 9] == f"round {OPEN_ROUNDS + 9}"


def test_providers_do_not_keep_rounds_whose_result_was_lost():
    rounds = 5 * OPEN_ROUNDS  # about a quarter of the results are lost at this loss rate
    config, builder = resolve("quickstart", [f"run.rounds={rounds}", "market.loss=0.4", "market.latency=0.01"])
    world = World(config, 0)
    builder(world, config)
    providers = [a for a in world.agents if a.id.startswith("provider-")]
    summary = world.run()
    assert summary["rounds"] > OPEN_ROUNDS
    # results were lost (a provider bid in more rounds than it heard the outcome of), yet none keeps more
    # than OPEN_ROUNDS open rounds, and the most recent ones are still open
    for p in providers:
        assert 0 < len(p._open) <= OPEN_ROUNDS
    assert max(len(p._open) for p in providers) == OPEN_ROUNDS
