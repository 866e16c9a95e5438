"""Sets of IP networks named in settings (e.g. the trusted proxies), whether an address is in one, and the pool
tenant networks' subnets are cut from."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(value: str) -> Address | None:
    """`value` as an IP address (an IPv4-mapped IPv6 address as its IPv4 one), or None when it is not one."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class Networks:
    """An immutable set of networks; empty by default, so it contains nothing."""

    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, values: Iterable[str]) -> Networks:
        """Addresses (`10.0.0.5`) and networks (`10.0.0.0/8`, `fd00::/8`); ValueError naming a bad entry."""
        parsed: list[Network] = []
        for value in values:
            try:
                parsed.append(ipaddress.ip_network(value.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address or network") from None
        return cls(tuple(parsed))

    def __bool__(self) -> bool:
        return bool(self.networks)

    def contains(self, host: str | None) -> bool:
        """Whether `host` (an address as text) lies in one of the networks."""
        if not self.networks or not host:
            return False
        address = parse_address(host)
        return address is not None and any(address in network for network in self.networks)


# the private ranges of RFC 1918: tenant subnets come from these only
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(text) for text in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


@dataclass(frozen=True, slots=True)
class SubnetPool:
    """Private IPv4 ranges cut into subnets of one prefix length, numbered from 0 across the ranges in order; each
    tenant network gets one of them (`FLEET_TENANT_SUBNETS`, `FLEET_TENANT_SUBNET_PREFIX`)."""

    ranges: tuple[ipaddress.IPv4Network, ...]
    prefix: int

    @classmethod
    def parse(cls, values: Iterable[str], prefix: int) -> SubnetPool:
        """Ranges as text (`10.200.0.0/14`); ValueError naming a range that is not private, overlaps another or is
        smaller than one subnet."""
        ranges: list[ipaddress.IPv4Network] = []
        for value in values:
            text = value.strip()
            try:
                network = ipaddress.ip_network(text)
            except ValueError:
                raise ValueError(f"{text!r} is not an IP network (e.g. 10.200.0.0/14, no host bits set)") from None
            if not isinstance(network, ipaddress.IPv4Network):
                raise ValueError(f"{text!r}: tenant subnets are IPv4")
            if not any(network.subnet_of(private) for private in PRIVATE_RANGES):
                raise ValueError(f"{text!r} is not within a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)")
            if network.prefixlen > prefix:
                raise ValueError(f"{text!r} is smaller than one /{prefix} tenant subnet")
            clash = next((other for other in ranges if other.overlaps(network)), None)
            if clash is not None:
                raise ValueError(f"{text!r} overlaps {str(clash)!r}")
            ranges.append(network)
        if not ranges:
            raise ValueError("at least one range")
        return cls(tuple(ranges), prefix)

    @property
    def size(self) -> int:
        """How many subnets (tenant networks) the pool holds."""
        return sum(self._count(network) for network in self.ranges)

    def subnet(self, index: int) -> ipaddress.IPv4Network:
        """The pool's `index`th subnet (0-based, across the ranges in order)."""
        if index < 0:
            raise IndexError(index)
        for network in self.ranges:
            count = self._count(network)
            if index < count:
                first = int(network.network_address) + (index << (32 - self.prefix))
                return ipaddress.IPv4Network((first, self.prefix))
            index -= count
        raise IndexError(index)

    def free(self, used: Iterable[Network]) -> Iterator[ipaddress.IPv4Network]:
        """The pool's subnets that overlap none of `used` (the engine's networks), lowest first.

        Each used network blocks an interval of indices, so the cost is in the number of used networks (sorting
        them), never in the size of the pool: the first free subnet of a pool of 8192 with 8000 taken comes after
        8000 intervals, not 8192 tries."""
        blocked: list[tuple[int, int]] = []
        for network in used:
            if isinstance(network, ipaddress.IPv4Network):
                blocked += self._blocked(network)
        blocked.sort()
        index = 0
        for first, last in blocked:
            while index < first:
                yield self.subnet(index)
                index += 1
            index = max(index, last + 1)
        size = self.size
        while index < size:
            yield self.subnet(index)
            index += 1

    def _count(self, network: ipaddress.IPv4Network) -> int:
        return 1 << (self.prefix - network.prefixlen)

    def _blocked(self, used: ipaddress.IPv4Network) -> Iterator[tuple[int, int]]:
        """The indices (first, last) of the subnets `used` overlaps, one interval per range it touches."""
        offset = 0
        shift = 32 - self.prefix
        for network in self.ranges:
            if network.overlaps(used):
                start = int(network.network_address)
                low = max(int(used.network_address), start) - start
                high = min(int(used.broadcast_address), int(network.broadcast_address)) - start
                yield offset + (low >> shift), offset + (high >> shift)
            offset += self._count(network)


def gateway(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The address a tenant network's bridge takes on the host: the subnet's first."""
    return subnet.network_address + 1
