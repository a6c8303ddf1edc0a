"""The registry of named factories: lookup, lazy "module:attr" entries, the decorator, and one error that
names the kind, the bad name and the choices."""

from __future__ import annotations

import pickle
import sys

import pytest

from market.core.mechanisms.base import MechanismError, MechanismRegistryError
from market.core.registry import HOW_TO_REGISTER, Registry, RegistryError


def _pair(a: int, b: int = 2) -> tuple[int, int]:
    return a, b


def _forwarding(**params: int) -> tuple[int, int]:
    return _pair(**params)


def _broken(a: int) -> None:
    raise TypeError("a bug inside the factory")


def test_unknown_name_error_names_the_kind_the_name_and_the_sorted_choices():
    reg = Registry("strategy", {"shade": _pair, "exp3": _pair, "gradient": _pair})
    with pytest.raises(RegistryError) as info:
        reg.get("shdae")
    assert str(info.value) == f"strategy: unknown name 'shdae'; known: exp3, gradient, shade; {HOW_TO_REGISTER}"
    assert "--plugin" in HOW_TO_REGISTER and "'module:attr'" in HOW_TO_REGISTER  # it says how to add one
    assert isinstance(info.value, ValueError)  # callers catching ValueError keep working


def test_names_and_iteration_are_sorted_whatever_the_registration_order():
    reg = Registry("kind", {"b": _pair, "a": _pair})
    reg.register("c", _pair)
    assert reg.names() == ("a", "b", "c") and list(reg) == ["a", "b", "c"] and len(reg) == 3
    assert "a" in reg and "z" not in reg and ["a"] not in reg


def test_register_as_a_decorator_returns_the_factory_and_refuses_a_name_twice():
    reg: Registry[tuple[int, int]] = Registry("kind")

    @reg.register("pair")
    def make(a: int) -> tuple[int, int]:
        return a, a

    assert make(1) == (1, 1) and reg.build("pair", 3) == (3, 3)
    with pytest.raises(RegistryError, match="kind: name 'pair' is already registered"):
        reg.register("pair", _pair)
    with pytest.raises(RegistryError, match="expected a callable or 'module:attr'"):
        reg.register("three", 3)
    with pytest.raises(RegistryError, match="expected 'module:attr'"):
        reg.register("dotted", "market.core.registry.Registry")


def test_lazy_entry_is_imported_on_first_use_only(tmp_path, monkeypatch):
    (tmp_path / "registry_lazy_entry.py").write_text("def run(quick=False):\n    return quick\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "registry_lazy_entry", raising=False)
    reg = Registry("paper", {"lazy": "registry_lazy_entry:run"})
    assert reg.names() == ("lazy",) and "registry_lazy_entry" not in sys.modules
    assert reg.build("lazy", quick=True) is True
    run = sys.modules["registry_lazy_entry"].run
    assert reg.get("lazy") is run
    monkeypatch.delitem(sys.modules, "registry_lazy_entry")


def test_lazy_entry_that_cannot_load_names_the_spec():
    reg = Registry("paper", {"gone": "market.no_such_module:run", "typo": "market.core.registry:Regsitry"})
    with pytest.raises(RegistryError, match="paper 'gone': cannot load 'market.no_such_module:run'"):
        reg.get("gone")
    with pytest.raises(RegistryError, match="paper 'typo': cannot load"):
        reg.get("typo")


def test_build_refuses_parameters_the_factory_does_not_take():
    reg = Registry("kind", {"pair": _pair, "forwarding": _forwarding, "broken": _broken})
    assert reg.build("pair", 1, b=5) == (1, 5)
    with pytest.raises(RegistryError, match=r"kind 'pair': bad parameters \['colour'\]"):
        reg.build("pair", 1, colour="red")
    with pytest.raises(RegistryError, match=r"kind 'forwarding': bad parameters \['a', 'colour'\]"):
        reg.build("forwarding", a=1, colour="red")  # refused deeper down, where **params arrive
    with pytest.raises(TypeError, match="a bug inside the factory") as info:
        reg.build("broken", 1)  # parameters bind: the TypeError is the factory's own, and stays one
    assert not isinstance(info.value, RegistryError)


def test_a_layer_keeps_its_own_error_type():
    reg = Registry("mechanism", {"pair": _pair}, error=MechanismRegistryError)
    with pytest.raises(MechanismError, match="mechanism: unknown name 'vcg'; known: pair"):
        reg.build("vcg")
    with pytest.raises(RegistryError, match="expected a subclass of RegistryError"):
        Registry("kind", error=ValueError)


def test_errors_survive_a_process_boundary():
    # sweeps and deviation runs raise in worker processes: the error must pickle
    err = Registry("kind", {"a": _pair}, error=MechanismRegistryError).unknown("b")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is MechanismRegistryError and str(back) == str(err)
