"""Who the client is: the connection's peer, or, only behind a proxy the operator trusts, what that proxy says.

Forwarded headers are believed from the addresses in TRUSTED_PROXIES (none by default) and from nobody else, so a
caller cannot write its own address into the audit log or get a fresh rate-limit bucket per forged address. Behind
trusted proxies the client is the last address of `X-Forwarded-For` (read from the right) that is not itself a
trusted proxy: the entries left of it were written by the client and prove nothing.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from wopr_platform.core.networks import Networks, parse_address

FORWARDED_FOR = b"x-forwarded-for"
FORWARDED_PROTO = b"x-forwarded-proto"


def forwarded_client(chain: list[str], trusted: Networks) -> str | None:
    """The client address of an `X-Forwarded-For` chain that reached us through trusted proxies."""
    found: str | None = None
    for entry in reversed(chain):
        address = parse_address(entry)
        if address is None:
            break  # a proxy writes addresses only: anything else came from the client
        found = str(address)
        if not trusted.contains(found):
            break
    return found


class ClientAddress:
    """ASGI middleware: puts the real client address in `scope["client"]` (and the scheme in `scope["scheme"]`)."""

    def __init__(self, app: ASGIApp, *, trusted: Networks) -> None:
        self._app = app
        self._trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._trusted:
            peer = scope.get("client")
            if peer and self._trusted.contains(peer[0]):
                chain: list[str] = []
                proto: str | None = None
                for name, value in scope.get("headers", ()):
                    if name == FORWARDED_FOR:
                        chain.extend(part.strip() for part in value.decode("latin-1").split(","))
                    elif name == FORWARDED_PROTO:
                        proto = value.decode("latin-1").strip().lower()
                client = forwarded_client(chain, self._trusted)
                if client is not None:
                    scope = {**scope, "client": (client, 0)}
                if proto in ("http", "https"):
                    scope = {**scope, "scheme": proto}
        await self._app(scope, receive, send)
