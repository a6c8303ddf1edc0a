"""The sweep, verdict and reproduction pages, from small real directories, opened in headless Chromium: every
figure drawn, nothing fetched, no script error; the heat map's hover holds the cell's CI and a command that
really recomputes the cell; the same directory gives the same bytes."""

import csv
import shlex
import subprocess
import sys

import pytest

from market.lab.pages import build_page, kind_of
from market.lab.pages.repro import repro_page
from market.lab.pages.sweep import sweep_page
from market.lab.pages.verdicts import heat_map, verdicts_page

SWEEP = """
[sweep]
scenario = "quickstart"
seeds = 2
root_seed = 0
metrics = ["user_utility", "served_fraction"]

[fixed]
"run.rounds" = 30

[grid]
"market.providers" = [2, 3]
"mechanism.name" = ["pay-as-bid", "rosa-trcm-ucb"]
"""


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    from market.lab.sweep import run_sweep

    root = tmp_path_factory.mktemp("sweep")
    (root / "sweep.toml").write_text(SWEEP)
    assert run_sweep(root / "sweep.toml", root / "out", workers=2).failed == 0
    return root / "out"


@pytest.fixture(scope="module")
def verdicts_dir(quick_verdicts, tmp_path_factory):
    """A copy of the session's quick verdict table (pages write report.html into the directory they draw)."""
    import shutil

    out = tmp_path_factory.mktemp("verdicts") / "table"
    shutil.copytree(quick_verdicts, out)
    return out


@pytest.fixture(scope="module")
def repro_dir(tmp_path_factory):
    from market.lab.repro import rosa

    out = tmp_path_factory.mktemp("repro")
    rosa.run(out, quick=True)
    return out


def _clean(opened, figures):
    assert opened.errors == []
    assert opened.requests == []
    assert opened.figures() == figures


def test_the_sweep_page_draws_every_metric_against_every_key(sweep_dir, open_page):
    page = sweep_page(sweep_dir)
    path = page.write(sweep_dir / "report.html")
    assert kind_of(sweep_dir) == "sweep"
    assert build_page(sweep_dir).render() == path.read_text()
    opened = open_page(path, screenshot="sweep")
    _clean(opened, 2 * 2)  # two metrics x two swept keys
    # one line per value of the other key, each with its band in the same legend group
    traces = opened.page.evaluate("() => document.getElementById('fig-1').data.map(t => "
                                  "[t.legendgroup, t.fill || '', t.showlegend !== false])")
    lines = [t for t in traces if t[1] == ""]
    bands = [t for t in traces if t[1] == "toself"]
    assert len(lines) == 2 and len(bands) == 2
    assert {g for g, _, _ in bands} == {g for g, _, _ in lines}
    assert all(not shown for _, _, shown in bands)


def test_hiding_a_sweep_trace_from_the_legend_hides_its_band(sweep_dir, open_page):
    opened = open_page(sweep_page(sweep_dir).write(sweep_dir / "report.html"))
    page = opened.page
    page.locator("#fig-1 .legend .traces").first.click()
    page.wait_for_function("() => document.getElementById('fig-1').data.some(t => t.visible === 'legendonly')")
    hidden = page.evaluate("() => document.getElementById('fig-1').data.filter(t => t.visible === 'legendonly')"
                           ".map(t => t.legendgroup)")
    assert len(hidden) == 2 and len(set(hidden)) == 1  # the line and its band


@pytest.mark.slow
def test_the_verdict_page_hover_holds_each_cells_ci(verdicts_dir, open_page):
    path = verdicts_page(verdicts_dir).write(verdicts_dir / "report.html")
    assert kind_of(verdicts_dir) == "verdicts"
    assert verdicts_page(verdicts_dir).render() == path.read_text()
    opened = open_page(path, screenshot="verdicts")
    _clean(opened, 4)  # heat map, multipliers, profit curves, user's view
    with open(verdicts_dir / "verdicts.csv", newline="") as f:
        cells = list(csv.DictReader(f))
    page = opened.page
    heat = page.evaluate("() => { const t = document.getElementById('heat-map').data[0];"
                         " return {x: t.x, y: t.y, c: t.customdata}; }")
    for c in cells:
        i, j = heat["y"].index(c["mechanism"]), heat["x"].index(c["strategy"])
        data = heat["c"][i][j]
        assert float(data[1]) == pytest.approx(float(c["ci_low"]), abs=1e-6)
        assert float(data[2]) == pytest.approx(float(c["ci_high"]), abs=1e-6)
        assert data[3] == c["verdict"] and data[4] == int(c["seeds"]) and data[5] == int(c["rounds"])
        assert data[6]
    # a real hover over the cell (pay-as-bid, ring): the label shows its CI and its command
    cell = next(c for c in cells if (c["mechanism"], c["strategy"]) == ("pay-as-bid", "ring"))
    box = page.evaluate("""([row, col]) => {
        const div = document.getElementById('heat-map'), l = div._fullLayout, r = div.getBoundingClientRect();
        return [r.left + l._size.l + l.xaxis.d2p(col), r.top + l._size.t + l.yaxis.d2p(row)]; }""",
                        [heat["y"].index("pay-as-bid"), heat["x"].index("ring")])
    page.mouse.move(*box)
    page.wait_for_selector("#heat-map .hoverlayer .hovertext")
    label = page.evaluate("() => document.querySelector('#heat-map .hoverlayer').textContent")
    assert f"[{float(cell['ci_low']):+.6f}, {float(cell['ci_high']):+.6f}]" in label
    assert "--strategy ring" in label and "mechanism.name=pay-as-bid" in label
    page.mouse.click(*box)
    command = page.inner_text("#cell-command")
    assert command.startswith("llm-market deviate quickstart --strategy ring")


@pytest.mark.slow
@pytest.mark.parametrize("mechanism, strategy", [("ROSA + TRCM-UCB", "shade"), ("pay-as-bid", "ring"),
                                                 ("token auction", "exaggerate"), ("horizon ROSA", "underbid")])
def test_the_hover_command_recomputes_the_cell(verdicts_dir, tmp_path, mechanism, strategy):
    from market.lab.cli import main

    with open(verdicts_dir / "verdicts.csv", newline="") as f:
        cells = list(csv.DictReader(f))
    cell = next(c for c in cells if (c["mechanism"], c["strategy"]) == (mechanism, strategy))
    trace = heat_map(cells).data[0]  # what the page's hover shows
    command = trace.customdata[list(trace.y).index(mechanism)][list(trace.x).index(strategy)][6]
    if command.startswith("llm-market "):
        assert main([*shlex.split(command)[1:], "--workers", "2", "--out", str(tmp_path)]) == 0
        with open(tmp_path / "deviation.csv", newline="") as f:
            got = next(csv.DictReader(f))
        assert (got["gain"], got["ci_low"], got["ci_high"]) == (cell["gain"], cell["ci_low"], cell["ci_high"])
    else:
        argv = shlex.split(command)
        out = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, check=True).stdout
        got = [f"{float(v):.6f}" for v in out.split()]
        assert got == [cell["gain"], cell["ci_low"], cell["ci_high"]]


@pytest.mark.slow
def test_the_repro_page_draws_the_rosa_figures(repro_dir, open_page):
    path = repro_page(repro_dir).write(repro_dir / "report.html")
    assert kind_of(repro_dir) == "repro"
    assert repro_page(repro_dir).render() == path.read_text()
    opened = open_page(path, screenshot="repro")
    _clean(opened, 3)  # regret vs T, the mu sweep, utility vs bid
    names = opened.page.evaluate("() => document.getElementById('fig-1').data.map(t => t.name)")
    assert any("gaussian, mu=T^-1/2" in n for n in names) and "slope 1/2" in names
