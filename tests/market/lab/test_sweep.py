"""Sweeps: spec checking, seeds stable under grid growth, resume after a kill, local = Ray, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog

from market.lab import sweep
from market.lab.cli import main
from market.lab.sweep import load_spec, parse_spec, run_sweep, task_seed, tasks
from market.runtime.config import ConfigError


@pytest.fixture(autouse=True)
def default_logging():
    """``main`` points structlog at this test's captured stderr; later tests must not write to it."""
    yield
    structlog.reset_defaults()


SPEC = """
[sweep]
scenario = "quickstart"
seeds = 3
root_seed = 7
metrics = ["user_utility", "feedback.reward_sum", "wins.provider-0", "provider_utility.provider-1", "rounds"]

[fixed]
"run.rounds" = 120

[grid]
"market.providers" = [2, 4]
"mechanism.name" = ["myerson", "pay-as-bid"]
"""
TASKS = 12


def write_spec(tmp: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def result_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "results").glob("*.json"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """An uninterrupted local sweep of SPEC: the answer every other way of running it must give."""
    tmp = tmp_path_factory.mktemp("reference")
    spec = write_spec(tmp, SPEC)
    result = run_sweep(spec, tmp / "out", workers=2)
    assert (result.done, result.failed, result.skipped) == (TASKS, 0, 0)
    return spec, result_bytes(tmp / "out")


def test_result_files_hold_overrides_seed_metrics_and_version(reference):
    _, files = reference
    assert len(files) == TASKS
    rec = json.loads(next(iter(files.values())))
    assert set(rec) == {"scenario", "fixed", "point", "seed_index", "seed", "metrics", "package_version"}
    assert rec["fixed"] == {"run.rounds": 120}
    assert [k for k, _ in rec["point"]] == ["market.providers", "mechanism.name"]
    assert rec["seed"] == task_seed(7, rec["seed_index"])
    assert rec["metrics"]["rounds"] == 120.0
    assert set(rec["metrics"]) == {"user_utility", "feedback.reward_sum", "wins.provider-0",
                                   "provider_utility.provider-1", "rounds"}


def test_rerun_of_a_finished_sweep_runs_nothing(reference, tmp_path):
    spec, files = reference
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    for name, data in files.items():
        (out / "results" / name).write_bytes(data)
    result = run_sweep(spec, out, workers=1)
    assert (result.done, result.skipped) == (0, TASKS)


def test_killed_sweep_resumes_with_only_missing_tasks_and_same_results(reference, tmp_path):
    spec, files = reference
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [sys.executable, "-m", "market.lab.cli", "sweep", str(spec), "--out", str(out), "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list((out / "results").glob("*.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the pool's workers, orphaned by the kill
    finished = len(list((out / "results").glob("*.json")))
    assert 2 <= finished < TASKS, "the kill must land midway for this test to mean anything"

    result = run_sweep(spec, out, workers=2)
    assert (result.skipped, result.done, result.failed) == (finished, TASKS - finished, 0)
    assert result_bytes(out) == files


def test_local_and_ray_engines_give_byte_identical_results(reference, tmp_path):
    import ray
    spec, files = reference
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_sweep(spec, tmp_path / "out", engine="ray", workers=2)
    finally:
        ray.shutdown()
    assert (result.done, result.failed) == (TASKS, 0)
    assert result_bytes(tmp_path / "out") == files


def test_seeds_stable_under_adding_grid_points_and_seeds():
    small = parse_spec({"sweep": {"scenario": "quickstart", "seeds": 2, "metrics": ["rounds"]},
                        "grid": {"market.providers": [3, 5]}})
    grown = parse_spec({"sweep": {"scenario": "quickstart", "seeds": 3, "metrics": ["rounds"]},
                        "grid": {"market.providers": [2, 3, 4, 5, 8]}})
    before = {t.name: t for t in tasks(small)}
    after = {t.name: t for t in tasks(grown)}
    assert len(after) == 15 and set(before) <= set(after)
    for name, t in before.items():
        assert (after[name].seed, after[name].point) == (t.seed, t.point)
    # every grid point sees the same seeds: common random numbers across points
    assert {t.seed for t in after.values()} == {task_seed(0, i) for i in range(3)}


def test_failed_task_is_reported_with_error_and_config_and_does_not_stop_the_sweep(tmp_path):
    spec = write_spec(tmp_path, """
[sweep]
scenario = "quickstart"
seeds = 2
metrics = ["rounds"]
[fixed]
"run.rounds" = 20
[zip]
"mechanism.name" = ["myerson", "pay-as-bid"]
"market.rate_burst" = [200.0, 0.5]
""")
    out = tmp_path / "out"
    result = run_sweep(spec, out, workers=1)
    assert (result.done, result.failed) == (2, 2)
    failed = [json.loads(p.read_text()) for p in sorted((out / "failed").glob("*.json"))]
    assert len(failed) == 2
    for rec in failed:
        assert "market.rate_burst: got 0.5" in rec["error"]
        assert ["market.rate_burst", 0.5] in rec["point"]
    again = run_sweep(spec, out, workers=1)  # finished tasks skipped, failed ones retried
    assert (again.skipped, again.done, again.failed) == (2, 0, 2)


BAD_SPECS = [
    ("[sweep]\nscenario='quickstart'\nmetrics=['rounds']\nsedes=3\n[grid]\n'market.providers'=[2]", "sweep.sedes"),
    ("[sweep]\nscenario='quickstart'\nmetrics=['rounds']\n[grid]\n'market.provders'=[2]", "market.provders"),
    ("[sweep]\nscenario='quickstart'\nmetrics=['rounds']\n[grid]\n'market.providers'=[]", "grid.market.providers"),
    ("[sweep]\nscenario='quickstart'\nmetrics=['rounds']\n", "grid"),
    ("[sweep]\nscenario='quickstart'\nmetrics=['rounds']\nseeds='3'\n[grid]\n'market.providers'=[2]", "sweep.seeds"),
    ("[sweep]\nscenario='quickstart'\nmetrics=['rounds']\n[grid]\n'market.providers'=['many']",
     "market.providers"),
    ("[sweep]\nscenario='quickstart'\nmetrics=['rounds']\n[grid]\n'market.providers'=2", "grid.market.providers"),
    ("[sweep]\nscenario='quickstart'\nmetrics=['user_utilty']\n[grid]\n'market.providers'=[2]", "user_utilty"),
    ("[sweep]\nscenario='quickstart'\nmetrics=['feedback.reward_summ']\n[grid]\n'market.providers'=[2]",
     "feedback.reward_summ"),
    ("[sweep]\nscenario='nowhere'\nmetrics=['rounds']\n[grid]\n'market.providers'=[2]", "nowhere"),
    ("[sweep]\nscenario='quickstart'\nmetrics=['rounds']\n[grid]\n'run.seed'=[1, 2]", "run.seed"),
    ("[sweep]\nscenario='quickstart'\nmetrics=['rounds']\n[grids]\n'market.providers'=[2]", "grids"),
    ("[sweep]\nscenario='quickstart'\nmetrics=['rounds']\n[zip]\n'market.providers'=[2, 3]\n'market.dim'=[4]",
     "zip"),
    ("[sweep]\nscenario='quickstart'\nmetrics=['rounds']\n[grid]\n'mechanism.params'=[{}, {bogus = 1}]",
     "mechanism.params.bogus"),
]


@pytest.mark.parametrize(("text", "key"), BAD_SPECS)
def test_bad_spec_is_refused_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_spec(write_spec(tmp_path, text))


def test_cli_refuses_a_bad_spec_with_exit_code_2(tmp_path, capsys):
    spec = write_spec(tmp_path, BAD_SPECS[1][0])
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "market.provders" in capsys.readouterr().err


def test_shipped_example_spec_is_valid():
    spec = load_spec(Path(__file__).parents[3] / "scenarios" / "quickstart_sweep.toml")
    assert spec.swept_keys and sum(1 for _ in tasks(spec)) <= 64


class CountingEngine:
    """Runs tasks in this process when waited on, and records how many were ever in flight at once."""

    most_in_flight = 0

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def submit(self, task):
        return task

    def wait(self, pending):
        CountingEngine.most_in_flight = max(CountingEngine.most_in_flight, len(pending))
        task = min(pending, key=lambda t: t.name)
        return [sweep.run_task(task)], pending - {task}

    def close(self) -> None:
        pass


def test_in_flight_tasks_stay_within_a_window_of_twice_the_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "LocalEngine", CountingEngine)
    spec = write_spec(tmp_path, """
[sweep]
scenario = "quickstart"
seeds = 10
metrics = ["rounds"]
[fixed]
"run.rounds" = 3
[grid]
"market.providers" = [2, 3]
""")
    result = run_sweep(spec, tmp_path / "out", workers=3)
    assert result.done == 20
    assert CountingEngine.most_in_flight == 6


def test_ray_engine_without_ray_installed_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes ``import ray`` raise ImportError
    with pytest.raises(ConfigError, match="Ray is not installed"):
        sweep.RayEngine(2, None)
