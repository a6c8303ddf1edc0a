"""The test kit users run on their own additions: API and seed checks for mechanisms, aggregations, strategies
and agents against their Protocols (``api``), byte-identical event logs for a scenario run twice
(``determinism``), and hypothesis searches for profitable misreports (``truthfulness``, which needs the
``test`` extra)."""

from market.conformance.api import (
    ConformanceError,
    check_ad_strategy,
    check_agent,
    check_aggregation,
    check_protocol,
    check_reverse_mechanism,
    check_strategy,
    check_token_aggregation,
)
from market.conformance.determinism import check_run_determinism

__all__ = [
    "ConformanceError",
    "check_ad_strategy",
    "check_agent",
    "check_aggregation",
    "check_protocol",
    "check_reverse_mechanism",
    "check_run_determinism",
    "check_strategy",
    "check_token_aggregation",
]
