"""Where tenants reach their bots: checks of the proxy's addresses (listen, base domain, Caddy's admin URL) and the
public URLs they give each bot (pure functions)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from wopr_platform.core.subdomains import LABEL_RE

PATH_PREFIX = "/instance/"  # a bot is also reached at <domain>/instance/<bot id>/
MAX_DOMAIN = 189  # so that `<63-character subdomain>.<domain>` stays within DNS's 253


def split_hostport(value: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` as (host, port); ValueError when it is none of them."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port with a port from 1 to 65535")
    if host.startswith("[") and host.endswith("]"):
        ipaddress.IPv6Address(host[1:-1])
    elif host and not _is_hostname(host):
        ipaddress.IPv4Address(host)
    return host, int(port)


def _is_hostname(host: str) -> bool:
    labels = host.lower().split(".")
    return all(LABEL_RE.match(label) for label in labels) and not labels[-1].isdigit()


def check_listen(values: list[str]) -> list[str]:
    """Listen addresses of the proxy server block (at least one)."""
    if not values:
        raise ValueError("at least one listen address, e.g. :443")
    for value in values:
        try:
            split_hostport(value)
        except ValueError as err:
            raise ValueError(f"{value!r} is not an address to listen on (host:port or :port)") from err
    return values


def check_domain(value: str) -> str:
    """The base domain tenants' hosts live under: lowercase DNS labels, no trailing dot."""
    domain = value.strip().lower().rstrip(".")
    if not domain or len(domain) > MAX_DOMAIN or not _is_hostname(domain):
        raise ValueError(f"must be a DNS name of at most {MAX_DOMAIN} characters, e.g. wopr.network")
    return domain


def check_admin_url(value: str) -> str:
    """Caddy's admin API: an http(s) URL with a host."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:2019")
    return value.strip().rstrip("/")


def check_dns_listen(value: str) -> str:
    """Where the route DNS responder binds: an IPv4 address and a port."""
    host, _ = split_hostport(value)
    ipaddress.IPv4Address(host)
    return value.strip()


def check_status_ip(value: str) -> str:
    """The first of the three loopback addresses Caddy's status server listens on."""
    address = ipaddress.IPv4Address(value.strip())
    if not address.is_loopback or int(address) & 0xFF > 253:
        raise ValueError("must be a 127.x.y.z address with z at most 253 (three addresses from it are used)")
    return str(address)


@dataclass(frozen=True, slots=True)
class PublicAddress:
    """How tenants reach the proxy: scheme, base domain and the port of its first listen address."""

    scheme: Literal["http", "https"]
    domain: str
    port: int

    @classmethod
    def of(cls, *, domain: str, listen: list[str], tls: bool) -> PublicAddress:
        scheme: Literal["http", "https"] = "https" if tls else "http"
        port = int(listen[0].rsplit(":", 1)[1]) if listen else (443 if tls else 80)
        return cls(scheme, domain, port)

    def _origin(self, host: str) -> str:
        default = 443 if self.scheme == "https" else 80
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")

    def host(self, subdomain: str) -> str:
        return f"{subdomain}.{self.domain}"

    def urls(self, subdomain: str, bot_id: str) -> dict[str, str]:
        """The bot's public URLs: by host and by path."""
        return {
            "host": self._origin(self.host(subdomain)) + "/",
            "path": self._origin(self.domain) + f"{PATH_PREFIX}{bot_id}/",
        }


@dataclass(frozen=True, order=True, slots=True)
class HostPort:
    """A port on the host's own addresses that bots may reach (`BOT_HOST_PORTS`): a number and its protocol."""

    number: int
    protocol: Literal["tcp", "udp"] = "tcp"

    @classmethod
    def parse(cls, text: str) -> HostPort:
        """`8080`, `8080/tcp` or `53/udp`; ValueError otherwise."""
        number, _, protocol = text.strip().lower().partition("/")
        protocol = protocol or "tcp"
        if not number.isdigit() or not 1 <= int(number) <= 65535 or protocol not in ("tcp", "udp"):
            raise ValueError(f"{text.strip()!r} is not a port (1 to 65535) with an optional /tcp or /udp")
        return cls(int(number), "udp" if protocol == "udp" else "tcp")

    def __str__(self) -> str:
        return f"{self.number}/{self.protocol}"
