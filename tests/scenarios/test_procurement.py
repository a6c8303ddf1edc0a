"""The procurement market with learning mechanisms: regret metrics, real-data variant, replay."""

from __future__ import annotations

import numpy as np
import pytest

from market.core.mechanisms.priors import CostPriors
from market.core.wire import decode
from market.lab.cli import main
from market.runtime.config import resolve
from market.runtime.eventlog import read_log
from market.runtime.records import MessageSent, RoundClosed
from market.runtime.run import replay, run_scenario
from scenarios.procurement import instance


@pytest.fixture(scope="module")
def rosa_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("proc") / "run"
    assert main(["run", "procurement", "--rounds", "400", "--seed", "3", "--out", str(out)]) == 0
    return out


def test_regret_meter_matches_a_direct_computation_from_the_log(rosa_run):
    records = read_log(rosa_run / "events.msgpack").records
    config, seed = records[0].config, records[0].seed
    inst = instance(config, seed)
    phi = CostPriors.of(list(inst.priors), inst.n).virtual_cost
    idx = {p: i for i, p in enumerate(inst.providers)}
    contexts, bids, regret = {}, {}, 0.0
    for rec in records:
        if isinstance(rec, MessageSent) and rec.kind == "query":
            q = decode(rec.frame)
            contexts[q.query_id] = np.array(q.context)
        elif isinstance(rec, MessageSent) and rec.kind == "bid":
            b = decode(rec.frame)
            bids.setdefault(b.round, {})[idx[rec.src]] = b.amount
        elif isinstance(rec, RoundClosed):
            x = contexts[rec.query_id]
            surplus = {i: inst.quality.mean(x)[i] - phi(np.full(inst.n, a))[i] for i, a in bids[rec.round].items()}
            opt = max(0.0, max(surplus.values()))
            alg = surplus[idx[rec.winner]] if rec.winner else 0.0
            regret += opt - alg
    footer = records[-1].summary
    assert footer["metrics"]["regret"] == pytest.approx(regret, rel=1e-9, abs=1e-9)
    assert 0.0 <= footer["metrics"]["oracle_agreement"] <= 1.0


def test_replay_recomputes_the_scenario_metrics_too(rosa_run):
    footer, recomputed, torn = replay(rosa_run)
    assert torn is None and "metrics" in recomputed
    assert recomputed == footer


def test_learning_beats_no_learning_on_regret_per_round():
    """TRCM-UCB's regret per round falls as it learns: the second half regrets less than the first."""
    _, short, _ = run_scenario("procurement", rounds=300, seed=1)
    _, long, _ = run_scenario("procurement", rounds=1500, seed=1)
    assert long["metrics"]["regret"] / 1500 < short["metrics"]["regret"] / 300


def test_real_data_variant_replays_mmlu_with_list_prices():
    config, summary, _ = run_scenario("procurement_mmlu", rounds=200, seed=2)
    assert set(summary["wins"]) <= {"mixtral-8x7b-instruct-v0.1", "gpt-4-1106-preview"}
    assert summary["rounds"] == 200
    # rewards are 0 or value_per_correct: their sum is a multiple of it
    value = config["quality"]["value_per_correct"]
    ratio = summary["feedback"]["reward_sum"] / value
    assert abs(ratio - round(ratio)) < 1e-6
    inst = instance(config, 2)
    assert inst.priors[1].c_cap > inst.priors[0].c_cap  # GPT-4 costs more to serve than Mixtral


def test_myerson_on_real_data_is_refused_with_a_clear_error():
    config, market = resolve("procurement_mmlu", ["mechanism.name=myerson"])
    from market.runtime.config import ConfigError
    from market.runtime.world import World

    with pytest.raises(ConfigError, match="mechanism.name"):
        market.build(World(config, 0), config)
