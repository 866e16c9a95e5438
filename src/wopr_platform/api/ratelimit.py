"""Rate limits: a token bucket per bearer token, and one per client address for callers without a valid token."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from wopr_platform.api.errors import send_error

log = logging.getLogger(__name__)

# Buckets kept at most: past it the least recently used goes (it could only have refilled meanwhile).
MAX_BUCKETS = 10_000
# Probes must never be throttled (an orchestrator restarting a "dead" platform would be worse than the load).
EXEMPT_PREFIX = "/health"


class TokenBuckets:
    """Token buckets keyed by an opaque string: `capacity` tokens, refilled evenly over `window` seconds.

    Every `take` is O(1) (amortised): the buckets sit in least-recently-used order, and a bucket that has been idle
    long enough to be full again is no different from a missing one, so it is dropped from the front.
    """

    def __init__(
        self,
        capacity: int,
        window: float,
        *,
        max_buckets: int = MAX_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or window <= 0:
            raise ValueError("a bucket holds at least one token and refills over a positive window")
        self._capacity = float(capacity)
        self._rate = capacity / window
        self._idle = window  # an untouched bucket is full again after one window
        self._max = max_buckets
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when counted)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Spend one token of `key`'s bucket: 0.0 when there was one, else the seconds until there will be."""
        now = self._clock()
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if now - oldest[1] < self._idle:
                break
            buckets.popitem(last=False)
        found = buckets.get(key)
        if found is None:
            if len(buckets) >= self._max:
                buckets.popitem(last=False)
            tokens = self._capacity
        else:
            tokens = min(self._capacity, found[0] + (now - found[1]) * self._rate)
            buckets.move_to_end(key)
        if tokens >= 1.0:
            buckets[key] = (tokens - 1.0, now)
            return 0.0
        buckets[key] = (tokens, now)
        return (1.0 - tokens) / self._rate


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def address_key(host: str | None) -> str:
    """The bucket of a client address: IPv4 as is, IPv6 by its /64 (one host usually holds a whole /64)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimit:
    """ASGI middleware: 429 with `Retry-After` once a caller has spent its requests of the window.

    A request with the configured bearer token counts against that token's bucket (keyed by a hash of the token,
    never the token itself); any other request (no token, a wrong one) counts against its client address, so
    guessing tokens is throttled too. `/health` and what lies under it are never limited.
    """

    def __init__(self, app: ASGIApp, *, limit: int, window: float, token: str | None) -> None:
        self._app = app
        self._buckets = TokenBuckets(limit, window) if limit > 0 else None
        self._token = _digest(token) if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._buckets is None or scope["type"] != "http" or str(scope["path"]).startswith(EXEMPT_PREFIX):
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
