"""The Caddy configuration the platform owns: two server blocks, built from the settings alone (a pure function).

Routes are not written into Caddy's config: every config change is a full reload in Caddy 2.6, and a reload closes
idle keep-alive connections and every proxied WebSocket (Caddy closes hijacked connections when the handler that
made them is cleaned up). Instead the proxy server asks the platform where each request goes: its
`reverse_proxy` takes its upstream from a DNS name derived from the request (`<subdomain>.h.<zone>` from the host,
`<bot id>.i.<zone>` from the path), which only the platform's own DNS responder answers, from its routing table.
So route changes, bot starts and stops and health flips never touch Caddy's config, and nothing is reloaded.

The answer is always an IPv4 address on port 7437: the bot's container, or one of four loopback "status"
addresses on which the second server block answers for bots that cannot be reached (404 unknown, 503 stopped,
503 unavailable, 402 for a tenant suspended for want of credits). When the platform's DNS cannot be asked at all,
Caddy falls back to the static upstream, the "unavailable" address. Errors while proxying (a container that just
went away) become a short plain 503.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

from wopr_platform.core.instance import INSTANCE_PORT

ZONE = "wopr.internal"
HOST_KIND = "h"
ID_KIND = "i"
UUID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# the request header by which the status server learns which status address the proxy picked
STATUS_HEADER = "X-Wopr-Upstream"
TEXT = {"Content-Type": ["text/plain; charset=utf-8"]}
BODY_UNKNOWN_HOST = "unknown host\n"
BODY_NO_SUCH_BOT = "no such bot\n"
BODY_STOPPED = "bot is stopped\n"
BODY_UNAVAILABLE = "bot is unavailable\n"
BODY_SUSPENDED = "payment required: this bot's owner has run out of credits, so its bots are suspended\n"
DNS_DIAL_TIMEOUT = "1s"
UPSTREAM_DIAL_TIMEOUT = "2s"


@dataclass(frozen=True, slots=True)
class StatusAddresses:
    """Four loopback addresses on which Caddy answers for bots that cannot be reached."""

    unknown: str
    stopped: str
    unavailable: str
    suspended: str

    @classmethod
    def starting_at(cls, first: str) -> StatusAddresses:
        base = ipaddress.IPv4Address(first)
        return cls(str(base), str(base + 1), str(base + 2), str(base + 3))

    @property
    def all(self) -> tuple[str, ...]:
        return (self.unknown, self.stopped, self.unavailable, self.suspended)

    @classmethod
    def for_platform(cls, platform_id: str) -> StatusAddresses:
        """A block derived from the platform id, so platforms (and test runs) sharing a host rarely collide."""
        digest = hashlib.sha256(platform_id.encode()).digest()
        return cls.starting_at(f"127.{64 + digest[0] % 128}.{digest[1]}.{1 + digest[2] % 250}")


@dataclass(frozen=True, slots=True)
class Layout:
    """Everything the Caddy config depends on."""

    platform_id: str
    listen: tuple[str, ...]
    domain: str
    tls: bool
    dns_address: str
    refresh_ms: int
    status: StatusAddresses

    @property
    def server_name(self) -> str:
        return f"wopr-{self.platform_id}"

    @property
    def status_server_name(self) -> str:
        return f"wopr-{self.platform_id}-status"

    @property
    def host_label(self) -> int:
        """Which `{http.request.host.labels.N}` is the subdomain (labels count from the right)."""
        return len(self.domain.split("."))


def dns_name(kind: str, key: str) -> str:
    """The name Caddy looks up for a host (`h`) or a bot id (`i`)."""
    return f"{key}.{kind}.{ZONE}"


def parse_dns_name(name: str) -> tuple[str, str] | None:
    """`(kind, key)` of a name in the zone, or None."""
    name = name.lower().rstrip(".")
    suffix = "." + ZONE
    if not name.endswith(suffix):
        return None
    key, _, kind = name[: -len(suffix)].rpartition(".")
    if kind not in (HOST_KIND, ID_KIND) or not key or "." in key:
        return None
    return kind, key


def _static(status: int, body: str) -> dict[str, Any]:
    return {"handler": "static_response", "status_code": status, "body": body, "headers": TEXT}


def _proxy(layout: Layout, name: str, headers: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {
        "handler": "reverse_proxy",
        "dynamic_upstreams": {
            "source": "a",
            "name": name,
            "port": str(INSTANCE_PORT),
            "refresh": f"{layout.refresh_ms}ms",
            "resolver": {"addresses": [f"udp/{layout.dns_address}"]},
            "dial_timeout": DNS_DIAL_TIMEOUT,
        },
        # used only when the platform's DNS cannot be asked
        "upstreams": [{"dial": f"{layout.status.unavailable}:{INSTANCE_PORT}"}],
        "headers": {"request": {"set": {STATUS_HEADER: ["{http.reverse_proxy.upstream.host}"], **(headers or {})}}},
        "transport": {"protocol": "http", "dial_timeout": UPSTREAM_DIAL_TIMEOUT},
    }


def proxy_server(layout: Layout) -> dict[str, Any]:
    """The public server block: `/instance/<id>/...` on the base domain, `<subdomain>.<domain>`, else 404."""
    instance = f"^/instance/({UUID_PATTERN})"
    by_path = {
        "match": [{"host": [layout.domain], "path": ["/instance/*"]}],
        "handle": [
            {
                "handler": "subroute",
                "routes": [
                    {
                        "match": [{"path_regexp": {"name": "wopr", "pattern": instance + "$"}}],
                        "handle": [
                            {
                                "handler": "static_response",
                                "status_code": 308,
                                "headers": {"Location": ["{http.request.uri.path}/"]},
                            }
                        ],
                        "terminal": True,
                    },
                    {
                        "match": [{"path_regexp": {"name": "wopr", "pattern": instance + "/"}}],
                        "handle": [
                            {"handler": "rewrite", "strip_path_prefix": "/instance/{http.regexp.wopr.1}"},
                            _proxy(
                                layout,
                                dns_name(ID_KIND, "{http.regexp.wopr.1}"),
                                {"X-Forwarded-Prefix": ["/instance/{http.regexp.wopr.1}"]},
                            ),
                        ],
                        "terminal": True,
                    },
                    {"handle": [_static(404, BODY_NO_SUCH_BOT)]},
                ],
            }
        ],
        "terminal": True,
    }
    by_host = {
        "match": [{"host": [f"*.{layout.domain}"]}],
        "handle": [_proxy(layout, dns_name(HOST_KIND, f"{{http.request.host.labels.{layout.host_label}}}"))],
        "terminal": True,
    }
    server: dict[str, Any] = {
        "@id": layout.server_name,
        "listen": list(layout.listen),
        "routes": [by_path, by_host, {"handle": [_static(404, BODY_UNKNOWN_HOST)]}],
        "errors": {
            "routes": [
                {
                    # the proxy could not reach the bot (it just stopped, or the DNS answer is a moment old)
                    "match": [{"vars": {"{http.error.status_code}": ["502", "503", "504"]}}],
                    "handle": [_static(503, BODY_UNAVAILABLE)],
                    "terminal": True,
                },
                {
                    "handle": [
                        {
                            "handler": "static_response",
                            "status_code": "{http.error.status_code}",
                            "body": "{http.error.status_text}\n",
                            "headers": TEXT,
                        }
                    ]
                },
            ]
        },
    }
    if not layout.tls:
        server["automatic_https"] = {"disable": True}
    return server


def status_server(layout: Layout) -> dict[str, Any]:
    """The loopback server block answering for bots the proxy cannot reach, by the status address it dialled."""
    status = layout.status

    def answer(address: str, code: int, body: str) -> dict[str, Any]:
        return {"match": [{"header": {STATUS_HEADER: [address]}}], "handle": [_static(code, body)], "terminal": True}

    return {
        "@id": layout.status_server_name,
        "listen": [f"{address}:{INSTANCE_PORT}" for address in status.all],
        "routes": [
            answer(status.unknown, 404, BODY_NO_SUCH_BOT),
            answer(status.stopped, 503, BODY_STOPPED),
            answer(status.suspended, 402, BODY_SUSPENDED),
            {"handle": [_static(503, BODY_UNAVAILABLE)]},
        ],
        "automatic_https": {"disable": True},
    }


def servers(layout: Layout) -> dict[str, dict[str, Any]]:
    """Both server blocks by name, the status one first (it is the proxy's fallback)."""
    return {layout.status_server_name: status_server(layout), layout.server_name: proxy_server(layout)}
