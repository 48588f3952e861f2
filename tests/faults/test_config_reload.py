"""Faults of the config file, hot-reloaded while the daemon runs.

The daemon reads its config from a directory laid out the way the kubelet mounts a ConfigMap
(`config.yaml -> ..data/config.yaml`, `..data -> ..<version>`); an update writes a new version
directory, swaps `..data` atomically and removes the old one. Each test starts on a good config,
settles the worker at 3 replicas, makes one bad change, checks that the last good config is kept
(and still acts: the worker scales to 5 under its old max of 8) and that the failure is reported,
then makes a good change (max 4) and checks that it is picked up.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import API, WORKER, RunningDaemon, World, eventually, holds, logged

from autoscaler import runtime

pytestmark = pytest.mark.real


@pytest.fixture(autouse=True)
def fast_watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The config watcher looks every 0.2 s instead of every 2 s."""
    monkeypatch.setattr(runtime, "CONFIG_POLL_SECONDS", 0.2)
    yield


class Mount:
    """A ConfigMap volume with one key, `config.yaml`, updated as the kubelet does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir()
        self.version = 0

    @property
    def path(self) -> Path:
        return self.root / "config.yaml"

    def update(self, content: str | bytes | None) -> None:
        """A new version of the ConfigMap; `None` removes the key (the file disappears)."""
        self.version += 1
        new = self.root / f"..v{self.version}"
        new.mkdir()
        if isinstance(content, str):
            (new / "config.yaml").write_text(content)
        elif isinstance(content, bytes):
            (new / "config.yaml").write_bytes(content)
        data = self.root / "..data"
        old = self.root / os.readlink(data) if data.is_symlink() else None
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(new.name)
        os.replace(tmp, data)  # atomic, like the kubelet's rename of ..data
        if content is None:
            self.path.unlink(missing_ok=True)
        elif not self.path.is_symlink():
            self.path.symlink_to("..data/config.yaml")
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def remove_target(self) -> None:
        """The directory `..data` points at vanishes: the link dangles."""
        shutil.rmtree(self.root / os.readlink(self.root / "..data"))


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


async def started(w: World, tmp_path: Path) -> tuple[RunningDaemon, Mount]:
    """The daemon on a good mounted config, the worker settled at 3."""
    mount = Mount(tmp_path / "configmap")
    mount.update(w.config_text())
    d = await w.start(config=mount.path)
    w.backlog(300)
    await eventually(lambda: w.replicas() == 3, what="scaled to 3")
    assert d.metric("config_last_reload_success") == 1
    return d, mount


async def rejected(w: World, d: RunningDaemon, mount: Mount, change: Callable[[], None], *,
                   within: float = 15.0) -> dict[str, Any]:
    """`change` is refused, reported, and changes nothing: the daemon keeps its lease and
    still acts on the last good config. Returns the log line that reports it."""
    change()
    await eventually(lambda: d.metric("config_reloads", outcome="failed") == 1
                     or not d.alive() or logged(w, "task_failed"),
                     what="the reload counted as failed", within=within)
    assert d.alive() and not logged(w, "task_failed"), (
        f"the bad config killed a task: {logged(w, 'task_failed')}; daemon alive: {d.alive()}")
    assert d.metric("config_reloads", outcome="failed") == 1
    assert d.metric("config_reloads", outcome="ok") == 0
    assert d.metric("config_last_reload_success") == 0
    lines = logged(w, "config_reload_failed", path=str(mount.path))
    assert len(lines) == 1 and lines[0]["log_level"] == "error", lines
    # The last good config still rules: max 8 (a bad file may have meant another), and it acts.
    w.backlog(500)
    await eventually(lambda: w.replicas() == 5, what="scaled to 5 under the last good config")
    assert d.metric("max_replicas", workload=WORKER) == 8
    assert d.alive()
    lost = logged(w, "leadership_changed", leader=False)
    assert not lost, f"refusing the config stalled the daemon past its lease: {lost}"
    return lines[0]


async def recovers(w: World, d: RunningDaemon, mount: Mount) -> None:
    """A good change after the bad one is picked up: the new max of 4 holds the worker."""
    mount.update(w.config_text(worker_max=4))
    await eventually(lambda: d.metric("config_reloads", outcome="ok") == 1,
                     what="the good config reloaded")
    assert d.metric("config_last_reload_success") == 1
    assert logged(w, "config_reloaded", path=str(mount.path))
    w.backlog(600)
    # The reload replaced the probes: a miss here once meant the old generation never ended
    # (a Redis probe hung in its clean-up; see Daemon._run_generation and the Redis probe).
    await eventually(lambda: w.replicas() == 4, what="held at the new max of 4", within=45)
    assert d.metric("max_replicas", workload=WORKER) == 4
    holds(w)


BAD = {
    # Each also lowers the worker's max to 2: none of it may be applied.
    "wrong type": ('"one"', "min: \"one\"", "workloads.be-fa-public.min",
                   "valid integer"),
    "unknown field": ("1\n    maxx: 3", "maxx: 3", "workloads.be-fa-public.maxx",
                      "unknown key"),
}


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.fault("Config", "Invalid hot reload (wrong type, unknown field)")
async def test_invalid_reload_keeps_the_last_good_config(w: World, tmp_path: Path,
                                                         kind: str) -> None:
    """Refused as a whole with file:line: field in an error log, counted as a failed reload;
    the daemon keeps scaling on the last good config and takes the next good one."""
    d, mount = await started(w, tmp_path)
    api_min, needle, field, message = BAD[kind]
    text = w.config_text(worker_max=2, api_min=api_min)
    errors = (await rejected(w, d, mount, lambda: mount.update(text)))["errors"]
    assert any(e.startswith(f"{mount.path}:{line_of(text, needle)}: {field}: ")
               and message in e for e in errors), errors
    assert w.replicas(API) == 1
    await recovers(w, d, mount)


@pytest.mark.fault("Config", "Empty file")
async def test_empty_file_keeps_the_last_good_config(w: World, tmp_path: Path) -> None:
    """Refused as an empty file, reported in the log and metrics; the last good config keeps
    scaling, and the next good one is taken."""
    d, mount = await started(w, tmp_path)
    line = await rejected(w, d, mount, lambda: mount.update(""))
    assert any(e.startswith(f"{mount.path}:") and "empty file" in e
               for e in line["errors"]), line
    await recovers(w, d, mount)


HUGE = {
    # Over the size limit: refused before it is read as YAML.
    "20 MB of comments": (b"# padding padding padding padding padding padding padding\n"
                          * 355_000, "bytes is over the 1048576 limit"),
    # Under the size limit (a ConfigMap holds at most 1 MiB), but 262,000 YAML nodes.
    "1 MiB list": (b"workloads:\n" + b"- 0\n" * 262_000, "YAML nodes"),
}


@pytest.mark.parametrize("kind", list(HUGE))
@pytest.mark.fault("Config", "Huge file (20 MB; 1 MiB of list items)")
async def test_huge_file_is_refused(w: World, tmp_path: Path, kind: str) -> None:
    """Refused (over the 1 MiB size limit, or over the YAML node limit) and reported, without
    stalling the daemon; the last good config keeps scaling, and the next good one is taken."""
    d, mount = await started(w, tmp_path)
    content, message = HUGE[kind]
    line = await rejected(w, d, mount, lambda: mount.update(content), within=90)
    assert any(e.startswith(f"{mount.path}:") and message in e for e in line["errors"]), line
    await recovers(w, d, mount)


def laughs(levels: int = 9) -> str:
    """The billion laughs: each level an anchored list of nine aliases of the one below."""
    out = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    out += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(out) + "\n"


BOMBS = {
    "billion laughs": (laughs(), "YAML nodes"),
    # A kilobyte of brackets: no alias at all, but as deep as a parser can be pushed.
    "nesting": ("workloads: " + "[" * 600 + "]" * 600 + "\n", "nested"),
}


@pytest.mark.parametrize("kind", list(BOMBS))
@pytest.mark.fault("Config", "YAML bomb (billion laughs, deep nesting)")
async def test_yaml_bomb_is_refused(w: World, tmp_path: Path, kind: str) -> None:
    """Refused without expanding it, reported; the daemon stays up on the last good config
    and takes the next good one."""
    d, mount = await started(w, tmp_path)
    text, message = BOMBS[kind]
    line = await rejected(w, d, mount, lambda: mount.update(text))
    assert any(e.startswith(f"{mount.path}:") and message in e for e in line["errors"]), line
    await recovers(w, d, mount)


@pytest.mark.parametrize("how", ["key removed", "link target removed"])
@pytest.mark.fault("Config", "Config file deleted under the mount")
async def test_deleted_file_keeps_the_last_good_config(w: World, tmp_path: Path,
                                                       how: str) -> None:
    """The file gone (its key removed from the ConfigMap, or the link left dangling): reported
    as a failed reload, the last good config keeps scaling, and a good config is taken again."""
    d, mount = await started(w, tmp_path)
    line = await rejected(w, d, mount, (lambda: mount.update(None)) if how == "key removed"
                          else mount.remove_target)
    assert not mount.path.exists() and mount.path.is_symlink() == (how != "key removed")
    assert any("gone" in e for e in line["errors"]), line
    await recovers(w, d, mount)
