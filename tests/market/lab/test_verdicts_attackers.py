"""The verdict table's second generation: each learned attacker's row is what its printed command computes, and
the utility-loss rows carry the best-response figures with the command that recomputes them."""

import json
import shlex

import pytest

from market.lab import verdicts_attackers as va
from market.lab.cli import main

pytest.importorskip("optuna")

TINY = {"train_seeds": 2, "test_seeds": 3, "rounds": 60, "trials": 3, "ppo_steps": 0}


def test_a_search_row_is_what_its_command_computes(tmp_path):
    row = va._learned_row("pay-as-bid", "pay-as-bid", "search", TINY, 1)
    assert row["trained_on"] == "0..1" and row["seeds"] == "1000..1002"
    assert row["attacker"] == "search (held-out gain)" and row["sees"]
    args = shlex.split(row["command"].replace("--out DIR", f"--out {tmp_path}"))
    assert args[:2] == ["llm-market", "attack"]
    assert main(args[1:]) == 0
    held = json.loads((tmp_path / "attack.json").read_text())["held_out"]
    assert held["gain"] == pytest.approx(row["gain"], abs=1e-12)
    assert (held["ci_low"], held["ci_high"]) == pytest.approx((row["ci_low"], row["ci_high"]), abs=1e-12)


def test_a_loss_row_names_the_mechanism_the_exact_method_and_its_command():
    row = va._loss_row({"mechanism": "MOSAIC (offset)", "kind": "free report", "loss": 0.0, "ci_low": 0.0,
                        "ci_high": 0.0, "verdict": "no profitable deviation", "seeds": 8, "rounds": 30,
                        "warmup": 0, "sees": "own true rewards", "theta_seed0": ""})
    assert row["attacker"] == "utility loss, free report" and row["trained_on"] == "exact (no training)"
    assert row["command"] == "llm-market best-response ads --seeds 8 --rounds 30 --out DIR"
    rev = va._loss_row({"mechanism": "pay-as-bid", "kind": "free bid", "loss": 0.03, "ci_low": 0.02,
                        "ci_high": 0.04, "verdict": "profitable deviation", "seeds": 8, "rounds": 400,
                        "warmup": 300, "sees": "oracle", "theta_seed0": ""})
    assert rev["command"].startswith("llm-market best-response quickstart --seeds 8 --rounds 400 --warmup 300")


def test_rows_print_with_their_cis(tmp_path):
    rows = [va._loss_row({"mechanism": "pay-as-bid", "kind": "free bid", "loss": 0.03, "ci_low": 0.02,
                          "ci_high": 0.04, "verdict": "profitable deviation", "seeds": 8, "rounds": 400,
                          "warmup": 300, "sees": "oracle", "theta_seed0": ""})]
    text = va.format_rows(rows)
    assert "+0.03000" in text and "[+0.02000, +0.04000]" in text
    va.write_csv(rows, tmp_path / "attackers.csv")
    lines = (tmp_path / "attackers.csv").read_text().splitlines()
    assert lines[0].split(",")[:3] == ["mechanism", "attacker", "gain"] and "0.030000" in lines[1]
