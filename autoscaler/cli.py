"""The `tracardi-autoscaler` command: run | check | explain | simulate | bench | demo.

Each subcommand parses its arguments here and hands over to the module that does the work; this
file holds no logic of its own beyond printing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from autoscaler import __version__
from autoscaler.config import ConfigError, LoadedConfig, load_config

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

    for register in _COMMANDS:
        register(sub)
    return parser


_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
