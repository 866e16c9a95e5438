"""The HTTP server: uvicorn behind the platform's own front door, told to end long-lived streams before it waits
for connections to close."""

from __future__ import annotations

import logging
import resource
import socket
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp

from wopr_platform.app.frontdoor import DoorLimits, protocol_for
from wopr_platform.core.settings import Settings

log = logging.getLogger(__name__)


FD_RESERVE = 256  # descriptors kept for everything but client connections (database, engine, Caddy, files)


def connection_budget(wanted: int) -> int:
    """How many client connections the process can hold: it raises its own open-file limit as far as it may, and a
    cap above what is left after FD_RESERVE is lowered (a refused connection is better than a failed accept)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    budget = max(1, soft - FD_RESERVE)
    log.warning(
        "HTTP_MAX_CONNECTIONS lowered to what the open-file limit allows",
        extra={"wanted": wanted, "allowed": budget, "open_file_limit": soft},
    )
    return budget


def door_limits(settings: Settings) -> DoorLimits:
    return DoorLimits(
        header_timeout=settings.http_header_timeout,
        body_timeout=settings.http_body_timeout,
        max_connections=connection_budget(settings.http_max_connections),
        max_connections_per_client=settings.http_max_connections_per_client,
        max_requests_per_connection=settings.http_max_requests_per_connection,
        trusted_proxies=settings.trusted_networks,
    )


def server_config(app: ASGIApp, settings: Settings) -> uvicorn.Config:
    """How production serves the app (and the tests that start a real server).

    Forwarded headers are not uvicorn's business: it would believe them from loopback. The API resolves the client
    address itself, from TRUSTED_PROXIES only (api/clients.py). The API has no WebSocket route, so upgrades are
    refused rather than handed to a protocol nothing uses.
    """
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_for(door_limits(settings)),
        ws="none",
        proxy_headers=False,
        timeout_keep_alive=settings.http_keepalive_timeout,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


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
