"""Exact best responses and utility loss: the closed-form maximum is a dense grid's maximum, truthful bidding loses
nothing under ROSA and the critical-bid auctions, a best response gains under pay-as-bid and first-price UCB, MOSAIC
with payments leaves no gain on a fixed candidate set and without payments a large one, and the command writes its
files."""

import csv

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.lab import best_response as br
from market.lab.attackers import ATTACK_METHODS, AttackSpec
from market.lab.cli import main
from market.lab.curve import profit_samples
from market.lab.deviation import play_ads
from market.runtime.config import ConfigError

GRID = np.linspace(0.0, 1.0, 200_001)  # bids in [floor, cap] = [0, 1], spacing 5e-6


def one_round(kind, cost, tau, mu, modified=False, coin=0.5):
    extra = {"modified": np.array([modified]), "coin": np.array([coin])} if kind == "leaky" else {}
    return br.FrozenRounds("m", kind, np.array([cost]), np.array([tau]), np.zeros((1, 2)), mu, 0.0, 1.0, **extra)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["rosa", "critical", "pay-as-bid", "leaky"]), cost=st.floats(0.0, 1.0),
       tau=st.one_of(st.floats(-0.2, 1.3), st.just(-np.inf)), mu=st.floats(0.05, 0.9), modified=st.booleans(),
       coin=st.floats(0.0, 1.0, exclude_max=True))
def test_the_exact_best_bid_is_the_dense_grid_maximum(kind, cost, tau, mu, modified, coin):
    fr = one_round(kind, cost, tau, mu, modified, coin)
    bid, best = fr.best_free()
    grid = fr.utility(GRID[:, None])[:, 0]
    # the exact maximum is at least every grid value, and it is attained: at the bid returned, inside the range,
    # or ("any losing bid") at the bids with utility 0
    assert best[0] >= grid.max() - 1e-12
    if np.isnan(bid[0]):
        assert best[0] == 0.0 and np.any(grid == 0.0)
    else:
        assert 0.0 <= bid[0] <= 1.0
        assert fr.utility(bid[:, None].T)[0, 0] == pytest.approx(best[0], abs=1e-12)
    if kind in ("rosa", "critical"):  # truthful in expectation over own coins: the best bid gains nothing
        assert best[0] - fr.truthful()[0] <= 1e-12


def test_frozen_rounds_give_the_profit_curve_of_market_lab_curve():
    # the same warm-up and draws as `llm-market curve`: a multiplier's mean utility is its column there
    multipliers = (0.8, 1.0, 1.3)
    for mechanism in ("rosa-trcm-ucb", "pay-as-bid", "myerson"):
        sets = [f"mechanism.name={mechanism}"] + (["mechanism.params.mu=0.1"] if "rosa" in mechanism else [])
        _, profits = profit_samples("quickstart", sets, 3, warmup=40, samples=60, multipliers=multipliers)
        fr = br.draw_rounds("quickstart", sets, 3, warmup=40, rounds=60)
        for k, m in enumerate(multipliers):
            bids = np.clip(m * fr.cost, fr.floor, fr.cap)
            np.testing.assert_allclose(fr.utility(bids), profits[:, k], rtol=0, atol=1e-12)


def test_the_best_function_of_each_family_beats_truthful_under_pay_as_bid():
    fr = br.draw_rounds("quickstart", ["mechanism.name=pay-as-bid"], 1, warmup=50, rounds=120)
    truth = fr.truthful().mean()
    for family in br.FAMILIES:
        theta, value = br.best_in_family(fr, family)
        bids = br.family_bids(family, theta, fr.cost, fr.context, fr.floor, fr.cap)
        assert fr.utility(bids).mean() == pytest.approx(value, abs=1e-12)  # the value is the theta's own
        assert value > truth  # shading pays under pay-as-bid
        gain, truthful, fitted = br.cross_fitted_gain(fr, family)  # fitted on half the rounds, judged on the other
        assert truthful == pytest.approx(truth) and gain > 0 and len(fitted) == len(theta)
    m, _ = br.best_multiplier(fr)
    assert br.best_in_family(fr, "affine")[1] >= fr.utility(np.clip(m * fr.cost, 0, 1)).mean() - 1e-12
    # a dense scan of multipliers finds nothing better than the breakpoint search
    scan = np.linspace(0.0, 4.0, 40_001)
    dense = fr.utility(np.clip(scan[:, None] * fr.cost[None, :], fr.floor, fr.cap)).mean(axis=1).max()
    assert br.best_multiplier(fr)[1] >= dense - 1e-12


def test_utility_loss_is_positive_under_pay_as_bid_and_first_price_ucb_and_zero_under_truthful_designs():
    losses = br.utility_loss("quickstart", ["pay-as-bid", "first-price-ucb", "myerson", "rosa-trcm-ucb"], seeds=4,
                             rounds=150, warmup=80, families=("multiplier", "cluster"),
                             mechanism_sets=lambda n: [f"mechanism.name={n}"] + (["mechanism.params.mu=0.1"]
                                                                                  if "rosa" in n else []))
    by = {(x.mechanism, x.kind): x for x in losses}
    for mech in ("pay-as-bid", "first-price-ucb"):
        for kind in ("free bid", "multiplier", "cluster"):
            assert by[(mech, kind)].ci_low > 0, (mech, kind)
            assert by[(mech, kind)].verdict == "profitable deviation"
        # the free bid is the best bid of every round: no function of the cost does better on the same rounds
        assert by[(mech, "free bid")].loss >= max(by[(mech, "cluster")].loss, by[(mech, "multiplier")].loss)
    for mech in ("myerson", "rosa-trcm-ucb"):
        for kind in ("free bid", "multiplier", "cluster"):
            x = by[(mech, kind)]
            assert x.ci_high <= 1e-9 and x.verdict == "no profitable deviation", (mech, kind, x)
            assert all(abs(v) <= 1e-9 for v in x.losses)


def test_the_best_response_under_pay_as_bid_earns_what_truth_earns_under_the_critical_bid():
    # same rule (TRCM-UCB), same truthful warm-up and draws: bidding tau under pay-as-bid is paid tau
    pab = br.draw_rounds("quickstart", ["mechanism.name=pay-as-bid"], 4, warmup=60, rounds=100)
    crit = br.draw_rounds("quickstart", ["mechanism.name=linucb-critical"], 4, warmup=60, rounds=100)
    np.testing.assert_allclose(pab.best_free()[1], crit.truthful(), rtol=0, atol=1e-12)
    assert np.all(pab.truthful() == 0.0)


def test_utility_loss_rows_give_the_verdict_table_one_row_per_mechanism_and_kind(monkeypatch):
    monkeypatch.setitem(br.SIZES, "quick", {"seeds": 2, "rounds": 30, "warmup": 10, "ad_rounds": 2})
    rows = br.utility_loss_rows(True, 1)
    assert [(r["mechanism"], r["kind"].split(" (")[0]) for r in rows] == [
        *((label, kind) for label, _ in br.VERDICT_REVERSE for kind in ("free bid", "best family")),
        *((label, "free report") for label, _ in br.VERDICT_ADS)]
    assert all(set(r) == set(br.COLUMNS) and r["ci_low"] <= r["loss"] <= r["ci_high"] for r in rows)


def test_mechanism_parameters_in_the_overrides_go_with_the_mechanism_named():
    # the scenario's own mechanism (Myerson) takes no mu: the overrides are resolved with --mechanism's, not it
    losses = br.utility_loss("quickstart", ["rosa-trcm-ucb"], overrides=["mechanism.params.mu=0.1"], seeds=2,
                             rounds=20, warmup=5, families=("multiplier",))
    assert [x.kind for x in losses] == ["free bid", "multiplier"]
    assert br.draw_rounds("quickstart", ["mechanism.name=rosa-trcm-ucb", "mechanism.params.mu=0.1"], 0, warmup=5,
                          rounds=3).mu == 0.1


def test_leaky_rosa_with_public_coins_is_manipulable():
    fr = br.draw_rounds("quickstart", ["mechanism.name=rosa-leaky", "mechanism.params.mu=0.1"], 0, warmup=50,
                        rounds=200)
    assert fr.kind == "leaky"
    gain = (fr.best_free()[1] - fr.truthful()).mean()
    assert gain > 0.01


def test_draw_ad_rounds_are_the_auctions_of_play_ads():
    for mech in ("mosaic", "mosaic-nopay"):
        ar = br.draw_ad_rounds(mech, 2, 12)
        played = play_ads(mech, "truthful", 2, 12)
        assert ar.utility(ar.rewards[:, 0])[0].sum() == pytest.approx(played.utilities["advertiser-0"], abs=1e-9)


def test_mosaic_with_payments_leaves_no_gain_and_without_payments_a_large_one():
    for mech in ("mosaic", "mosaic-rochet"):
        ar = br.draw_ad_rounds(mech, 0, 10)
        best = br.best_reports(ar)[1]
        assert np.all(best - ar.utility(ar.rewards[:, 0])[0] <= 1e-9)
    ar = br.draw_ad_rounds("mosaic-nopay", 0, 10)
    reports, best = br.best_reports(ar)
    truth = ar.utility(ar.rewards[:, 0])[0]
    sup = ar.rewards[:, 0].max(axis=1)  # no payments: the best candidate's reward, pushing it up
    assert np.all(best <= sup + 1e-12)
    assert (best - truth).mean() >= 0.99 * (sup - truth).mean() > 0.5
    # the best report found puts its weight on the advertiser's best candidate
    assert np.all(np.argmax(reports, axis=1) == np.argmax(ar.rewards[:, 0], axis=1))


def test_utility_loss_in_the_ad_market_has_a_ci_per_mechanism():
    losses = br.utility_loss("ads", ["mosaic", "mosaic-nopay"], seeds=3, rounds=6)
    by = {x.mechanism: x for x in losses}
    assert by["mosaic"].kind == "free report" and by["mosaic"].ci_high < 1e-6
    assert by["mosaic"].verdict == "no profitable deviation"
    assert by["mosaic-nopay"].ci_low > 0.3 and by["mosaic-nopay"].verdict == "profitable deviation"


def test_bad_arguments_are_refused_naming_them():
    with pytest.raises(ConfigError, match="--seeds"):
        br.utility_loss("quickstart", ["myerson"], seeds=1)
    with pytest.raises(ConfigError, match="families: got .spline."):
        br.utility_loss("quickstart", ["myerson"], families=("spline",))
    with pytest.raises(ConfigError, match="--deviator"):
        br.draw_rounds("quickstart", [], 0, warmup=1, rounds=2, deviator="provider-9")
    with pytest.raises(ConfigError, match="mechanism.name"):
        br.draw_rounds("quickstart", ["mechanism.name=horizon-rosa"], 0, warmup=1, rounds=2)
    with pytest.raises(ConfigError, match="--mechanism"):
        br.draw_ad_rounds("token-auction", 0, 2)


def test_best_response_attacker_hands_back_bidfunc_overrides():
    spec = AttackSpec("quickstart", ("mechanism.name=pay-as-bid",), train_seeds=(0, 1), rounds=80)
    calls = []
    attacker = ATTACK_METHODS.get("best-response")(spec, lambda what, done, total: calls.append((what, done, total)))
    assert attacker.method == "best-response" and attacker.strategy == "bidfunc"
    assert attacker.train_gain > 0 and attacker.train_seeds == (0, 1)
    sets = dict(s.split("=", 1) for s in attacker.overrides)
    assert sets["strategies.overrides.provider-0"] == "bidfunc"
    family = sets["strategies.params.bidfunc.family"]
    assert family in br.FAMILIES
    theta = [float(v) for v in sets["strategies.params.bidfunc.theta"].strip("[]").split(",")]
    assert attacker.train_gain == pytest.approx(attacker.details[f"{family}_gain"])
    assert len(theta) == {"multiplier": 1, "affine": 2, "cluster": br.CLUSTERS}[family]
    assert calls[-1][1] == calls[-1][2]
    truthful = ATTACK_METHODS.get("best-response")(
        AttackSpec("quickstart", ("mechanism.name=myerson",), train_seeds=(0,), rounds=60), lambda *a: None)
    assert abs(truthful.train_gain) <= 1e-12
    with pytest.raises(ConfigError, match="best-response"):
        br.best_response_attacker(AttackSpec("ads"), lambda *a: None)


def test_family_bids_follow_the_bidfunc_strategy():
    from agents.strategies import Bidder, BidderFacts, build_strategy

    rng = np.random.default_rng(0)
    cost, context = rng.uniform(0, 1, 30), rng.uniform(0, 1, (30, 8))
    for family, theta in (("multiplier", [1.3]), ("affine", [0.1, 1.2]), ("cluster", [0.9, 1.4, 2.0, 1.1])):
        strategy = build_strategy("bidfunc", BidderFacts(0, 5, 0.0, 1.0, None), family=family, theta=theta)
        bidder = Bidder(strategy)
        got = [bidder.bid(c, x, t, np.random.default_rng(t)) for t, (c, x) in enumerate(zip(cost, context))]
        np.testing.assert_allclose(got, br.family_bids(family, theta, cost, context, 0.0, 1.0), atol=1e-12)


def test_cli_writes_csv_and_png(tmp_path, capsys):
    out = tmp_path / "br"
    assert main(["best-response", "quickstart", "--mechanism", "pay-as-bid", "--seeds", "2", "--rounds", "40",
                 "--warmup", "10", "--workers", "1", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "best_response.csv")))
    assert [r["kind"] for r in rows] == ["free bid", *br.FAMILIES]
    assert all(r["mechanism"] == "pay-as-bid" and float(r["ci_low"]) <= float(r["loss"]) for r in rows)
    assert (out / "best_response.png").stat().st_size > 1000
    assert "profitable deviation" in capsys.readouterr().out
    assert main(["best-response", "quickstart", "--seeds", "1", "--out", str(out)]) == 2
