"""The ads market on a token-level LM (the bigram model behind market/lm's interface, no torch): one mechanism
fed by either LM (same payments, allocations and shown replies as the n-gram path on the same log-prob
matrices), every role's log-probs in the log and exact, replay and verify without building the model, the
same bytes for the same seed, the tokenizers-differ refusal and ``market.lm`` errors."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import scenarios.ads as ads
from market.conformance.truthfulness import AggregationInstance, TruthfulnessViolation, assert_dominant_strategy
from market.core.ledger import Ledger
from market.core.mechanisms.aggregation import mosaic
from market.core.mechanisms.base import MechanismError
from market.lab.cli import main
from market.lm.simulated import SimulatedTokenLM
from market.runtime.eventlog import read_log
from market.runtime.platform import AdPlatform
from market.runtime.records import RoundClosed
from market.runtime.run import replay

ROUNDS = 12


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ads-token")
    for name, lm, seed in (("sim", "simulated", 3), ("sim2", "simulated", 3), ("ngram", "ngram", 3)):
        assert main(["run", "ads", "--seed", str(seed), "--rounds", str(ROUNDS), "--set", f'market.lm="{lm}"',
                     "--set", "market.proposal=both", "--out", str(base / name)]) == 0
    assert main(["run", "ads", "--seed", "3", "--rounds", str(ROUNDS), "--set", 'market.lm="simulated"',
                 "--out", str(base / "one")]) == 0
    return base


def closed(run_dir):
    return [r for r in read_log(run_dir / "events.msgpack").records if isinstance(r, RoundClosed)]


def test_one_mechanism_either_lm_same_payments_allocation_and_offset(runs):
    sim, ngram = closed(runs / "sim"), closed(runs / "ngram")
    assert len(sim) == len(ngram) == 2 * ROUNDS
    for a, b in zip(sim, ngram):
        assert a.payments_minor == b.payments_minor
        assert a.extra["q"] == b.extra["q"] and a.extra["q_without"] == b.extra["q_without"]
        assert a.extra["shown"] == b.extra["shown"] and a.extra["ess"] == b.extra["ess"]
        assert "lm" in a.extra and "lm" not in b.extra  # the simulated LMs' logs keep their form


def test_the_log_holds_every_roles_exact_log_probs_and_mentions(runs):
    config = read_log(runs / "sim" / "events.msgpack").records[0].config
    insts = ads.instances(config, 3)
    records = read_log(runs / "sim" / "events.msgpack").records
    cands = {}
    from market.core.wire import decode
    for r in records:
        if getattr(r, "kind", None) == "candidates" and r.src == "auctioneer":
            msg = decode(r.frame)
            cands[msg.round] = msg.replies
    for rec in closed(runs / "sim"):
        inst, lm = insts[rec.query_id], rec.extra["lm"]
        ys = list(cands[rec.round])
        np.testing.assert_array_equal(lm["log_ref"], inst.log_ref(ys))
        np.testing.assert_array_equal(lm["log_gen"], inst.log_gen(ys, rec.extra["proposal"] == "context"))
        np.testing.assert_array_equal(lm["log_adv"], [inst.lm.logprob_many(ys, inst.advertiser_prompt(i))
                                                      for i in range(inst.n)])
        brands = inst.query.advertisers
        for y, mask in zip(ys, lm["mentions"]):
            text = inst.lm.decode(y).lower().split()
            assert mask == sum(1 << k for k, b in enumerate(brands) if b.lower() in text)
        assert lm["shown_text"] == inst.lm.decode(ys[rec.extra["shown"]])
        assert lm["tokenizer"] == inst.lm.tokenizer_id


def test_same_seed_same_bytes_and_metrics_match_the_ngram_run(runs):
    assert (runs / "sim" / "events.msgpack").read_bytes() == (runs / "sim2" / "events.msgpack").read_bytes()
    footer_sim, _, _ = replay(runs / "sim")
    footer_ng, _, _ = replay(runs / "ngram")
    for arm in ("baseline", "context"):
        examples = footer_sim["metrics"][arm].pop("examples")
        assert len(examples) == 3 and all(isinstance(e["text"], str) for e in examples)
        assert footer_sim["metrics"][arm] == pytest.approx(footer_ng["metrics"][arm], rel=1e-12)


def test_replay_and_verify_never_build_the_model(runs, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was built")

    # a replay reads every role's log-probs from the log; verify builds a world (never run) for its openings
    monkeypatch.setattr(ads, "ngram_instance", refuse)
    footer, recomputed, torn = replay(runs / "one")
    assert torn is None and recomputed == footer
    assert main(["replay", str(runs / "one")]) == 0
    assert "replay OK" in capsys.readouterr().out


def test_models_whose_tokenizers_differ_are_refused():
    from market.core.lm.ads import AdInstance
    from market.runtime.config import resolve

    config, _ = resolve("ads", ['market.lm="simulated"', "market.queries=2"])
    insts = ads.instances(config, 0)

    def loaded(inst, lm=None):
        lm = lm if lm is not None else inst.lm.loaded()
        return AdInstance(inst.query, lm, lm, inst.tau, inst.advertiser_tau)

    def platform(pair):
        return AdPlatform("auctioneer", "mosaic", pair, [i.query.advertisers for i in pair], Ledger(),
                          lambda r: None, np.random.default_rng(0))

    platform([loaded(insts[0]), loaded(insts[1])])  # one tokenizer: accepted
    odd = SimulatedTokenLM(ads.ngram_instance(insts[1].query, np.random.default_rng(0), n_generic=3).lm,
                           insts[1].query.advertisers)
    with pytest.raises(MechanismError, match=r"instances\[1\]\.lm: tokenizer 'sim-\w+', expected tokenizer "
                                             r"'sim-\w+' like instances\[0\]\.lm: models whose tokenizers differ"):
        platform([loaded(insts[0]), loaded(insts[1], odd)])
    with pytest.raises(MechanismError, match="cannot be mixed"):
        platform([loaded(insts[0]), ads.ngram_instance(insts[1].query, np.random.default_rng(0))])


@pytest.mark.parametrize("value, needle", [
    ("gpt", "market.lm: got 'gpt', expected one of"),
    ("openai:ftp://x/v1", "an http(s) URL after 'openai:'"),
    ("openai:http://127.0.0.1:1/v1?temperature=0.7", "not 'temperature'"),
    ("openai:http://127.0.0.1:1/v1?max_new_tokens=0", "max_new_tokens an integer in [1, 4096], not '0'"),
    ("smollm2?max_new_tokens=abc", "max_new_tokens an integer in [1, 4096], not 'abc'"),
    ("smollm2?max_new_tokens=5000", "max_new_tokens an integer in [1, 4096], not '5000'"),
    ("smollm2?threads=0", "threads an integer in [1, 256], not '0'"),
    ("smollm2?top_k=5", "options of smollm2 among ['max_new_tokens', 'threads'] after '?', not 'top_k'"),
    ("smollm2?threads=1&threads=2", "each option of smollm2 once, not 'threads' 2 times"),
    ("hf:/models/x?temperature=2", "options of hf among ['max_new_tokens', 'threads'] after '?', not 'temperature'"),
])
def test_bad_lm_specs_name_the_key_and_what_is_allowed(value, needle, capsys, tmp_path):
    assert main(["run", "ads", "--out", str(tmp_path / "x"), "--set", f'market.lm="{value}"']) == 2
    assert needle in capsys.readouterr().err


def test_lm_specs_parse():
    spec = ads.parse_lm("openai:http://127.0.0.1:8000/v1?model=m&tokenizer=smollm2&max_new_tokens=32")
    assert (spec.kind, spec.arg, spec.option("model", ""), spec.option("max_new_tokens", "")) == (
        "openai", "http://127.0.0.1:8000/v1", "m", "32")
    assert ads.parse_lm("hf:/models/x").arg == "/models/x" and ads.parse_lm("smollm2").token_level
    smol = ads.parse_lm("smollm2?max_new_tokens=16&threads=2")
    assert (smol.kind, smol.arg, smol.option("max_new_tokens", ""), smol.option("threads", "")) == (
        "smollm2", "", "16", "2")
    hf = ads.parse_lm("hf:/models/x?max_new_tokens=8")
    assert (hf.kind, hf.arg, hf.options) == ("hf", "/models/x", (("max_new_tokens", "8"),))
    assert not ads.parse_lm("ngram").token_level


def test_repro_mosaic_on_a_token_level_lm_converges_towards_its_large_m_reference(tmp_path):
    from market.lab.repro.mosaic import run

    summary = run(tmp_path, quick=True, lm="simulated", queries=3)
    assert (tmp_path / "mosaic_lm.csv").exists() and (tmp_path / "mosaic_lm.png").exists()
    gaps = summary["claims"]["gap_to_reference"]["context"]
    assert gaps[1] > gaps[20] and abs(gaps[20]) < gaps[1] / 2  # M = 1 is far, M = 20 (of a 40-reply pool) close
    assert summary["claims"]["revenue_per_query"]["context"] > 0


def test_verdict_ad_cells_take_the_lm_and_agree_across_the_two_paths():
    from market.lab import verdicts
    from market.lab.deviation import run_tasks

    size = {"ad_rounds": 6}
    token = verdicts._task("ads", "mosaic", "exaggerate", 0, size, ("market.lm=simulated", "market.queries=3"))
    ngram = verdicts._task("ads", "mosaic", "exaggerate", 0, size, ("market.lm=ngram", "market.queries=3"))
    assert token[-1] == ("market.lm=simulated", "market.queries=3")
    catalogue = verdicts._task("ads", "mosaic", "exaggerate", 0, size, ("market.queries=3",))
    a, b, c = run_tasks([token, ngram, catalogue], workers=1)
    assert a == b  # same instances, candidates and reports: the same utilities, user value and revenue
    assert a != c  # the sets reach the cell: another LM, other figures
    assert verdicts._task("ads", "mosaic", "exaggerate", 0, size) == ("ads", "mosaic", "exaggerate", 0, 6)


def assert_misreports_never_pay(rewards, log_ref, log_gen, tau=1.0, aggregate=mosaic):
    """The truthfulness kit's check on these fixed candidates: no advertiser's misreport beats its true rewards."""
    inst = AggregationInstance(tuple(map(tuple, np.asarray(rewards, float).tolist())),
                               tuple(np.asarray(log_ref).tolist()), tuple(np.asarray(log_gen).tolist()), tau)
    assert_dominant_strategy(aggregate, inst)


def test_misreports_on_the_logged_candidates_never_pay(runs):
    for rec in closed(runs / "one")[:4]:
        lm = rec.extra["lm"]
        log_ref = np.asarray(lm["log_ref"])
        assert_misreports_never_pay(np.asarray(lm["log_adv"]) - log_ref, log_ref, np.asarray(lm["log_gen"]))
    # the check can fail: without payments, exaggerating on the same logged candidates pays
    with pytest.raises(TruthfulnessViolation):
        assert_misreports_never_pay(np.asarray(lm["log_adv"]) - log_ref, log_ref, np.asarray(lm["log_gen"]),
                                    aggregate=partial(mosaic, payment="none"))


def test_local_model_options_reach_the_loader(monkeypatch):
    pytest.importorskip("torch")
    import market.lm.hf as hf

    calls = []
    monkeypatch.setattr(hf, "load_smollm2", lambda **kw: calls.append(("smollm2", kw)) or object())
    monkeypatch.setattr(hf, "load_hf", lambda path, **kw: calls.append((path, kw)) or object())
    monkeypatch.setattr(ads, "_MODELS", {})
    ads.token_model(ads.parse_lm("smollm2?max_new_tokens=48&threads=1"))
    ads.token_model(ads.parse_lm("smollm2"))
    ads.token_model(ads.parse_lm("hf:/models/x?threads=3"))
    # the ad market's own defaults (16 tokens, 2 threads), not the loader's
    assert ads.LOCAL_DEFAULTS == {"max_new_tokens": 16, "threads": 2}
    assert calls == [("smollm2", {"max_new_tokens": 48, "threads": 1}),
                     ("smollm2", {"max_new_tokens": 16, "threads": 2}),
                     ("/models/x", {"max_new_tokens": 16, "threads": 3})]
