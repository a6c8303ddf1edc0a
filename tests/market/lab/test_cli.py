"""The command line takes its names from the registries: ``list`` shows each one whole, and choices refuse
anything else before a command starts."""

from __future__ import annotations

import pytest

from market.lab.cli import main, registries


def test_list_shows_every_registry_with_all_its_names(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for heading, registry in registries().items():
        block = out.split(f"\n{heading}:\n", 1)[1].split(":\n", 1)[0]
        listed = [line.strip() for line in block.splitlines() if line.startswith("  ")]
        assert listed == list(registry.names()), heading


@pytest.mark.parametrize("argv, choice", [
    (["bench", "nope"], "bench"),
    (["repro", "nope"], "selection"),
    (["curve", "quickstart", "--mechanism", "nope"], "rosa-trcm-ucb"),
    (["deviate", "quickstart", "--strategy", "nope"], "alpha-learner"),
])
def test_choices_come_from_the_registries(argv, choice, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and choice in err

