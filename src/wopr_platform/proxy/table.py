"""The routing table: which bot each host and path reaches, decided from bot rows and observed containers.

Pure functions and plain data: no I/O. The sync loop builds a `RouteTable` from the database; the DNS responder
and `GET /proxy/routes` ask it, with the live container and health, where a name leads right now.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from wopr_platform.core.instance import INSTANCE_PORT
from wopr_platform.docker.types import ContainerInfo

RouteState = Literal["up", "stopped", "unavailable", "suspended"]


@dataclass(frozen=True, slots=True)
class BotRoute:
    """What the database says about one bot's routes."""

    id: str
    tenant_id: str
    name: str
    subdomain: str
    desired_state: str
    container_id: str | None
    suspended: bool = False  # its tenant is suspended for want of credits

    @classmethod
    def of(cls, row: Any, *, suspended: bool = False) -> BotRoute:
        """From a row (or object) with the bot's id, tenant_id, name, subdomain, desired_state and container_id."""
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            name=row.name,
            subdomain=row.subdomain,
            desired_state=row.desired_state,
            container_id=row.container_id,
            suspended=suspended,
        )


@dataclass(frozen=True, slots=True)
class Route:
    """Where one bot's host and path lead right now."""

    bot: BotRoute
    state: RouteState
    reason: str
    upstream_ip: str | None = None

    @property
    def upstream(self) -> str | None:
        return f"{self.upstream_ip}:{INSTANCE_PORT}" if self.upstream_ip else None


def decide(bot: BotRoute, container: ContainerInfo | None, health: str) -> Route:
    """A bot's route: to its own running container's address, or a reason it has none.

    The address is taken only from a running container that carries the bot's id and tenant, never from a request.
    """
    if bot.suspended:
        return Route(bot, "suspended", "its tenant is suspended: out of credits")
    if bot.desired_state == "stopped":
        return Route(bot, "stopped", "stopped")
    if container is None:
        return Route(bot, "unavailable", "no container")
    if container.bot_id != bot.id or container.tenant_id != bot.tenant_id:
        return Route(bot, "unavailable", "container belongs to another bot")
    if container.state != "running":
        return Route(bot, "unavailable", f"container {container.state}")
    if not container.ip_address:
        return Route(bot, "unavailable", "container has no address")
    if health == "unhealthy":
        return Route(bot, "unavailable", "unhealthy")
    return Route(bot, "up", health, container.ip_address)


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Every bot's routes, indexed by subdomain and by id; immutable (a rebuild makes a new one)."""

    by_subdomain: dict[str, BotRoute] = field(default_factory=dict)
    by_id: dict[str, BotRoute] = field(default_factory=dict)
    built_at: float = 0.0

    @classmethod
    def build(cls, bots: Iterable[BotRoute]) -> RouteTable:
        by_subdomain: dict[str, BotRoute] = {}
        by_id: dict[str, BotRoute] = {}
        for bot in bots:
            by_subdomain[bot.subdomain] = bot
            by_id[bot.id] = bot
        return cls(by_subdomain, by_id, time.monotonic())

    def __len__(self) -> int:
        return len(self.by_id)

    def of_tenant(self, tenant_id: str) -> list[BotRoute]:
        """The tenant's bots, by subdomain."""
        return sorted((b for b in self.by_id.values() if b.tenant_id == tenant_id), key=lambda b: b.subdomain)


def routes(
    bots: Iterable[BotRoute],
    container_of: Callable[[BotRoute], ContainerInfo | None],
    health_of: Callable[[ContainerInfo | None], str],
) -> list[Route]:
    """Decide the route of each bot from its observed container and health."""
    result = []
    for bot in bots:
        container = container_of(bot)
        result.append(decide(bot, container, health_of(container)))
    return result
