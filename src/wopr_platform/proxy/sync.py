"""Background loop `proxy-sync`: keeps the routing table in step with the database and Caddy's config in place.

- The routing table is rebuilt from the database whenever a commit went through this process (at most once per
  tick, so a burst of changes is one rebuild per tick, and before answering a lookup that would otherwise see a
  table older than the last commit: a route answers as soon as the change that made it is committed), and every
  TABLE_REFRESH_SECONDS (commits by other replicas). Container starts, stops and health flips need no rebuild:
  the DNS responder combines the table with the live observed state on every lookup.
- Caddy's config is checked every `PROXY_CHECK_INTERVAL`: when Caddy cannot be reached the platform keeps
  working and says so in `/health/ready`; when the platform's server blocks are missing (Caddy restarted
  without them, or lost its config) or differ from what they should be (edited by hand), they are put back
  (by the leader only, when several replicas run). Route changes never change Caddy's config (see
  `proxy.config`), so Caddy is reloaded only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from wopr_platform.caddy.admin import CaddyAdmin
from wopr_platform.core.addresses import PublicAddress, split_hostport
from wopr_platform.core.errors import PlatformError
from wopr_platform.core.metrics import PlatformMetrics
from wopr_platform.core.settings import Settings
from wopr_platform.db.engine import CommitCounter
from wopr_platform.db.unit import Database
from wopr_platform.docker.types import ContainerInfo
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.fleet.repository import BotRepository
from wopr_platform.proxy import config
from wopr_platform.proxy.dns import DnsResponder
from wopr_platform.proxy.schemas import RouteList
from wopr_platform.proxy.table import BotRoute, Route, RouteTable, decide

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05
TABLE_REFRESH_SECONDS = 5.0
# how long a lookup waits for the table to catch up with a commit before it answers from the table it has
LOOKUP_WAIT_SECONDS = 0.5
REBUILD_RETRY_SECONDS = 1.0
WAITING_CHECK_SECONDS = 0.25
# a lookup of a name the table does not hold first asks the database again when it was last asked longer ago than
# this (a bot made through another replica); at most that often, however many unknown names are asked
UNKNOWN_REBUILD_SECONDS = 0.5


def layout_of(settings: Settings) -> config.Layout:
    """The Caddy config's inputs, from the settings."""
    host, port = split_hostport(settings.proxy_dns_listen)
    dial_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    status = (
        config.StatusAddresses.starting_at(settings.proxy_status_ip)
        if settings.proxy_status_ip
        else config.StatusAddresses.for_platform(settings.platform_id)
    )
    return config.Layout(
        platform_id=settings.platform_id,
        listen=tuple(settings.proxy_listen),
        domain=settings.proxy_domain,
        tls=settings.proxy_tls == "auto",
        dns_address=f"{dial_host}:{port}",
        refresh_ms=max(1, round(settings.proxy_dns_refresh * 1000)),
        status=status,
    )


class ProxySync:
    """Background loop `proxy-sync`, and the routing table it keeps (read by DNS lookups and `/proxy/routes`)."""

    name = "proxy-sync"

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        commits: CommitCounter,
        observed: ObservedState,
        health_of: Callable[[ContainerInfo | None], str],
        caddy: CaddyAdmin,
        may_write: Callable[[], bool] = lambda: True,
        suspended_tenants: Callable[[], Awaitable[set[str]]] | None = None,
        metrics: PlatformMetrics | None = None,
    ) -> None:
        self._metrics = metrics or PlatformMetrics()
        self._suspended_tenants = suspended_tenants
        self._settings = settings
        self._db = db
        self._commits = commits
        self._observed = observed
        self._health_of = health_of
        self._caddy = caddy
        self._may_write = may_write
        self.layout = layout_of(settings)
        self.address = PublicAddress.of(domain=self.layout.domain, listen=list(self.layout.listen), tls=self.layout.tls)
        self._servers = config.servers(self.layout)
        self._dns = DnsResponder(self.answer)
        self.table = RouteTable()
        self._seen_commits = -1
        self._rebuilding: asyncio.Future[bool] | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._read_at = 0.0  # when the database was last asked whether the table is current
        # what the last check found, for /health/ready and /proxy/routes
        self.caddy_ok = False
        self.caddy_reason: str | None = "not checked yet"
        self.dns_reason: str | None = "not listening yet"
        self.checked_at: float | None = None
        self.pushes = 0
        self.last_push_at: float | None = None
        self.table_builds = 0
        self.last_build_ms: float | None = None
        self._next_check = 0.0
        self._retry_at = 0.0

    # lookups --------------------------------------------------------------------------------------------

    def route(self, bot: BotRoute) -> Route:
        """Where the bot's routes lead right now (memory only)."""
        container = self._observed.for_bot(bot.id, bot.container_id)
        return decide(bot, container, self._health_of(container))

    async def answer(self, name: str) -> str | None:
        """The address for a DNS name of the zone: the bot's container or a status address; None outside it."""
        parsed = config.parse_dns_name(name)
        if parsed is None:
            return None
        try:
            async with asyncio.timeout(LOOKUP_WAIT_SECONDS):
                # a rebuild already under way may have started before the last commit: then one more
                while self._commits.value != self._seen_commits and await self.refresh():
                    pass
        except TimeoutError:
            pass  # the database is slow: answer from the table we have
        kind, key = parsed
        status = self.layout.status
        bot = self._find(kind, key)
        if bot is None and time.monotonic() - self._read_at > UNKNOWN_REBUILD_SECONDS:
            # perhaps made through another replica since the last rebuild
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LOOKUP_WAIT_SECONDS):
                    await self.refresh()
            bot = self._find(kind, key)
        self._metrics.route_lookups.labels("unknown" if bot is None else "found").inc()
        if bot is None:
            return status.unknown
        route = self.route(bot)
        if route.upstream_ip is not None:
            return route.upstream_ip
        if route.state == "suspended":
            return status.suspended
        return status.stopped if route.state == "stopped" else status.unavailable

    def _find(self, kind: str, key: str) -> BotRoute | None:
        return (self.table.by_subdomain if kind == config.HOST_KIND else self.table.by_id).get(key)

    def route_list(self, tenant_id: str, *, with_status: bool) -> RouteList:
        """GET /proxy/routes: the tenant's routing table and, `with_status`, the proxy's state (platform-wide)."""
        status = self.status() if with_status else None
        return RouteList.model_validate({"routes": self.routes(tenant_id), "proxy": status})

    def routes(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's routing table as the API shows it."""
        shown = []
        for bot in self.table.of_tenant(tenant_id):
            route = self.route(bot)
            shown.append(
                {
                    "botId": bot.id,
                    "name": bot.name,
                    "subdomain": bot.subdomain,
                    "host": self.address.host(bot.subdomain),
                    "pathPrefix": f"/instance/{bot.id}/",
                    "urls": self.address.urls(bot.subdomain, bot.id),
                    "state": route.state,
                    "reason": route.reason,
                    "upstream": route.upstream,
                }
            )
        return shown

    # status ---------------------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, str | None]:
        """Whether tenants' requests can be routed now, and why not."""
        if self.dns_reason is not None:
            return False, self.dns_reason
        if not self.caddy_ok:
            return False, self.caddy_reason
        return True, None

    def status(self) -> dict[str, Any]:
        ok, reason = self.readiness()
        now = time.monotonic()
        return {
            "ok": ok,
            "reason": reason,
            "adminUrl": self._caddy.url,
            "domain": self.layout.domain,
            "listen": list(self.layout.listen),
            "caddy": {
                "ok": self.caddy_ok,
                "reason": self.caddy_reason,
                "checkedSecondsAgo": round(now - self.checked_at, 3) if self.checked_at is not None else None,
                "configLoads": self.pushes,
            },
            "dns": {
                "listen": self._settings.proxy_dns_listen,
                "ok": self.dns_reason is None,
                "queries": self._dns.queries,
            },
            "table": {"routes": len(self.table), "builds": self.table_builds, "lastBuildMs": self.last_build_ms},
        }

    # the loop -------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self._tick()
                try:
                    async with asyncio.timeout(TICK_SECONDS):
                        await stop.wait()
                except TimeoutError:
                    pass
        finally:
            self._dns.close()
            self.dns_reason = "stopped"

    async def _tick(self) -> None:
        now = time.monotonic()
        stale = self._commits.value != self._seen_commits or now - self.table.built_at >= TABLE_REFRESH_SECONDS
        if stale and now >= self._retry_at and not await self.refresh():
            self._retry_at = now + REBUILD_RETRY_SECONDS
        if now >= self._next_check:
            self._next_check = now + self._settings.proxy_check_interval
            await self._listen()
            await self.check_caddy()

    async def refresh(self) -> bool:
        """Rebuild the table, joining a rebuild already under way instead of starting a second one.

        A rebuild that has finished is never joined, even before its done-callback has cleared it: awaiting a done
        future does not yield, so a caller looping until the table is current would spin without ever letting the
        event loop run (the callback, its own timeout, every request)."""
        if self._rebuilding is None or self._rebuilding.done():
            self._rebuilding = asyncio.ensure_future(self.rebuild())
            self._rebuilding.add_done_callback(self._rebuilt)
        return await asyncio.shield(self._rebuilding)

    def _rebuilt(self, future: asyncio.Future[bool]) -> None:
        if self._rebuilding is future:
            self._rebuilding = None

    async def rebuild(self) -> bool:
        """Read every bot's routing columns and swap in a new table (False when the database failed).

        Most commits (journal steps, audit records) change no route: when the number of bots and their latest
        `updated_at` are what the table was built from, and it is younger than TABLE_REFRESH_SECONDS, it is kept.
        """
        seen = self._commits.value
        started = time.perf_counter()
        try:
            async with self._db.read() as session:
                repository = BotRepository(session)
                fingerprint = await repository.routes_fingerprint()
                self._read_at = time.monotonic()
                if fingerprint == self._fingerprint and time.monotonic() - self.table.built_at < TABLE_REFRESH_SECONDS:
                    self._seen_commits = seen
                    return True
                rows = await repository.list_routes()
            suspended = await self._suspended_tenants() if self._suspended_tenants is not None else set()
        except Exception as err:  # the database may be briefly unreachable: keep the table we have
            log.warning("routing table not rebuilt", extra={"reason": type(err).__name__})
            return False
        self.table = RouteTable.build(BotRoute.of(row, suspended=row.tenant_id in suspended) for row in rows)
        self._fingerprint = fingerprint
        self._seen_commits = seen
        self.table_builds += 1
        self.last_build_ms = round((time.perf_counter() - started) * 1000, 2)
        return True

    async def _listen(self) -> None:
        if self._dns.listening:
            return
        host, port = split_hostport(self._settings.proxy_dns_listen)
        try:
            await self._dns.open(host, port)
        except OSError as err:
            reason = f"cannot answer route lookups on {self._settings.proxy_dns_listen}: {err.strerror or err}"
            if reason != self.dns_reason:
                log.error("route DNS not listening", extra={"reason": reason})
            self.dns_reason = reason
            return
        self.dns_reason = None
        log.info("route DNS listening", extra={"listen": self._settings.proxy_dns_listen})

    async def check_caddy(self) -> None:
        """Put the platform's server blocks back into Caddy when they are missing or changed."""
        was_ok, was_reason = self.caddy_ok, self.caddy_reason
        waiting = False
        try:
            for name, server in self._servers.items():
                current = await self._caddy.get_object(str(server["@id"]))
                if current == server:
                    continue
                if not self._may_write():
                    waiting = True  # another replica leads (or leadership is not decided yet): it puts it back
                    continue
                await self._caddy.put_server(name, server)
                self.pushes += 1
                self.last_push_at = time.monotonic()
                log.info(
                    "Caddy server block put in place",
                    extra={"server": name, "reason": "missing" if current is None else "changed"},
                )
        except PlatformError as err:
            self.caddy_ok, self.caddy_reason = False, err.message
        else:
            self.caddy_ok = not waiting
            self.caddy_reason = (
                "Caddy's config is not in step yet; the leading replica puts it back" if waiting else None
            )
        finally:
            self.checked_at = time.monotonic()
            if waiting:  # look again soon rather than a whole interval later
                self._next_check = min(self._next_check, self.checked_at + WAITING_CHECK_SECONDS)
        if self.caddy_ok and not was_ok:
            log.info("Caddy in step", extra={"admin_url": self._caddy.url})
        elif not self.caddy_ok and self.caddy_reason != was_reason:
            log.warning("Caddy not in step", extra={"admin_url": self._caddy.url, "reason": self.caddy_reason})
