"""The page of one run directory (events.msgpack, summary.json, config.toml): who won and earned what,
payments and regret over rounds, bids against serving costs, the ledger's balances, and a round inspector.

The log is read once, streaming: per-round series are kept (and thinned for display), the inspector's
details only for a bounded set of rounds, so a 10^5-round run gives a page of a few MB.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections import defaultdict
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from market.core.ledger import to_units
from market.core.wire import WireError
from market.lab.pages.page import Page, thin
from market.runtime.builders import logged_scenario
from market.runtime.config import ConfigError
from market.runtime.eventlog import iter_frames
from market.runtime.records import FeedbackAccepted, Header, LedgerTransfer, MessageSent, RoundClosed

# Rounds whose details the inspector embeds: every round of a run this short, else the first and last
# EDGE rounds and every k-th round between, at most about INSPECT_MAX in all.
INSPECT_MAX = 2000
EDGE = 200
# Bid/cost pairs drawn at most (every k-th round beyond that), regret samples taken at most, and points
# per balance line: markers and many lines are what the browser spends its time drawing.
SCATTER_MAX = 1000
REGRET_SAMPLES = 1000
BALANCE_POINTS = 1000
# The outside world mirrors every other account; drawing it would only squash the other lines.
OUTSIDE = "external"


@dataclass(frozen=True, slots=True)
class InspectedRounds:
    """Which rounds the inspector holds: all of ``rounds`` if few enough, else the first and last ``EDGE``
    and every ``every``-th round."""

    rounds: int
    every: int

    @classmethod
    def of(cls, rounds: int) -> InspectedRounds:
        if rounds <= INSPECT_MAX:
            return cls(rounds, 1)
        return cls(rounds, math.ceil((rounds - 2 * EDGE) / (INSPECT_MAX - 2 * EDGE)))

    def __contains__(self, r: int) -> bool:
        return self.every == 1 or r < EDGE or r >= self.rounds - EDGE or r % self.every == 0

    def describe(self) -> str:
        if self.every == 1:
            return f"every round (0 to {self.rounds - 1})"
        return (f"rounds 0 to {EDGE - 1}, {self.rounds - EDGE} to {self.rounds - 1}, and every multiple of "
                f"{self.every} between")


@dataclass
class _RoundDetail:
    context: list[float] | None = None
    bids: dict[str, float] = field(default_factory=dict)
    closed: dict[str, Any] | None = None
    feedback: list[float] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    called: list[str] = field(default_factory=list)  # who the auction's call went to, by name and in order


@dataclass
class RunLog:
    """What the page draws from a log, gathered in one pass (``read``)."""

    header: Header | None = None
    torn: str | None = None
    providers: tuple[str, ...] = ()  # the auction's provider order (RoundClosed.payments_minor's index)
    round_index: list[int] = field(default_factory=list)
    round_payment: list[float] = field(default_factory=list)  # credits paid in the round, all payers
    regret_rounds: list[int] = field(default_factory=list)
    regret: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    bid_cost: dict[str, list[tuple[int, float, float]]] = field(default_factory=lambda: defaultdict(list))
    balances: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    opening: dict[str, float] = field(default_factory=dict)
    details: dict[int, _RoundDetail] = field(default_factory=dict)


def read_run_log(path: Path, rounds: int, providers: tuple[str, ...], observers: list[Any],
                 inspected: Container[int] | None = None) -> RunLog:
    """Stream the log at ``path`` once. ``rounds``: how many the run was to play (bounds the inspector's
    and the scatter's sampling); ``observers``: the scenario's metric observers, sampled for regret;
    ``inspected``: the rounds whose details to keep (default ``InspectedRounds.of(rounds)``)."""
    log = RunLog(providers=providers)
    if inspected is None:
        inspected = InspectedRounds.of(max(rounds, 1))
    scatter_every = max(1, math.ceil(rounds / SCATTER_MAX))
    regret_every = max(1, math.ceil(rounds / REGRET_SAMPLES))
    balance: dict[str, int] = defaultdict(int)
    bids: dict[int, dict[str, float]] = {}  # bids of rounds still open (few at a time)
    won: dict[str, tuple[int, float]] = {}  # winner -> (round, its bid), until its serving cost arrives
    for _, rec, why in iter_frames(path):
        if rec is None:
            log.torn = why
            break
        for m in observers:
            m.observe(rec)
        if isinstance(rec, MessageSent):
            try:
                msg = rec.message()
            except WireError:
                continue  # a frame the market refused is on the log as sent; it has no fields to show
            r = getattr(msg, "round", None)
            if rec.kind == "bid" and r is not None:
                bids.setdefault(r, {})[rec.src] = msg.amount
            if r is not None and r in inspected:
                d = log.details.setdefault(r, _RoundDetail())
                if rec.kind == "call_for_bids" and d.context is None:
                    d.context = [round(x, 4) for x in msg.context]
                if rec.kind == "bid":
                    d.bids.setdefault(rec.src, msg.amount)
                if rec.kind == "candidates" and not d.called:
                    d.called = rec.dst.split(",")
                d.messages.append(_message_line(rec, msg))
        elif isinstance(rec, RoundClosed):
            _close_round(log, rec, bids.pop(rec.round, {}), won, inspected, scatter_every)
            for older in [k for k in bids if k < rec.round]:
                del bids[older]
            if rec.round % regret_every == 0:
                _sample_regret(log, rec.round, observers)
        elif isinstance(rec, LedgerTransfer):
            balance[rec.src] -= rec.amount_minor
            balance[rec.dst] += rec.amount_minor
            if rec.memo == "opening balance":
                log.opening[rec.dst] = log.opening.get(rec.dst, 0.0) + to_units(rec.amount_minor)
            for acct in (rec.src, rec.dst):
                if acct != OUTSIDE:
                    log.balances[acct].append((rec.t, to_units(balance[acct])))
            if rec.memo == "serving cost" and rec.src in won:
                r, bid = won.pop(rec.src)
                if r % scatter_every == 0:
                    log.bid_cost[rec.src].append((r, bid, to_units(rec.amount_minor)))
        elif isinstance(rec, FeedbackAccepted) and rec.round in inspected:
            log.details.setdefault(rec.round, _RoundDetail()).feedback.append(rec.reward)
        elif isinstance(rec, Header):
            log.header = rec
    return log


def _close_round(log: RunLog, rec: RoundClosed, bids: dict[str, float], won: dict[str, tuple[int, float]],
                 inspected: Container[int], scatter_every: int) -> None:
    log.round_index.append(rec.round)
    log.round_payment.append(to_units(sum(rec.payments_minor)))
    if rec.winner and rec.winner in bids:
        won[rec.winner] = (rec.round, bids[rec.winner])
    if rec.round not in inspected:
        return
    detail = log.details.setdefault(rec.round, _RoundDetail())
    names = _payers(log.providers, rec, bids, detail.called)
    extra = {k: v for k, v in rec.extra.items() if k not in ("q", "q_without")}
    closed: dict[str, Any] = {
        "query_id": rec.query_id,
        "winner": rec.winner,
        "payments": {n: to_units(p) for n, p in zip(names, rec.payments_minor)},
        "extra": extra,
    }
    if "resampled" in rec.extra and len(rec.extra["resampled"]) == len(names):
        closed["resampled"] = dict(zip(names, rec.extra["resampled"]))
    detail.closed = closed


def _payers(providers: tuple[str, ...], rec: RoundClosed, bids: dict[str, float], called: list[str]) -> list[str]:
    """Names for the entries of ``payments_minor``: the auction's providers when known, else those its call
    went to (an ads auction's advertisers), else the bidders in natural order (provider-2 before
    provider-10), else positions."""
    n = len(rec.payments_minor)
    if len(providers) == n:
        return list(providers)
    if len(called) == n:
        return called
    if len(bids) == n:
        return sorted(bids, key=_natural)
    return [f"#{i}" for i in range(n)]


def _natural(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _sample_regret(log: RunLog, r: int, observers: list[Any]) -> None:
    values = {k: float(v) for m in observers for k, v in m.result().items()
              if "regret" in k and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if values:
        log.regret_rounds.append(r)
        for k, v in values.items():
            log.regret[k].append(v)


def _message_line(rec: MessageSent, msg: Any) -> str:
    shown = []
    for name in type(msg).__dataclass_fields__:
        v = getattr(msg, name)
        if isinstance(v, float):
            text = f"{v:.6g}"
        elif isinstance(v, tuple) and len(v) > 4:
            text = f"[{len(v)} values]"
        elif isinstance(v, tuple):
            text = "[" + ", ".join(f"{x:.4g}" if isinstance(x, float) else str(x) for x in v) + "]"
        else:
            text = str(v)
        shown.append(f"{name}={text}")
    return f"t={rec.t:.3f} {rec.src} \u2192 {rec.dst}: {rec.kind}({', '.join(shown)})"


# -- the page ----------------------------------------------------------------------------------


def _run_dir(d: Path, trust_builder: bool = False) -> tuple[dict[str, Any], dict[str, Any], int, int,
                                                            tuple[str, ...], list[Any]]:
    """(summary, config, rounds, seed, the auction's providers, the scenario's metric observers) of a run
    directory; raises ConfigError if it is not one."""
    missing = [n for n in ("summary.json", "config.toml", "events.msgpack") if not (d / n).is_file()]
    if missing:
        raise ConfigError(f"run directory: {str(d)!r} has no {', '.join(missing)}; expected a run directory "
                          "(summary.json, config.toml, events.msgpack)")
    summary = json.loads((d / "summary.json").read_text())
    config = tomllib.loads((d / "config.toml").read_text())
    run_cfg = config.get("run", {})
    rounds = int(run_cfg.get("rounds", summary.get("rounds", 0)) or summary.get("rounds", 0) or 0)
    seed = int(run_cfg.get("seed", 0))
    providers: tuple[str, ...] = ()
    observers: list[Any] = []
    builder = config.get("scenario", {}).get("builder", "")
    if builder:
        market = logged_scenario(builder, trust_builder=trust_builder, config=config)
        observers = market.observers(config, seed)
        if market.instance is not None:
            providers = tuple(market.instance(config, seed).providers)
    return summary, config, rounds, seed, providers, observers


def inspect_rounds(directory: Path, wanted: Iterable[int], *,
                   trust_builder: bool = False) -> dict[int, dict[str, Any]]:
    """Any rounds of a run, as the page's inspector shows them (context, bids, the round's record, feedback,
    messages), read from its log in one pass: the way to rounds a long run's page does not hold."""
    wanted = frozenset(wanted)
    _, _, rounds, _, providers, _ = _run_dir(Path(directory), trust_builder)
    bad = sorted(r for r in wanted if not 0 <= r < max(rounds, 1))
    if bad:
        raise ConfigError(f"inspect: round {bad[0]} is not a round of this run; expected 0 to {rounds - 1}")
    log = read_run_log(Path(directory) / "events.msgpack", rounds, providers, [], inspected=wanted)
    return {r: _detail_json(log.details[r]) for r in sorted(wanted) if r in log.details}


def _detail_json(d: _RoundDetail) -> dict[str, Any]:
    return {"context": d.context, "bids": d.bids, "closed": d.closed, "feedback": d.feedback,
            "messages": d.messages}


def run_page(directory: Path, *, trust_builder: bool = False) -> Page:
    """The page of a run directory; raises ConfigError if it is not one."""
    d = Path(directory)
    summary, config, rounds, seed, providers, observers = _run_dir(d, trust_builder)
    log = read_run_log(d / "events.msgpack", rounds, providers, observers)

    name = config.get("scenario", {}).get("name", d.name)
    mech = config.get("mechanism", {}).get("name")
    sub = [config.get("scenario", {}).get("description", ""), f"seed {seed}", f"{rounds:,} rounds",
           f"mechanism {mech}" if mech else "", f"{summary.get('messages', 0):,} messages"]
    page = Page(f"Run: {name}", " \u00b7 ".join(s for s in sub if s))
    if log.torn:
        page.section("Torn log", f"The log ends in a torn frame ({log.torn}); the page shows what came before.")
    _accounts(page, summary)
    _over_rounds(page, log)
    _bids_against_costs(page, log)
    _balances(page, log)
    _inspector(page, log, rounds)
    return page


def _accounts(page: Page, summary: dict[str, Any]) -> None:
    received, paid = summary.get("received", {}), summary.get("paid", {})
    wins = summary.get("wins", {})
    agents = sorted((a for a in summary.get("balances", {}) if a not in (OUTSIDE, "user")), key=_natural)
    # Accounts that only ever held their opening balance (an advertiser never charged) add nothing.
    agents = [a for a in agents if wins.get(a) or _moved(received.get(a, {})) or _moved(paid.get(a, {}))]
    page.section("Per agent", "Wins from the summary; money from the ledger: what each account received, what "
                 "it paid, and the difference (a provider's utility: payments minus serving costs).")
    has_wins = any(wins.get(a) for a in agents)
    rows = []
    got, gave = [], []
    for a in agents:
        r = sum(v for k, v in received.get(a, {}).items() if k != "opening balance")
        p = sum(paid.get(a, {}).values())
        got.append(to_units(r))
        gave.append(to_units(p))
        rows.append([a] + ([wins.get(a, 0)] if has_wins else []) + [to_units(r), to_units(p), to_units(r - p)])
    page.table(["agent"] + (["wins"] if has_wins else []) + ["received", "paid", "received \u2212 paid"], rows,
               table_id="agents")
    fig = go.Figure()
    if has_wins:
        fig.add_bar(x=agents, y=[wins.get(a, 0) for a in agents], name="wins", yaxis="y2", offsetgroup="w")
    fig.add_bar(x=agents, y=got, name="received (credits)", offsetgroup="r")
    fig.add_bar(x=agents, y=gave, name="paid (credits)", offsetgroup="p")
    fig.add_bar(x=agents, y=[g - p for g, p in zip(got, gave)], name="received \u2212 paid", offsetgroup="u")
    fig.update_layout(barmode="group", yaxis_title="credits",
                      yaxis2={"title": "wins", "overlaying": "y", "side": "right", "showgrid": False},
                      legend={"orientation": "h", "y": -0.2})
    page.figure(fig, "Per agent: " + ("wins (right axis), " if has_wins else "")
                + "money received and paid, and their difference.", fig_id="per-agent")
    user_paid = to_units(sum(paid.get("user", {}).values()))
    fb = summary.get("feedback", {})
    if "user" in summary.get("balances", {}):
        served = summary.get("rounds", 0) - summary.get("unsold", 0)
        page.raw(f'<p class="note">user: {summary.get("rounds", 0):,} rounds, {served:,} served, paid '
                 f'{user_paid:.3f}, value rated {float(fb.get("reward_sum", 0.0)):.3f} over {fb.get("count", 0):,} '
                 f'ratings, utility {float(fb.get("reward_sum", 0.0)) - user_paid:.3f}.</p>')


def _moved(by_memo: dict[str, int]) -> bool:
    return any(v for k, v in by_memo.items() if k != "opening balance")


def _over_rounds(page: Page, log: RunLog) -> None:
    if not log.round_index:
        return
    page.section("Over rounds", "Thinned for display beyond a few thousand points (each stretch keeps its "
                 "first, last, lowest and highest value).")
    pay = np.asarray(log.round_payment)
    rounds = np.asarray(log.round_index)
    fig = go.Figure()
    x, y = thin(pay)
    fig.add_scatter(x=rounds[x], y=y, mode="lines", name="payment in the round", line={"width": 1})
    x, y = thin(np.cumsum(pay))
    fig.add_scatter(x=rounds[x], y=y, mode="lines", name="cumulative payment", yaxis="y2")
    fig.update_layout(xaxis_title="round", yaxis_title="credits per round",
                      yaxis2={"title": "cumulative credits", "overlaying": "y", "side": "right",
                              "showgrid": False}, legend={"orientation": "h", "y": -0.2})
    page.figure(fig, "Payment per round (all payers of the round, from the round records) and its running sum.",
                fig_id="payments")
    if log.regret:
        fig = go.Figure()
        at = np.asarray(log.regret_rounds)
        for k, values in log.regret.items():
            fig.add_scatter(x=at, y=values, mode="lines", name=k)
        fig.update_layout(xaxis_title="round", yaxis_title="cumulative regret", legend={"orientation": "h",
                                                                                       "y": -0.2})
        page.figure(fig, "Cumulative regret as the scenario's metric observer reckons it, sampled after at most "
                    f"{REGRET_SAMPLES:,} rounds.", fig_id="regret")


def _bids_against_costs(page: Page, log: RunLog) -> None:
    if not log.bid_cost:
        return
    page.section("Bids against costs", "A provider's serving cost is private until it serves: the log holds "
                 "it for winners only (the ledger's \"serving cost\" transfer after the win), so each point is a "
                 "winning bid against the cost of that round's answer. Truthful bidders lie on the diagonal.")
    fig = go.Figure()
    lo, hi = math.inf, -math.inf
    for p in sorted(log.bid_cost, key=_natural):
        pts = log.bid_cost[p]
        costs = [c for _, _, c in pts]
        bids = [b for _, b, _ in pts]
        lo, hi = min(lo, *costs, *bids), max(hi, *costs, *bids)
        fig.add_scatter(x=costs, y=bids, mode="markers", name=p, marker={"size": 5, "opacity": 0.7},
                        text=[f"round {r}" for r, _, _ in pts], hovertemplate="%{text}<br>cost %{x:.4f}<br>"
                        "bid %{y:.4f}<extra>" + p + "</extra>")
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="bid = cost", line={"dash": "dot", "color": "#888"})
    fig.update_layout(xaxis_title="serving cost (credits)", yaxis_title="bid (credits)")
    page.figure(fig, f"Winning bids against serving costs (every round up to {SCATTER_MAX:,} rounds, else every "
                "k-th round).", fig_id="bids-costs")


def _balances(page: Page, log: RunLog) -> None:
    moved = {a: pts for a, pts in log.balances.items() if any(b != pts[0][1] for _, b in pts)}
    if not moved:
        return
    page.section("Ledger balances", "Each account's balance minus its opening balance, after every transfer "
                 f"(the outside world, {OUTSIDE!r}, mirrors them all and is left out). Click a name to hide it.")
    end = max(pts[-1][0] for pts in moved.values())
    fig = go.Figure()
    for a in sorted(moved, key=_natural):
        if moved[a][-1][0] < end:  # the balance holds until the end of the log
            moved[a].append((end, moved[a][-1][1]))
        t = np.asarray([p[0] for p in moved[a]])
        b = np.asarray([p[1] for p in moved[a]]) - log.opening.get(a, 0.0)
        x, y = thin(b, BALANCE_POINTS)
        fig.add_scatter(x=t[x], y=y, mode="lines", name=a, line={"shape": "hv"})
    fig.update_layout(xaxis_title="simulated time (s)", yaxis_title="balance \u2212 opening (credits)")
    page.figure(fig, "Balances over time, one line per account.", fig_id="balances")


def _inspector(page: Page, log: RunLog, rounds: int) -> None:
    if not log.details:
        return
    inspected = InspectedRounds.of(max(rounds, 1))
    keys = sorted(log.details)
    data = {}
    for r in keys:
        data[str(r)] = _detail_json(log.details[r])
    others = "" if inspected.every == 1 else (" `llm-market inspect RUN_DIR --round N` prints any other round "
                                              "from the log.")
    page.section("Round inspector", f"The page holds {inspected.describe()}: {len(keys):,} rounds. Pick one to "
                 "see its context, the bids, the mechanism's resampled bids, the winner, the payments, the "
                 f"feedback and every message of the round.{others}")
    page.raw(f'<p><label>round <input id="inspect-round" type="number" min="{keys[0]}" max="{keys[-1]}" '
             f'value="{keys[0]}" step="1"></label> <input id="inspect-slider" type="range" min="0" '
             f'max="{len(keys) - 1}" value="0" style="width:60%"> <span id="inspect-note" class="note"></span></p>'
             '<div id="inspector"></div>')
    page.data("inspect-rounds", data)
    page.data("inspect-keys", keys)
    page.script(_INSPECTOR_JS)


_INSPECTOR_JS = r"""
(() => {
  const rounds = JSON.parse(document.getElementById('inspect-rounds').textContent);
  const keys = JSON.parse(document.getElementById('inspect-keys').textContent);
  const input = document.getElementById('inspect-round'), slider = document.getElementById('inspect-slider');
  const out = document.getElementById('inspector'), note = document.getElementById('inspect-note');
  const esc = s => String(s).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
  const num = v => typeof v === 'number' ? v.toFixed(6) : (v === undefined || v === null ? '' : esc(v));
  function nearest(r) {
    let lo = 0, hi = keys.length - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (keys[mid] < r) lo = mid + 1; else hi = mid; }
    if (lo > 0 && Math.abs(keys[lo - 1] - r) <= Math.abs(keys[lo] - r)) lo -= 1;
    return lo;
  }
  function show(i) {
    const r = keys[i], d = rounds[String(r)];
    input.value = r; slider.value = i;
    note.textContent = '';
    let h = `<h3>Round ${r}</h3>`;
    if (d.context) h += `<p class="note">context: [${d.context.join(', ')}]</p>`;
    const c = d.closed;
    if (c) {
      h += `<p>query ${c.query_id} · winner <b id="inspect-winner">${esc(c.winner || 'none')}</b>`
        + ` · payment <b id="inspect-payment">${c.winner && c.winner in c.payments ? num(c.payments[c.winner])
        : num(Object.values(c.payments).reduce((a, b) => a + b, 0))}</b></p>`;
      const names = [...new Set([...Object.keys(d.bids), ...Object.keys(c.payments)])];
      h += '<table id="inspect-table"><thead><tr><th>agent</th><th>bid</th><th>resampled bid</th><th>payment</th>'
        + '</tr></thead><tbody>' + names.map(n => `<tr><td>${esc(n)}</td><td>${num(d.bids[n])}</td>`
        + `<td>${c.resampled ? num(c.resampled[n]) : ''}</td><td>${num(c.payments[n])}</td></tr>`).join('')
        + '</tbody></table>';
      const extra = Object.entries(c.extra).filter(([k]) => k !== 'resampled')
        .map(([k, v]) => `${esc(k)}: ${esc(JSON.stringify(v))}`).join(' · ');
      if (extra) h += `<p class="note">mechanism: ${extra}</p>`;
    } else {
      h += '<p class="note">no round record: this market closes no auction (the messages below are the round)</p>';
    }
    h += `<p>feedback: <span id="inspect-feedback">${d.feedback.length ? d.feedback.map(num).join(', ')
      : 'none'}</span></p>`;
    h += '<details open><summary>messages of the round</summary><pre style="font-size:0.8rem;white-space:pre-wrap">'
      + d.messages.map(esc).join('\n') + '</pre></details>';
    out.innerHTML = h;
  }
  input.addEventListener('change', () => {
    const r = Number(input.value), i = nearest(r);
    show(i);
    if (keys[i] !== r) note.textContent = `round ${r} is not held on this page; showing round ${keys[i]}`;
  });
  slider.addEventListener('input', () => show(Number(slider.value)));
  show(0);
})();
"""
