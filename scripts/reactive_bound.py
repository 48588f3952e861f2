"""What a policy that cannot see the future can reach, against the bench's oracle.

The bench's `oracle` for the API is clairvoyant: it starts pods a start-up time before each rise.
A policy that reads the traffic can at best size each second for that second's need. When the
need falls and comes back within a start-up time, the pods it let go are not back in time, so a
policy that keeps its SLO holds a count for a while before it lowers it (the HPA's scale-down
stabilization, 300 s by default and in the shipped policies). This prints, per trace, the
replica-seconds of a policy better than any real one: it knows each second's need exactly and at
once, its pods start at once, and it lowers a count only once that count has not been needed for
`hold` seconds. Each column is that over the oracle's replica-seconds: the least ours/oracle a
policy with that hold can have if it never lets requests queue (a policy may also run short and
let them queue, up to the 2 s SLO and then up to the 0.5 % violation budget). With
`--utilization U` it sizes each second for its need at U of a pod's capacity: the margin a
policy keeps for what its reads do not show yet (0.9 shipped), on top of the hold.

With `--scenario worker`, the same question for the background worker, whose backlog is its
buffer: a policy that knows each second's in-rate exactly and at once asks, in that second, for
the workers that drain it plus the backlog over `--drain` seconds (30, as shipped), and lets a
worker go the second it is not needed; its workers start in the bench's 20 s. It prints that
policy's replica-seconds, over the oracle's, and its violation-seconds: where they are over the
0.5 % budget, the traffic's rises outrun the start-up, and only a higher floor (`--min`) helps.

The traces are scaled as `bench` scales them (`--peak-replicas`, the workload's capacity, `min`
and `max` from `--config`):

    python scripts/reactive_bound.py [--trace CSV ...] [--hold 0 30 300] [--utilization 0.9]
    python scripts/reactive_bound.py --scenario worker [--trace CSV ...] [--min 3]
"""

from __future__ import annotations

import argparse
import math
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from autoscaler.bench.contenders import oracle_replica_seconds
from autoscaler.bench.runner import trace_for
from autoscaler.bench.scenario import ScenarioError, Setup, build_setup
from autoscaler.config import ConfigError, load_config
from autoscaler.sim.model import ClusterModel
from autoscaler.sim.traces import TraceError, default_trace_paths

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "policies" / "tracardi.yaml"


def held_replica_seconds(needs: Sequence[int], hold: int) -> int:
    """The sum over t of the largest need in [t - hold, t]: each second sized for its need, and
    a count lowered only after `hold` seconds in which it was not needed."""
    total = 0
    window: deque[int] = deque()  # indexes of needs, their needs falling from the front
    for t, need in enumerate(needs):
        while window and needs[window[-1]] <= need:
            window.pop()
        window.append(t)
        if window[0] < t - hold:
            window.popleft()
        total += needs[window[0]]
    return total


def at_once(setup: Setup, model: ClusterModel, *, floor: int, drain: float) -> None:
    """Replay the worker policy that sizes each second, in that second, for its in-rate and the
    backlog over `drain` seconds, with at least `floor` workers and no hold."""
    w = setup.spec.settings
    for t in range(model.trace.duration):
        model.advance(float(t))
        need = math.ceil(round((model.demand(t) + model.queue / drain) / setup.capacity, 6))
        replicas = min(w.max, max(floor, need))
        if replicas != model.deployment.replicas:
            model.scale(replicas, at=float(t))
    model.finish()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="the policies whose API workload sets capacity, min and max")
    parser.add_argument("--trace", action="append", default=[],
                        help="a t_seconds,requests CSV (repeatable; default: the shipped traces)")
    parser.add_argument("--peak-replicas", type=int, default=20,
                        help="pods the trace's peak needs, as for bench (default 20)")
    parser.add_argument("--hold", type=int, nargs="+", default=[0, 30, 60, 120, 300],
                        help="API: holds to show, in seconds (default 0 30 60 120 300)")
    parser.add_argument("--utilization", type=float, default=1.0,
                        help="API: size each second's need at this share of a pod's capacity "
                             "(default 1)")
    parser.add_argument("--scenario", choices=("api", "worker"), default="api")
    parser.add_argument("--min", type=int, default=None,
                        help="worker: the fewest workers (default: the workload's min)")
    parser.add_argument("--drain", type=float, default=30.0,
                        help="worker: clear the backlog within this long (default 30 s)")
    args = parser.parse_args(argv)
    if args.peak_replicas < 1 or any(h < 0 for h in args.hold) or args.drain <= 0 or (
            args.min is not None and args.min < 1) or not 0 < args.utilization <= 1:
        parser.error("--peak-replicas and --min must be 1 or more, every --hold 0 or more, "
                     "--drain above 0 and --utilization above 0 and at most 1")
    try:
        return report(args)
    except (ConfigError, ScenarioError, TraceError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")


def report(args: argparse.Namespace) -> int:
    """The table `main`'s arguments ask for, on standard output."""
    paths = args.trace or [str(p) for p in default_trace_paths()]
    loaded = load_config(args.config)
    traces = [trace_for(path) for path in paths]  # every one read before the table begins
    if args.scenario == "worker":
        print("trace".ljust(32), "min".rjust(4), "oracle".rjust(10), "replica_s".rjust(10),
              "/oracle".rjust(8), "viol_s".rjust(7), "of time".rjust(8))
        for trace in traces:
            setup = build_setup(loaded, trace, "worker", peak_replicas=args.peak_replicas)
            floor = setup.spec.settings.min if args.min is None else args.min
            model = setup.model(seed=1)
            oracle = oracle_replica_seconds(setup, model)  # from the trace: before the replay
            at_once(setup, model, floor=floor, drain=args.drain)
            s = model.scores
            print(trace.name[:32].ljust(32), f"{floor:4d}", f"{oracle:10.0f}",
                  f"{s.replica_seconds:10.0f}", f"{s.replica_seconds / oracle:7.3f}x",
                  f"{s.slo_violation_seconds:7d}",
                  f"{100 * s.slo_violation_seconds / trace.duration:7.2f}%")
        return 0
    print("trace".ljust(32), "oracle".rjust(10), *(f"hold {h}s".rjust(10) for h in args.hold))
    for trace in traces:
        setup = build_setup(loaded, trace, "api", peak_replicas=args.peak_replicas)
        model = setup.model(seed=1)
        w = setup.spec.settings
        per_pod = setup.capacity * args.utilization
        needs = [min(w.max, max(w.min, math.ceil(round(rate / per_pod, 9))))
                 for rate in setup.trace.rates]
        oracle = oracle_replica_seconds(setup, model)
        print(trace.name[:32].ljust(32), f"{oracle:10.0f}",
              *(f"{held_replica_seconds(needs, h) / oracle:9.3f}x" for h in args.hold))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
