"""The `tracardi-autoscaler` command: run | check | explain | simulate | bench | demo.

Each subcommand parses its arguments here and hands over to the module that does the work; this
file holds no logic of its own beyond printing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from autoscaler import __version__
from autoscaler.bench.runner import (
    Job,
    jobs_for,
    run_job,
    run_jobs,
    summarize,
    table,
    write_json,
)
from autoscaler.bench.scenario import SCENARIOS, ScenarioError
from autoscaler.config import ConfigError, LoadedConfig, load_config
from autoscaler.sim.traces import TraceError, default_trace_paths, load_trace
from autoscaler.telemetry import configure_logging

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "policies" / "tracardi.yaml"


def default_config_path() -> Path:
    """The shipped policies: beside the package in a checkout, inside it when installed."""
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    return Path(__file__).resolve().parent / "data" / "tracardi.yaml"


def _summary(loaded: LoadedConfig) -> list[str]:
    lines = []
    for spec in loaded.workloads:
        w = spec.settings
        policies = ",".join(p.name for p in spec.policies)
        signals = ",".join(spec.signal_names()) or "-"
        requires = ",".join(w.requires) or "-"
        lines.append(f"  {spec.key:<34} min={w.min:<3} max={w.max:<4} policy={policies:<14} "
                     f"signals={signals} requires={requires}")
    return lines


def cmd_check(args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        try:
            loaded = load_config(path)
        except ConfigError as exc:
            failed = True
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            print(f"{path}: {len(exc.issues)} error(s)", file=sys.stderr)
            continue
        for warning in loaded.warnings:
            print(warning, file=sys.stderr)
        print(f"{path}: ok, {len(loaded.workloads)} workload(s), "
              f"{len(loaded.config.dependencies)} dependencies, "
              f"{len(loaded.config.sources)} sources")
        for line in _summary(loaded):
            print(line)
    return 1 if failed else 0


def _quiet_logs() -> None:
    configure_logging(json=True, level=logging.WARNING)


def cmd_simulate(args: argparse.Namespace) -> int:
    _quiet_logs()
    try:
        load_config(args.config)
        trace = args.trace or _default_trace()
        if trace != "generated":
            load_trace(trace)
        job = Job(config=str(args.config), trace=trace, scenario=args.scenario,
                  contender="ours", target=None, peak_replicas=args.peak_replicas,
                  seed=args.seed, plot=args.plot)
        result = run_job(job)
    except (ConfigError, TraceError, ScenarioError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.json:
        write_json([result], args.json)
    for key, value in result.items():
        print(f"{key:>24}: {value}")
    return 0


def _default_trace() -> str:
    """A shipped trace when ../shared/traces is present, else the built-in generator."""
    paths = default_trace_paths()
    preferred = [p for p in paths if p.stem == "worldcup98_flash_crowd"]
    return str((preferred or paths)[0]) if paths else "generated"


def cmd_bench(args: argparse.Namespace) -> int:
    _quiet_logs()
    traces = [str(t) for t in args.trace] or [str(p) for p in default_trace_paths()]
    if not traces:
        print("no traces: ../shared/traces is absent; using the built-in generator",
              file=sys.stderr)
        traces = ["generated"]
    try:
        load_config(args.config)
        for trace in traces:
            if trace != "generated":
                load_trace(trace)
        for scenario in args.scenario:
            if scenario not in SCENARIOS:
                raise ScenarioError(f"unknown scenario {scenario!r}; known: "
                                    f"{', '.join(SCENARIOS)}")
    except (ConfigError, TraceError, ScenarioError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.plots:
        Path(args.plots).mkdir(parents=True, exist_ok=True)
    jobs = jobs_for(str(args.config), traces, args.scenario or list(SCENARIOS),
                    peak_replicas=args.peak_replicas, seed=args.seed, plot_dir=args.plots)
    started = time.perf_counter()
    results = summarize(run_jobs(jobs, workers=args.workers, progress=not args.no_progress))
    print(table(results))
    print(f"{len(results)} runs in {time.perf_counter() - started:.1f}s on {args.workers} "
          f"worker process(es)")
    if args.json:
        write_json(results, args.json)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tracardi-autoscaler",
        description="Autoscaler and self-healing controller for Tracardi on Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="validate config files and summarize the workloads")
    check.add_argument("files", nargs="+", help="YAML config files")
    check.set_defaults(func=cmd_check)

    simulate = sub.add_parser("simulate", help="replay a trace against the simulated cluster")
    simulate.add_argument("--config", type=Path, default=default_config_path())
    simulate.add_argument("--trace", help="CSV with t_seconds,requests (default: a shipped "
                          "trace, or the built-in generator without ../shared)")
    simulate.add_argument("--scenario", choices=SCENARIOS, default="api")
    simulate.add_argument("--peak-replicas", type=int, default=20)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--plot", help="write a PNG of the run here")
    simulate.add_argument("--json", help="write the scores as JSON here")
    simulate.set_defaults(func=cmd_simulate)

    bench = sub.add_parser("bench", help="ours against keda, static and the oracle")
    bench.add_argument("--config", type=Path, default=default_config_path())
    bench.add_argument("--trace", action="append", default=[],
                       help="CSV trace (repeatable; default: ../shared/traces/*.csv)")
    bench.add_argument("--scenario", action="append", default=[],
                       help=f"repeatable; default: all of {', '.join(SCENARIOS)}")
    bench.add_argument("--peak-replicas", type=int, default=20)
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    bench.add_argument("--json", help="write {runs: [...]} here")
    bench.add_argument("--plots", help="write one PNG per trace and scenario (ours) here")
    bench.add_argument("--no-progress", action="store_true")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
