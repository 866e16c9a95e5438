"""The pool tenant networks' subnets are cut from (core/networks.py) and its settings."""

from __future__ import annotations

import ipaddress
import time
from itertools import islice

import pytest

from wopr_platform.core.networks import SubnetPool, gateway
from wopr_platform.core.settings import Settings


def net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def test_the_default_pool_holds_8192_tenant_networks_of_30_addresses() -> None:
    pool = Settings().tenant_subnet_pool
    assert pool.ranges == (net("10.200.0.0/14"),) and pool.prefix == 27
    assert pool.size == 8192
    first = next(pool.free([]))
    assert first == net("10.200.0.0/27") and first.num_addresses - 2 == 30
    assert gateway(first) == ipaddress.IPv4Address("10.200.0.1")
    assert pool.subnet(8191) == net("10.203.255.224/27")


def test_subnets_are_numbered_across_the_ranges_in_their_order() -> None:
    pool = SubnetPool.parse(["192.168.64.0/26", "10.9.0.0/27"], 27)
    assert pool.size == 3
    assert [pool.subnet(i) for i in range(3)] == [net("192.168.64.0/27"), net("192.168.64.32/27"), net("10.9.0.0/27")]
    with pytest.raises(IndexError):
        pool.subnet(3)


def test_the_lowest_free_subnet_overlapping_no_used_network_comes_first() -> None:
    pool = SubnetPool.parse(["10.200.0.0/24"], 27)  # 8 subnets
    used = [
        net("10.200.0.0/27"),  # index 0
        net("10.200.0.64/26"),  # a wider network: indices 2 and 3
        net("10.200.0.161/32"),  # inside index 5
        net("172.17.0.0/16"),  # outside the pool: no effect
        ipaddress.IPv6Network("fd00::/64"),  # IPv6: no effect
    ]
    assert list(pool.free(used)) == [
        net("10.200.0.32/27"),
        net("10.200.0.128/27"),
        net("10.200.0.192/27"),
        net("10.200.0.224/27"),
    ]


def test_a_network_wider_than_the_pool_or_straddling_two_ranges_blocks_what_it_covers() -> None:
    pool = SubnetPool.parse(["10.0.0.0/26", "10.0.0.64/26"], 27)  # adjacent ranges: 4 subnets
    assert list(pool.free([net("10.0.0.32/27"), net("10.0.0.64/27")])) == [net("10.0.0.0/27"), net("10.0.0.96/27")]
    assert list(pool.free([net("10.0.0.0/8")])) == []


def test_a_full_pool_has_nothing_free() -> None:
    pool = SubnetPool.parse(["10.1.0.0/27"], 27)
    assert list(pool.free([net("10.1.0.0/27")])) == []


def test_picking_costs_the_used_networks_not_the_pool() -> None:
    """8191 of the default pool's 8192 subnets taken (as the engine would list them, shuffled): the free one is
    found at once, and a pool of half a million subnets answers as fast."""
    pool = Settings().tenant_subnet_pool
    used = [pool.subnet(i) for i in range(8192) if i != 5000]
    used = used[1::2] + used[::2]
    started = time.perf_counter()
    assert list(pool.free(used)) == [pool.subnet(5000)]
    assert time.perf_counter() - started < 1.0  # generous: it takes milliseconds
    huge = SubnetPool.parse(["10.0.0.0/8"], 29)  # 2**21 subnets
    assert huge.size == 2**21
    assert list(islice(huge.free(used), 2)) == [net("10.0.0.0/29"), net("10.0.0.8/29")]


@pytest.mark.parametrize(
    ("ranges", "prefix", "reason"),
    [
        (["8.8.8.0/24"], 27, "not within a private range"),
        (["100.64.0.0/10"], 27, "not within a private range"),
        (["127.0.0.0/8"], 27, "not within a private range"),
        (["169.254.0.0/16"], 27, "not within a private range"),
        (["172.0.0.0/8"], 27, "not within a private range"),  # wider than 172.16.0.0/12
        (["fd00::/64"], 27, "IPv4"),
        (["10.0.0.1/24"], 27, "not an IP network"),
        (["nonsense"], 27, "not an IP network"),
        (["10.0.0.0/16", "10.0.128.0/17"], 27, "overlaps"),
        (["10.0.0.0/30"], 27, "smaller than one /27"),
        ([], 27, "at least one range"),
    ],
)
def test_a_bad_pool_is_refused_with_the_reason(ranges: list[str], prefix: int, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        SubnetPool.parse(ranges, prefix)


def test_settings_read_a_list_of_ranges_and_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_TENANT_SUBNETS", " 10.64.0.0/16 , 192.168.128.0/17,")
    monkeypatch.setenv("FLEET_TENANT_SUBNET_PREFIX", "24")
    settings = Settings()
    assert settings.tenant_subnets == ["10.64.0.0/16", "192.168.128.0/17"]
    assert settings.tenant_subnet_pool.size == 256 + 128
