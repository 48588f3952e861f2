"""The ports tests and the scale bench give their servers: free now and never an ephemeral port,
so no outgoing connection made before the server binds can take it."""

from __future__ import annotations

import itertools
import random
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from autoscaler import localport
from autoscaler.localport import free_port


def test_a_port_is_below_the_ephemeral_range_binds_and_is_not_handed_out_twice() -> None:
    start = localport._ephemeral_start()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(localport.LOWEST <= port < start for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        rng = random.Random(7)
        others = iter(lambda: rng.randrange(20000, 30000), None)
        picks = itertools.chain([taken, taken], others)
        monkeypatch.setattr(localport, "_ephemeral_start", lambda: 60000)
        monkeypatch.setattr(localport, "_rng", SimpleNamespace(
            randrange=lambda low, high: next(picks)))
        assert free_port() != taken


def test_without_room_below_the_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    ranges = tmp_path / "ip_local_port_range"
    ranges.write_text("1024\t65535\n")
    monkeypatch.setattr(localport, "EPHEMERAL_RANGE", ranges)
    assert localport._ephemeral_start() == 1024
    port = free_port()
    assert port >= 1024
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
