"""The `tracardi-autoscaler` command: run | check | explain | simulate | bench | demo | trace.

Each subcommand parses its arguments here and hands over to the module that does the work; this
file holds no logic of its own beyond printing.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoscaler import __version__
from autoscaler.bench.chaos import CHAOS, ChaosJob, chaos_report, run_chaos_jobs
from autoscaler.bench.chaos import KINDS as CHAOS_KINDS
from autoscaler.bench.runner import (
    Job,
    SimProgress,
    jobs_for,
    percentile,
    run_job,
    run_jobs,
    summarize,
    table,
    trace_for,
    write_json,
)
from autoscaler.bench.scenario import (
    SCENARIOS,
    ReplayError,
    ScenarioError,
    check_scenario,
    outage_note,
    peak_note,
)
from autoscaler.config import ConfigError, LoadedConfig, PrometheusSource, load_config
from autoscaler.sim.traces import TraceError, default_trace_paths, load_trace
from autoscaler.telemetry import configure_logging

if TYPE_CHECKING:
    from autoscaler.demo import DemoResult

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


def _port(text: str) -> int:
    """An argparse type: a TCP port."""
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (0 to 65535)")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _at_least_one(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is below 1")
    return value


def _positive(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text} is not a number above 0")
    return value


def _between(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number from `low` to `high` (a factor, a duration that a run of
    this machine can make sense of)."""
    def parse(text: str) -> float:
        value = _positive(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not from {low:g} to {high:g}")
        return value
    return parse


def _config_refused(exc: ConfigError) -> int:
    """A config's issues on stderr, one a line as `check` prints them; the exit code of a bad
    config."""
    for issue in exc.issues:
        print(issue, file=sys.stderr)
    return 2


def _quiet_logs() -> None:
    configure_logging(json=True, level=logging.WARNING)


def _replay_logs() -> None:
    """A replay's daemon logs nothing (it never logs at CRITICAL): what it did is in the
    scores, and its lines (an open breaker in the healing scenario, say) would read as this
    machine's. A task that fails stops the run with `ReplayError` instead."""
    configure_logging(json=True, level=logging.CRITICAL)


#: What `--capacity-factor` says when asked of a run it does not apply to.
CAPACITY_FACTOR_ONLY = ("--capacity-factor is for --scenario api, worker and worker-outage: "
                        "the healing scenario, --scale and the chaos soak size their own pods")


def cmd_simulate(args: argparse.Namespace) -> int:
    _replay_logs()
    if args.capacity_factor != 1.0 and args.scenario == "healing":
        print(CAPACITY_FACTOR_ONLY, file=sys.stderr)
        return 2
    try:
        loaded = load_config(args.config)
        trace = args.trace if args.trace is not None else _default_trace()
        loaded_trace = trace_for(trace)
        spec = check_scenario(loaded, args.scenario, args.workload,
                              capacity_rps=args.capacity_rps)
        notes = [note for note in (
            outage_note(loaded_trace) if args.scenario == "worker-outage" else None,
            peak_note(spec, args.scenario, args.peak_replicas)) if note]
        _writable(args.json)
        _writable(args.plot, plot=True)
        job = Job(config=str(args.config), trace=trace, scenario=args.scenario,
                  contender="ours", target=None, peak_replicas=args.peak_replicas,
                  seed=args.seed, plot=args.plot, workload=args.workload,
                  capacity_factor=args.capacity_factor, capacity_rps=args.capacity_rps)
        progress = SimProgress(enabled=not args.no_progress)
        try:
            result = run_job(job, on_model=progress.watch)
        finally:
            progress.done()
    except (ConfigError, TraceError, ScenarioError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ReplayError as exc:
        print(f"tracardi-autoscaler: {exc}", file=sys.stderr)
        return 1
    for key, value in result.items():
        print(f"{key:>24}: {value}")
    for note in notes:
        print(f"note: {note}")
    return _write_json([result], args.json)


def _write_json(results: list[dict[str, Any]], path: str | None) -> int:
    """Write the results' JSON if asked; a failed write is one line and exit code 2 (the
    results are printed by then)."""
    if path is None:
        return 0
    try:
        write_json(results, path)
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


#: What `--plot` can write (matplotlib's formats; no suffix writes a PNG).
PLOT_SUFFIXES = frozenset({"", ".png", ".svg", ".pdf", ".jpg", ".jpeg", ".eps", ".ps", ".tif",
                           ".tiff", ".webp"})


def _writable(path: str | None, *, plot: bool = False) -> None:
    """Refuse an output path that cannot be written, before a run that would end in it: its
    folder is made; OSError (or ScenarioError for a plot format) names what is wrong."""
    if path is None:
        return
    if not path:  # an unset $VARIABLE, most likely
        raise FileNotFoundError(errno.ENOENT, "an empty path; name a file", path)
    target = Path(path)
    if plot and target.suffix.lower() not in PLOT_SUFFIXES:
        raise ScenarioError(f"{path}: cannot plot to {target.suffix!r}; use one of "
                            f"{', '.join(sorted(s for s in PLOT_SUFFIXES if s))}")
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory; name a file", path)
    _folder_to_write_in(target.parent, path)
    if target.exists() and not os.access(target, os.W_OK):
        raise PermissionError(errno.EACCES, "cannot write there", path)


def _writable_folder(path: str | None) -> None:
    """`_writable` for a folder that files are written into (`bench --plots`)."""
    if path is None:
        return
    if not path:
        raise FileNotFoundError(errno.ENOENT, "an empty path; name a folder", path)
    _folder_to_write_in(Path(path), path)


def _folder_to_write_in(folder: Path, path: str) -> None:
    """Make `folder`, where the output `path` goes; a file in the way, or a folder that cannot
    be written in, is the OSError that names it."""
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder to write in",
                                 str(blocking))
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise PermissionError(errno.EACCES, "cannot write there", path)


def _replaceable_kubeconfig(path: Path) -> None:
    """Refuse a `--kubeconfig-out` the demo may not write: a folder, one it cannot write, or a
    file that holds another kubeconfig (an operator's ~/.kube/config would lose its clusters);
    one an earlier demo wrote it replaces."""
    from autoscaler.sim.kubeapi import written_kubeconfig  # noqa: PLC0415 (live stack)

    _writable(str(path))
    if path.exists() and not written_kubeconfig(path):
        raise FileExistsError(errno.EEXIST, "exists and is not a kubeconfig an earlier demo "
                              "wrote, which the demo would replace; name another file",
                              str(path))


def _default_trace() -> str:
    """A shipped trace when ../shared/traces is present, else the built-in generator."""
    paths = default_trace_paths()
    preferred = [p for p in paths if p.stem == "worldcup98_flash_crowd"]
    return str((preferred or paths)[0]) if paths else "generated"


def cmd_bench(args: argparse.Namespace) -> int:
    _quiet_logs()
    no_replay = args.scale is not None or CHAOS in args.scenario  # they make their own pods
    if args.workload and no_replay:
        print("--workload is for the replays of --scenario api, worker, worker-outage and "
              "healing, not for --scale or the chaos soak", file=sys.stderr)
        return 2
    if args.capacity_factor != 1.0 and no_replay:
        print(CAPACITY_FACTOR_ONLY, file=sys.stderr)
        return 2
    if args.capacity_rps is not None and no_replay:
        print("--capacity-rps is for the replay of a workload scaled by an 'hpa' policy "
              "(--scenario api): --scale and the chaos soak size their own pods", file=sys.stderr)
        return 2
    try:  # what a long run ends in is checked before it starts
        _writable(args.json)
        _writable_folder(args.plots)
    except OSError as exc:
        print(f"{exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.scale is not None:
        return cmd_bench_scale(args)
    if CHAOS in args.scenario:
        return cmd_bench_chaos(args)
    traces = [str(t) for t in args.trace] or [str(p) for p in default_trace_paths()]
    if not traces:
        print("no traces: ../shared/traces is absent; using the built-in generator",
              file=sys.stderr)
        traces = ["generated"]
    if args.workload and not args.scenario:
        print("--workload needs --scenario: a workload is scaled by request rate (api) or by "
              "backlog (worker, worker-outage, healing)", file=sys.stderr)
        return 2
    scenarios = args.scenario or list(SCENARIOS)
    if args.capacity_factor != 1.0 and "healing" in scenarios:
        print(CAPACITY_FACTOR_ONLY, file=sys.stderr)
        return 2
    notes: list[str] = []
    try:
        loaded = load_config(args.config)
        for trace in traces:
            loaded_trace = trace_for(trace)  # a bad CSV stops the bench here, not in a run
            if "worker-outage" in scenarios and (note := outage_note(loaded_trace)):
                notes.append(note)
        for scenario in scenarios:
            spec = check_scenario(loaded, scenario, args.workload,
                                  capacity_rps=args.capacity_rps)
            if note := peak_note(spec, scenario, args.peak_replicas):
                notes.append(note)
    except (ConfigError, TraceError, ScenarioError) as exc:
        print(exc, file=sys.stderr)
        return 2
    jobs = jobs_for(str(args.config), traces, scenarios,
                    peak_replicas=args.peak_replicas, seed=args.seed, plot_dir=args.plots,
                    workload=args.workload, capacity_factor=args.capacity_factor,
                    capacity_rps=args.capacity_rps)
    started = time.perf_counter()
    _replay_logs()
    try:
        results = summarize(run_jobs(jobs, workers=args.workers, progress=not args.no_progress))
    except ReplayError as exc:
        print(f"tracardi-autoscaler: {exc}", file=sys.stderr)
        return 1
    print(table(results))
    for note in notes:
        print(f"note: {note}")
    print(f"{len(results)} runs in {time.perf_counter() - started:.1f}s on "
          f"{min(args.workers, len(jobs))} worker process(es)")
    return _write_json(results, args.json)


def cmd_bench_chaos(args: argparse.Namespace) -> int:
    """`bench --scenario chaos`: only the chaos soak (issue 9), per trace on both workloads."""
    if set(args.scenario) != {CHAOS}:
        print("--scenario chaos runs alone", file=sys.stderr)
        return 2
    if args.hours <= 0:
        print("--hours must be positive", file=sys.stderr)
        return 2
    traces = [str(t) for t in args.trace] or [_default_trace()]
    try:
        load_config(args.config)
        for trace in traces:
            if trace != "generated":
                load_trace(trace)
    except (ConfigError, TraceError) as exc:
        print(exc, file=sys.stderr)
        return 2
    jobs = [ChaosJob(config=str(args.config), trace=trace, kind=kind, seed=args.seed,
                     hours=args.hours, peak_replicas=args.peak_replicas)
            for trace in traces for kind in CHAOS_KINDS]
    started = time.perf_counter()
    results = run_chaos_jobs(jobs, workers=args.workers, progress=not args.no_progress)
    print(chaos_report(results))
    print(f"wall-clock: {time.perf_counter() - started:.1f}s for {len(results)} soaks of "
          f"{args.hours:g} simulated hours on {min(args.workers, len(jobs))} worker "
          "process(es)")
    if args.json:
        write_json(results, args.json)
    return 1 if any(r["invariant_violations"] for r in results) else 0


def cmd_bench_scale(args: argparse.Namespace) -> int:
    """`bench --scale N[,N...]`: only the scale benchmark (issue 8)."""
    from autoscaler.bench import scale  # noqa: PLC0415 (spawns daemons; load on demand)

    try:
        sizes = scale.parse_scale(args.scale)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.scale_seconds <= 0:
        print("--scale-seconds must be positive", file=sys.stderr)
        return 2
    records = scale.run_scale(sizes, seconds=args.scale_seconds,
                              log=lambda line: print(line, file=sys.stderr, flush=True))
    print(scale.table(records))
    if args.json:
        scale.write_json(records, args.json)
    if args.plots:
        from autoscaler.bench.plots import plot_scale  # noqa: PLC0415 (matplotlib on demand)

        plot_scale(records, Path(args.plots) / "scale.png")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    import io  # noqa: PLC0415 (this command only)

    from autoscaler.sim.trace_export import (  # noqa: PLC0415 (this command only)
        CHUNK_STEPS,
        ExportError,
        check_range,
        export_trace,
        parse_time,
    )

    try:
        source, query, per_second = _trace_source(args)
        start = parse_time(args.start)
        end = parse_time(args.end) if args.end is not None else time.time()
        check_range(start, end, args.step)
        if args.out is not None:
            _writable(args.out)  # before the queries, which may take a while
    except ConfigError as exc:
        return _config_refused(exc)
    except ExportError as exc:
        print(f"tracardi-autoscaler trace: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tracardi-autoscaler trace: --out {exc.filename}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2

    def progress(done: int, chunks: int) -> None:
        if chunks > 1 and not args.no_progress:
            print(f"trace: {done}/{chunks} queries of up to {CHUNK_STEPS} steps",
                  file=sys.stderr)

    text = io.StringIO()
    try:
        done = asyncio.run(export_trace(source, query, start=start, end=end, step=args.step,
                                        out=text, per_second=per_second,
                                        request_seconds=args.timeout, progress=progress))
    except ExportError as exc:
        print(f"tracardi-autoscaler trace: {exc}", file=sys.stderr)
        return 1
    if args.out is not None:
        try:
            Path(args.out).write_text(text.getvalue())
        except OSError as exc:
            print(f"tracardi-autoscaler trace: {args.out}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text.getvalue())
    where = args.out or "stdout"
    print(f"trace: {done.rows} rows of {done.steps} steps of {args.step} s to {where}; the "
          f"busiest step had {done.peak:.6g} requests", file=sys.stderr)
    if done.gaps:
        first = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(done.first_gap or 0))
        print(f"trace: {done.steps - done.rows} steps in {done.gaps} gaps had no value (the "
              f"first from {first}); the replay holds the step before each gap over it",
              file=sys.stderr)
    return 0


def _trace_source(args: argparse.Namespace) -> tuple[PrometheusSource, str, bool]:
    """The Prometheus to ask, the query and whether it is a rate per second: a source of the
    config (its URL, auth and TLS; its query, a rate, unless --query), or --prometheus."""
    from pydantic import ValidationError  # noqa: PLC0415 (this command only)

    from autoscaler.sim.trace_export import ExportError  # noqa: PLC0415 (this command only)

    if args.source:
        sources = load_config(args.config).config.sources
        found = sources.get(args.source)
        if not isinstance(found, PrometheusSource):
            kinds = ", ".join(n for n, s in sources.items() if isinstance(s, PrometheusSource))
            what = "is not a source" if found is None else f"is a {found.kind} source"
            raise ExportError(f"{args.source!r} {what} of {args.config}; its Prometheus "
                              f"sources: {kinds or 'none'}")
        if args.query:
            return found, args.query, args.per_second
        return found, found.query, True  # what the request-rate policy reads: requests/s
    if not args.query:
        raise ExportError("--query is needed with --prometheus")
    try:
        return PrometheusSource(kind="prometheus", url=args.prometheus,
                                query=args.query), args.query, args.per_second
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ExportError(f"--prometheus {args.prometheus!r}: {message}") from None


def cmd_run(args: argparse.Namespace) -> int:
    configure_logging(json=True, level=getattr(logging, args.log_level))
    from autoscaler.kube.connect import KubeconfigError  # noqa: PLC0415 (live stack)
    from autoscaler.runtime import (  # noqa: PLC0415 (live stack)
        EndpointsError,
        default_identity,
        run_live,
    )

    try:
        return asyncio.run(run_live(
            args.config, kubeconfig=args.kubeconfig, dry_run=args.dry_run,
            metrics_host=args.metrics_host, metrics_port=args.metrics_port,
            identity=args.identity or default_identity(),
            leader_election=not args.no_leader_election))
    except ConfigError as exc:
        return _config_refused(exc)
    except KubeconfigError as exc:
        print(f"tracardi-autoscaler: {exc}", file=sys.stderr)
        return 2
    except EndpointsError as exc:
        change = ("choose another with --metrics-port (or daemon.metrics_port in the config)"
                  if exc.port_taken else "give --metrics-host an address of this host")
        print(f"tracardi-autoscaler: {exc}; {change}", file=sys.stderr)
        return 2


def cmd_explain(args: argparse.Namespace) -> int:
    _quiet_logs()
    from autoscaler.kube.connect import KubeconfigError  # noqa: PLC0415 (live stack)
    from autoscaler.kube.errors import KubeError  # noqa: PLC0415 (live stack)
    from autoscaler.runtime import explain_live, format_explain  # noqa: PLC0415 (live stack)

    try:
        report = asyncio.run(explain_live(args.config, kubeconfig=args.kubeconfig,
                                          as_user=args.as_user))
    except ConfigError as exc:
        return _config_refused(exc)
    except KubeconfigError as exc:
        print(f"tracardi-autoscaler: {exc}", file=sys.stderr)
        return 2
    except KubeError as exc:  # the API server did not answer at all
        print(f"tracardi-autoscaler: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=1) if args.json else format_explain(report))
    # A workload whose Deployment could not be read was not explained, and a permission the
    # daemon would lack (or that could not be checked) fails it later: say so in the code too.
    unread = any(w["decision"] is None for w in report["workloads"])
    access = report["access"]
    return 1 if unread or access["missing"] or access["error"] else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from autoscaler.demo import plain_view, rich_view, run_demo  # noqa: PLC0415 (live stack)
    from autoscaler.runtime import EndpointsError  # noqa: PLC0415 (live stack)

    try:
        load_config(args.config)
        trace = trace_for(args.trace if args.trace is not None else _default_trace())
        if args.kubeconfig_out is not None:
            _replaceable_kubeconfig(args.kubeconfig_out)
    except (ConfigError, TraceError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"demo: --kubeconfig-out {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"demo: metrics on http://127.0.0.1:{args.metrics_port}/metrics; simulated cluster "
          f"playing {trace.name} at {args.speed:g}x for {args.duration:g}s (Ctrl-C ends it)",
          flush=True)
    if args.no_ui:
        configure_logging(json=False, level=logging.INFO)
        show = plain_view()
        live = None
    else:
        from rich.console import Console  # noqa: PLC0415

        configure_logging(json=True, level=logging.ERROR)
        live, show = rich_view(Console())

    async def main() -> DemoResult:
        # Ctrl-C (or SIGTERM) ends the demo as its duration would: with the reaction times.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_demo(shipped=args.config, trace=trace, speed=args.speed,
                              duration=args.duration, metrics_port=args.metrics_port,
                              kubeconfig_out=args.kubeconfig_out,
                              peak_replicas=args.peak_replicas, seed=args.seed, show=show,
                              stop=stop)

    try:
        if live is not None:
            with live:
                result = asyncio.run(main())
        else:
            result = asyncio.run(main())
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
    except EndpointsError as exc:
        print(f"demo: {exc}; choose another with --metrics-port", file=sys.stderr)  # 127.0.0.1
        return 2
    if result.failure is not None:
        print(f"demo: the daemon stopped: {result.failure}", file=sys.stderr)
        return 1
    p50, p99 = percentile(result.reactions, 0.5), percentile(result.reactions, 0.99)
    print(f"demo: {result.duration:.0f}s, {result.scale_writes} scale writes, "
          f"{len(result.reactions)} reactions (threshold crossed -> scale request, real "
          f"seconds): p50 {_fmt(p50)} p99 {_fmt(p99)}")
    if result.reactions:
        print("demo: reactions (s): " + " ".join(f"{r:.2f}" for r in result.reactions))
    if result.held:
        print(f"demo: {len(result.held)} scale-ups held by the dependency gate (an outage, then "
              "until the dependency is trusted again; not reactions), from the threshold "
              "crossed to the request (s): " + " ".join(f"{r:.2f}" for r in result.held))
    return 0


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}s"


def _replay_options(parser: argparse.ArgumentParser) -> None:
    """What `simulate` and `bench` replay, and how the simulated cluster is sized."""
    parser.add_argument("--config", type=Path, default=default_config_path(),
                        help="the policies to replay (default: the shipped tracardi.yaml)")
    parser.add_argument("--peak-replicas", type=_at_least_one, default=20,
                        help="scale the trace so that its peak needs this many pods (default 20)")
    parser.add_argument("--capacity-factor", type=_between(0.001, 1000), default=1.0,
                        metavar="F",
                        help="the simulated pods serve this times what the policy states "
                             "(capacity_rps, msgs_per_second): 0.5 replays a policy that "
                             "overestimates its pods twice (default 1)")
    parser.add_argument("--capacity-rps", type=_between(1e-6, 1e9), default=None,
                        metavar="RPS",
                        help="requests/s one API pod serves, for a workload scaled by an 'hpa' "
                             "policy: its metric does not say (needed on an External metric; "
                             "on CPU it sets only the unit)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of every random draw: pod start-up jitter, faults (default 1)")


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

    run = sub.add_parser("run", help="run the daemon against a Kubernetes cluster")
    run.add_argument("--config", type=Path, default=Path("/etc/tracardi-autoscaler/config.yaml"),
                     help="default: %(default)s (the ConfigMap that deploy/ mounts)")
    run.add_argument("--kubeconfig", help="default: $KUBECONFIG, in-cluster, ~/.kube/config")
    run.add_argument("--dry-run", action="store_true", help="decide and report, write nothing")
    run.add_argument("--metrics-host", default="0.0.0.0",
                     help="address of /metrics, /healthz and /readyz (default: 0.0.0.0, every "
                          "IPv4 address; '::' on an IPv6-only cluster)")
    run.add_argument("--metrics-port", type=_port,
                     help="default: the config's daemon.metrics_port (9108)")
    run.add_argument("--identity", help="lease holder identity (default: $POD_NAME)")
    run.add_argument("--no-leader-election", action="store_true",
                     help="act without a Lease (a single replica only)")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"],
                     help="default: INFO (every decision that changes something)")
    run.set_defaults(func=cmd_run)

    explain = sub.add_parser("explain", help="one dry evaluation of every workload, explained")
    explain.add_argument("--config", type=Path, default=default_config_path(),
                         help="default: the shipped %(default)s; pass the one `run` uses")
    explain.add_argument("--kubeconfig")
    explain.add_argument("--json", action="store_true")
    explain.add_argument("--as", dest="as_user", metavar="USER",
                         help="act as USER (as kubectl --as), such as the daemon's "
                              "system:serviceaccount:tracardi:tracardi-autoscaler, to check "
                              "its permissions before it runs")
    explain.set_defaults(func=cmd_explain)

    demo = sub.add_parser("demo", help="the real daemon against the simulated cluster over HTTP")
    demo.add_argument("--config", type=Path, default=default_config_path())
    demo.add_argument("--trace", help="CSV trace (default: a shipped one, or the generator)")
    demo.add_argument("--speed", type=_positive, default=10.0, help="trace seconds per real second")
    demo.add_argument("--duration", type=_positive, default=300.0, help="real seconds")
    demo.add_argument("--metrics-port", type=_port, default=9108)
    demo.add_argument("--kubeconfig-out", type=Path,
                      help="write the simulated cluster's kubeconfig here (for kubectl): a "
                           "new file, or one an earlier demo wrote; never your own kubeconfig")
    demo.add_argument("--peak-replicas", type=_at_least_one, default=20,
                      help="scale the trace so that its peak needs this many pods (default 20)")
    demo.add_argument("--seed", type=int, default=1,
                      help="seed of the pods' start-up jitter (default 1)")
    demo.add_argument("--no-ui", action="store_true", help="plain lines instead of a live view")
    demo.set_defaults(func=cmd_demo)

    simulate = sub.add_parser("simulate", help="replay a trace against the simulated cluster")
    _replay_options(simulate)
    simulate.add_argument("--trace", help="CSV with t_seconds,requests (default: a shipped "
                          "trace, or the built-in generator without ../shared)")
    simulate.add_argument("--scenario", choices=SCENARIOS, default="api",
                          help="default: api")
    simulate.add_argument("--workload", metavar="NAME",
                          help="the config's workload to replay (default: the scenario's "
                               "first: for api by request rate, else by hpa on CPU; for the "
                               "others by backlog)")
    simulate.add_argument("--plot", help="write a PNG of the run here")
    simulate.add_argument("--json", help="write the scores as JSON here")
    simulate.add_argument("--no-progress", action="store_true",
                          help="do not show how much of the trace is simulated (on stderr)")
    simulate.set_defaults(func=cmd_simulate)

    bench = sub.add_parser("bench", help="ours against keda, static and the oracle")
    _replay_options(bench)
    bench.add_argument("--trace", action="extend", nargs="+", default=[], metavar="CSV",
                       help="CSV traces (one or more, repeatable; default: "
                            "../shared/traces/*.csv)")
    bench.add_argument("--scenario", action="append", default=[],
                       help=f"repeatable; default: all of {', '.join(SCENARIOS)}; "
                            f"'{CHAOS}' runs only the chaos soak")
    bench.add_argument("--workload", metavar="NAME",
                       help="the config's workload to replay, with --scenario (default: each "
                            "scenario's first)")
    bench.add_argument("--workers", type=_at_least_one, default=os.cpu_count() or 1,
                       help="processes the runs are spread over (default: one per CPU)")
    bench.add_argument("--json", help="write {runs: [...]} here")
    bench.add_argument("--plots", help="write one PNG per trace and scenario (ours) here")
    bench.add_argument("--no-progress", action="store_true")
    bench.add_argument("--scale", nargs="?", const="10,100,1000", default=None,
                       metavar="N[,N...]",
                       help="run only the scale benchmark with N generated workloads "
                            "(default 10,100,1000)")
    bench.add_argument("--scale-seconds", type=_between(1, 86400), default=60.0,
                       help="real seconds the daemon runs for each N (default 60)")
    bench.add_argument("--hours", type=_between(0.01, 744), default=24.0,
                       help="simulated hours of the chaos soak (default 24; at most 31 days)")
    bench.set_defaults(func=cmd_bench)

    trace = sub.add_parser("trace", help="a trace of real traffic from Prometheus, to replay")
    where = trace.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", metavar="NAME",
                       help="a prometheus source of --config: its URL, auth and TLS, and its "
                            "query (requests/s) unless --query")
    where.add_argument("--prometheus", metavar="URL",
                       help="the Prometheus server, such as http://prometheus-server.monitoring")
    trace.add_argument("--config", type=Path, default=default_config_path(),
                       help="with --source (default: the shipped %(default)s)")
    trace.add_argument("--query",
                       help="the requests of each step, one series: sum(increase(nginx_ingress_"
                            "controller_requests{ingress=\"tracardi-track\"}[1m])) at 60 s "
                            "steps (a rate per second with --per-second)")
    trace.add_argument("--start", required=True,
                       help="RFC 3339 (2026-12-01T00:00:00Z) or epoch seconds")
    trace.add_argument("--end", help="as --start (default: now); at most 31 days after it")
    trace.add_argument("--step", type=int, default=60,
                       help="seconds between values, the trace's interval (default 60)")
    trace.add_argument("--per-second", action="store_true",
                       help="the query gives requests/s (a rate): times the step per row")
    trace.add_argument("--timeout", type=_between(0.1, 3600), default=60.0,
                       help="seconds Prometheus may take for each query (default 60)")
    trace.add_argument("--out", help="write the CSV here (default: stdout)")
    trace.add_argument("--no-progress", action="store_true")
    trace.set_defaults(func=cmd_trace)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:
        # The reader went away (`check ... | head`): stop printing, with no traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
