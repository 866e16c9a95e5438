"""A call through the gateway, from the key that makes it to the charge it ends in.

1. `authenticate`: the key's tenant (and bot); one indexed read.
2. `route`: the model's provider, price and key (the tenant's own key for that provider, if it stored one); one
   read, in the same session as 1.
3. `begin`: the key's rate, then in one transaction a reservation of the call's estimated cost on the tenant's
   credits (taken only while the credits not yet reserved cover it, so concurrent calls never reserve more than
   the balance), the tenant's spending caps checked against what it spent plus everything it has reserved, the
   bot's own daily cap likewise (`budgets`), and the call's row.
4. `finish`: in one transaction, the call's row gets the provider's own token count and its cost, the reservations
   are given back and the charge is posted to the ledger under the call's id (once, whatever retries). A call the
   provider failed is charged nothing.

With billing off, calls are still counted and priced (the usage views), nothing is reserved or charged. A call
with the tenant's own provider key costs nothing. `sweep` gives back the reservations of calls a crash left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.billing.caps import SpendingCaps
from wopr_platform.billing.ledger import PLATFORM_REVENUE, Ledger, Posting
from wopr_platform.core.buckets import TokenBuckets
from wopr_platform.core.errors import (
    BotCapReached,
    CallRateLimited,
    GatewayKeyInvalid,
    InsufficientCredits,
    ModelUnknown,
    ProviderUnavailable,
)
from wopr_platform.core.settings import Settings
from wopr_platform.crypto.secretbox import SecretBox, SecretUnreadable
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
from wopr_platform.gateway import keys
from wopr_platform.gateway.breaker import Breakers
from wopr_platform.gateway.budgets import BotBudgets
from wopr_platform.gateway.metering import Endpoint, Price, Usage
from wopr_platform.providers.client import KINDS, Upstream

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
NO_KEY = GatewayKeyInvalid("a gateway key is needed: Authorization: Bearer <key> (or x-api-key)")


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


@dataclass(frozen=True, slots=True)
class Call:
    id: str
    caller: Caller
    route: Route
    endpoint: Endpoint
    reserved: int  # on the tenant's credits
    bot_held: int  # against the bot's daily cap
    day: str


class GatewayCalls:
    def __init__(
        self,
        *,
        db: Database,
        box: SecretBox,
        settings: Settings,
        clock: Clock,
        breakers: Breakers,
        caps: SpendingCaps | None,
    ) -> None:
        self._db = db
        self._box = box
        self._settings = settings
        self._now = clock
        self.breakers = breakers
        self._caps = caps  # None: billing is off
        self._rates = (
            TokenBuckets(settings.gateway_rate_limit, 60.0, max_buckets=100_000)
            if settings.gateway_rate_limit
            else None
        )

    async def authenticate(self, key: str | None) -> Caller:
        """Who calls: 401 unless the key is valid."""
        parsed = keys.parse(key) if key else None
        if parsed is None:
            raise NO_KEY
        async with self._db.read() as session:
            return await self._caller(session, parsed)

    async def authenticate_and_route(self, key: str | None, model: object) -> tuple[Caller, Route]:
        """Who calls (401 unless the key is valid) and where its call goes (404 for a model not offered, 503 for
        a provider switched off or cut off)."""
        parsed = keys.parse(key) if key else None
        if parsed is None:
            raise NO_KEY
        async with self._db.read() as session:
            caller = await self._caller(session, parsed)
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
        provider is cut off) and write it, with its reservation, in one transaction."""
        if self._rates is not None:
            wait = self._rates.take(caller.key_id)
            if wait > 0:
                raise CallRateLimited(
                    f"this key's calls are limited to {self._settings.gateway_rate_limit} a minute",
                    retry_after=max(1, round(wait + 0.5)),
                )
        charged = self._caps is not None and not route.own_key
        reserved = estimate if charged else 0
        capped = caller.bot_id is not None and caller.bot_cap is not None and not route.own_key
        bot_held = estimate if capped else 0
        self.breakers.admit(route.upstream.name)
        now = self._now()
        day = now.astimezone(UTC).date().isoformat()
        call_id = str(uuid.uuid4())
        try:
            async with self._db.unit() as session:
                if charged and self._caps is not None:
                    held = await Ledger(session).hold(caller.tenant_id, reserved)
                    if held is None:
                        raise InsufficientCredits(
                            "the tenant's credits do not cover this call",
                            details={"required": reserved, "buyUrl": self._settings.buy_url},
                        )
                    await self._caps.admit_within(session, caller.tenant_id, held)
                if (
                    capped
                    and caller.bot_id is not None
                    and caller.bot_cap is not None
                    and not await BotBudgets(session).hold(caller.bot_id, day, bot_held, caller.bot_cap)
                ):
                    raise BotCapReached(
                        "this call could pass the bot's daily cap on what its calls cost",
                        details={"cap": caller.bot_cap, "required": bot_held},
                    )
                session.add(
                    GatewayCall(
                        id=call_id,
                        tenant_id=caller.tenant_id,
                        bot_id=caller.bot_id,
                        key_id=caller.key_id,
                        endpoint=endpoint,
                        model=route.model,
                        provider=route.upstream.name,
                        own_key=route.own_key,
                        reserved=reserved,
                        bot_held=bot_held,
                        status="reserved",
                        day=day,
                        created_at=now,
                    )
                )
        except BaseException:
            self.breakers.released(route.upstream.name)
            raise
        return Call(call_id, caller, route, endpoint, reserved, bot_held, day)

    async def finish(self, call: Call, usage: Usage | None) -> int:
        """Record what the call used (None: the provider failed it, nothing is charged), give its reservation back
        and post its charge, in one transaction; the cost."""
        cost = (
            0
            if usage is None or call.route.own_key
            else call.route.price.cost(usage, self._settings.gateway_margin_percent)
        )
        now = self._now()
        async with self._db.unit() as session:
            done = await session.execute(
                update(GatewayCall)
                .where(GatewayCall.id == call.id, GatewayCall.status == "reserved")
                .values(
                    status="failed" if usage is None else "done",
                    input_tokens=usage.input_tokens if usage else 0,
                    output_tokens=usage.output_tokens if usage else 0,
                    cost=cost,
                    finished_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if not getattr(done, "rowcount", 0):
                return cost  # finished before (or swept): its reservation was given back then
            if call.bot_held and call.caller.bot_id is not None:
                await BotBudgets(session).settle(call.caller.bot_id, call.day, call.bot_held, cost)
            if self._caps is None:
                return cost
            ledger = Ledger(session)
            if call.reserved:
                await ledger.release(call.caller.tenant_id, call.reserved)
            if cost:
                await ledger.post_many(
                    [
                        Posting(
                            reference=f"gateway:{call.id}",
                            kind="usage",
                            tenant_id=call.caller.tenant_id,
                            amount=-cost,
                            counter=PLATFORM_REVENUE,
                            actor="gateway",
                            memo=f"{call.route.model}: {usage.input_tokens if usage else 0} in, "
                            f"{usage.output_tokens if usage else 0} out",
                            subject=call.caller.bot_id,
                        )
                    ],
                    now,
                )
        return cost

    async def sweep(self) -> int:
        """Give back the reservations of calls still open well past the longest a call may take (their process
        ended mid-call): nothing is known of what they used, so they are marked interrupted and not charged."""
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
                    .returning(
                        GatewayCall.tenant_id,
                        GatewayCall.reserved,
                        GatewayCall.bot_id,
                        GatewayCall.day,
                        GatewayCall.bot_held,
                    )
                    .execution_options(synchronize_session=False)
                )
            ).all()
            ledger = Ledger(session)
            for row in stale:
                if row.reserved and self._caps is not None:
                    await ledger.release(row.tenant_id, row.reserved)
                if row.bot_held and row.bot_id is not None:
                    await BotBudgets(session).settle(row.bot_id, row.day, row.bot_held, 0)
        if not stale:
            return 0
        log.warning("gateway calls interrupted", extra={"count": len(stale)})
        return len(stale)


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
