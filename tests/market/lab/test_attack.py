"""llm-market attack: any registered method trains on seeds 0..N-1 and is judged on disjoint held-out seeds;
the outputs say which seeds did what; the search method end to end through the CLI; horizon-rosa's loop."""

import json

import pytest

from market.lab.attack import held_out_seeds, run_attack
from market.lab.attackers import ATTACK_METHODS, Attacker, AttackSpec
from market.lab.cli import main
from market.lab.deviation import deviate
from market.runtime.config import ConfigError

SEEN: list[AttackSpec] = []


def shade_method(spec: AttackSpec, progress) -> Attacker:
    """A test-only method: shading by 40%, whatever the seeds; it records the spec it was given."""
    SEEN.append(spec)
    progress("shade", 1, 1)
    return Attacker("test-shade", "shade", ("strategies.params.shade.s=0.4",), "own cost", 0.123,
                    spec.train_seeds, {"note": "fixed"})


@pytest.fixture(autouse=True)
def registered():
    if "test-shade" not in ATTACK_METHODS:
        ATTACK_METHODS.register("test-shade", shade_method)
    SEEN.clear()


def test_held_out_seeds_are_disjoint_from_the_training_seeds():
    assert held_out_seeds(range(8), 4) == (1000, 1001, 1002, 1003)
    assert held_out_seeds(range(1500), 2) == (1500, 1501)
    assert not set(held_out_seeds(range(1200), 50)) & set(range(1200))
    with pytest.raises(ConfigError, match="--test-seeds: got 1"):
        held_out_seeds(range(3), 1)


def test_a_registered_method_trains_on_its_seeds_and_is_judged_on_others(tmp_path):
    result = run_attack("quickstart", "test-shade", overrides=["mechanism.name=pay-as-bid"], train_seeds=3,
                        test_seeds=4, rounds=80, out_dir=tmp_path)
    assert [s.train_seeds for s in SEEN] == [(0, 1, 2)] and SEEN[0].rounds == 80
    assert result["train_seeds"] == [0, 1, 2] and result["held_out_seeds"] == [1000, 1001, 1002, 1003]
    held = result["held_out"]
    twin = deviate("quickstart", "shade", rounds=80, overrides=["mechanism.name=pay-as-bid",
                                                                "strategies.params.shade.s=0.4"],
                   seed_list=[1000, 1001, 1002, 1003])
    assert held["gains"] == list(twin.gains) and held["verdict"] == "profitable"
    written = json.loads((tmp_path / "attack.json").read_text())
    assert written["attacker"]["method"] == "test-shade" and written["train_gain"] == 0.123
    assert written["held_out"]["ci_low"] == held["ci_low"]
    rows = (tmp_path / "attack.csv").read_text().splitlines()
    assert len(rows) == 2 and ",0-2," in rows[1] and ",1000-1003," in rows[1]
    assert (tmp_path / "attack.png").stat().st_size > 0


def test_judging_in_the_market_engine_agrees_with_the_fast_engine():
    kw = dict(overrides=["mechanism.name=pay-as-bid"], train_seeds=1, test_seeds=2, rounds=40)
    fast = run_attack("quickstart", "test-shade", engine="fast", **kw)["held_out"]["gains"]
    market = run_attack("quickstart", "test-shade", engine="market", **kw)["held_out"]["gains"]
    assert market == pytest.approx(fast, abs=1e-5)  # the ledger settles in micro-credits


def test_refusals_name_the_option():
    with pytest.raises(ConfigError, match="--family"):
        run_attack("quickstart", "test-shade", families=["affine"], rounds=10)
    with pytest.raises(ConfigError, match="--train-seeds: got 0"):
        run_attack("quickstart", "test-shade", train_seeds=0)
    with pytest.raises(ConfigError, match="--method: got 'test-shade'; under horizon-rosa"):
        run_attack("quickstart", "test-shade", overrides=["mechanism.name=horizon-rosa"], rounds=10)


def test_search_attack_end_to_end_through_the_cli(tmp_path, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "att"
    code = main(["attack", "quickstart", "--method", "search", "--mechanism", "pay-as-bid", "--train-seeds", "2",
                 "--test-seeds", "3", "--budget", "3", "--rounds", "60", "--workers", "1", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "trained on seeds 0..1" in text and "judged on held-out seeds 1000..1002" in text
    result = json.loads((out / "attack.json").read_text())
    assert result["attacker"]["strategy"] == "bidfunc" and len(result["attacker"]["details"]["trace"]) == 3
    assert {p.name for p in out.iterdir()} == {"attack.json", "attack.csv", "attack.png", "search.csv"}


def test_search_attack_under_horizon_rosa_trains_and_judges_in_the_horizon_loop(tmp_path):
    pytest.importorskip("optuna")
    result = run_attack("quickstart", "search", overrides=["mechanism.name=horizon-rosa"], train_seeds=2,
                        test_seeds=2, budget=2, rounds=40, families=["multiplier"])
    assert result["engine"] == "horizon" and result["held_out"]["seeds"] == 2


def test_an_unknown_method_is_one_line_naming_the_known_ones(tmp_path, capsys):
    assert main(["attack", "quickstart", "--method", "nope", "--rounds", "5", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: attack method: unknown name 'nope'") and "search" in err
