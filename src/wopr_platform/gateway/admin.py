"""Setting the gateway up and looking at what it did: the providers and priced models (the platform's operator),
a tenant's own gateway keys and provider keys, its bots' key rotation, and the usage by day, model and bot."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, func, select, update

from wopr_platform.core.errors import NotFound, ValidationFailed
from wopr_platform.core.settings import Settings
from wopr_platform.crypto.secretbox import SecretBox
from wopr_platform.db.models import (
    Bot,
    GatewayBotLimit,
    GatewayBotSpend,
    GatewayCall,
    GatewayKey,
    GatewayModel,
    GatewayProvider,
    GatewayTenantKey,
)
from wopr_platform.db.unit import Database
from wopr_platform.gateway import keys
from wopr_platform.gateway.breaker import Breakers
from wopr_platform.gateway.calls import own_key_box_ids, provider_box_ids
from wopr_platform.gateway.schemas import (
    BotLimits,
    GatewayUsage,
    KeyCreated,
    KeyList,
    KeyOut,
    KeyRotated,
    ModelIn,
    ModelList,
    ModelOut,
    OwnKeyList,
    ProviderIn,
    ProviderList,
    ProviderOut,
    UsageRow,
)

Clock = Callable[[], datetime]
MAX_USAGE_DAYS = 366


def _key_out(row: GatewayKey) -> KeyOut:
    return KeyOut(
        id=row.id, name=row.name, created_by=row.created_by, created_at=row.created_at, revoked_at=row.revoked_at
    )


class GatewayAdmin:
    def __init__(
        self,
        *,
        db: Database,
        box: SecretBox,
        settings: Settings,
        clock: Clock,
        breakers: Breakers,
        kick: Callable[[], None],
        changed: Callable[[], Awaitable[None]],
    ) -> None:
        self._db = db
        self._box = box
        self._settings = settings
        self._now = clock
        self._breakers = breakers
        self._kick = kick  # the reconciler: a bot whose key changed gets its container made again
        # after a committed change to what calls are checked against (keys, caps, providers, models, own keys):
        # every replica forgets the callers and routes it keeps
        self._changed = changed

    # providers and models (the platform's operator) -------------------------------------------------------------

    async def providers(self) -> ProviderList:
        async with self._db.read() as session:
            rows = (await session.execute(select(GatewayProvider).order_by(GatewayProvider.name))).scalars().all()
        return ProviderList(providers=[self._provider_out(row) for row in rows])

    def _provider_out(self, row: GatewayProvider) -> ProviderOut:
        return ProviderOut(
            name=row.name,
            kind=row.kind,
            base_url=row.base_url,
            enabled=row.enabled,
            state=self._breakers.state(row.name),
            updated_at=row.updated_at,
        )

    async def put_provider(self, name: str, request: ProviderIn) -> tuple[ProviderOut, bool]:
        box_bot, box_key = provider_box_ids(name)
        sealed = self._box.seal(request.api_key, bot_id=box_bot, key=box_key)
        now = self._now()
        async with self._db.unit() as session:
            row = await session.get(GatewayProvider, name)
            created = row is None
            if row is None:
                row = GatewayProvider(name=name, created_at=now)
                session.add(row)
            row.kind, row.base_url, row.api_key, row.enabled = request.kind, request.base_url, sealed, request.enabled
            row.updated_at = now
            await session.flush()
            out = self._provider_out(row)
        self._breakers.succeeded(name)  # a changed provider starts with a clean slate
        await self._changed()
        return out, created

    async def delete_provider(self, name: str) -> None:
        async with self._db.unit() as session:
            used = (await session.execute(select(func.count()).where(GatewayModel.provider == name))).scalar_one()
            if used:
                raise ValidationFailed(
                    f"provider {name} still serves {used} model(s): remove or move them first",
                    details={"provider": name, "models": used},
                )
            gone = await session.execute(delete(GatewayProvider).where(GatewayProvider.name == name))
            if not getattr(gone, "rowcount", 0):
                raise NotFound("provider not found", details={"provider": name})
        await self._changed()

    async def models(self) -> ModelList:
        async with self._db.read() as session:
            rows = (await session.execute(select(GatewayModel).order_by(GatewayModel.model))).scalars().all()
        return ModelList(models=[self._model_out(row) for row in rows])

    def _model_out(self, row: GatewayModel) -> ModelOut:
        return ModelOut(
            model=row.model,
            provider=row.provider,
            upstream_model=row.upstream_model,
            input_price=row.input_price,
            output_price=row.output_price,
            margin_percent=self._settings.gateway_margin_percent,
        )

    async def model_names(self) -> list[str]:
        async with self._db.read() as session:
            return list((await session.execute(select(GatewayModel.model).order_by(GatewayModel.model))).scalars())

    async def put_model(self, request: ModelIn) -> tuple[ModelOut, bool]:
        now = self._now()
        async with self._db.unit() as session:
            if await session.get(GatewayProvider, request.provider) is None:
                raise ValidationFailed(
                    f"no provider {request.provider}: PUT /gateway/providers/{request.provider} first",
                    details={"field": "provider"},
                )
            row = await session.get(GatewayModel, request.model)
            created = row is None
            if row is None:
                row = GatewayModel(model=request.model, created_at=now)
                session.add(row)
            row.provider = request.provider
            row.upstream_model = request.upstream_model or request.model
            row.input_price, row.output_price = request.input_price, request.output_price
            row.updated_at = now
            await session.flush()
            out = self._model_out(row)
        await self._changed()
        return out, created

    async def delete_model(self, model: str) -> None:
        async with self._db.unit() as session:
            gone = await session.execute(delete(GatewayModel).where(GatewayModel.model == model))
            if not getattr(gone, "rowcount", 0):
                raise NotFound("model not found", details={"model": model[:120]})
        await self._changed()

    # a tenant's keys ---------------------------------------------------------------------------------------------

    async def keys(self, tenant_id: str) -> KeyList:
        async with self._db.read() as session:
            rows = (
                await session.execute(
                    select(GatewayKey)
                    .where(GatewayKey.tenant_id == tenant_id)
                    .order_by(GatewayKey.created_at.desc(), GatewayKey.id)
                    .limit(1000)
                )
            ).scalars()
            return KeyList(keys=[_key_out(row) for row in rows])

    async def create_key(self, tenant_id: str, name: str, actor: str) -> KeyCreated:
        key_id, key, hashed = keys.new_tenant_key()
        row = GatewayKey(
            id=key_id,
            tenant_id=tenant_id,
            name=name,
            secret_hash=hashed,
            created_by=actor[:100],
            created_at=self._now(),
        )
        async with self._db.unit() as session:
            session.add(row)
        return KeyCreated(key=key, **_key_out(row).model_dump())

    async def revoke_key(self, tenant_id: str, key_id: str) -> None:
        async with self._db.unit() as session:
            done = await session.execute(
                update(GatewayKey)
                .where(GatewayKey.id == key_id, GatewayKey.tenant_id == tenant_id, GatewayKey.revoked_at.is_(None))
                .values(revoked_at=self._now())
                .execution_options(synchronize_session=False)
            )
            if not getattr(done, "rowcount", 0):
                raise NotFound("gateway key not found", details={"keyId": key_id[:32]})
        await self._changed()

    async def rotate_bot_key(self, tenant_id: str, bot_id: str) -> KeyRotated:
        """The bot's next key: its earlier ones stop working now, and its container is made again with the new
        one (by the reconciler, which sees the container's env differ from what it should be)."""
        async with self._db.unit() as session:
            epoch = (
                await session.execute(
                    update(Bot)
                    .where(Bot.id == bot_id, Bot.tenant_id == tenant_id)
                    .values(gateway_key_epoch=Bot.gateway_key_epoch + 1, updated_at=self._now())
                    .returning(Bot.gateway_key_epoch)
                    .execution_options(synchronize_session=False)
                )
            ).scalar_one_or_none()
        if epoch is None:
            raise NotFound("bot not found", details={"botId": bot_id})
        await self._changed()
        self._kick()
        return KeyRotated(bot_id=bot_id, epoch=epoch)

    async def bot_limits(self, tenant_id: str, bot_id: str) -> BotLimits:
        today = self._now().astimezone(UTC).date().isoformat()
        async with self._db.read() as session:
            found = (
                await session.execute(
                    select(GatewayBotLimit.daily_cap, GatewayBotSpend.spent, GatewayBotSpend.held)
                    .select_from(Bot)
                    .outerjoin(GatewayBotLimit, GatewayBotLimit.bot_id == Bot.id)
                    .outerjoin(GatewayBotSpend, and_(GatewayBotSpend.bot_id == Bot.id, GatewayBotSpend.day == today))
                    .where(Bot.id == bot_id, Bot.tenant_id == tenant_id)
                )
            ).one_or_none()
        if found is None:
            raise NotFound("bot not found", details={"botId": bot_id})
        cap, spent, held = found
        return BotLimits(bot_id=bot_id, daily_cap=cap, spent_today=int(spent or 0), reserved=int(held or 0))

    async def set_bot_limits(self, tenant_id: str, bot_id: str, daily_cap: int | None) -> BotLimits:
        """Set (or with None, lift) the bot's daily cap; calls in flight keep what they reserved."""
        async with self._db.unit() as session:
            exists = await session.scalar(select(Bot.id).where(Bot.id == bot_id, Bot.tenant_id == tenant_id))
            if exists is None:
                raise NotFound("bot not found", details={"botId": bot_id})
            row = await session.get(GatewayBotLimit, bot_id)
            if daily_cap is None:
                if row is not None:
                    await session.delete(row)
            elif row is None:
                session.add(
                    GatewayBotLimit(bot_id=bot_id, tenant_id=tenant_id, daily_cap=daily_cap, updated_at=self._now())
                )
            else:
                row.daily_cap = daily_cap
                row.updated_at = self._now()
        await self._changed()
        return await self.bot_limits(tenant_id, bot_id)

    async def own_keys(self, tenant_id: str) -> OwnKeyList:
        async with self._db.read() as session:
            rows = await session.execute(
                select(GatewayTenantKey.provider)
                .where(GatewayTenantKey.tenant_id == tenant_id)
                .order_by(GatewayTenantKey.provider)
            )
            return OwnKeyList(providers=list(rows.scalars()))

    async def put_own_key(self, tenant_id: str, provider: str, api_key: str) -> bool:
        box_bot, box_key = own_key_box_ids(tenant_id, provider)
        sealed = self._box.seal(api_key, bot_id=box_bot, key=box_key)
        async with self._db.unit() as session:
            if await session.get(GatewayProvider, provider) is None:
                raise NotFound("provider not found", details={"provider": provider})
            row = await session.get(GatewayTenantKey, (tenant_id, provider))
            if row is None:
                session.add(
                    GatewayTenantKey(tenant_id=tenant_id, provider=provider, api_key=sealed, created_at=self._now())
                )
            else:
                row.api_key = sealed
        await self._changed()
        return row is None

    async def delete_own_key(self, tenant_id: str, provider: str) -> None:
        async with self._db.unit() as session:
            gone = await session.execute(
                delete(GatewayTenantKey).where(
                    GatewayTenantKey.tenant_id == tenant_id, GatewayTenantKey.provider == provider
                )
            )
            if not getattr(gone, "rowcount", 0):
                raise NotFound("no key of the tenant's own for this provider", details={"provider": provider})
        await self._changed()

    # usage -------------------------------------------------------------------------------------------------------

    async def usage(
        self, tenant_id: str, since: str | None, until: str | None, bot_id: str | None = None
    ) -> GatewayUsage:
        """The tenant's calls by day and model (and bot), between two UTC days (default: the last 30)."""
        today = self._now().astimezone(UTC).date()
        try:
            last = datetime.fromisoformat(until).date() if until else today
            first = datetime.fromisoformat(since).date() if since else last - timedelta(days=29)
        except ValueError:
            raise ValidationFailed("since and until are days: YYYY-MM-DD", details={"field": "since"}) from None
        if first > last or (last - first).days >= MAX_USAGE_DAYS:
            raise ValidationFailed(
                f"since must not be after until, and they span at most {MAX_USAGE_DAYS} days",
                details={"field": "since"},
            )
        query = (
            select(
                GatewayCall.day,
                GatewayCall.model,
                GatewayCall.bot_id,
                func.count(),
                func.sum(GatewayCall.input_tokens),
                func.sum(GatewayCall.output_tokens),
                func.sum(GatewayCall.cost),
            )
            .where(
                GatewayCall.tenant_id == tenant_id,
                GatewayCall.day >= first.isoformat(),
                GatewayCall.day <= last.isoformat(),
                GatewayCall.status.in_(("done", "reserved")),
            )
            .group_by(GatewayCall.day, GatewayCall.model, GatewayCall.bot_id)
            .order_by(GatewayCall.day, GatewayCall.model, GatewayCall.bot_id)
        )
        if bot_id is not None:
            query = query.where(GatewayCall.bot_id == bot_id)
        async with self._db.read() as session:
            rows = (await session.execute(query)).all()
        usage = [
            UsageRow(
                day=day,
                model=model,
                bot_id=bot,
                calls=int(calls),
                input_tokens=int(read or 0),
                output_tokens=int(written or 0),
                cost=int(cost or 0),
            )
            for day, model, bot, calls, read, written, cost in rows
        ]
        return GatewayUsage(
            tenant_id=tenant_id,
            since=first.isoformat(),
            until=last.isoformat(),
            usage=usage,
            total_cost=sum(row.cost for row in usage),
        )
