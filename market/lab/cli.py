"""The ``llm-market`` command: run scenarios, replay logs, list what exists, benchmark, reproduce."""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from market.core.learning import LearningError
from market.core.ledger import LedgerError
from market.core.mechanisms.base import MechanismError
from market.core.registry import HOW_TO_REGISTER, Registry, RegistryError
from market.core.wire import WireError
from market.runtime import plugins
from market.runtime.bus import BusError
from market.runtime.config import ConfigError, load_toml, resolve, scenario_files
from market.runtime.eventlog import EventLogError, read_key_file
from market.runtime.kernel import KernelError
from market.runtime.run import resume_scenario, run_scenario
from market.runtime.rundir import RUN_FILES, RunDirError
from market.runtime.schema import MAX_ROUNDS, MAX_SEED, ROUNDS, SEED, Rule, shown
from market.runtime.verify import UnusableRun, verify_run
from market.runtime.world import AgentFailed

log = structlog.get_logger("llm-market")

PLUGIN_HELP = ("import MODULE first, so the names it registers can be used (repeatable; a module next to the "
               "scenario file needs no PYTHONPATH)")
TRUST_HELP = ("import the scenario builder a run directory names even if it is no installed scenario (running "
              "its code): only for run directories you trust")


def configure_logging(fmt: str, verbose: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[structlog.processors.add_log_level, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


# -- run -------------------------------------------------------------------------------------


def _print_digest(run_dir: Path) -> None:
    """The log's final chain digest, as the run wrote it into summary.json: keep it to check the log later."""
    entry = json.loads((run_dir / "summary.json").read_text()).get("log", {})
    print(f"log digest: {entry['digest']} ({entry['frames']} frames, {'keyed' if entry['keyed'] else 'unkeyed'})")


def _default_run_dir(name: str, seed: int, force: bool) -> Path:
    """``runs/NAME-seedN``, or with ``--force`` that one whatever it holds; else, if a run is already there,
    the first of ``runs/NAME-seedN-2``, ``-3``, ... that holds none: running the same command again keeps
    the earlier run (an explicit ``--out`` holding a run is refused instead)."""
    base = Path("runs") / f"{name}-seed{seed}"
    candidates = itertools.chain([base], (base.with_name(f"{base.name}-{k}") for k in itertools.count(2)))
    return next(d for d in candidates if force or not any((d / f).exists() for f in RUN_FILES))


def _cmd_run(args: argparse.Namespace) -> int:
    if args.resume and args.plugin:
        raise ConfigError("--resume: got it with --plugin, expected it alone: a resumed run loads the plug-ins "
                          "its log names")
    config, _ = resolve(args.scenario, [], args.plugin)  # early check of the scenario name
    key = read_key_file(Path(args.key_file)) if args.key_file else None
    if args.resume:
        if args.set or args.seed is not None or args.rounds is not None or args.out or args.force:
            raise ConfigError("--resume: got it with --seed/--rounds/--set/--out/--force, expected it alone: "
                              "a resumed run keeps the config in its log")
        wall = time.perf_counter()
        # a refused checkpoint is told, with the one resumed from instead, on stderr
        config, summary, market = resume_scenario(Path(args.resume), config["scenario"]["name"], key=key,
                                                  on_cut=lambda cut: print(cut, flush=True),
                                                  trust_builder=args.trust_builder,
                                                  report=lambda line: print(line, file=sys.stderr),
                                                  fail_fast=args.fail_fast)
        print(market.describe(summary, config))
        print(f"resumed; simulated time {summary['sim_seconds']:.1f} s   wall time "
              f"{time.perf_counter() - wall:.2f} s   run dir {args.resume}")
        _print_digest(Path(args.resume))
        return 0
    name = config["scenario"]["name"]
    seed = args.seed if args.seed is not None else config["run"]["seed"]
    out = Path(args.out) if args.out else _default_run_dir(name, seed, args.force)
    log.info("run.start", scenario=name, seed=seed, out=str(out))
    wall = time.perf_counter()
    config, summary, market = run_scenario(
        args.scenario, seed=args.seed, rounds=args.rounds, overrides=args.set, out=out, force=args.force, key=key,
        fail_fast=args.fail_fast, plugins=args.plugin,
    )
    wall = time.perf_counter() - wall
    print(market.describe(summary, config))
    print(f"simulated time {summary['sim_seconds']:.1f} s   wall time {wall:.2f} s   run dir {out}")
    _print_digest(out)
    log.info("run.done", wall_seconds=round(wall, 3))
    return 0


# -- replay ----------------------------------------------------------------------------------


def _cmd_replay(args: argparse.Namespace) -> int:
    key = read_key_file(Path(args.key_file)) if args.key_file is not None else None
    report = verify_run(Path(args.run_dir), key=key, trust_builder=args.trust_builder)
    log_check = report.checks[0]
    if not log_check.ok:
        print(f"log: {log_check.detail}")
        if report.footer is None:
            print("no footer in the log (the run did not finish): nothing to compare against")
            print(json.dumps(report.recomputed["balances"], indent=2))
        return 1
    failed = report.failed()
    for check in failed:
        print(check.line())
    if failed:
        return 1
    recomputed = report.recomputed
    total = sum(recomputed["balances"].values())
    print(f"replay OK: {recomputed['rounds']} rounds, {recomputed['messages']} messages, "
          f"{len(recomputed['balances'])} accounts, balances sum to {total}; "
          f"{len(report.checks)} checks passed ({', '.join(c.name for c in report.checks)})")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    key = read_key_file(Path(args.key_file)) if args.key_file is not None else None
    report = verify_run(Path(args.run_dir), digest=args.digest, key=key, resimulate=args.resimulate,
                        trust_builder=args.trust_builder)
    for check in report.checks:
        print(check.line())
    print(f"verify {'OK' if report.ok else 'FAILED'}: {args.run_dir}")
    return 0 if report.ok else 1


# -- list ------------------------------------------------------------------------------------


def registries() -> dict[str, Registry[Any]]:
    """Every registry of names a scenario file or a command picks from, by the heading ``list`` shows."""
    from agents.ad_strategies import AD_STRATEGIES
    from agents.hostile import HOSTILES
    from agents.strategies import STRATEGIES
    from market.core.learning.selectors import SELECTORS
    from market.core.mechanisms.aggregation import AGGREGATIONS
    from market.core.mechanisms.reverse import MECHANISMS
    from market.lab.bench import BENCHMARKS
    from market.lab.repro import PAPERS

    return {
        "mechanisms (reverse auctions)": MECHANISMS,
        "mechanisms (aggregation auctions)": AGGREGATIONS,
        "selectors (users choosing models)": SELECTORS,
        "strategies (providers)": STRATEGIES,
        "ad strategies (advertisers)": AD_STRATEGIES,
        "hostile agents": HOSTILES,
        "benchmarks (llm-market bench)": BENCHMARKS,
        "papers (llm-market repro)": PAPERS,
    }


def _origin(registry: Registry[Any], name: str, loaded: dict[str, str]) -> str:
    """Blank for the package's own entries; else the module a plug-in's entry comes from and how it was loaded."""
    module = registry.origin(name)
    if module.split(".")[0] in plugins.OWN:
        return ""
    how = next((h for m, h in loaded.items() if module == m or module.startswith(m + ".")), None)
    return f"plug-in {module}" + (f" ({how})" if how else "")


def _cmd_list(args: argparse.Namespace) -> int:
    plugins.load_entry_points()
    plugins.load_plugins(args.plugin, "--plugin", where="--plugin")
    loaded = plugins.loaded()
    files = {name: load_toml(path) for name, path in sorted(scenario_files().items())}
    print("scenarios:")
    for name, raw in files.items():
        if "scenario" in raw:
            print(f"  {name:<20} {raw['scenario'].get('description', '')}")
    print("sweeps (llm-market sweep scenarios/NAME.toml):")
    for name, raw in files.items():
        if "sweep" in raw:
            print(f"  {name:<20} {raw['sweep'].get('scenario', '')} over {sorted(raw.get('grid', {}))}")
    for heading, registry in registries().items():
        print(f"{heading}:")
        for name in registry:
            origin = _origin(registry, name, loaded)
            print(f"  {name:<20} {origin}".rstrip() if origin else f"  {name}")
    if loaded:
        print("plug-in modules loaded:")
        for module, how in loaded.items():
            print(f"  {module:<20} {how}")
    print("(a name may also be given as 'module:attr'; see `--plugin` and the llm_market.plugins entry point)")
    return 0


# -- bench / repro ---------------------------------------------------------------------------


def _cmd_bench(args: argparse.Namespace) -> int:
    from market.lab import bench

    result = bench.run(args.what, quick=args.quick, out=args.out)
    print(json.dumps(result, indent=2))
    return 0


def _cmd_repro(args: argparse.Namespace) -> int:
    from market.lab.repro import PAPERS

    out = Path(args.out) if args.out else Path("runs") / f"repro-{args.paper}"
    out.mkdir(parents=True, exist_ok=True)
    extra = {k: v for k, v in (("lm", args.lm), ("queries", args.queries)) if v is not None}
    if extra and args.paper != "mosaic":
        print(f"llm-market repro: --lm and --queries apply to mosaic, not {args.paper}", file=sys.stderr)
        return 2
    result = PAPERS.get(args.paper)(out, quick=args.quick, **extra)
    print(json.dumps(result, indent=2, default=str))
    print(f"figures and tables in {out}")
    return 0


# -- deviate / verdicts ----------------------------------------------------------------------


def _cmd_deviate(args: argparse.Namespace) -> int:
    from agents.ad_strategies import AD_STRATEGIES
    from agents.strategies import STRATEGIES
    from market.lab import deviation

    plugins.load_entry_points()
    plugins.load_plugins(args.plugin, "--plugin", where="--plugin")  # worker processes are forked with them
    for name in args.strategy:
        if name not in STRATEGIES and name not in AD_STRATEGIES:
            raise ConfigError(f"--strategy: got {name!r}, expected one of {sorted({*STRATEGIES, *AD_STRATEGIES})} "
                              f"or 'module:attr' ({HOW_TO_REGISTER})")
    wall = time.perf_counter()
    verdicts = {
        name: deviation.deviate(args.scenario, name, deviator=args.deviator, seeds=args.seeds, rounds=args.rounds,
                                overrides=args.set, engine=args.engine, workers=args.workers or os.cpu_count() or 1)
        for name in args.strategy
    }
    print(deviation.format_verdicts(verdicts))
    first = next(iter(verdicts.values()))
    print(f"{first.seeds} seeds x {first.rounds} rounds per profile, engine {args.engine}, "
          f"wall time {time.perf_counter() - wall:.1f} s")
    if args.out:
        deviation.write_outputs(verdicts, Path(args.out))
        print(f"table and plots in {args.out}")
    return 0


def _parse_multipliers(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--multipliers: got {text!r}, expected comma-separated numbers such as 0.8,1,1.2") from None


def _cmd_curve(args: argparse.Namespace) -> int:
    from market.lab import curve

    multipliers = _parse_multipliers(args.multipliers) if args.multipliers else curve.DEFAULT_MULTIPLIERS
    mechanisms = args.mechanism or [None]
    curves = []
    for name in mechanisms:
        sets = [*args.set, *([f"mechanism.name={name}"] if name else [])]
        c = curve.profit_curve(args.scenario, sets, seeds=args.seeds, warmup=args.warmup, samples=args.samples,
                               multipliers=multipliers, deviator=args.deviator)
        curves.append(c)
        print(curve.format_curve(c))
        print()
    if args.out:
        curve.write_curves(curves, Path(args.out))
        print(f"curve.csv and curve.png in {args.out}")
    return 0


def _cmd_verdicts(args: argparse.Namespace) -> int:
    from market.lab import verdicts

    result = verdicts.run(Path(args.out), quick=args.quick, workers=args.workers, ad_sets=tuple(args.ad_sets),
                          attackers=args.attackers)
    print(json.dumps(result, indent=2))
    second = ", attackers.csv" if args.attackers else ""
    print(f"verdicts.csv, verdicts.png, multipliers.png, egta.csv, users.csv, curve.csv, curve.png{second} "
          f"in {args.out}")
    return 0


# -- best-response ---------------------------------------------------------------------------


def _cmd_best_response(args: argparse.Namespace) -> int:
    from market.lab import best_response as br

    rounds = args.rounds or (br.AD_ROUNDS if resolve(args.scenario, [])[1].name == "ads" else br.ROUNDS)
    losses = br.utility_loss(args.scenario, args.mechanism, seeds=args.seeds, rounds=rounds,
                             warmup=args.warmup, overrides=args.set, deviator=args.deviator,
                             workers=args.workers or os.cpu_count() or 1, progress=br.print_progress)
    print(br.format_losses(losses))
    br.write_outputs(losses, Path(args.out))
    print(f"best_response.csv and best_response.png in {args.out}")
    return 0


def _add_best_response(sub: Any) -> None:
    br = sub.add_parser("best-response", help="exact best responses: the utility loss of truthful bidding per "
                        "mechanism, free bid and best bidding function (CSV + PNG)")
    br.add_argument("scenario", help="built-in scenario name or path to a TOML file (procurement or ads)")
    br.add_argument("--mechanism", action="append", help="mechanism name (repeatable; default: the scenario's, or "
                    "mosaic, mosaic-rochet and mosaic-nopay in the ad market)")
    br.add_argument("--seeds", type=int, default=8, help="seeds 0..N-1 (the CI is over seeds)")
    br.add_argument("--rounds", type=int, help="frozen rounds drawn per seed (default 1000; ads: auctions, default "
                    "50)")
    br.add_argument("--warmup", type=int, default=500, help="rounds the scenario plays before the mechanism freezes")
    br.add_argument("--deviator", help="provider-N (default provider-0; advertiser-0 in the ad market)")
    br.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    br.add_argument("--workers", type=int, help="processes over seeds (default: number of CPUs)")
    br.add_argument("--out", required=True, help="write best_response.csv and best_response.png here")
    br.set_defaults(func=_cmd_best_response)


# -- judge -----------------------------------------------------------------------------------


def _cmd_judge(args: argparse.Namespace) -> int:
    import sys

    from market.lab import judge

    def say(what: str) -> None:
        print(f"judge: {what} ...", file=sys.stderr, flush=True)

    methods = () if args.no_attackers else ("search", "ppo")
    rows = judge.judge(args.mechanism, scenario=args.scenario, overrides=args.set, quick=args.quick,
                       workers=args.workers or 1, methods=methods, progress=say)
    out = Path(args.out)
    judge.write_card(args.mechanism, args.scenario, rows, out)
    print(judge.format_card(rows))
    print(f"judge.md, judge.html and judge.json in {out}")
    return 0


def _add_judge(sub: Any) -> None:
    jd = sub.add_parser("judge", help="a reverse-auction design through the contract, the truthfulness kit, the "
                        "utility loss, the shaders and the search and PPO attackers: a verdict card (MD + HTML)")
    jd.add_argument("mechanism", help="registered mechanism name or 'module:attr' (a plug-in's own)")
    jd.add_argument("--scenario", default="quickstart", help="procurement scenario name or TOML path (default "
                    "quickstart; a TOML's folder is importable, so its plug-ins are found)")
    jd.add_argument("--quick", action="store_true", help="fewer seeds, rounds, trials and PPO steps")
    jd.add_argument("--no-attackers", action="store_true", help="leave out the search and PPO attackers")
    jd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    jd.add_argument("--workers", type=int, help="processes for the seeds (default 1)")
    jd.add_argument("--out", required=True, help="write judge.md, judge.html and judge.json here")
    jd.set_defaults(func=_cmd_judge)


# -- sweep / report --------------------------------------------------------------------------


def _cmd_sweep(args: argparse.Namespace) -> int:
    from market.lab.sweep import run_sweep

    configure_logging(getattr(args, "log_format", None) or "console", True)  # progress is the output
    result = run_sweep(Path(args.spec), Path(args.out), engine=args.engine, workers=args.workers,
                       address=args.address)
    print(f"sweep: {result.done} tasks done, {result.failed} failed, {result.skipped} already finished; "
          f"results in {Path(args.out) / 'results'}")
    return 1 if result.failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from market.lab.report import report

    d = Path(args.dir)
    if not args.html:
        print(f"report in {report(d, trust_builder=args.trust_builder)}")
        return 0
    from market.lab.pages import kind_of, write_html

    # verdicts and reproduction directories have their own PNGs already; runs and sweeps get them here
    if kind_of(d) in ("run", "sweep"):
        print(f"report in {report(d, trust_builder=args.trust_builder)}")
    print(f"page in {write_html(d, trust_builder=args.trust_builder)}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from market.lab.pages.run import inspect_rounds

    found = inspect_rounds(Path(args.dir), args.round, trust_builder=args.trust_builder)
    print(json.dumps({str(r): d for r, d in found.items()}, indent=2))
    return 0


# -- attack ----------------------------------------------------------------------------------


def _cmd_attack(args: argparse.Namespace) -> int:
    from market.lab import attack

    sets = [*args.set, *([f"mechanism.name={args.mechanism}"] if args.mechanism else [])]
    progress, close = attack.tqdm_progress()
    try:
        result = attack.run_attack(args.scenario, args.method, overrides=sets, deviator=args.deviator,
                                   train_seeds=args.train_seeds, test_seeds=args.test_seeds, budget=args.budget,
                                   rounds=args.rounds, engine=args.engine, workers=args.workers or os.cpu_count() or 1,
                                   out_dir=Path(args.out), progress=progress, families=args.family or ())
    finally:
        close()
    print(attack.format_result(result))
    print(f"attack.json, attack.csv and attack.png in {args.out}")
    return 0


def _add_attack(sub: Any) -> None:
    from agents.ad_reportfuncs import FAMILIES as AD_FAMILIES
    from agents.bidfuncs import FAMILIES
    from market.core.mechanisms.reverse import MECHANISMS
    from market.lab.attackers import ATTACK_METHODS
    from market.lab.rl.ad_engine import AD_MECHANISMS

    at = sub.add_parser("attack", help="find an attacker on training seeds (search, RL, best response) and judge "
                        "it against its truthful twin on held-out seeds")
    at.add_argument("scenario", help="built-in scenario name or path to a TOML file")
    at.add_argument("--method", required=True, help=f"one of {list(ATTACK_METHODS.names())} or 'module:attr'")
    at.add_argument("--mechanism", choices=[*MECHANISMS.names(), *AD_MECHANISMS],
                    help="mechanism name (default: the scenario's; ads: one of MOSAIC's payment rules)")
    at.add_argument("--deviator", help="the participant that attacks (default provider-0; ads: advertiser-0, of "
                    "every query)")
    at.add_argument("--train-seeds", type=int, default=8, help="the method trains on seeds 0..N-1 (default 8)")
    at.add_argument("--test-seeds", type=int, default=20,
                    help="held-out seeds judged on, from 1000 on (default 20)")
    at.add_argument("--budget", type=int, default=0, help="trials (search), environment steps (ppo); 0: default")
    at.add_argument("--rounds", type=int, default=400, help="rounds per run, training and judging (default 400)")
    at.add_argument("--engine", choices=["fast", "market"], default="fast", help="engine the held-out judging runs "
                    "in (training uses the method's own)")
    at.add_argument("--family", action="append", choices=sorted({*FAMILIES, *AD_FAMILIES}),
                    help="search only: bidding-function families to search (ads: report-function families "
                    f"{sorted(AD_FAMILIES)}; repeatable; default all)")
    at.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    at.add_argument("--workers", type=int, help="processes for the judging (default: number of CPUs)")
    at.add_argument("--out", required=True, help="write attack.json, attack.csv, attack.png here")
    at.set_defaults(func=_cmd_attack)


# -- egta ------------------------------------------------------------------------------------


def _cmd_egta(args: argparse.Namespace) -> int:
    from market.lab import egta

    strategies = args.strategy or ["truthful", "shade", "underbid"]
    games = [egta.play_game(m, strategies, args.seeds, args.rounds, args.workers or os.cpu_count() or 1,
                            scenario=args.scenario, overrides=args.set) for m in args.mechanism]
    print(egta.format_games(games))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    egta.write_csv(games, out / "egta.csv")
    written = ["egta.csv"]
    if args.openspiel:
        views = [egta.openspiel_view(g) for g in games]
        print(egta.format_openspiel(views))
        (out / "openspiel.json").write_text(json.dumps(
            [{"mechanism": v.mechanism, "profile": v.profile, "nash_conv": v.nash_conv,
              "improvements": list(v.improvements), "alpha_rank": v.alpha_rank} for v in views], indent=2) + "\n")
        written.append("openspiel.json")
    print(f"{' and '.join(written)} in {args.out}")
    return 0


def _add_egta(sub: Any) -> None:
    from agents.strategies import STRATEGIES
    from market.core.mechanisms.reverse import MECHANISMS

    eg = sub.add_parser("egta", help="payoff table of two strategic providers over a strategy list, the truthful "
                        "profile's regret (CSV); --openspiel adds NashConv and alpha-rank computed by OpenSpiel")
    eg.add_argument("--scenario", default="quickstart", help="built-in scenario name or TOML path (default "
                    "quickstart)")
    eg.add_argument("--mechanism", action="append", required=True, choices=MECHANISMS.names(),
                    help="mechanism name (repeatable)")
    eg.add_argument("--strategy", action="append", choices=STRATEGIES.names(),
                    help="a strategy of the table, the first is the profile judged (default truthful, shade, "
                    "underbid)")
    eg.add_argument("--seeds", type=int, default=20)
    eg.add_argument("--rounds", type=int, default=200)
    eg.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    eg.add_argument("--openspiel", action="store_true", help="export the table to OpenSpiel (a matrix game) and "
                    "report NashConv of the first strategy's profile and alpha-rank ([rl] extra)")
    eg.add_argument("--workers", type=int, help="processes (default: number of CPUs)")
    eg.add_argument("--out", required=True, help="write egta.csv (and openspiel.json) here")
    eg.set_defaults(func=_cmd_egta)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit 2), like every other refusal of the
    command; ``--help`` still gives the usage."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _checked(name: str, rule: Rule) -> Any:
    """An argparse type: an integer the rule allows, or one line naming the option, the value and the range."""
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {shown(text)}, expected {rule.expected()}") from None
        why = rule.refusal(value)
        if why is not None:
            raise argparse.ArgumentTypeError(f"got {shown(value)}, expected {why}")
        return value
    parse.__name__ = name  # argparse names the type in some messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    from agents.ad_strategies import AD_STRATEGIES
    from agents.strategies import STRATEGIES
    from market.core.mechanisms.reverse import MECHANISMS
    from market.lab.bench import BENCHMARKS
    from market.lab.repro import PAPERS

    p = _Parser(prog="llm-market", description=__doc__)
    p.add_argument("--log-format", choices=["console", "json"], default="console")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress (quiet by default)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a scenario")
    r.add_argument("scenario", help="built-in scenario name or path to a TOML file")
    r.add_argument("--seed", type=_checked("seed", SEED), help=f"root seed, an integer in [0, {MAX_SEED}]")
    r.add_argument("--rounds", type=_checked("rounds", ROUNDS), help=f"queries to run, in [0, {MAX_ROUNDS}]")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    r.add_argument("--out", help="run directory (default runs/NAME-seedN); one that holds a run is refused")
    r.add_argument("--force", action="store_true", help="replace the run in --out (its run files only)")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last checkpoint")
    r.add_argument("--key-file", metavar="FILE", help="key the log's hash chain with the bytes of FILE: only its "
                   "holder can make a digest that matches (give the same file to --resume)")
    r.add_argument("--trust-builder", action="store_true", help=TRUST_HELP)
    r.add_argument("--plugin", action="append", default=[], metavar="MODULE", help=PLUGIN_HELP)
    r.add_argument("--fail-fast", action="store_true",
                   help="end the run at the first agent exception (logged; no footer or summary) instead of "
                        "crashing that agent alone and going on")
    r.add_argument("--log-format", choices=["console", "json"], default=argparse.SUPPRESS)
    r.set_defaults(func=_cmd_run)

    rp = sub.add_parser("replay", help="recompute ledger and summary from a run's event log")
    rp.add_argument("run_dir")
    rp.add_argument("--key-file", metavar="F", help="file holding the hash chain's key, for a run made with one")
    rp.add_argument("--trust-builder", action="store_true", help=TRUST_HELP)
    rp.set_defaults(func=_cmd_replay)

    vf = sub.add_parser("verify", help="reconcile a run's log, files and config (exit 0: all checks pass, 1: one "
                        "fails, 2: not a run)")
    vf.add_argument("run_dir")
    vf.add_argument("--digest", metavar="HEX", help="the log's expected hash-chain digest")
    vf.add_argument("--key-file", metavar="F", help="file holding the hash chain's key")
    vf.add_argument("--resimulate", action="store_true", help="also run the logged config and seed again and "
                    "compare the logs byte for byte")
    vf.add_argument("--trust-builder", action="store_true", help=TRUST_HELP)
    vf.set_defaults(func=_cmd_verify)

    ls = sub.add_parser("list", help="list scenarios and every registry: mechanisms, strategies, selectors, ...")
    ls.add_argument("--plugin", action="append", default=[], metavar="MODULE", help=PLUGIN_HELP)
    ls.set_defaults(func=_cmd_list)

    b = sub.add_parser("bench", help="benchmarks, printed as JSON")
    b.add_argument("what", choices=BENCHMARKS.names())
    b.add_argument("--quick", action="store_true", help="fewer repetitions")
    b.add_argument("--out", default=None, help="directory for the files a benchmark writes (scale: scale.json, "
                   "scale.png; default bench-scale)")
    b.set_defaults(func=_cmd_bench)

    e = sub.add_parser("repro", help="reproduction experiments of the papers (CSV + PNG)")
    e.add_argument("paper", choices=PAPERS.names())
    e.add_argument("--out")
    e.add_argument("--quick", action="store_true")
    e.add_argument("--lm", help="mosaic on a token-level LM: a market.lm of the ads scenario (smollm2, hf:PATH, ...)")
    e.add_argument("--queries", type=int, help="mosaic: number of ad queries")
    e.set_defaults(func=_cmd_repro)

    dv = sub.add_parser("deviate", help="a strategy's gain over its truthful twin, with a bootstrap CI")
    dv.add_argument("scenario", help="built-in scenario name or path to a TOML file")
    dv.add_argument("--strategy", action="append", required=True,
                    help=f"deviating strategy (repeatable): one of {sorted({*STRATEGIES, *AD_STRATEGIES})}, a "
                    "plug-in's name or 'module:attr'")
    dv.add_argument("--deviator", help="provider id that deviates (default provider-0)")
    dv.add_argument("--seeds", type=int, default=20)
    dv.add_argument("--rounds", type=int, default=1000)
    dv.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    dv.add_argument("--engine", choices=["fast", "market"], default="fast",
                    help="fast: the same objects in a plain loop; market: the real runtime")
    dv.add_argument("--workers", type=int, help="processes over seeds (default: number of CPUs)")
    dv.add_argument("--out", help="write deviation.csv, gains.png, multipliers.png here")
    dv.add_argument("--plugin", action="append", default=[], metavar="MODULE", help=PLUGIN_HELP)
    dv.set_defaults(func=_cmd_deviate)

    cv = sub.add_parser("curve", help="a provider's exact expected profit per shading multiplier (CSV + PNG)")
    cv.add_argument("scenario", help="built-in scenario name or path to a TOML file")
    cv.add_argument("--mechanism", action="append", choices=MECHANISMS.names(),
                    help="mechanism name (repeatable; default: the scenario's)")
    cv.add_argument("--deviator", default="provider-0", help="provider whose bids are shaded (default provider-0)")
    cv.add_argument("--multipliers", help="comma-separated multipliers (default 0.8,0.9,1,1.1,1.2,1.3,1.5,1.7,2)")
    cv.add_argument("--seeds", type=int, default=4)
    cv.add_argument("--warmup", type=int, default=1000, help="rounds the scenario plays before the curve")
    cv.add_argument("--samples", type=int, default=5000, help="frozen rounds averaged per seed")
    cv.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    cv.add_argument("--out", help="write curve.csv and curve.png here")
    cv.set_defaults(func=_cmd_curve)

    vd = sub.add_parser("verdicts", help="the verdict table: mechanisms x strategies (CSV + PNG)")
    vd.add_argument("--out", required=True)
    vd.add_argument("--quick", action="store_true", help="fewer seeds and rounds (same clear-cut verdicts)")
    vd.add_argument("--workers", type=int, help="processes (default: number of CPUs)")
    vd.add_argument("--no-attackers", dest="attackers", action="store_false",
                    help="leave out the second generation's rows (utility loss, search and PPO attackers)")
    vd.add_argument("--set", dest="ad_sets", action="append", default=[], metavar="KEY=VALUE",
                    help="a key of the ads scenario for the ad cells, e.g. market.lm=smollm2 (repeatable)")
    vd.set_defaults(func=_cmd_verdicts)
    _add_best_response(sub)
    _add_judge(sub)

    sw = sub.add_parser("sweep", help="run a scenario over a grid of parameters x seeds")
    sw.add_argument("spec", help="sweep file (TOML: [sweep], [fixed], [grid], [zip])")
    sw.add_argument("--out", required=True, help="sweep directory; a re-run skips finished tasks")
    sw.add_argument("--engine", choices=["local", "ray"], default="local")
    sw.add_argument("--workers", type=int, help="parallel tasks (default: number of CPUs)")
    sw.add_argument("--address", help="Ray cluster address (default: start a local Ray for the run)")
    sw.set_defaults(func=_cmd_sweep)

    rep = sub.add_parser("report", help="plots and a Markdown summary of a run or sweep directory; --html adds "
                         "an interactive page (run, sweep, verdicts or reproduction directory)")
    rep.add_argument("dir")
    rep.add_argument("--html", action="store_true", help="also write DIR/report.html: one self-contained page "
                     "that opens offline")
    rep.add_argument("--trust-builder", action="store_true", help=TRUST_HELP)
    rep.set_defaults(func=_cmd_report)

    ins = sub.add_parser("inspect", help="rounds of a run as the report page's inspector shows them, as JSON, read "
                         "from its log (any round, also those a long run's page does not hold)")
    ins.add_argument("dir")
    ins.add_argument("--round", type=int, action="append", required=True, help="a round to show (repeatable)")
    ins.add_argument("--trust-builder", action="store_true", help=TRUST_HELP)
    ins.set_defaults(func=_cmd_inspect)
    _add_attack(sub)
    _add_egta(sub)
    return p


def _one_line(text: str) -> str:
    """A message as one line of output (a value may carry line breaks: they are written as \\n)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


# The package's errors for input it refuses, by the word that starts their line: each is one line on stderr
# and exit 2. Anything else (a genuine bug) keeps its traceback.
REFUSALS: tuple[tuple[type[BaseException], str], ...] = (
    (UnusableRun, "error"),  # before ConfigError, its base: a run directory that is no run
    (ConfigError, "config error"),
    (RunDirError, "run directory error"),
    (EventLogError, "event log error"),
    (MechanismError, "config error"),
    (RegistryError, "config error"),
    (LearningError, "config error"),
    (LedgerError, "ledger error"),
    (WireError, "wire error"),
    (BusError, "bus error"),
    (KernelError, "simulation error"),
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fmt = getattr(args, "log_format", None) or "console"
    configure_logging(fmt, args.verbose)
    try:
        return args.func(args)
    except tuple(kind for kind, _ in REFUSALS) as exc:
        word = next(w for kind, w in REFUSALS if isinstance(exc, kind))
        print(f"{word}: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except AgentFailed as exc:
        print(f"run failed: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly, as other CLI tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
