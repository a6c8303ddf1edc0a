"""Provider agents: what they keep while a round is open, under loss."""

from dataclasses import replace

from market.runtime.agent import OPEN_ROUNDS, remember_round
from market.runtime.config import resolve
from market.runtime.world import World


def test_remember_round_forgets_the_oldest_rounds_beyond_the_bound():
    open_rounds: dict[int, str] = {}
    for r in range(OPEN_ROUNDS + 10):
        remember_round(open_rounds, r, f"round {r}")
    assert len(open_rounds) == OPEN_ROUNDS
    assert min(open_rounds) == 10 and open_rounds[OPEN_ROUNDS + 9] == f"round {OPEN_ROUNDS + 9}"


def test_providers_do_not_keep_rounds_whose_result_was_lost():
    rounds = 5 * OPEN_ROUNDS  # about a quarter of the results are lost at this loss rate
    config, market = resolve("quickstart", [f"run.rounds={rounds}", "market.loss=0.4", "market.latency=0.01"])
    world = World(config, 0)
    market.build(world, config)
    providers = [a for a in world.agents if a.id.startswith("provider-")]
    summary = world.run()
    assert summary["rounds"] > OPEN_ROUNDS
    # results were lost (a provider bid in more rounds than it heard the outcome of), yet none keeps more
    # than OPEN_ROUNDS open rounds, and the most recent ones are still open
    for p in providers:
        assert 0 < len(p._open) <= OPEN_ROUNDS
    assert max(len(p._open) for p in providers) == OPEN_ROUNDS


def test_forged_and_stray_frames_to_providers_and_users_are_logged_and_ignored(tmp_path):
    from market.core.wire import Feedback, RoundResult, Served
    from market.runtime.agent import Agent
    from market.runtime.eventlog import read_log
    from market.runtime.records import LedgerTransfer, Rejected, RoundClosed

    class Forger(Agent):
        """Tells provider-0 it won round 3, tells the user provider-1 serves query 3, sends provider-2 feedback."""

        async def run(self) -> None:
            await self.sleep(3.2)
            self.send("provider-0", RoundResult(3, True, 0.99))
            self.send("user", Served(3, 3, "provider-1", 0.99))
            self.send("provider-2", Feedback(3, 1.0))

    def build(forged: bool):
        config, market = resolve("quickstart", ["run.rounds=20"])
        world = World(config, 0, tmp_path / f"forged-{forged}")
        market.build(world, config)
        if forged:
            world.add(Forger("forger"))
        summary = world.run()
        return read_log(tmp_path / f"forged-{forged}" / "events.msgpack").records, summary

    (clean, clean_summary), (records, summary) = build(False), build(True)
    rejects = [r for r in records if isinstance(r, Rejected)]
    assert [(r.offender, r.code, r.field) for r in rejects] == [
        ("forger", "unexpected_sender", "src"), ("forger", "unexpected_sender", "src"),
        ("forger", "unexpected_kind", "kind")]
    assert "round_result from 'forger': expected it from 'auctioneer'" in [r.detail for r in rejects]
    assert "feedback from 'forger': provider-2 takes no such frame" in [r.detail for r in rejects]
    # nothing the forger said changed who won, who was paid, or what the user rated
    same = (RoundClosed, LedgerTransfer)
    assert [replace(r, t=0.0) for r in records if isinstance(r, same)] == \
        [replace(r, t=0.0) for r in clean if isinstance(r, same)]
    assert summary["feedback"] == clean_summary["feedback"]
