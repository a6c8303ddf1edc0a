"""The config schema: every number and name of every built-in scenario has a rule, the defaults keep their
own rules, and a rule's ends, finiteness and types are exact."""

from __future__ import annotations

import math

import pytest

from market.runtime.config import ConfigError, check_schema, load_scenario, load_toml, resolve, scenario_files
from market.runtime.schema import MAX_SEED, Choice, Int, Items, Real, Rule, shown


def builtin_scenarios() -> dict[str, str]:
    """name -> builder spec of every built-in scenario file (sweeps excluded)."""
    out = {}
    for name, path in scenario_files().items():
        raw = load_toml(path)
        if "scenario" in raw:
            out[name] = raw["scenario"]["builder"]
    return out


def leaves(tree: dict, prefix: str = ""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
def test_every_number_and_name_of_a_builtin_scenario_has_a_rule_of_its_type(name):
    from market.runtime.config import schema_of

    market = load_scenario(builtin_scenarios()[name])
    schema = schema_of(market)
    defaults = dict(leaves(market.defaults))
    in_file = dict(leaves(load_toml(scenario_files()[name])))  # the file's values replace these defaults
    for key, default in defaults.items():
        if isinstance(default, (int, float)):  # bool is an int: booleans too
            assert key in schema, f"{name}: {key} = {default!r} has no rule"
    for key, rule in schema.items():
        assert key in defaults, f"{name}: the rule for {key} names no key of the defaults"
        assert rule.matches(defaults[key]), f"{name}: {key}'s rule is for {rule.kind}, default {defaults[key]!r}"
        if key not in in_file:
            assert rule.refusal(defaults[key]) is None, f"{name}: the default {key} = {defaults[key]!r} breaks its rule"


@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
def test_every_builtin_scenario_file_keeps_its_rules(name):
    config, _ = resolve(name)
    assert config["scenario"]["name"] == name


def test_ends_open_and_closed():
    rule = Real(0.0, 1.0, lo_open=True)
    assert rule.refusal(0.0) == "a finite number in (0, 1]"
    assert rule.refusal(1.0) is None and rule.refusal(1e-300) is None
    assert rule.refusal(1.0000001) is not None
    half_open = Real(0.0, 1.0, hi_open=True)
    assert half_open.refusal(1.0) == "a finite number in [0, 1)" and half_open.refusal(0.0) is None


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_even_without_ends(value):
    assert Rule("float").refusal(value) == "a finite number"
    assert Real(-1e300, 1e300).refusal(value) is not None


def test_integers_are_checked_exactly_beyond_float_precision():
    rule = Int(0, MAX_SEED)
    assert rule.refusal(MAX_SEED) is None
    assert rule.refusal(MAX_SEED + 1) == f"an integer in [0, {MAX_SEED}]"  # equal to MAX_SEED as a float
    assert rule.refusal(10**400) is not None  # beyond float64: no OverflowError
    assert rule.refusal(-1) is not None


@pytest.mark.parametrize("value", [True, 1.0, "1", None, [1]])
def test_an_integer_key_takes_integers_only(value):
    assert Int(0, 10).refusal(value) == "an integer in [0, 10]"


def test_a_number_key_takes_integers_but_not_booleans():
    assert Real(0.0, 10.0).refusal(3) is None
    assert Real(0.0, 10.0).refusal(True) is not None


def test_names_and_lists():
    assert Choice("a", "b").refusal("c") == "one of ['a', 'b']"
    assert Choice("a", "b").refusal("") is not None
    rule = Items(Real(0.0, 1.0, lo_open=True), 2)
    assert rule.refusal([0.5, 1.0]) is None
    assert rule.refusal([0.5, 0.0]) == "a list of at most 2 entries, each a finite number in (0, 1]"
    assert rule.refusal([0.5, 0.5, 0.5]) is not None
    assert rule.refusal("0.5") is not None


def test_a_huge_integer_or_a_long_text_is_shown_short():
    assert shown(2**1000) == "<an integer of 1001 bits>"
    assert shown(10**5000) == "<an integer of 16610 bits>"  # str() of it would raise
    assert len(shown("x" * 10_000)) == 80


def test_a_rule_naming_a_key_the_defaults_lack_is_a_mistake_of_the_scenario():
    with pytest.raises(ConfigError, match=r"^market\.colour: a rule of the scenario's schema names a key"):
        check_schema({"market": {}}, {"market.colour": Int(0, 1)})


def test_a_type_error_says_what_the_rule_allows():
    with pytest.raises(ConfigError, match=r"^market\.loss: got 'lots', expected a finite number in \[0, 1\]$"):
        resolve("quickstart", ["market.loss=lots"])


def test_a_huge_integer_where_a_number_is_expected_is_refused_not_raised():
    with pytest.raises(ConfigError, match=r"^market\.interarrival: got <an integer of \d+ bits>, expected a finite"):
        resolve("quickstart", [f"market.interarrival={10**400}"])


def test_an_integer_of_over_4300_digits_is_read_as_text_and_refused():
    with pytest.raises(ConfigError, match=r"^run\.rounds: got '1{76}\.\.\., expected an integer in \[0, 10000000\]$"):
        resolve("quickstart", ["run.rounds=" + "1" * 5000])


def test_the_faults_table_and_its_links_use_the_same_rules():
    from market.runtime.faults import DEFAULTS, parse_faults

    with pytest.raises(ConfigError, match=r"^faults\.links\[0\]\.jitter: got -0\.5, expected a finite number in "
                                          r"\[0, 1e\+06\]$"):
        parse_faults({**DEFAULTS, "links": [{"edge": ["auctioneer", "user"], "jitter": -0.5}]})
    with pytest.raises(ConfigError, match=r"^faults\.crashes\[0\]\.at: got 1e\+300, expected a finite number in "
                                          r"\[0, 1e\+13\]$"):
        parse_faults({**DEFAULTS, "crashes": [{"agent": "provider-0", "at": 1e300}]})


def test_the_hostile_frames_bound_leaves_the_hostile_scenario_far_inside():
    from scenarios.procurement import MAX_HOSTILE_FRAMES_PER_ROUND, hostile_frames_per_round

    config, _ = resolve("hostile")
    assert hostile_frames_per_round(config) == pytest.approx((300 + 4) * (1.0 / 10.0 + 1.0))
    assert hostile_frames_per_round(config) < MAX_HOSTILE_FRAMES_PER_ROUND
