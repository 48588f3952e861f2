"""A free TCP port on 127.0.0.1, for a server that is started after the port is chosen.

Choosing a port and binding it later is a race. Port 0 takes its answer from the kernel's
ephemeral range, which is also where the kernel picks the local port of every outgoing
connection, so any connection made in between (the very daemon that is about to bind it,
connecting to its dependencies) can take it: a CI run lost a daemon to EADDRINUSE that way.
`free_port` picks below that range, where only an explicit bind lands, checks that the port
binds, and never hands out the same port twice in one process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10000
ATTEMPTS = 200

_handed_out: set[int] = set()
#: Its own generator: a test that seeds the global one (Hypothesis does) must not make two
#: processes draw the same ports.
_rng = random.SystemRandom()


def _ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (Linux default 32768)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _binds(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port that binds on 127.0.0.1 now and that no outgoing connection will be given."""
    top = _ephemeral_start()
    if top > LOWEST + ATTEMPTS:
        for _ in range(ATTEMPTS):
            port = _rng.randrange(LOWEST, top)
            if port not in _handed_out and _binds(port):
                _handed_out.add(port)
                return port
    with socket.socket() as sock:  # no room below the range: the kernel's choice, as before
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    _handed_out.add(port)
    return port
