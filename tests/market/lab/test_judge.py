"""llm-market judge: a user's mechanism from a folder of their own through the contract, the truthfulness kit,
the utility loss and the shaders, with a card written; the sampled best response agrees with the exact one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from market.lab import judge
from market.lab.best_response import draw_rounds

REPO = Path(__file__).resolve().parents[3]

VICKREY = '''
import numpy as np
from market.core.mechanisms.base import MechanismError, ReverseOutcome


class Vickrey:
    """The lowest bid serves and is paid the second-lowest (the cap if alone): truthful, no learning."""

    name = "vickrey"

    def __init__(self, n, d, priors=None, cost_floor=0.0, cost_cap=1.0):
        self.n, self.cost_floor, self.cost_cap = n, 0.0, 1.0

    def select(self, context, bids, rng, active=None):
        active = np.ones(self.n, bool) if active is None else np.asarray(active, bool)
        b = np.asarray(bids, float)
        if np.any(active & ~((b >= self.cost_floor) & (b <= self.cost_cap))):
            raise MechanismError(f"bids = {b.tolist()}: expected active bids in [0, 1]")
        order = np.argsort(np.where(active, b, np.inf), kind="stable")
        winner, pay = int(order[0]), np.zeros(self.n)
        pay[winner] = b[order[1]] if active.sum() > 1 else self.cost_cap
        return ReverseOutcome(winner, pay, b.copy(), np.zeros(self.n, bool))

    def update(self, context, outcome, reward):
        pass

    def get_state(self):
        return {}

    def set_state(self, state):
        pass


class Greedy(Vickrey):
    """Pays the winner its own bid plus 10% of the gap to the second: shading pays."""

    def select(self, context, bids, rng, active=None):
        out = super().select(context, bids, rng, active)
        w, b = out.winner, np.asarray(bids, float)
        pay = np.zeros(self.n)
        pay[w] = b[w] + 0.1 * (out.payments[w] - b[w])
        return ReverseOutcome(w, pay, b.copy(), np.zeros(self.n, bool))
'''

TOML = '''
[scenario]
builder = "scenarios.procurement:build"

[run]
rounds = 60

[market]
providers = 3
dim = 2
'''


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``llm-market ARGS`` in a fresh interpreter without PYTHONPATH, as an installed package runs."""
    code = f"import sys; sys.path[:0] = {[str(REPO)]!r}; from market.lab.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_a_mechanism_from_an_empty_folder_is_judged_without_pythonpath(tmp_path):
    proj, work = tmp_path / "proj", tmp_path / "work"
    proj.mkdir()
    work.mkdir()
    (proj / "my_auction.py").write_text(VICKREY)
    (proj / "mine.toml").write_text(TOML)
    done = cli(work, "judge", "my_auction:Vickrey", "--scenario", str(proj / "mine.toml"), "--quick",
               "--no-attackers", "--workers", "2", "--out", "card")
    assert done.returncode == 0, done.stderr
    card = json.loads((work / "card" / "judge.json").read_text())
    rows = {r["check"].split(" (")[0]: r for r in card["rows"]}
    assert rows["contract"]["verdict"] == "passes"
    assert rows["truthfulness kit"]["verdict"] == "no profitable misreport"
    # Vickrey has no threshold the exact method knows: the sampled best response, exact here (deterministic)
    loss = rows["best-response utility loss"]
    assert "sampled" in loss["check"] and loss["verdict"] == "no profitable deviation"
    assert loss["gain"] == pytest.approx(0.0, abs=1e-12)
    for s in ("shade", "ucb"):
        low, high = rows[f"shader: {s}"]["ci"]
        assert high < 0 or low <= 0 <= high  # shading never pays a second-price auction
    page = (work / "card" / "judge.html").read_text()
    assert "Verdict card: my_auction:Vickrey" in page and 'id="card"' in page
    assert "| contract (check_reverse_mechanism) | passes |" in (work / "card" / "judge.md").read_text()

    # the cheating variant is caught by the kit and by the sampled best response
    cheat = cli(work, "judge", "my_auction:Greedy", "--scenario", str(proj / "mine.toml"), "--quick",
                "--no-attackers", "--out", "cheat")
    assert cheat.returncode == 0, cheat.stderr
    rows = {r["check"].split(" (")[0]: r for r in json.loads((work / "cheat" / "judge.json").read_text())["rows"]}
    assert rows["truthfulness kit"]["verdict"] == "profitable misreport found"
    assert rows["best-response utility loss"]["verdict"] == "profitable deviation"
    assert rows["best-response utility loss"]["ci"][0] > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_the_sampled_best_response_never_beats_the_exact_one_and_finds_most_of_it(seed):
    sets = ["mechanism.name=pay-as-bid"]
    sampled = judge.sampled_round_losses("quickstart", sets, seed, warmup=50, rounds=40, grid=65)
    fr = draw_rounds("quickstart", sets, seed, warmup=50, rounds=40)
    exact = fr.best_free()[1] - fr.truthful()
    # same rounds (same streams), deterministic mechanism: the grid's best is at most the exact best, per round
    assert np.all(sampled <= exact + 1e-12)
    assert sampled.mean() > 0.8 * exact.mean() > 0


def test_under_rosa_the_sampled_loss_is_within_noise_of_zero():
    sets = ["mechanism.name=rosa-trcm-ucb", "mechanism.params.mu=0.3"]
    per_seed = [judge.sampled_round_losses("quickstart", sets, s, warmup=30, rounds=15, grid=17, coins=6).mean()
                for s in range(4)]
    from market.lab.deviation import bootstrap_ci

    low, high = bootstrap_ci(per_seed)
    assert low <= 1e-9  # cross-fitted: the noise of a maximum cannot make ROSA look manipulable
