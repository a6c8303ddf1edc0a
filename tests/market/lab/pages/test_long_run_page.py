"""The page of a 10^5-round run: small, drawn offline with every figure, its inspector bounded.

A module of its own, so that the suite's processes can run it beside everything else (it runs a long market)."""

import os
import time

import plotly.graph_objects as go
import pytest

from market.lab.pages import write_html
from market.lab.pages.page import Page
from market.runtime.run import run_scenario


@pytest.mark.slow
def test_a_100k_round_run_page_stays_small_and_draws_every_figure(tmp_path_factory, open_page):
    run_dir = tmp_path_factory.mktemp("quickstart")
    run_scenario("quickstart", rounds=100_000, out=run_dir)
    start = time.perf_counter()
    path = write_html(run_dir)
    build = time.perf_counter() - start
    opened = open_page(path, screenshot="run-100k")
    assert os.path.getsize(path) < 10e6
    assert opened.figures() == 5 and opened.requests == [] and opened.errors == []
    # Load times are reported, not judged: the suite runs in two processes side by side, so a wall-clock ratio
    # against another page measures the other process as much as this one. On a quiet machine a page holding
    # plotly.js and one small figure loads in about 1.5 s and this page in about 2 s.
    baseline_page = Page("baseline")
    baseline_page.figure(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])))
    baseline_path = baseline_page.write(tmp_path_factory.mktemp("baseline") / "report.html")
    baseline = min(open_page(baseline_path).load_seconds for _ in range(2))
    load = min(opened.load_seconds, open_page(path).load_seconds)
    print(f"100k-round page: {os.path.getsize(path) / 1e6:.2f} MB, written in {build:.1f} s, loaded in {load:.2f} s "
          f"against {baseline:.2f} s for plotly.js and one figure ({load / baseline:.2f}x)")
