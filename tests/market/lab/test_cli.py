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
])
def test_choices_come_from_the_registries(argv, choice, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and choice in err


def test_deviate_refuses_an_unknown_strategy_naming_both_registries_and_how_to_add_one(capsys):
    assert main(["deviate", "quickstart", "--strategy", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: --strategy: got 'nope', expected one of [")
    assert "alpha-learner" in err and "shade" in err and "--plugin MODULE" in err



def test_run_without_out_keeps_an_earlier_run_in_the_default_directory(tmp_path, monkeypatch, capsys):
    """The default run directory is runs/NAME-seedN; running the same command again writes runs/NAME-seedN-2
    and leaves the first run as it was (an explicit --out holding a run is refused instead)."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", "quickstart", "--rounds", "20"]) == 0
    first = (tmp_path / "runs" / "quickstart-seed0" / "events.msgpack").read_bytes()
    assert main(["run", "quickstart", "--rounds", "20"]) == 0
    assert "run dir runs/quickstart-seed0-2" in capsys.readouterr().out
    assert (tmp_path / "runs" / "quickstart-seed0" / "events.msgpack").read_bytes() == first
    assert (tmp_path / "runs" / "quickstart-seed0-2" / "events.msgpack").read_bytes() == first
    assert main(["run", "quickstart", "--rounds", "20", "--out", "runs/quickstart-seed0"]) == 2
    assert main(["run", "quickstart", "--rounds", "20", "--force"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["quickstart-seed0", "quickstart-seed0-2"]
