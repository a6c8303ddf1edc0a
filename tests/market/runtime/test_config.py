"""Resolving a config checks each ``params`` table against the keywords its factory accepts: a misspelt or a
builder-supplied key is refused naming the key and listing the accepted ones, before anything is built."""

from __future__ import annotations

import pytest

from market.core.registry import Registry
from market.runtime.config import ConfigError, check_params, resolve
from market.runtime.scenario import Factories


def test_a_misspelt_mechanism_parameter_names_the_key_and_the_accepted_ones():
    with pytest.raises(ConfigError) as err:
        resolve("quickstart", ["mechanism.name=rosa-trcm-ucb", "mechanism.params.muu=0.1"])
    message = str(err.value)
    assert message.startswith("mechanism.params.muu: not a parameter of mechanism 'rosa-trcm-ucb'; accepted: [")
    assert "'mu'" in message and "'alpha'" in message and "'sigma'" in message
    assert "'n'" not in message and "'priors'" not in message  # the market supplies those


def test_accepted_mechanism_parameters_resolve_and_reach_the_mechanism():
    from scenarios.procurement import instance

    config, _ = resolve("quickstart", ["mechanism.name=rosa-trcm-ucb", "mechanism.params.mu=0.2",
                                       "mechanism.params.sigma=0.3", "mechanism.params.width=\"oful\""])
    mechanism = instance(config, 0).mechanism.build()
    assert mechanism.mu == 0.2 and mechanism.rule.learner.sigma == 0.3


def test_a_parameter_the_market_supplies_is_refused():
    with pytest.raises(ConfigError, match=r"mechanism\.params\.priors: not a parameter .* accepted: \['reserve'\]"):
        resolve("quickstart", ["mechanism.params.priors=[]"])


def test_an_unknown_mechanism_name_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"mechanism\.name: got 'rosa', expected one of \[.*'rosa-trcm-ucb'"):
        resolve("quickstart", ["mechanism.name=rosa"])


def test_selector_parameters_are_checked_against_the_learner():
    with pytest.raises(ConfigError, match=r"selector\.params\.alpah: not a parameter of selector 'c2mabv'; "
                                          r"accepted: \[.*'alpha'"):
        resolve("multi-llm", ["selector.params.alpah=0.5"])
    with pytest.raises(ConfigError, match=r"selector\.params\.n_arms: not a parameter of selector 'tiucb'"):
        resolve("finetune", ["selector.params.n_arms=3"])
    config, _ = resolve("finetune", ["selector.params.width_constant=2.0"])
    assert config["selector"]["params"] == {"width_constant": 2.0}


def test_aggregation_parameters_are_checked_and_the_platforms_arguments_refused():
    with pytest.raises(ConfigError, match=r"mechanism\.params\.tau: not a parameter of mechanism 'mosaic'; "
                                          r"accepted: \['payment'\]"):
        resolve("ads", ["mechanism.params.tau=2.0"])


def test_a_factory_whose_kwargs_go_nowhere_declared_takes_any_parameter():
    config = {"mechanism": {"name": "open", "params": {"anything": 1}}}
    check_params(config, Factories("mechanism", Registry("mechanism", {"open": lambda **kw: None})))
    with pytest.raises(ConfigError, match="mechanism.params.anything: .* accepted: \\['x'\\]"):
        check_params(config, Factories("mechanism", Registry("mechanism", {"open": lambda x=1: None})))
