"""Plots of one run (demand, ready capacity, replicas, backlog and outages on one time axis)
and of the scale benchmark (cost against the number of workloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoscaler.sim.model import ClusterModel


def plot_run(model: ClusterModel, out: Path, *, title: str) -> None:
    """Write a PNG so a person sees at a glance why the policy did what it did."""
    # matplotlib is the optional `plots` extra: import it only when a plot is asked for.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    tl = model.timeline
    if tl is None:
        raise ValueError("the model recorded no timeline (record_timeline=False)")
    out.parent.mkdir(parents=True, exist_ok=True)
    hours = [t / 3600 for t in tl.t]
    cap = model.deployment.capacity
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(11, 6))
    top.plot(hours, [d / cap for d in tl.demand], lw=0.6, color="0.6",
             label="demand (pods' worth)")
    top.plot(hours, tl.need, lw=0.8, color="tab:green", label="needed pods")
    top.step(hours, tl.replicas, lw=1.0, color="tab:blue", label="replicas requested")
    top.step(hours, tl.ready, lw=1.0, color="tab:orange", label="ready pods")
    top.set_ylabel("pods")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title)
    bottom.plot(hours, tl.backlog, lw=0.8, color="tab:red")
    bottom.set_ylabel("queued (requests or messages)")
    bottom.set_xlabel("hours")
    for outage in model.outages:
        for ax in (top, bottom):
            ax.axvspan(outage.start / 3600, outage.end / 3600, color="tab:red", alpha=0.15,
                       label=f"{outage.dependency} down")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_scale(records: list[dict[str, Any]], out: Path) -> None:
    """Cost against N (`bench --scale`), log-log, each panel with a linear reference line
    through its smallest N: a series that stays on or under it grows at most linearly."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ns = [r["workloads"] for r in records]
    panels: list[tuple[str, list[tuple[str, list[float | None]]]]] = [
        ("evaluation pass (ms)", [("p50", [r["eval_p50_ms"] for r in records]),
                                  ("p99", [r["eval_p99_ms"] for r in records])]),
        ("daemon CPU (millicores)", [("average", [None if r["cpu_cores"] is None
                                                  else 1000 * r["cpu_cores"]
                                                  for r in records])]),
        ("peak RSS (MB)", [("RSS", [r["rss_mb"] for r in records])]),
        ("requests per minute", [("sources", [r["source_requests_per_min"] for r in records]),
                                 ("Kubernetes", [sum(r["kube_requests_per_min"].values())
                                                 for r in records])]),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (title, series) in zip(axes.flat, panels, strict=True):
        for label, values in series:
            points = [(n, v) for n, v in zip(ns, values, strict=True) if v]
            if not points:
                continue
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
            n0, v0 = points[0]
            ax.plot([n0, ns[-1]], [v0, v0 * ns[-1] / n0], ls=":", color="0.6", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("workloads (N)")
        ax.legend(fontsize=8, title="dotted: linear", title_fontsize=7)
    fig.suptitle("tracardi-autoscaler cost against the number of workloads")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
