"""Shapes of the proxy API (camelCase on the wire)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from wopr_platform.fleet.schemas import PublicUrls


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RouteView(_Wire):
    """One bot's routes: its host and path, and where they lead now."""

    bot_id: str
    name: str
    subdomain: str
    host: str
    path_prefix: str
    urls: PublicUrls
    state: Literal["up", "stopped", "unavailable", "suspended"]
    reason: str
    upstream: str | None


class CaddyStatus(_Wire):
    ok: bool
    reason: str | None
    checked_seconds_ago: float | None
    config_loads: int


class DnsStatus(_Wire):
    listen: str
    ok: bool
    queries: int


class TableStatus(_Wire):
    routes: int
    builds: int
    last_build_ms: float | None


class ProxyStatus(_Wire):
    """Whether tenants' requests can be routed now, and the state of Caddy, the route DNS and the table."""

    ok: bool
    reason: str | None
    admin_url: str
    domain: str
    listen: list[str]
    caddy: CaddyStatus
    dns: DnsStatus
    table: TableStatus


class RouteList(_Wire):
    """GET /proxy/routes."""

    routes: list[RouteView]
    proxy: ProxyStatus | None = Field(
        description="the proxy's state, the whole platform's (Caddy's admin address, every tenant's route count): "
        "shown to the platform's operator only, null for a caller acting for another tenant"
    )
