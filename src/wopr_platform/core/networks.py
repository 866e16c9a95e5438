"""Sets of IP networks named in settings (e.g. the trusted proxies), and whether an address is in one."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
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
