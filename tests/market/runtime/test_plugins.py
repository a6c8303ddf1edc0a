"""Plug-ins: a user's strategy and mechanism from files in a folder of their own, `module:attr` names,
`[scenario] plugins`, `--plugin`, the `llm_market.plugins` entry point, `list`'s origins, and logs that
name plug-in code refused unless trusted.

The commands run in a fresh interpreter without PYTHONPATH, from a working directory that is not the
user's folder: the package is found as an installed one would be, the user's files only through the
scenario file's folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from market.core.registry import HOW_TO_REGISTER, Registry, RegistryError, is_reference

REPO = Path(__file__).resolve().parents[3]

STRATEGY = '''
from agents.strategies import STRATEGIES, Strategy


class Greedy(Strategy):
    """Bids 30% over its cost."""

    name = "greedy"

    def bid(self, obs):
        return self.clip(obs.cost * 1.3)


STRATEGIES.register("greedy", Greedy)
'''

MECHANISM = '''
from market.core.mechanisms.reverse import build_mechanism

BUILT = []


def make(n, d, priors):
    """The critical-bid LinUCB auction under a name of the user's."""
    BUILT.append(n)
    return build_mechanism("linucb-critical", n=n, d=d, priors=priors)
'''

TOML = '''
[scenario]
builder = "scenarios.procurement:build"
plugins = ["my_strategy"]

[run]
rounds = 40

[market]
providers = 3

[mechanism]
name = "my_mech:make"

[strategies]
default = "greedy"
'''


def cli(cwd: Path, *args: str, site: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``llm-market ARGS`` in a fresh interpreter, PYTHONPATH unset; ``site`` plays an installed package's
    site-packages (for entry points)."""
    paths = [str(REPO)] + ([str(site)] if site is not None else [])
    code = f"import sys; sys.path[:0] = {paths!r}; from market.lab.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Path]:
    """(the user's folder with a strategy file, a mechanism file and a TOML; an empty working directory)."""
    proj, work = tmp_path / "proj", tmp_path / "work"
    proj.mkdir()
    work.mkdir()
    (proj / "my_strategy.py").write_text(STRATEGY)
    (proj / "my_mech.py").write_text(MECHANISM)
    (proj / "mine.toml").write_text(TOML)
    return proj, work


def test_a_strategy_and_a_mechanism_from_an_empty_folder_run_and_deviate_without_pythonpath(folder):
    proj, work = folder
    toml = str(proj / "mine.toml")
    run = cli(work, "run", toml, "--out", "r1")
    assert run.returncode == 0, run.stderr
    assert "mechanism my_mech:make" in run.stdout
    config = tomllib.loads((work / "r1" / "config.toml").read_text())
    assert config["scenario"]["plugins"] == ["my_strategy"]
    assert config["mechanism"]["name"] == "my_mech:make" and config["strategies"]["default"] == "greedy"
    summary = json.loads((work / "r1" / "summary.json").read_text())
    assert summary["rounds"] == 40 and sum(summary["wins"].values()) > 0

    deviate = cli(work, "deviate", toml, "--strategy", "shade", "--strategy", "my_strategy:Greedy",
                  "--seeds", "3", "--rounds", "40", "--workers", "2")
    assert deviate.returncode == 0, deviate.stderr
    assert "provider-0=shade" in deviate.stdout and "provider-0=my_strategy:Greedy" in deviate.stdout

    # the folder is appended to the path, and only for the file being run: without the TOML, nothing is found
    bare = cli(work, "run", "quickstart", "--set", "strategies.default=greedy", "--rounds", "5", "--out", "r2")
    assert bare.returncode == 2 and "strategies.default: got 'greedy'" in bare.stderr


def test_a_log_naming_a_plug_in_is_refused_unless_trusted(folder):
    proj, work = folder
    assert cli(work, "run", str(proj / "mine.toml"), "--out", "r1").returncode == 0
    for command in ("replay", "verify"):
        refused = cli(work, command, "r1")
        assert refused.returncode == 2, refused.stdout
        assert "module 'my_strategy', which is no installed plug-in" in refused.stderr
        assert "--trust-builder" in refused.stderr
    # the mechanism named as module:attr is refused the same way once the plug-in list is trusted away
    config = tomllib.loads((work / "r1" / "config.toml").read_text())
    from market.runtime.builders import BuilderRefused, logged_code

    del config["scenario"]["plugins"]
    with pytest.raises(BuilderRefused, match="mechanism.name: the log names module 'my_mech'"):
        logged_code(config)
    # trusted, from the user's folder (where its modules are importable), it checks out
    trusted = cli(proj, "verify", str(work / "r1"), "--trust-builder")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr


def test_plugin_flag_loads_a_module_and_the_config_records_it(folder):
    proj, work = folder
    (proj / "bare.toml").write_text(TOML.replace('plugins = ["my_strategy"]\n', ""))
    without = cli(work, "run", str(proj / "bare.toml"), "--out", "r0")
    assert without.returncode == 2 and HOW_TO_REGISTER in without.stderr  # the unknown name says how
    run = cli(work, "run", str(proj / "bare.toml"), "--plugin", "my_strategy", "--out", "r1")
    assert run.returncode == 0, run.stderr
    assert tomllib.loads((work / "r1" / "config.toml").read_text())["scenario"]["plugins"] == ["my_strategy"]
    missing = cli(work, "run", str(proj / "bare.toml"), "--plugin", "no_such_module", "--out", "r2")
    assert missing.returncode == 2
    assert missing.stderr.startswith("config error: --plugin: cannot import plug-in 'no_such_module'")
    assert not (work / "r2").exists()


def test_list_shows_plug_ins_with_their_origin(folder):
    proj, _ = folder
    out = cli(proj, "list", "--plugin", "my_strategy")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split() == ["greedy", "plug-in", "my_strategy", "(--plugin)"] for line in lines)
    assert "  truthful" in lines  # built-in entries carry no origin
    assert not any("functools" in line for line in lines)


def test_an_installed_package_registers_itself_through_the_entry_point_group(folder, tmp_path):
    proj, work = folder
    site = tmp_path / "site"
    (site / "ep_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "ep_plugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 1.0\n")
    (site / "ep_plugin-1.0.dist-info" / "entry_points.txt").write_text("[llm_market.plugins]\nmine = ep_plugin\n")
    (site / "ep_plugin.py").write_text(STRATEGY.replace('"greedy"', '"ep-greedy"') + MECHANISM)
    listed = cli(work, "list", site=site)
    assert any(line.split() == ["ep-greedy", "plug-in", "ep_plugin", "(entry", "point", "of", "ep-plugin)"]
               for line in listed.stdout.splitlines()), listed.stdout
    (proj / "ep.toml").write_text(TOML.replace('plugins = ["my_strategy"]\n', "")
                                  .replace("my_mech:make", "ep_plugin:make").replace('"greedy"', '"ep-greedy"'))
    assert cli(work, "run", str(proj / "ep.toml"), "--out", "r1", site=site).returncode == 0
    # an installed plug-in's module counts as installed: its log verifies without --trust-builder
    checked = cli(work, "verify", "r1", site=site)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_module_attr_names_resolve_without_registering():
    reg: Registry[object] = Registry("strategy", {"a": dict})
    assert is_reference("json:loads") and "json:loads" in reg
    assert not is_reference("json") and not is_reference("a:b:c") and not is_reference("1x:y")
    assert reg.get("json:loads")("[1]") == [1]
    assert reg.names() == ("a",)  # a reference is used, not registered
    with pytest.raises(RegistryError, match="cannot import module 'no_such_mod'.*next to the scenario file"):
        reg.get("no_such_mod:f")
    with pytest.raises(RegistryError, match="module 'json' has no attribute 'nope'"):
        reg.get("json:nope")
    assert reg.origin("a") == "builtins"
