"""Loopback ports for the servers the tests start.

A port asked of the kernel (bind to port 0) comes from the ephemeral range, the range every outgoing connection
also takes its local port from. Between choosing such a port and the server binding it, a connection of the
same run (to the database, the engine, a registry) can take it, and the server then fails to start. So the
ports here come from below the ephemeral range, each parallel worker from a block of its own, in turn (a port
given out is not given out again soon), and only ones that nothing holds right now.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from pathlib import Path

_LOWEST = 10000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _block() -> range:
    """This worker's share of the ports below the ephemeral range."""
    top = _ephemeral_start()
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    worker = int((os.environ.get("PYTEST_XDIST_WORKER") or "gw0").removeprefix("gw") or 0) % workers
    size = (top - _LOWEST) // workers
    return range(_LOWEST + worker * size, _LOWEST + (worker + 1) * size)


_BLOCK = _block()
_NEXT = itertools.count(random.randrange(len(_BLOCK)) if len(_BLOCK) else 0)


def _free_now(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port no socket holds now, that no other worker of this run will be given."""
    if len(_BLOCK) < 100:  # an unusual ephemeral range leaves no room below it: the kernel chooses
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(len(_BLOCK)):
        port = _BLOCK[next(_NEXT) % len(_BLOCK)]
        if _free_now(port):
            return port
    raise RuntimeError(f"no free loopback port in {_BLOCK}")


def listening_socket() -> socket.socket:
    """A loopback socket bound to a free port, for a server started in this process: nothing can take the port
    between choosing it and serving on it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock
