"""The crowd market: many users with their own arrivals, overlapping auctions; determinism, money to the
micro-credit, per-class figures, and resume after kill -9 with 1,000 users."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from agents.users import CrowdUser
from market.lab.cli import main
from market.runtime.checkpoint import last_checkpoint
from market.runtime.config import ConfigError, resolve
from market.runtime.run import resume_scenario, run_scenario
from scenarios.crowd import apportion, users

# 10 ms links with jitter: auctions overlap, and no two deliveries fall on the same instant (the order of timers
# due at one instant is the event loop's heap order, which a resumed run need not share)
THOUSAND = ["market.users=1000", "run.rounds=300", "market.max_bidders=5", "market.capacity=4",
            "market.latency=0.01", "market.jitter=0.002"]


def test_apportion_is_exact_and_proportional():
    assert apportion(10, np.array([0.8, 0.2])).tolist() == [8, 2]
    assert apportion(7, np.array([1.0, 1.0, 1.0])).tolist() == [3, 2, 2]
    got = apportion(1000, np.array([0.3, 0.3, 0.4]))
    assert got.sum() == 1000 and got.tolist() == [300, 300, 400]


def test_users_split_the_queries_by_rate():
    config, _ = resolve("crowd", ["market.users=10", "run.rounds=100"])
    crowd = users(config)
    assert [u for u, _, _ in crowd] == [f"casual-{i}" for i in range(8)] + ["power-0", "power-1"]
    assert sum(q for _, _, q in crowd) == 100
    quotas = {k["name"]: q for _, k, q in crowd}
    assert quotas["power"] > 4 * quotas["casual"] - 2  # rate 0.05 against 0.01


def test_class_lists_must_match_the_classes():
    with pytest.raises(ConfigError, match=r"crowd\.rates"):
        run_scenario("crowd", overrides=["crowd.rates=[0.01]", "run.rounds=10", "market.users=2"], out=None)


def _arrivals(rate, daily, period, n, seed):
    u = CrowdUser("casual-0", n, ["p"], lambda *a: 0.0, lambda r: np.zeros(1), rate=rate, daily=daily, period=period)
    u.rng = np.random.default_rng(seed)
    u.next_at = 0.0
    times = []
    for _ in range(n):
        u._schedule()
        times.append(u.next_at)
    return np.array(times)


def test_poisson_arrivals_have_the_rate_and_follow_the_daily_cycle():
    t = _arrivals(2.0, 0.0, 100.0, 20_000, 1)
    gaps = np.diff(t)
    # mean 1/rate with sd 1/rate/sqrt(n): 5 sd is 0.018 here
    assert abs(gaps.mean() - 0.5) < 0.018
    assert abs(gaps.std() - 0.5) < 0.03  # exponential: sd = mean
    t = _arrivals(2.0, 0.8, 100.0, 20_000, 2)
    phase = (t % 100.0) / 100.0
    # rate(t) = 2 (1 + 0.8 sin): the first half of the day gets (1 + 1.6/pi) / 2 = 75.5% of the arrivals
    assert abs((phase < 0.5).mean() - (1 + 1.6 / np.pi) / 2) < 0.02
    assert abs(len(t) / t[-1] - 2.0) < 0.1


@pytest.mark.slow
def test_same_seed_same_bytes_with_1000_users_and_money_to_the_micro_credit(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    config, summary, _ = run_scenario("crowd", overrides=THOUSAND, out=a)
    run_scenario("crowd", overrides=THOUSAND, out=b)
    assert (a / "events.msgpack").read_bytes() == (b / "events.msgpack").read_bytes()
    assert main(["verify", str(a)]) == 0  # each auction's payment comes from the user its record names
    met = summary["metrics"]
    assert sum(f["users"] for f in met["classes"].values()) == 1000
    assert sum(f["queries"] for f in met["classes"].values()) == summary["rounds"] == 300
    assert met["invitations"]["max_bidders"] == 5 and 0 < met["classes"]["casual"]["invited_per_auction"] <= 5
    # money: every account's balance is its opening plus what it received minus what it paid, to the unit,
    # and the ledger's balances sum to zero (the external account funds the openings)
    bal, received, paid = summary["balances"], summary["received"], summary["paid"]
    assert sum(bal.values()) == 0
    budgets = dict(zip(config["crowd"]["classes"], config["crowd"]["budgets"]))
    spend = 0
    for account, b in bal.items():
        if account.startswith(("casual-", "power-")):
            out = paid.get(account, {}).get("payment", 0)
            assert b == round(budgets[account.rpartition("-")[0]] * 10**6) - out
            spend += out
    assert spend == sum(received.get(p, {}).get("payment", 0) for p in bal if p.startswith("provider-"))
    assert round(sum(f["spend"] for f in met["classes"].values()) * 10**6) == spend


@pytest.mark.slow
def test_resume_after_kill_9_with_1000_users_gives_the_uninterrupted_summary(tmp_path):
    sets = [*THOUSAND, "run.checkpoint_every=30"]
    whole = tmp_path / "whole"
    run_scenario("crowd", overrides=sets, out=whole)
    size = (whole / "events.msgpack").stat().st_size
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "market.lab.cli", "run", "crowd", "--out", str(out),
           *[x for s in sets for x in ("--set", s)]]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONHASHSEED": "0"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    log = out / "events.msgpack"
    while proc.poll() is None and (not log.exists() or log.stat().st_size < size // 2):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    assert last_checkpoint(log) is not None
    resume_scenario(out)
    assert json.loads((out / "summary.json").read_text()) == json.loads((whole / "summary.json").read_text())
    assert log.read_bytes() == (whole / "events.msgpack").read_bytes()
