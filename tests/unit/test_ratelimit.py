"""Token buckets: refill, bounded memory, O(1) eviction; bucket keys never hold a token."""

from __future__ import annotations

import pytest

from wopr_platform.api.ratelimit import RateLimit
from wopr_platform.core.buckets import TokenBuckets, address_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_capacity_then_says_how_long_to_wait() -> None:
    clock = Clock()
    buckets = TokenBuckets(3, 60, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(20.0)  # 3 per 60 s: one token every 20 s
    clock.now += 10
    assert buckets.take("a") == pytest.approx(10.0)
    clock.now += 10
    assert buckets.take("a") == 0.0
    assert buckets.take("b") == 0.0  # another key has its own bucket


def test_a_bucket_refills_to_capacity_and_no_further() -> None:
    clock = Clock()
    buckets = TokenBuckets(2, 1, clock=clock)
    assert buckets.take("a") == 0.0 and buckets.take("a") == 0.0
    clock.now += 3600
    assert [buckets.take("a") for _ in range(3)][:2] == [0.0, 0.0]
    assert buckets.take("a") > 0


def test_idle_buckets_are_dropped_and_memory_is_bounded() -> None:
    clock = Clock()
    buckets = TokenBuckets(5, 10, max_buckets=100, clock=clock)
    for i in range(1000):
        buckets.take(f"k{i}")
    assert len(buckets) == 100
    clock.now += 11  # every bucket is full again: each is dropped at the next take
    buckets.take("fresh")
    assert len(buckets) == 1


def test_an_exhausted_key_is_not_reset_by_other_keys_within_the_bound() -> None:
    clock = Clock()
    buckets = TokenBuckets(1, 60, max_buckets=10, clock=clock)
    buckets.take("victim")
    for i in range(5):
        buckets.take(f"other{i}")
    assert buckets.take("victim") > 0


def test_addresses_key_ipv6_by_its_64() -> None:
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key(None) == "unknown"
    assert address_key("not-an-ip") == "not-an-ip"


def test_the_token_bucket_key_holds_a_hash_never_the_token() -> None:
    token = "s3cret-token-value"

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError

    limiter = RateLimit(app, limit=10, window=60, token=token)
    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())], "client": ("10.0.0.1", 1)}
    key = limiter._key(scope)
    assert key.startswith("token:") and token not in key
    wrong = {**scope, "headers": [(b"authorization", b"Bearer guess")]}
    assert limiter._key(wrong) == "addr:10.0.0.1"
    assert limiter._key({**scope, "headers": []}) == "addr:10.0.0.1"
