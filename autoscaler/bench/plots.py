"""Plots of one run: demand, ready capacity, replicas, backlog and outages on one time axis."""

from __future__ import annotations

from pathlib import Path

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
