"""What an API policy that cannot see the future can reach, against the bench's oracle.

The bench's `oracle` for the API is clairvoyant: it starts pods a start-up time before each rise.
A policy that reads the traffic can at best size each second for that second's need. When the
need falls and comes back within a start-up time, the pods it let go are not back in time, so a
policy that keeps its SLO holds a count for a while before it lowers it (the HPA's scale-down
stabilization, 300 s by default and in the shipped policies). This prints, per trace, the
replica-seconds of a policy better than any real one: it knows each second's need exactly and at
once, its pods start at once, and it lowers a count only once that count has not been needed for
`hold` seconds. Each column is that over the oracle's replica-seconds: the least ours/oracle a
policy with that hold can have without a violation (a policy may also drop pods early and pay in
violations, up to the 0.5 % budget).

The traces are scaled as `bench` scales them (`--peak-replicas`, the API workload's capacity,
`min` and `max` from `--config`):

    python scripts/reactive_bound.py [--trace CSV ...] [--hold 0 30 300]
"""

from __future__ import annotations

import argparse
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from autoscaler.bench.contenders import oracle_replica_seconds
from autoscaler.bench.runner import trace_for
from autoscaler.bench.scenario import build_setup
from autoscaler.config import load_config
from autoscaler.sim.traces import default_trace_paths

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="the policies whose API workload sets capacity, min and max")
    parser.add_argument("--trace", action="append", default=[],
                        help="a t_seconds,requests CSV (repeatable; default: the shipped traces)")
    parser.add_argument("--peak-replicas", type=int, default=20,
                        help="pods the trace's peak needs, as for bench (default 20)")
    parser.add_argument("--hold", type=int, nargs="+", default=[0, 30, 60, 120, 300],
                        help="holds to show, in seconds (default 0 30 60 120 300)")
    args = parser.parse_args(argv)
    if args.peak_replicas < 1 or any(h < 0 for h in args.hold):
        parser.error("--peak-replicas must be 1 or more and every --hold 0 or more")
    paths = args.trace or [str(p) for p in default_trace_paths()]
    loaded = load_config(args.config)
    print("trace".ljust(32), "oracle".rjust(10), *(f"hold {h}s".rjust(10) for h in args.hold))
    for path in paths:
        trace = trace_for(path)
        setup = build_setup(loaded, trace, "api", peak_replicas=args.peak_replicas)
        model = setup.model(seed=1)
        w = setup.spec.settings
        needs = [min(w.max, max(w.min, model.need(t))) for t in range(trace.duration)]
        oracle = oracle_replica_seconds(setup, model)
        print(trace.name[:32].ljust(32), f"{oracle:10.0f}",
              *(f"{held_replica_seconds(needs, h) / oracle:9.3f}x" for h in args.hold))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
