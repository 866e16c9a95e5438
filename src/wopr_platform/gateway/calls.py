"""A call through the gateway, from the key that makes it to the charge it ends in.

1. `authenticate_and_route`: the key's tenant (and bot), the model's provider, price and key (the tenant's own key
   for that provider, if it stored one). Both are kept in memory once read, until anything about keys, bots'
   caps, providers, models or own keys changes on any replica (`forget`, through the gateway's broadcast), and
   are not kept while this replica cannot hear the others.
2. `begin`: the key's rate, the provider's breaker, then the call's estimated cost reserved on the tenant's
   credits from this replica's lease (`leases`: in memory, a transaction only when the lease must grow, which
   is also when the credits and the spending caps are checked). A capped bot's call also reserves its estimate
   of the bot's daily cap and is written, in one transaction (`budgets`).
3. `finish`: the call's row, with the provider's own token count and its cost, is committed (with the rows of
   the calls ending at the same time) before its answer ends; its reservation gives way to its cost, which
   stays held until the charge is posted to the ledger, within a second, under the call's id (`charges`). A call
   the provider failed is charged nothing.

With billing off, calls are still counted and priced (the usage views), nothing is reserved or charged. A call
with the tenant's own provider key costs nothing. `sweep` gives back what a stopped replica left held: its leases
(posting the charges of the calls that ended in them) and its capped bots' holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.accounts import credentials
from wopr_platform.billing.ledger import Ledger
from wopr_platform.core.buckets import TokenBuckets
from wopr_platform.core.errors import (
    BotCapReached,
    CallRateLimited,
    GatewayKeyInvalid,
    ModelUnknown,
    ProviderUnavailable,
)
from wopr_platform.core.metrics import PlatformMetrics
from wopr_platform.core.settings import Settings
from wopr_platform.crypto.secretbox import SecretBox, SecretUnreadable
from wopr_platform.db.broadcast import Broadcast
from wopr_platform.db.models import (
    Bot,
    GatewayBotLimit,
    GatewayCall,
    GatewayKey,
    GatewayModel,
    GatewayProvider,
    GatewayTenantKey,
)
from wopr_platform.db.unit import Database
from wopr_platform.fleet.observation.events import EventBus, Subscription
from wopr_platform.gateway import keys
from wopr_platform.gateway.breaker import Breakers
from wopr_platform.gateway.budgets import BotBudgets
from wopr_platform.gateway.charges import CallRecorder, Charge, Ended, charge_entries
from wopr_platform.gateway.leases import CreditLeases, Reservation
from wopr_platform.gateway.metering import Endpoint, Price, Usage
from wopr_platform.providers.client import KINDS, Upstream

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
NO_KEY = GatewayKeyInvalid("a gateway key is needed: Authorization: Bearer <key> (or x-api-key)")
MAX_CACHED = 100_000  # callers, and routes, kept in memory at most (all are dropped when the limit is reached)


def provider_box_ids(provider: str) -> tuple[str, str]:
    """The names a provider's key is sealed under (bound in, so a sealed key cannot be moved to another row)."""
    return f"gateway-provider:{provider}", "api_key"


def own_key_box_ids(tenant_id: str, provider: str) -> tuple[str, str]:
    return f"gateway-tenant:{tenant_id}", provider


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: str
    bot_id: str | None
    key_id: str
    bot_cap: int | None = None  # the bot's daily cap on its calls' cost, if its tenant set one


@dataclass(frozen=True, slots=True)
class Route:
    model: str
    upstream: Upstream
    upstream_model: str
    price: Price
    own_key: bool


@dataclass(slots=True)
class Call:
    id: str
    caller: Caller
    route: Route
    endpoint: Endpoint
    reservation: Reservation | None  # on the tenant's credits
    bot_held: int  # against the bot's daily cap (its row was written when it began)
    day: str
    created_at: datetime
    written: bool = False  # its row was written when it began (a capped bot's call)
    finished: bool = False


class GatewayCalls:
    def __init__(
        self,
        *,
        db: Database,
        box: SecretBox,
        settings: Settings,
        clock: Clock,
        breakers: Breakers,
        leases: CreditLeases | None,
        recorder: CallRecorder,
        broadcast: Broadcast | None = None,
        metrics: PlatformMetrics | None = None,
    ) -> None:
        self._metrics = metrics or PlatformMetrics()
        self._db = db
        self._box = box
        self._settings = settings
        self._now = clock
        self.breakers = breakers
        self._leases = leases  # None: billing is off
        self._recorder = recorder
        self._rates = (
            TokenBuckets(settings.gateway_rate_limit, 60.0, max_buckets=100_000)
            if settings.gateway_rate_limit
            else None
        )
        self._broadcast = broadcast
        self._callers: dict[str, Caller] = {}  # by the key's SHA-256
        self._routes: dict[tuple[str, str], Route] = {}  # by tenant and model
        self._generation = 0  # what was read before a `forget` is not kept
        if broadcast is not None:
            broadcast.subscribe(self.forget)

    def forget(self) -> None:
        """Drop every caller and route kept (on every change to them, on every replica)."""
        self._generation += 1
        self._callers.clear()
        self._routes.clear()

    def _caching(self) -> bool:
        return self._broadcast is None or self._broadcast.reliable

    def _keep_caller(self, generation: int, digest: str, caller: Caller) -> None:
        if generation == self._generation and self._caching():
            if len(self._callers) >= MAX_CACHED:
                self._callers.clear()
            self._callers[digest] = caller

    async def authenticate(self, key: str | None) -> Caller:
        """Who calls: 401 unless the key is valid."""
        if not key:
            raise NO_KEY
        digest = credentials.digest(key)
        found = self._callers.get(digest) if self._caching() else None
        if found is not None:
            return found
        parsed = keys.parse(key)
        if parsed is None:
            raise NO_KEY
        generation = self._generation
        async with self._db.read() as session:
            caller = await self._caller(session, parsed)
        self._keep_caller(generation, digest, caller)
        return caller

    async def authenticate_and_route(self, key: str | None, model: object) -> tuple[Caller, Route]:
        """Who calls (401 unless the key is valid) and where its call goes (404 for a model not offered, 503 for
        a provider switched off or cut off)."""
        if not key:
            raise NO_KEY
        digest = credentials.digest(key)
        caching = self._caching()
        caller = self._callers.get(digest) if caching else None
        if caller is not None and isinstance(model, str):
            route = self._routes.get((caller.tenant_id, model))
            if route is not None:
                return caller, route
        parsed = keys.parse(key)
        if parsed is None:
            raise NO_KEY
        generation = self._generation
        async with self._db.read() as session:
            caller = await self._caller(session, parsed)
            self._keep_caller(generation, digest, caller)
            if not isinstance(model, str) or not model or len(model) > 120:
                raise ModelUnknown("the call names no model the gateway offers", details={"field": "model"})
            found = (
                await session.execute(
                    select(GatewayModel, GatewayProvider, GatewayTenantKey.api_key)
                    .join(GatewayProvider, GatewayProvider.name == GatewayModel.provider)
                    .outerjoin(
                        GatewayTenantKey,
                        (GatewayTenantKey.provider == GatewayModel.provider)
                        & (GatewayTenantKey.tenant_id == caller.tenant_id),
                    )
                    .where(GatewayModel.model == model)
                )
            ).one_or_none()
        if found is None:
            raise ModelUnknown(f"the gateway offers no model {model!r}", details={"model": model[:120]})
        row, provider, own = found
        if not provider.enabled or provider.kind not in KINDS:
            raise ProviderUnavailable(f"provider {provider.name} is switched off", details={"provider": provider.name})
        try:
            if own is not None:
                box_bot, box_key = own_key_box_ids(caller.tenant_id, provider.name)
                api_key = self._box.open(own, bot_id=box_bot, key=box_key)
            else:
                box_bot, box_key = provider_box_ids(provider.name)
                api_key = self._box.open(provider.api_key, bot_id=box_bot, key=box_key)
        except SecretUnreadable:
            raise ProviderUnavailable(
                f"the key of provider {provider.name} cannot be read (PLATFORM_SECRET changed?)",
                details={"provider": provider.name},
            ) from None
        upstream = Upstream(provider.name, provider.kind, provider.base_url, api_key)
        route = Route(
            row.model, upstream, row.upstream_model, Price(row.input_price, row.output_price), own is not None
        )
        if generation == self._generation and self._caching():
            if len(self._routes) >= MAX_CACHED:
                self._routes.clear()
            self._routes[(caller.tenant_id, model)] = route
        return caller, route

    async def _caller(self, session: AsyncSession, parsed: keys.BotKey | keys.TenantKey) -> Caller:
        if isinstance(parsed, keys.BotKey):
            found = (
                await session.execute(
                    select(Bot.tenant_id, Bot.gateway_key_epoch, GatewayBotLimit.daily_cap)
                    .outerjoin(GatewayBotLimit, GatewayBotLimit.bot_id == Bot.id)
                    .where(Bot.id == parsed.bot_id)
                )
            ).one_or_none()
            if found is None or not keys.bot_key_valid(self._box, parsed, int(found.gateway_key_epoch or 0)):
                raise NO_KEY
            return Caller(found.tenant_id, parsed.bot_id, parsed.bot_id, found.daily_cap)
        stored = (
            await session.execute(
                select(GatewayKey.tenant_id, GatewayKey.secret_hash).where(
                    GatewayKey.id == parsed.key_id, GatewayKey.revoked_at.is_(None)
                )
            )
        ).one_or_none()
        if stored is None or not keys.tenant_key_valid(parsed, stored.secret_hash):
            raise NO_KEY
        return Caller(stored.tenant_id, None, parsed.key_id)

    def estimate(self, route: Route, input_tokens: int, max_output: int | None) -> int:
        """What the call may cost at most: its input estimated from the request's size, its output at the most it
        asks for (or the default), with the margin."""
        output = max_output if max_output is not None else self._settings.gateway_default_max_tokens
        return route.price.cost(Usage(input_tokens, output), self._settings.gateway_margin_percent)

    async def begin(self, caller: Caller, route: Route, endpoint: Endpoint, estimate: int) -> Call:
        """Admit the call (429 over the key's rate, 402 out of credits or at a spending cap, 503 while the
        provider is cut off) with its reservation."""
        if self._rates is not None:
            wait = self._rates.take(caller.key_id)
            if wait > 0:
                raise CallRateLimited(
                    f"this key's calls are limited to {self._settings.gateway_rate_limit} a minute",
                    retry_after=max(1, round(wait + 0.5)),
                )
        capped = caller.bot_id is not None and caller.bot_cap is not None and not route.own_key
        bot_held = estimate if capped else 0
        self.breakers.admit(route.upstream.name)
        now = self._now()
        call = Call(
            str(uuid.uuid4()), caller, route, endpoint, None, bot_held, now.astimezone(UTC).date().isoformat(), now
        )
        try:
            if self._leases is not None and not route.own_key:
                call.reservation = await self._leases.reserve(caller.tenant_id, estimate)
            if capped:
                await self._hold_bot_cap(call, estimate)
        except BaseException:
            self.breakers.released(route.upstream.name)
            if call.reservation is not None and self._leases is not None:
                self._leases.settle(call.reservation, 0)
            raise
        return call

    async def _hold_bot_cap(self, call: Call, estimate: int) -> None:
        caller = call.caller
        assert caller.bot_id is not None and caller.bot_cap is not None
        async with self._db.unit() as session:
            if not await BotBudgets(session).hold(caller.bot_id, call.day, estimate, caller.bot_cap):
                raise BotCapReached(
                    "this call could pass the bot's daily cap on what its calls cost",
                    details={"cap": caller.bot_cap, "required": estimate},
                )
            session.add(GatewayCall(**self._row(call, "reserved", None, 0, charged=True)))
        call.written = True

    def _row(self, call: Call, status: str, usage: Usage | None, cost: int, *, charged: bool) -> dict[str, Any]:
        """Every column of the call's row (`charged` False: its cost is held in its lease until posted)."""
        caller, route = call.caller, call.route
        return {
            "id": call.id,
            "tenant_id": caller.tenant_id,
            "bot_id": caller.bot_id,
            "key_id": caller.key_id,
            "endpoint": call.endpoint,
            "model": route.model,
            "provider": route.upstream.name,
            "own_key": route.own_key,
            "reserved": call.reservation.amount if call.reservation is not None else 0,
            "bot_held": call.bot_held,
            "status": status,
            "input_tokens": usage.input_tokens if usage else 0,
            "output_tokens": usage.output_tokens if usage else 0,
            "cost": cost,
            "day": call.day,
            "created_at": call.created_at,
            "finished_at": None if status == "reserved" else self._now(),
            "lease_id": None if charged or call.reservation is None else call.reservation.lease.id,
            "charged": charged,
        }

    async def finish(self, call: Call, usage: Usage | None) -> int:
        """Record what the call used (None: the provider failed it, nothing is charged), durably, before the
        caller has the end of its answer; its reservation becomes its cost, posted within a second. The cost."""
        if call.finished:
            return 0
        call.finished = True
        cost = (
            0
            if usage is None or call.route.own_key
            else call.route.price.cost(usage, self._settings.gateway_margin_percent)
        )
        charge = (
            Charge(call.id, call.caller.tenant_id, call.caller.bot_id, cost)
            if cost and call.reservation is not None  # none with billing off: priced for the usage views only
            else None
        )
        row = self._row(call, "failed" if usage is None else "done", usage, cost, charged=charge is None)
        bot_hold = (call.caller.bot_id, call.day, call.bot_held) if call.written and call.caller.bot_id else None
        await self._recorder.write(Ended(row, call.written, bot_hold, call.reservation, charge))
        provider = call.route.upstream.name
        self._metrics.gateway_calls.labels(provider, "failed" if usage is None else "done").inc()
        if usage is not None:
            self._metrics.gateway_tokens.labels(provider, "input").inc(usage.input_tokens)
            self._metrics.gateway_tokens.labels(provider, "output").inc(usage.output_tokens)
        if charge is not None:
            self._metrics.gateway_charged.labels(provider).inc(cost)
        return cost

    async def sweep(self) -> int:
        """Give back what a stopped replica left held: its leases, after posting the charges of the calls that
        ended in them, and the bot-cap holds of capped bots' calls still open well past the longest a call may
        take (nothing is known of what they used: they are marked interrupted and not charged)."""
        swept = await self._sweep_leases() if self._leases is not None else 0
        cutoff = self._now() - timedelta(seconds=self._settings.gateway_upstream_timeout + 300)
        async with self._db.unit() as session:
            oldest = (
                select(GatewayCall.id)
                .where(GatewayCall.status == "reserved", GatewayCall.created_at < cutoff)
                .limit(1000)
                .scalar_subquery()
            )
            stale = (
                await session.execute(
                    update(GatewayCall)
                    .where(GatewayCall.id.in_(oldest), GatewayCall.status == "reserved")
                    .values(status="interrupted", finished_at=self._now())
                    .returning(GatewayCall.bot_id, GatewayCall.day, GatewayCall.bot_held)
                    .execution_options(synchronize_session=False)
                )
            ).all()
            for row in stale:
                if row.bot_held and row.bot_id is not None:
                    await BotBudgets(session).settle(row.bot_id, row.day, row.bot_held, 0)
        if stale:
            log.warning("gateway calls interrupted", extra={"count": len(stale)})
        return swept + len(stale)

    async def _sweep_leases(self) -> int:
        assert self._leases is not None
        async with self._db.unit() as session:
            dead = await self._leases.dead(session)
            if not dead:
                return 0
            ids = [lease_id for lease_id, _, _ in dead]
            owed = (
                await session.execute(
                    update(GatewayCall)
                    .where(GatewayCall.lease_id.in_(ids), GatewayCall.charged.is_(False))
                    .values(charged=True)
                    .returning(GatewayCall.id, GatewayCall.tenant_id, GatewayCall.bot_id, GatewayCall.cost)
                    .execution_options(synchronize_session=False)
                )
            ).all()
            calls = [Charge(row.id, row.tenant_id, row.bot_id, int(row.cost)) for row in owed]
            ledger = Ledger(session)
            await ledger.post_many(charge_entries(calls), self._now())
            for _, tenant_id, amount in dead:
                if amount:
                    await ledger.release(tenant_id, amount)
        log.warning("gateway leases of a stopped replica given back", extra={"leases": len(dead), "calls": len(calls)})
        return len(dead)


class CallSweeper:
    """The leader's loop that gives back what crashed calls left reserved."""

    name = "gateway-sweep"

    def __init__(self, calls: GatewayCalls, interval: float = 60.0) -> None:
        self._calls = calls
        self._interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._calls.sweep()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)


class RemovedBots:
    """Every replica: a bot removed here ends its key on every replica at once (each forgets the callers it
    keeps, through the gateway's broadcast)."""

    name = "gateway-removed-bots"

    def __init__(self, events: EventBus, changed: Callable[[], Awaitable[None]]) -> None:
        self._events = events
        self._changed = changed

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            subscription = self._events.subscribe(bot_id=None, tenant_id=None, platform_wide=True)
            listening = asyncio.create_task(self._listen(subscription))
            stopping = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                subscription.close()
                listening.cancel()
                stopping.cancel()
            if not stop.is_set():  # cut off (it fell behind): a removal may have been missed
                await self._changed()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _listen(self, subscription: Subscription) -> None:
        async for event in subscription:
            if event.kind == "removed":
                await self._changed()
