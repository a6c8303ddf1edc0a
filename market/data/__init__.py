"""The public data shipped with the package (SOURCES.md says where each file comes from).

``read_text`` is the one place that reads a shipped file; the loaders below hand its text to the
floor-1 parsers, so market.core itself never touches a file.
"""

from __future__ import annotations

import csv
import io
from importlib import resources

from market.core.lm.ads import AdQuery, parse_ad_queries
from market.core.quality import MMLUCorrectness, parse_llm_prices, parse_mmlu_correctness

# what the package ships besides code (pyproject's package-data for market.data)
DATA_SUFFIXES = (".csv", ".json", ".md")


class DataError(LookupError):
    """A shipped data file that does not exist."""


def shipped_files() -> tuple[str, ...]:
    """Names of the data files shipped in this package, sorted."""
    return tuple(sorted(
        entry.name for entry in resources.files(__name__).iterdir()
        if entry.is_file() and entry.name.endswith(DATA_SUFFIXES)
    ))


def read_text(name: str) -> str:
    """The UTF-8 text of the shipped data file ``name`` (a file name such as "ad_queries.csv")."""
    known = shipped_files()
    if name not in known:
        raise DataError(f"data file {name!r} is not shipped; expected one of {list(known)}")
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def csv_rows(name: str) -> list[dict[str, str]]:
    """Rows of the shipped CSV ``name``, each a dict from column name to cell text."""
    return list(csv.DictReader(io.StringIO(read_text(name))))


def ad_queries() -> tuple[AdQuery, ...]:
    """MOSAIC's 50 advertising queries (arXiv 2405.05905, Table 3), each with its first two advertisers."""
    return parse_ad_queries(read_text("ad_queries.csv"))


def llm_prices() -> list[dict[str, str | float]]:
    """The compacted litellm price table: model, provider, input/output US$ per token."""
    return parse_llm_prices(read_text("llm_prices.csv"))


def mmlu_correctness() -> MMLUCorrectness:
    """RouteLLM's per-question MMLU correctness of Mixtral-8x7B and GPT-4, by subject (for ReplayQuality)."""
    return parse_mmlu_correctness(read_text("routellm_mmlu.csv"))


def frugalgpt_sciq() -> list[dict[str, str]]:
    """FrugalGPT's SciQ accuracy and mean $/query per model (for BernoulliCostArms.from_frugalgpt_sciq)."""
    return csv_rows("frugalgpt_sciq.csv")


def routellm_gsm8k() -> list[dict[str, str]]:
    """RouteLLM's per-question GSM8K correctness and lengths (rows for JointCorrectnessReplay)."""
    return csv_rows("routellm_gsm8k.csv")


def routellm_gsm8k_prices() -> list[dict[str, str]]:
    """Per-token prices of the two GSM8K arms (prices for JointCorrectnessReplay)."""
    return csv_rows("routellm_gsm8k_prices.csv")


def pythia_checkpoints() -> list[dict[str, str]]:
    """Pythia's zero-shot scores per training checkpoint (rows for pythia_curves)."""
    return csv_rows("pythia_curves.csv")
