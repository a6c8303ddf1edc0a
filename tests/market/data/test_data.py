"""The shipped data: one reader with a clear error, and loaders that hand its text to floor-1 parsers."""

import ast
from pathlib import Path

import pytest

import market.core
from market.data import (
    DataError,
    ad_queries,
    csv_rows,
    frugalgpt_sciq,
    pythia_checkpoints,
    read_text,
    routellm_gsm8k,
    routellm_gsm8k_prices,
    shipped_files,
)

SHIPPED = ("ad_queries.csv", "frugalgpt_sciq.csv", "llm_prices.csv", "pythia_curves.csv", "routellm_gsm8k.csv",
           "routellm_gsm8k_prices.csv", "routellm_mmlu.csv", "SOURCES.md")


def test_every_data_file_is_shipped_and_sources_names_it():
    assert set(SHIPPED) <= set(shipped_files())
    sources = read_text("SOURCES.md")
    assert all(name in sources for name in shipped_files() if name != "SOURCES.md")


def test_an_unknown_file_is_refused_naming_it_and_the_known_files():
    with pytest.raises(DataError, match=r"'missing\.csv' is not shipped; expected one of .*'ad_queries\.csv'"):
        read_text("missing.csv")
    with pytest.raises(DataError, match="not shipped"):
        read_text("__init__.py")  # code is not data


def test_loaders_return_the_documented_tables():
    queries = ad_queries()
    assert len(queries) == 50 and queries[0].qid == 1 and len(queries[0].advertisers) == 2
    assert len(frugalgpt_sciq()) == 10
    assert len(routellm_gsm8k()) == 1319
    assert {r["arm"] for r in routellm_gsm8k_prices()} == {"mixtral", "gpt4"}
    assert len(pythia_checkpoints()) == 567
    assert csv_rows("frugalgpt_sciq.csv") == frugalgpt_sciq()


def _file_io_in(path: Path) -> list[str]:
    """What in one module reads files: importlib.resources, pathlib, or a bare open() call."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in ("importlib.resources", "pathlib")]
        elif isinstance(node, ast.ImportFrom):
            if node.module in ("importlib.resources", "pathlib"):
                found.append(node.module)
            elif node.module == "importlib":
                found += [f"importlib.{a.name}" for a in node.names if a.name == "resources"]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
            found.append(f"open() at line {node.lineno}")
    return found


def test_floor_one_does_no_file_io():
    # import-linter can only forbid whole external packages, and market.core.registry needs importlib itself
    root = Path(market.core.__file__).parent
    offenders = {str(p.relative_to(root)): hits for p in sorted(root.rglob("*.py")) if (hits := _file_io_in(p))}
    assert offenders == {}
