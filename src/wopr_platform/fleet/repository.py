"""All SQL about bots."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.core.errors import Conflict
from wopr_platform.db.models import Bot, Operation, TemplateSeed

STATUS_COLUMNS = (
    Bot.id,
    Bot.name,
    Bot.description,
    Bot.image,
    Bot.container_id,
    Bot.desired_state,
    Bot.created_at,
    Bot.updated_at,
    Bot.template_name,  # a filter of the list
    Bot.tenant_id,
)


class StatusRow(NamedTuple):
    """A bot's STATUS_COLUMNS as a plain tuple: reading its fields is an index, where a SQLAlchemy row looks each
    name up (a list of ten thousand bots reads a few of them per bot on every request)."""

    id: str
    name: str
    description: str | None
    image: str
    container_id: str | None
    desired_state: str
    created_at: datetime
    updated_at: datetime
    template_name: str | None
    tenant_id: str


def status_rows(connection: Connection, tenant_id: str | None) -> list[StatusRow]:
    """The columns a status needs, as plain tuples (no ORM objects: listing a large fleet stays cheap), of the
    tenant's bots (of every tenant's for None: a platform admin's view), on a Core connection (`Database.core_read`:
    the list's hot path)."""
    query = select(*STATUS_COLUMNS)
    if tenant_id is not None:
        query = query.where(Bot.tenant_id == tenant_id)
    return list(map(StatusRow._make, connection.execute(query.order_by(Bot.created_at, Bot.id)).all()))


def subdomain_taken(connection: Connection, subdomain: str, bot_id: str) -> bool:
    """Whether another bot, of any tenant, already has `subdomain`, on a Core connection (`Database.core_read`:
    the check before a create or a change)."""
    found = connection.execute(select(Bot.id).where(Bot.subdomain == subdomain, Bot.id != bot_id).limit(1))
    return found.first() is not None


RECONCILE_COLUMNS = (
    Bot.id,
    Bot.tenant_id,
    Bot.container_id,
    Bot.desired_state,
    Bot.restart_policy,
    Bot.image,
    Bot.image_digest,
    Bot.env,
    Bot.volume_name,
    Bot.volume_generation,
    Bot.resources,
    Bot.updated_at,
    Bot.gateway_key_epoch,  # a platform-given env value (the gateway key) is derived from it
)


ROUTE_COLUMNS = (Bot.id, Bot.tenant_id, Bot.name, Bot.subdomain, Bot.desired_state, Bot.container_id)


def _conflict(err: IntegrityError) -> Conflict:
    text = str(err.orig).lower()
    # the constraint (PostgreSQL) or column (SQLite) is named on the first line; later lines may quote values
    if "uq_bots_subdomain" in text.partition("\n")[0] or "bots.subdomain" in text:
        return Conflict("subdomain is already used by another bot", details={"field": "subdomain"})
    if "volume" in text:
        return Conflict("volumeName is already used by another bot", details={"field": "volumeName"})
    return Conflict("a bot with this name already exists", details={"field": "name"})


SEED_CREATING = "creating"  # a seed claim whose bot is not running yet (templates mark it created)


class BotRepository:
    """Bots of one session; every read is scoped to a tenant."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def has_bots(self, tenant_id: str) -> bool:
        """Whether the tenant has any bot."""
        found = await self._session.execute(select(Bot.id).where(Bot.tenant_id == tenant_id).limit(1))
        return found.first() is not None

    async def desired_states(self, tenant_id: str) -> dict[str, str]:
        """Bot id → desired state of each of the tenant's bots."""
        result = await self._session.execute(select(Bot.id, Bot.desired_state).where(Bot.tenant_id == tenant_id))
        return {bot_id: state for bot_id, state in result.all()}

    async def list_all(self) -> Sequence[Bot]:
        """Every bot of every tenant (start-up and background work only)."""
        result = await self._session.execute(select(Bot).order_by(Bot.created_at, Bot.id))
        return result.scalars().all()

    async def ids(self, tenant_id: str | None) -> Sequence[tuple[str, str]]:
        """(bot id, tenant id) of every bot of the tenant (of every tenant for None)."""
        query = select(Bot.id, Bot.tenant_id)
        if tenant_id is not None:
            query = query.where(Bot.tenant_id == tenant_id)
        result = await self._session.execute(query.order_by(Bot.id))
        return [(bot_id, tenant) for bot_id, tenant in result.all()]

    async def list_for_reconcile(self) -> Sequence[Any]:
        """What the reconciler compares, for every bot, as plain rows."""
        result = await self._session.execute(select(*RECONCILE_COLUMNS).order_by(Bot.created_at, Bot.id))
        return result.all()

    async def in_flight(self, since: datetime) -> set[str]:
        """The bots with an operation in flight that began after `since` (on this replica or another)."""
        result = await self._session.execute(select(Operation.bot_id).where(Operation.created_at >= since))
        return set(result.scalars().all())

    async def list_routes(self) -> Sequence[Any]:
        """What tenant routing needs of every bot of every tenant, as plain rows (background work only)."""
        result = await self._session.execute(select(*ROUTE_COLUMNS).order_by(Bot.created_at, Bot.id))
        return result.all()

    async def routes_fingerprint(self) -> tuple[Any, ...]:
        """How many bots there are and when one last changed: a cheap sign that routing columns may have changed."""
        result = await self._session.execute(select(func.count(), func.max(Bot.updated_at)))
        return tuple(result.one())

    async def get(self, tenant_id: str, bot_id: str) -> Bot | None:
        result = await self._session.execute(select(Bot).where(Bot.tenant_id == tenant_id, Bot.id == bot_id))
        return result.scalar_one_or_none()

    async def get_any(self, bot_id: str) -> Bot | None:
        """A bot by id whatever its tenant (background work only, never a request)."""
        return await self._session.get(Bot, bot_id)

    async def add(self, bot: Bot) -> None:
        """Insert; a taken name or volume in the tenant is a Conflict."""
        self._session.add(bot)
        try:
            await self._session.flush()
        except IntegrityError as err:
            raise _conflict(err) from None

    async def flush(self) -> None:
        """Write pending changes; a taken name or volume in the tenant is a Conflict."""
        try:
            await self._session.flush()
        except IntegrityError as err:
            raise _conflict(err) from None

    async def delete(self, bot_id: str) -> Any | None:
        """Delete the bot; its row's `resources` (what it counted against its tenant's quotas), None when there was
        no such bot. Only `fleet.quotas` calls it, so the usage is given back in the same transaction."""
        result = await self._session.execute(
            delete(Bot).where(Bot.id == bot_id).returning(Bot.resources).execution_options(synchronize_session=False)
        )
        return result.first()

    async def claim_seed(self, bot: Bot, version: int, *, stale_bot_id: str | None) -> None:
        """Record `bot` as its template's seeded bot in the tenant (state `creating`), replacing a stale claim;
        a Conflict (`already_seeded`) when another seed recorded one first."""
        template = bot.template_name
        assert template is not None
        if stale_bot_id is not None:
            await self._session.execute(
                delete(TemplateSeed).where(
                    TemplateSeed.tenant_id == bot.tenant_id,
                    TemplateSeed.template_name == template,
                    TemplateSeed.bot_id == stale_bot_id,
                    TemplateSeed.state == SEED_CREATING,
                )
            )
        now = datetime.now(UTC)
        self._session.add(
            TemplateSeed(
                tenant_id=bot.tenant_id,
                template_name=template,
                template_version=version,
                bot_id=bot.id,
                state=SEED_CREATING,
                created_at=now,
                updated_at=now,
            )
        )
        try:
            await self._session.flush()
        except IntegrityError:
            raise Conflict(
                f"template {template} has already been seeded",
                details={"code": "already_seeded", "template": template},
            ) from None

    async def release_seed(self, bot_id: str) -> None:
        """Forget the seed claim of a bot that could not be created."""
        await self._session.execute(
            delete(TemplateSeed).where(TemplateSeed.bot_id == bot_id, TemplateSeed.state == SEED_CREATING)
        )

    async def resources_of(self, bot_ids: Collection[str]) -> dict[str, dict[str, Any] | None]:
        """The own `resources` of each of these bots that exists."""
        found: dict[str, dict[str, Any] | None] = {}
        ids = list(bot_ids)
        for start in range(0, len(ids), 500):  # within every backend's limit of bound parameters
            result = await self._session.execute(
                select(Bot.id, Bot.resources).where(Bot.id.in_(ids[start : start + 500]))
            )
            found.update({bot_id: own for bot_id, own in result.all()})
        return found

    async def volume_names(self, tenant_id: str) -> set[tuple[str, int]]:
        """The `volumeName` and volume generation every bot of the tenant has now."""
        result = await self._session.execute(
            select(Bot.volume_name, Bot.volume_generation).where(Bot.tenant_id == tenant_id)
        )
        return {(name, generation) for name, generation in result.all()}

    async def taken(self, tenant_id: str, bot_id: str, *, name: str | None, volume: str | None) -> str | None:
        """Which of `name` / `volume` another bot of the tenant already uses (None when both are free)."""
        if name is not None:
            found = await self._session.execute(
                select(Bot.id).where(Bot.tenant_id == tenant_id, Bot.name == name, Bot.id != bot_id)
            )
            if found.first():
                return "name"
        if volume is not None:
            found = await self._session.execute(
                select(Bot.id).where(Bot.tenant_id == tenant_id, Bot.volume_name == volume, Bot.id != bot_id)
            )
            if found.first():
                return "volumeName"
        return None
