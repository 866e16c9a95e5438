"""Token buckets keyed by an opaque string (rate limits of the API, login throttling), and the bucket of a client
address (pure, in memory)."""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable

# Buckets kept at most: past it the least recently used goes (it could only have refilled meanwhile).
MAX_BUCKETS = 10_000


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
