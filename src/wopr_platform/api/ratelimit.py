"""Rate limits: a token bucket per bearer token, and one per client address for callers without a valid token."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math

from starlette.types import ASGIApp, Receive, Scope, Send

from wopr_platform.api.errors import send_error
from wopr_platform.core.buckets import TokenBuckets, address_key

log = logging.getLogger(__name__)

# Probes must never be throttled (an orchestrator restarting a "dead" platform would be worse than the load).
EXEMPT_PREFIX = "/health"
# The web console's own calls to the API, made in this process for a page that was itself counted (the console
# sets this scope key; a client cannot: it sends headers, not scope entries): a page costs one request, not three.
CONSOLE_CALL = "wopr.console_call"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class RateLimit:
    """ASGI middleware: 429 with `Retry-After` once a caller has spent its requests of the window.

    A request with the configured bearer token counts against that token's bucket (keyed by a hash of the token,
    never the token itself); any other request (no token, a wrong one) counts against its client address, so
    guessing tokens is throttled too. `/health` and what lies under it are never limited, nor the console's calls
    for a page it serves (the page was counted).
    """

    def __init__(self, app: ASGIApp, *, limit: int, window: float, token: str | None) -> None:
        self._app = app
        self._buckets = TokenBuckets(limit, window) if limit > 0 else None
        self._token = _digest(token) if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._buckets is None
            or scope["type"] != "http"
            or str(scope["path"]).startswith(EXEMPT_PREFIX)
            or scope.get(CONSOLE_CALL)
        ):
            await self._app(scope, receive, send)
            return
        key = self._key(scope)
        wait = self._buckets.take(key)
        if wait > 0:
            log.info("request rate-limited", extra={"bucket": key.partition(":")[0], "path": scope["path"]})
            await self._refuse(send, max(1, math.ceil(wait)))
            return
        await self._app(scope, receive, send)

    def _key(self, scope: Scope) -> str:
        """`token:<hash prefix>` for the configured token, `addr:<address>` for every other caller."""
        if self._token is not None:
            for name, value in scope.get("headers", ()):
                if name.lower() == b"authorization":
                    scheme, _, token = value.decode("latin-1").partition(" ")
                    if scheme.lower() == "bearer" and token:
                        presented = _digest(token.strip())
                        if hmac.compare_digest(presented, self._token):
                            return "token:" + presented.hex()[:32]
                    break
        client = scope.get("client")
        return "addr:" + address_key(client[0] if client else None)

    @staticmethod
    async def _refuse(send: Send, retry_after: int) -> None:
        await send_error(
            send,
            429,
            f"too many requests; retry in {retry_after} s",
            {"code": "rate_limited", "retryAfter": retry_after},
            [(b"retry-after", str(retry_after).encode())],
        )
