"""Replay with the simulated pods' CPU off by random noise: what it does to `learn_from_cpu`.

The simulated cluster reports each pod's CPU exactly (`autoscaler.sim.model.cpu_milli`), and
metrics-server does not. Here each CPU read of each pod is off by a seeded Gaussian whose
standard deviation is `--noise` times the pod's CPU request, and after the run's summary comes
what the request-rate policy learned: in how many evaluations it used a learned capacity, and
that capacity's 5th, 50th and 95th percentiles. Everything after `--` is `tracardi-autoscaler`'s
command line (`simulate`, as a rule):

    python scripts/cpu_noise.py --noise 0.05 -- simulate --scenario api \\
        --trace ../shared/traces/worldcup98_flash_crowd.csv
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections.abc import Sequence

from autoscaler.cli import main as cli_main
from autoscaler.policies.base import PolicyContext
from autoscaler.policies.request_rate import RequestRatePolicy
from autoscaler.sim import adapters
from autoscaler.sim.model import cpu_milli


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", type=float, required=True,
                        help="the noise's standard deviation, as a share of the CPU request")
    parser.add_argument("--seed", type=int, default=7, help="the noise's seed (default 7)")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- then tracardi-autoscaler's arguments")
    args = parser.parse_args(argv)
    command = [a for a in args.command if a != "--"] if args.command[:1] == ["--"] else (
        args.command)
    if args.noise < 0 or not command:
        parser.error("--noise must be 0 or more, and a command must follow --")
    rng = random.Random(args.seed)

    def noisy(request_milli: int, busy: float) -> int:
        return max(0, round(cpu_milli(request_milli, busy) + rng.gauss(0.0, args.noise
                                                                   * request_milli)))

    learned: list[float] = []
    evaluations = [0]
    capacity = RequestRatePolicy.capacity

    def recording(self: RequestRatePolicy, ctx: PolicyContext) -> tuple[float, bool]:
        value, was_learned = capacity(self, ctx)
        evaluations[0] += 1
        if was_learned:
            learned.append(value)
        return value, was_learned

    vars(adapters)["cpu_milli"] = noisy  # the simulated pods report CPU through it
    RequestRatePolicy.capacity = recording  # type: ignore[method-assign]
    code = cli_main(command)
    print(f"cpu noise {args.noise:g} of the request (seed {args.seed}): a learned capacity "
          f"in {len(learned)} of {evaluations[0]} evaluations", end="")
    if len(learned) >= 2:
        q = statistics.quantiles(learned, n=20)
        print(f"; p5 {q[0]:.1f}/s, p50 {q[9]:.1f}/s, p95 {q[18]:.1f}/s")
    else:
        print()
    return code


if __name__ == "__main__":
    sys.exit(main())
