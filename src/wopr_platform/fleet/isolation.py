"""Bots and the host: the host firewall keeps what bots send to the host's own addresses from arriving, and what
they send to another tenant's network.

A bot reaches the host through its tenant network's bridge (the gateway address, or any other address of the
host): such packets go through the host's INPUT chain, which Docker leaves open. The platform keeps its own chains
there (`firewall.iptables`): from the bridges of its tenant networks, only answers to the host's own connections
(health probes, the proxy) and the ports offered to bots (`BOT_HOST_PORTS`, none by default) get through. Chains of
the same shape in the mangle table's FORWARD drop traffic from one tenant network to another, also in the moments
dockerd's own isolation rules are being rewritten.

The chains are put in step at start-up, before a new tenant network gets its first container (`cover`), and every
`BOT_HOST_CHECK_INTERVAL` seconds, which also puts them back after someone else removed or changed them.
In production a firewall that cannot be installed stops the start-up and a network it cannot cover is not used
(503); elsewhere it is logged as an error and `/health/ready` reports it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from wopr_platform.core.addresses import HostPort
from wopr_platform.core.errors import FirewallUnavailable, PlatformError
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.firewall.iptables import HostFirewall, Ruleset

log = logging.getLogger(__name__)


class HostIsolation:
    """Keeps the platform's host firewall chains in step with its tenant networks (a background loop)."""

    name = "host-isolation"

    def __init__(
        self,
        *,
        firewall: HostFirewall,
        engine: DockerEngine,
        ports: Sequence[HostPort],
        interval: float,
        strict: bool,
    ) -> None:
        self._firewall = firewall
        self._engine = engine
        self._ports = tuple(ports)
        self._interval = interval
        self._strict = strict  # production: refuse a tenant network the chains cannot cover
        self._lock = asyncio.Lock()  # one rewrite at a time
        self._bridges: set[str] = set()  # the bridges of this platform's networks, as last known
        self._added: dict[str, float] = {}  # bridges `cover` added, and when: a listing begun before keeps them
        self._listed = False  # whether the engine has told us its networks at least once
        self.covered: frozenset[str] | None = None  # the bridges the chains held at the last good check or rewrite
        self.reason: str | None = "not checked yet"
        self.checked_at: float | None = None
        self.repairs = 0  # rewrites because someone else changed or removed the chains

    def readiness(self) -> tuple[bool, str | None]:
        """Whether bots are kept off the host now, and why not."""
        return self.reason is None, self.reason

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check()
            try:
                async with asyncio.timeout(self._interval):
                    await stop.wait()
            except TimeoutError:
                pass

    async def check(self, *, ask_engine: bool = True) -> None:
        """One round: ask the engine for this platform's networks, then put the chains in step (never raises).

        Without the engine's answer (`ask_engine=False` at start-up, or the engine down) the bridges the chains
        hold stay, and those the platform made since are added."""
        started = time.monotonic()
        listed: set[str] | None = None
        if ask_engine:
            try:
                listed = set((await self._engine.list_bridges()).values())
            except PlatformError as err:
                log.debug("tenant networks not listed for the host firewall", extra={"reason": err.message})
        async with self._lock:
            if listed is not None:
                self._added = {bridge: at for bridge, at in self._added.items() if at >= started}
                self._bridges = listed | set(self._added)
                self._listed = True
            try:
                await self._apply()
            except FirewallUnavailable:
                pass  # logged and reported by _apply
            finally:
                self.checked_at = time.monotonic()

    async def cover(self, bridge: str) -> None:
        """Put a tenant network's bridge under the chains before a container joins it."""
        if self.covered is not None and bridge in self.covered:
            return
        async with self._lock:
            self._bridges.add(bridge)
            self._added[bridge] = time.monotonic()
            try:
                await self._apply()
            except FirewallUnavailable as err:
                if self._strict:
                    raise FirewallUnavailable(
                        "bots on this network could reach the host: " + err.message,
                        details={"reason": err.message},
                    ) from err

    async def _apply(self) -> None:
        """Rewrite the chains if they differ from what they should hold; logs and records the outcome."""
        previous = self.covered
        try:
            try:
                ruleset = Ruleset(frozenset(self._bridges), self._ports)
            except ValueError as err:  # a bridge named by hand with characters a rule cannot hold
                raise FirewallUnavailable(str(err)) from err
            applied = await self._firewall.apply(ruleset, keep_installed=not self._listed, last=previous)
        except FirewallUnavailable as err:
            if err.message != self.reason:
                log.error(
                    "bots are not kept off the host: the host firewall cannot be changed",
                    extra={"reason": err.message, "chain": self._firewall.gate},
                )
            self.reason = err.message  # `covered` stays: a tool that fails has not changed the chains
            raise
        if self.reason is not None:
            log.info("bots kept off the host", extra={"chain": self._firewall.gate, "bridges": len(applied.bridges)})
        self.reason = None
        self.covered = applied.bridges
        if applied.tampered:  # removed or changed behind the platform's back, and now put back
            self.repairs += 1
            log.warning("host firewall chains put back", extra={"chain": self._firewall.gate, "found": applied.wrong})
