"""The page builder: one self-contained file, plotly.js once, figures drawn offline, long series thinned."""

import json

import numpy as np
import plotly.graph_objects as go
from hypothesis import given, settings
from hypothesis import strategies as st
from plotly.offline import get_plotlyjs

from market.lab.pages.page import Page, thin


def _page() -> Page:
    page = Page("A test page", "two figures and a table")
    page.section("Lines", "a line and a bar chart")
    page.figure(go.Figure(go.Scatter(x=[0, 1, 2], y=[1, 3, 2], name="line")), "a line")
    page.figure(go.Figure(go.Bar(x=["a", "b"], y=[2, 1])), "bars", fig_id="bars")
    page.table(["name", "value"], [["a", 1.5], ["<b>", 2]])
    page.data("numbers", {"xs": [1, 2, 3], "text": "</script>"})
    return page


def test_the_page_inlines_plotly_once_and_escapes_what_it_shows(tmp_path):
    text = _page().write(tmp_path / "p.html").read_text()
    assert text.count("Plotly.newPlot") == 2
    assert text.count(get_plotlyjs()[:500]) == 1
    assert "&lt;b&gt;" in text and "<\\/script>" in text
    assert not (tmp_path / "p.html.tmp").exists()


def test_the_same_content_gives_the_same_bytes(tmp_path):
    assert _page().render() == _page().render()


def test_the_page_draws_its_figures_offline(open_page, tmp_path):
    opened = open_page(_page().write(tmp_path / "p.html"))
    assert opened.figures() == 2
    assert opened.requests == [] and opened.errors == []
    data = opened.page.evaluate("() => JSON.parse(document.getElementById('numbers').textContent)")
    assert data == {"xs": [1, 2, 3], "text": "</script>"}


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 20_000), st.integers(8, 400), st.integers(0, 2**32 - 1))
def test_thinning_keeps_the_ends_and_the_extremes(n, max_points, seed):
    y = np.random.default_rng(seed).standard_normal(n)
    x, ys = thin(y, max_points)
    assert x[0] == 0 and x[-1] == n - 1 and np.all(np.diff(x) > 0)
    assert np.array_equal(ys, y[x])
    assert len(x) == n if n <= max_points else len(x) <= max_points
    assert ys.max() == y.max() and ys.min() == y.min()


def test_page_data_round_trips_as_json():
    page = Page("t")
    page.data("d", {"a": [0.5, None]})
    assert json.loads(page.render().split('id="d">')[1].split("</script>")[0]) == {"a": [0.5, None]}
