"""The run page: the figures of procurement, ads and selection runs, drawn offline in a real browser, and
a round inspector that shows what the round record says."""

import json

import pytest

from market.core.ledger import to_units
from market.core.wire import decode
from market.lab.cli import main
from market.lab.pages import kind_of, write_html
from market.lab.pages.run import InspectedRounds, run_page
from market.runtime.config import ConfigError
from market.runtime.eventlog import iter_frames, read_log
from market.runtime.records import MessageSent, RoundClosed
from market.runtime.run import run_scenario


def _run(tmp_path_factory, scenario, rounds, *sets):
    out = tmp_path_factory.mktemp(scenario)
    run_scenario(scenario, rounds=rounds, overrides=sets, out=out)
    return out


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    return _run(tmp_path_factory, "quickstart", 300)


@pytest.fixture(scope="module")
def rosa(tmp_path_factory):
    return _run(tmp_path_factory, "quickstart", 300, "mechanism.name=rosa-trcm-ucb")


def _closed(run_dir, r):
    return next(rec for _, rec, _ in iter_frames(run_dir / "events.msgpack")
                if isinstance(rec, RoundClosed) and rec.round == r)


def test_the_same_run_gives_the_same_page(quickstart):
    assert run_page(quickstart).render() == run_page(quickstart).render()


def test_the_inspector_holds_every_round_of_a_short_run_and_a_bounded_set_of_a_long_one():
    assert [r for r in range(300) if r in InspectedRounds.of(300)] == list(range(300))
    long = InspectedRounds.of(100_000)
    held = [r for r in range(100_000) if r in long]
    assert len(held) <= 2100 and held[:200] == list(range(200)) and held[-200:] == list(range(99_800, 100_000))
    assert all(r % long.every == 0 for r in held[200:-200])


def test_report_html_writes_the_page_and_the_markdown(quickstart, capsys):
    assert main(["report", str(quickstart), "--html"]) == 0
    assert (quickstart / "report.html").is_file() and (quickstart / "report.md").is_file()
    assert str(quickstart / "report.html") in capsys.readouterr().out


def test_a_directory_of_no_known_kind_is_refused_naming_what_was_looked_for(tmp_path):
    with pytest.raises(ConfigError, match=r"summary\.json \+ config\.toml \+ events\.msgpack"):
        kind_of(tmp_path)
    assert main(["report", str(tmp_path), "--html"]) == 2


@pytest.mark.parametrize("fixture", ["quickstart", "rosa"])
def test_a_procurement_run_page_draws_every_figure_offline(request, open_page, fixture):
    run_dir = request.getfixturevalue(fixture)
    opened = open_page(write_html(run_dir), screenshot="run" if fixture == "rosa" else None)
    # per agent, payments, regret (Myerson's is 0 throughout), bids against costs, balances
    assert opened.figures() == 5
    assert opened.requests == [] and opened.errors == []


def test_the_inspector_shows_the_round_records_winner_and_payment(rosa, open_page):
    opened = open_page(write_html(rosa))
    page = opened.page
    for r in (0, 137, 299):
        rec = _closed(rosa, r)
        page.fill("#inspect-round", str(r))
        page.dispatch_event("#inspect-round", "change")
        assert page.inner_text("#inspector h3") == f"Round {r}"
        assert page.inner_text("#inspect-winner") == (rec.winner or "none")
        if rec.winner:
            i = int(rec.winner.rsplit("-", 1)[1])
            assert float(page.inner_text("#inspect-payment")) == pytest.approx(to_units(rec.payments_minor[i]))
        table = page.inner_text("#inspect-table")
        assert f"{rec.extra['resampled'][0]:.6f}" in table
    assert opened.errors == []


def test_an_ads_run_page_shows_the_auctions_without_bids(tmp_path_factory, open_page):
    run_dir = _run(tmp_path_factory, "ads", 5)
    opened = open_page(write_html(run_dir), screenshot="run-ads")
    assert opened.figures() == 3  # per agent, payments, balances: no bids, no serving costs
    assert opened.requests == [] and opened.errors == []
    rec = _closed(run_dir, 2)
    opened.page.fill("#inspect-round", "2")
    opened.page.dispatch_event("#inspect-round", "change")
    assert f"{to_units(sum(rec.payments_minor)):.6f}" == opened.page.inner_text("#inspect-payment")
    assert "shown: " + str(rec.extra["shown"]) in opened.page.inner_text("#inspector")
    # the payments are named after the advertisers the round's candidates went to
    called = next(m.dst for _, m, _ in iter_frames(run_dir / "events.msgpack")
                  if isinstance(m, MessageSent) and m.kind == "candidates" and decode(m.frame).round == 2).split(",")
    assert all(name in opened.page.inner_text("#inspect-table") for name in called)


@pytest.mark.parametrize("scenario", ["multi-llm", "finetune"])
def test_a_selection_run_page_shows_the_ledger_and_the_messages(tmp_path_factory, open_page, scenario):
    run_dir = _run(tmp_path_factory, scenario, 40)
    opened = open_page(write_html(run_dir))
    assert opened.figures() == 2  # per agent and balances: these markets close no auction rounds
    assert opened.requests == [] and opened.errors == []
    assert "answer_request" in opened.page.inner_text("#inspector")


def test_inspect_prints_any_round_of_a_long_run_as_the_page_would(tmp_path_factory, capsys):
    run_dir = _run(tmp_path_factory, "quickstart", 2_500)
    held = InspectedRounds.of(2_500)
    closed = next(rec for rec in read_log(run_dir / "events.msgpack").records
                  if isinstance(rec, RoundClosed) and rec.winner and 200 <= rec.round and rec.round not in held)
    outside = closed.round
    assert main(["inspect", str(run_dir), "--round", str(outside), "--round", "0"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert list(shown) == ["0", str(outside)]
    assert shown[str(outside)]["closed"]["winner"] == closed.winner
    winner = int(closed.winner.split("-")[1])
    assert shown[str(outside)]["closed"]["payments"][closed.winner] == to_units(closed.payments_minor[winner])
    assert len(shown[str(outside)]["bids"]) == 5 and shown[str(outside)]["context"] is not None
    # a round the page holds is shown the same way by the page's inspector
    html = run_page(run_dir).render()
    on_page = json.loads(html.split('id="inspect-rounds">')[1].split("</script>")[0])
    assert shown["0"] == on_page["0"]
    assert main(["inspect", str(run_dir), "--round", "2500"]) == 2
    assert "round 2500 is not a round of this run; expected 0 to 2499" in capsys.readouterr().err
