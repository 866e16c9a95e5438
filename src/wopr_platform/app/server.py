"""The HTTP server: uvicorn, told to end long-lived streams before it waits for connections to close."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn


class PlatformServer(uvicorn.Server):
    """uvicorn waits for open connections before the app's shutdown runs; event streams would hold it up,
    so `before_shutdown` (closing the event bus) runs first. Answers carry no `Server` header (it names the
    server software, which tells an attacker which advisories to try)."""

    def __init__(self, config: uvicorn.Config, before_shutdown: Callable[[], None]) -> None:
        config.server_header = False
        super().__init__(config)
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._before_shutdown()
        await super().shutdown(sockets)
