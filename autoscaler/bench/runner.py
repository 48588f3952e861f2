"""`simulate` and `bench`: run contenders on traces and scenarios, score them, report.

Runs are independent, so `bench` spreads them over worker processes (both cores here). Every
run is seeded; the same inputs give the same numbers.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoscaler.bench.contenders import (
    KEDA_API_TARGETS,
    KEDA_WORKER_TARGETS,
    oracle_replica_seconds,
    run_keda,
    run_ours,
    run_static,
)
from autoscaler.bench.healing import CONTENDERS as HEALING_CONTENDERS
from autoscaler.bench.healing import build_healing, healing_table, run_healing
from autoscaler.bench.scenario import Setup, build_setup
from autoscaler.config import LoadedConfig, load_config
from autoscaler.sim.model import ClusterModel
from autoscaler.sim.traces import Trace, generated_trace, load_trace


@dataclass(frozen=True, slots=True)
class Job:
    config: str
    trace: str  # a CSV path, or "generated"
    scenario: str
    contender: str
    target: float | None
    peak_replicas: int
    seed: int
    plot: str | None = None  # write a PNG of the run here
    workload: str | None = None  # the config's workload to replay; None: the scenario's first
    capacity_factor: float = 1.0  # the pods serve this times what the policy states
    capacity_rps: float | None = None  # what a pod serves, for an `hpa` policy that does not say


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def trace_for(spec: str) -> Trace:
    return generated_trace() if spec == "generated" else load_trace(spec)


def scores(setup: Setup, model: ClusterModel) -> dict[str, Any]:
    s = model.scores
    return {
        "duration_s": model.trace.duration,
        "replica_seconds": round(s.replica_seconds, 1),
        "slo_violation_seconds": s.slo_violation_seconds,
        "overload_fraction": (round(s.requests_late / s.requests_total, 6)
                              if setup.kind == "api" and s.requests_total else None),
        "scale_actions": s.scale_actions,
        "direction_changes": s.direction_changes,
        "actions_during_outage": s.actions_during_outage,
        "restarts_during_outage": s.restarts_during_outage,
        "reaction_p50_s": _round(percentile(s.reactions, 0.5)),
        "reaction_p99_s": _round(percentile(s.reactions, 0.99)),
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def run_job(job: Job, *, on_model: Callable[[ClusterModel], None] | None = None,
            ) -> dict[str, Any]:
    """One run. `on_model` is handed the simulated cluster before the run starts."""
    loaded = load_config(job.config)
    trace = trace_for(job.trace)
    if job.scenario == "healing":
        return run_healing_job(job, loaded, trace, on_model=on_model)
    setup = build_setup(loaded, trace, job.scenario, peak_replicas=job.peak_replicas,
                        workload=job.workload, capacity_factor=job.capacity_factor,
                        capacity_rps=job.capacity_rps)
    model = setup.model(seed=job.seed, record_timeline=job.plot is not None)
    if on_model is not None:
        on_model(model)
    started = time.perf_counter()
    if job.contender == "ours":
        run_ours(loaded, setup, model)
    elif job.contender == "keda":
        assert job.target is not None
        run_keda(setup, model, job.target * setup.policy_capacity)
    elif job.contender == "static":
        run_static(setup, model)
    if job.contender == "oracle":
        result: dict[str, Any] = {
            "duration_s": trace.duration,
            "replica_seconds": round(oracle_replica_seconds(setup, model), 1),
            "slo_violation_seconds": 0, "overload_fraction": 0.0 if setup.kind == "api" else None,
            "scale_actions": None, "direction_changes": None, "actions_during_outage": None,
            "restarts_during_outage": None, "reaction_p50_s": None, "reaction_p99_s": None,
        }
    else:
        result = scores(setup, model)
    if job.plot is not None:
        from autoscaler.bench.plots import plot_run  # noqa: PLC0415 (optional matplotlib)

        plot_run(model, Path(job.plot),
                 title=f"{trace.name} / {job.scenario} / {job.contender}")
    return {"trace": trace.name, "scenario": job.scenario, "contender": job.contender,
            "target": job.target, "workload": setup.spec.name, **result,
            "wall_s": round(time.perf_counter() - started, 2)}


def run_healing_job(job: Job, loaded: LoadedConfig, trace: Trace, *,
                    on_model: Callable[[ClusterModel], None] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    hs = build_healing(loaded, trace, peak_replicas=job.peak_replicas, seed=job.seed,
                       workload=job.workload)
    model, healing = run_healing(loaded, hs, job.contender, seed=job.seed,
                                 record_timeline=job.plot is not None, on_model=on_model)
    if job.plot is not None:
        from autoscaler.bench.plots import plot_run  # noqa: PLC0415 (optional matplotlib)

        plot_run(model, Path(job.plot), title=f"{trace.name} / healing / {job.contender}")
    return {"trace": trace.name, "scenario": job.scenario, "contender": job.contender,
            "target": None, "workload": hs.setup.spec.name, **scores(hs.setup, model), **healing,
            "wall_s": round(time.perf_counter() - started, 2)}


def jobs_for(config: str, traces: Iterable[str], scenarios: Iterable[str], *,
             peak_replicas: int, seed: int, plot_dir: str | None,
             workload: str | None = None, capacity_factor: float = 1.0,
             capacity_rps: float | None = None) -> list[Job]:
    jobs: list[Job] = []
    for trace in traces:
        for scenario in scenarios:
            targets = KEDA_API_TARGETS if scenario == "api" else KEDA_WORKER_TARGETS
            def job(contender: str, target: float | None = None, plot: str | None = None,
                    trace: str = trace, scenario: str = scenario) -> Job:
                return Job(config=config, trace=trace, scenario=scenario, contender=contender,
                           target=target, peak_replicas=peak_replicas, seed=seed, plot=plot,
                           workload=workload, capacity_factor=capacity_factor,
                           capacity_rps=capacity_rps)

            stem = Path(trace).stem
            plot = str(Path(plot_dir) / f"{stem}-{scenario}-ours.png") if plot_dir else None
            if scenario == "healing":
                jobs.extend(job(c, plot=plot if c == "ours" else None)
                            for c in HEALING_CONTENDERS)
                continue
            jobs.append(job("ours", plot=plot))
            jobs.extend(job("keda", float(t)) for t in targets)
            jobs.append(job("static"))
            jobs.append(job("oracle"))
    return jobs


def run_jobs(jobs: list[Job], *, workers: int, progress: bool = True) -> list[dict[str, Any]]:
    """Run jobs on `workers` processes, the longest traces first, with a progress bar."""
    results: list[dict[str, Any]] = [{} for _ in jobs]
    order = sorted(range(len(jobs)), key=lambda i: -_size(jobs[i].trace))
    bar = _Progress(len(order), enabled=progress)
    workers = min(workers, len(jobs))  # a process more than there are jobs does nothing
    if workers <= 1:
        for i in order:
            results[i] = run_job(jobs[i])
            bar.step(jobs[i])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(run_job, jobs[i]): i for i in order}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.step(jobs[futures[fut]])
    bar.done()
    return results


def _size(trace: str) -> int:
    try:
        return os.path.getsize(trace)
    except OSError:
        return 0


class _Progress:
    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = total
        self.done_count = 0
        self.enabled = enabled and total > 0
        self.started = time.perf_counter()

    def step(self, job: Job) -> None:
        self.done_count += 1
        if not self.enabled:
            return
        width = 30
        filled = width * self.done_count // self.total
        elapsed = time.perf_counter() - self.started
        label = f"{Path(job.trace).stem}/{job.scenario}/{job.contender}"
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done_count}/"
                         f"{self.total} {elapsed:5.0f}s {label:<60.60}")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


class SimProgress:
    """`simulate`'s progress on stderr: how much of the trace is simulated so far.

    A thread reads the model's clock every `every` seconds and writes one line over the last;
    it touches nothing the run uses, so the run and its numbers are the same with or without
    it. `done` writes the final line.
    """

    def __init__(self, *, enabled: bool, every: float = 0.5) -> None:
        self.enabled = enabled
        self.every = every
        self.started = time.perf_counter()
        self._model: ClusterModel | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, model: ClusterModel) -> None:
        """Start showing `model`'s progress (an `on_model` hook of `run_job`)."""
        self._model = model
        self.started = time.perf_counter()
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="simulate-progress",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._write()

    def _write(self, end: str = "") -> None:
        model = self._model
        if model is None:
            return
        total = model.trace.duration
        done = min(model.t, total)
        share = 100 * done // total if total else 100
        elapsed = time.perf_counter() - self.started
        sys.stderr.write(f"\rsimulated {_span(done)} of {_span(total)} ({share} %) in "
                         f"{elapsed:.0f} s{end}")
        sys.stderr.flush()

    def done(self) -> None:
        """Stop the thread and write the final line (nothing if the run never started)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self._write("\n")


def _span(seconds: int) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds} s"


def curve_ratio(ours: dict[str, Any], keda: list[dict[str, Any]]) -> tuple[float | None, float]:
    """keda's violations interpolated at ours' replica-seconds, divided by ours' violations.

    Returns (ratio, keda's interpolated violations). Outside keda's range the nearest end point
    is used. The ratio is inf when ours has none and keda some, None when both have none.
    """
    points = sorted((k["replica_seconds"], k["slo_violation_seconds"]) for k in keda)
    x = ours["replica_seconds"]
    if x <= points[0][0]:
        y = float(points[0][1])
    elif x >= points[-1][0]:
        y = float(points[-1][1])
    else:
        y = float(points[-1][1])
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            if x0 <= x <= x1:
                y = y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
                break
    mine = ours["slo_violation_seconds"]
    if mine == 0:
        return (math.inf if y > 0 else None), y
    return y / mine, y


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add `curve_ratio` and `ours_over_oracle` to every `ours` run."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["trace"], r["scenario"]), []).append(r)
    for runs in groups.values():
        ours = next((r for r in runs if r["contender"] == "ours"), None)
        keda = [r for r in runs if r["contender"] == "keda"]
        oracle = next((r for r in runs if r["contender"] == "oracle"), None)
        if ours is None:
            continue
        if keda:
            ratio, interp = curve_ratio(ours, keda)
            ours["curve_ratio"] = ratio
            ours["keda_interpolated_violations"] = round(interp, 1)
        if oracle and oracle["replica_seconds"]:
            ours["ours_over_oracle"] = round(ours["replica_seconds"] /
                                            oracle["replica_seconds"], 3)
    return results


def table(results: list[dict[str, Any]]) -> str:
    head = (f"{'trace':<26} {'scenario':<14} {'contender':<9} {'target':>6} {'replica_s':>11} "
            f"{'slo_viol_s':>10} {'overload':>9} {'actions':>7} {'flips':>5} {'out_act':>7} "
            f"{'react_p50':>9} {'react_p99':>9} {'curve':>7} {'/oracle':>7}")
    lines = [head, "-" * len(head)]

    def fmt(v: Any, spec: str) -> str:
        if v is None:
            return "-"
        if isinstance(v, float) and math.isinf(v):
            return "inf"
        return format(v, spec)

    for r in results:
        lines.append(
            f"{r['trace']:<26.26} {r['scenario']:<14} {r['contender']:<9} "
            f"{fmt(r['target'], 'g'):>6} {fmt(r['replica_seconds'], '.0f'):>11} "
            f"{fmt(r['slo_violation_seconds'], 'd'):>10} {fmt(r['overload_fraction'], '.4f'):>9} "
            f"{fmt(r['scale_actions'], 'd'):>7} {fmt(r['direction_changes'], 'd'):>5} "
            f"{fmt(r['actions_during_outage'], 'd'):>7} {fmt(r['reaction_p50_s'], '.1f'):>9} "
            f"{fmt(r['reaction_p99_s'], '.1f'):>9} {fmt(r.get('curve_ratio'), '.1f'):>7} "
            f"{fmt(r.get('ours_over_oracle'), '.2f'):>7}")
    healing = [r for r in results if r["scenario"] == "healing"]
    if healing:
        lines += ["", "healing: faults injected into the worker, ours against liveness probes",
                  healing_table(healing)]
    return "\n".join(lines)


def write_json(results: list[dict[str, Any]], path: str) -> None:
    def clean(v: Any) -> Any:
        return "inf" if isinstance(v, float) and math.isinf(v) else v

    runs = [{k: clean(v) for k, v in r.items()} for r in results]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)  # like --plots: out/ need not exist yet
    out.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
