"""Advertiser strategies see an AdObservation (true rewards, the platform's round, their own history): a
round-dependent strategy written without a counter reports alike through the platform and the floor-1 loop; a
history-keeping one sees its own past rounds in the market; the deprecated report(true_rewards, rng) still works."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from agents.ad_strategies import AD_STRATEGIES, AdFeedback, AdObservation, Reporter, Truthful
from market.conformance import check_ad_strategy
from market.lab.deviation import play_ads, play_ads_market

ROUNDS = 30


class LateExaggerate(Truthful):
    """Truthful until round 12 of the platform, then reports 2 x its rewards: keeps no counter."""

    name = "late-exaggerate"
    seen: ClassVar[list[tuple[int, list[float]]]] = []  # (round, report) of every instance, for the test

    def report(self, obs: AdObservation) -> np.ndarray:
        out = np.asarray(obs.true_rewards, dtype=float) * (2.0 if obs.round >= 12 else 1.0)
        type(self).seen.append((obs.round, out.tolist()))
        return out


class Remembers(Truthful):
    """Truthful; notes the rounds its history holds when it reports."""

    name = "remembers"
    memory = 2
    seen: ClassVar[list[tuple[int, list[int]]]] = []

    def report(self, obs: AdObservation) -> np.ndarray:
        type(self).seen.append((obs.round, [f.round for f in obs.history]))
        return np.asarray(obs.true_rewards, dtype=float)


def test_a_round_dependent_advertiser_strategy_reports_alike_through_the_platform_and_the_loop(monkeypatch):
    monkeypatch.setitem(AD_STRATEGIES._entries, "test-late", LateExaggerate)
    monkeypatch.setattr(LateExaggerate, "seen", [])
    fast = play_ads("mosaic", "test-late", 5, ROUNDS)
    loop = sorted(LateExaggerate.seen)
    monkeypatch.setattr(LateExaggerate, "seen", [])
    market = play_ads_market("mosaic", "test-late", 5, ROUNDS)
    through_platform = sorted(LateExaggerate.seen)
    assert [r for r, _ in loop] == [r for r, _ in through_platform] == list(range(ROUNDS))
    for (_, a), (_, b) in zip(loop, through_platform):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for a in fast.utilities:
        assert market.utilities[a] == pytest.approx(fast.utilities[a], abs=ROUNDS * 1e-6)
    assert any(abs(x) > 0 for _, rep in loop[12:] for x in rep)  # the switch at round 12 is exercised


def test_in_the_market_each_advertisers_history_holds_its_own_last_rounds(monkeypatch):
    monkeypatch.setitem(AD_STRATEGIES._entries, "test-remembers", Remembers)
    monkeypatch.setattr(Remembers, "seen", [])
    play_ads_market("mosaic", "test-remembers", 5, ROUNDS, overrides=["market.queries=5"])  # each asked 6 times
    assert len(Remembers.seen) == ROUNDS
    with_history = [(r, h) for r, h in Remembers.seen if h]
    assert with_history  # queries come back, so some advertisers have rounds behind them
    for r, h in with_history:
        assert len(h) <= 2 and h == sorted(h) and h[-1] < r


def test_the_reporter_reads_the_signature_once_and_keeps_old_strategies_working():
    class Old:
        name = "old"

        def describe(self, brand, description):
            return description

        def report(self, true_rewards, rng):
            return 3.0 * np.asarray(true_rewards)

        def learn(self, feedback):
            pass

        def get_state(self):
            return {}

        def set_state(self, state):
            pass

    with pytest.warns(DeprecationWarning, match=r"report\(true_rewards, rng\) is deprecated"):
        reporter = Reporter(Old())
    assert reporter.legacy and reporter.report(np.ones(3), 7, np.random.default_rng(0)).tolist() == [3.0] * 3
    with pytest.warns(DeprecationWarning):
        check_ad_strategy(Old)
    fresh = Reporter(Remembers())
    for t in range(5):
        fresh.learn(AdFeedback(t, np.ones(2), np.ones(2), 1.0, 0.5))
    twin = Reporter(Remembers())
    twin.set_state(fresh.get_state())
    assert [f.round for f in twin._memory.view()] == [3, 4]
    assert [f.reported.tolist() for f in twin._memory.view()] == [[1.0, 1.0]] * 2
