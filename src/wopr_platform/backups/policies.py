"""Backup policies (when bots are backed up, how long backups are kept, how much a tenant may store) and the
leader's loop that carries them out.

A policy is the platform's defaults (`BACKUP_*` settings), a tenant's, or a bot's; each field a narrower one leaves
empty comes from the wider one. Every round: the schedules that came due since they last ran back up their bots,
then retention removes what is past keep-last-N or max-age (never a bot's newest ready backup by age alone), and
backups a crash left half-written are swept.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from wopr_platform.backups.repository import BackupRepository
from wopr_platform.backups.schemas import EffectivePolicy, PolicyIn, PolicyOut
from wopr_platform.backups.service import Backups
from wopr_platform.core.cron import CronSchedule
from wopr_platform.core.errors import NotFound, PlatformError, ValidationFailed
from wopr_platform.core.rounds import run_rounds
from wopr_platform.core.settings import Settings
from wopr_platform.db.models import Backup, BackupPolicy
from wopr_platform.db.unit import Database
from wopr_platform.fleet.lifecycle.service import FleetService

log = logging.getLogger(__name__)

PLATFORM_SCOPE = "platform"
UNFINISHED_AFTER = timedelta(hours=6)  # no backup is written this long: one still `creating` was interrupted


@dataclass(frozen=True, slots=True)
class Rules:
    """One bot's effective policy."""

    schedule: str | None
    schedule_scope: str | None  # whose schedule it is (the scope whose last run counts)
    keep_last: int
    max_age_days: int


def tenant_scope(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def bot_scope(bot_id: str) -> str:
    return f"bot:{bot_id}"


class BackupPolicies:
    """Reads and sets policies, and works out each bot's effective one."""

    def __init__(self, *, db: Database, fleet: FleetService, settings: Settings, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._fleet = fleet
        self._settings = settings
        self._clock = clock

    async def get(self, tenant_id: str, bot_id: str | None = None) -> PolicyOut:
        if bot_id is not None:
            await self._fleet.get_bot(tenant_id, bot_id)  # 404 for another tenant's bot
        scope = bot_scope(bot_id) if bot_id else tenant_scope(tenant_id)
        async with self._db.read() as session:
            repo = BackupRepository(session)
            own = await repo.policy(scope)
            tenant = await repo.policy(tenant_scope(tenant_id))
        return self._out(scope, own, tenant, bot_level=bot_id is not None)

    async def set(self, tenant_id: str, policy: PolicyIn, bot_id: str | None = None) -> PolicyOut:
        if bot_id is not None:
            await self._fleet.get_bot(tenant_id, bot_id)
            if policy.quota_bytes is not None:
                raise ValidationFailed("quotaBytes is a tenant's, not a bot's", details={"field": "quotaBytes"})
        scope = bot_scope(bot_id) if bot_id else tenant_scope(tenant_id)
        now = self._clock()
        async with self._db.unit() as session:
            repo = BackupRepository(session)
            row = await repo.policy(scope)
            if row is None:
                row = BackupPolicy(scope=scope, tenant_id=tenant_id, bot_id=bot_id, updated_at=now)
                repo.add_policy(row)
            if row.schedule != policy.schedule:
                row.last_run_at = now  # a new schedule counts from now, not from the old one's last run
            row.schedule = policy.schedule
            row.keep_last = policy.keep_last
            row.max_age_days = policy.max_age_days
            row.quota_bytes = policy.quota_bytes
            row.updated_at = now
            tenant = row if bot_id is None else await repo.policy(tenant_scope(tenant_id))
            return self._out(scope, row, tenant, bot_level=bot_id is not None)

    def _out(self, scope: str, own: BackupPolicy | None, tenant: BackupPolicy | None, *, bot_level: bool) -> PolicyOut:
        rules = self._rules(own if bot_level else None, tenant)
        quota = tenant.quota_bytes if tenant is not None and tenant.quota_bytes is not None else None
        return PolicyOut(
            scope=scope,
            schedule=own.schedule if own else None,
            keep_last=own.keep_last if own else None,
            max_age_days=own.max_age_days if own else None,
            quota_bytes=own.quota_bytes if own else None,
            effective=EffectivePolicy(
                schedule=rules.schedule,
                keep_last=rules.keep_last,
                max_age_days=rules.max_age_days,
                quota_bytes=quota if quota is not None else self._settings.backup_tenant_quota_bytes,
            ),
        )

    def _rules(self, bot: BackupPolicy | None, tenant: BackupPolicy | None) -> Rules:
        schedule: str | None = self._settings.backup_schedule
        schedule_scope: str | None = PLATFORM_SCOPE if schedule else None
        keep_last = self._settings.backup_keep_last
        max_age = self._settings.backup_max_age_days
        for policy in (tenant, bot):
            if policy is None:
                continue
            if policy.schedule is not None:
                schedule, schedule_scope = policy.schedule, policy.scope
            if policy.keep_last is not None:
                keep_last = policy.keep_last
            if policy.max_age_days is not None:
                max_age = policy.max_age_days
        return Rules(schedule, schedule_scope, keep_last, max_age)

    def defaults(self) -> Rules:
        """The platform's own policy (what a removed bot's backups follow when its tenant has none)."""
        return self._rules(None, None)

    async def all_rules(self) -> dict[str, tuple[str, Rules]]:
        """Bot id → (tenant, effective policy) of every bot, in two queries."""
        bots = await self._fleet.bot_ids()
        async with self._db.read() as session:
            result = await session.execute(select(BackupPolicy))
            policies = {row.scope: row for row in result.scalars().all()}
        return {
            bot_id: (tenant_id, self._rules(policies.get(bot_scope(bot_id)), policies.get(tenant_scope(tenant_id))))
            for bot_id, tenant_id in bots
        }


class BackupRounds:
    """The leader's loop: scheduled backups, retention and the sweep of interrupted ones."""

    name = "backups"

    def __init__(
        self,
        *,
        db: Database,
        backups: Backups,
        policies: BackupPolicies,
        clock: Callable[[], datetime],
        interval: float,
    ) -> None:
        self._db = db
        self._backups = backups
        self._policies = policies
        self._clock = clock
        self._interval = interval
        self._wake = asyncio.Event()

    def kick(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        await run_rounds(stop, self._wake, self._interval, self.round, "backup round")

    async def round(self) -> None:
        rules = await self._policies.all_rules()
        await self.scheduled(rules)
        await self.retain(rules)
        await self._backups.sweep_unfinished(UNFINISHED_AFTER)

    async def scheduled(self, rules: dict[str, tuple[str, Rules]]) -> int:
        """Back up the bots whose schedule came due since its last run; how many backups were made."""
        now = self._clock()
        due_scopes = await self._due_scopes({r.schedule_scope: r.schedule for _, r in rules.values()}, now)
        made = 0
        for bot_id, (tenant_id, rule) in sorted(rules.items()):
            if rule.schedule_scope not in due_scopes:
                continue
            try:
                await self._backups.create(tenant_id, bot_id, kind="scheduled")
                made += 1
            except NotFound:
                continue  # removed meanwhile
            except PlatformError as err:
                log.warning("a scheduled backup failed", extra={"bot_id": bot_id, "reason": err.message})
        return made

    async def _due_scopes(self, schedules: dict[str | None, str | None], now: datetime) -> set[str]:
        """The scopes whose schedule fired since it last ran; their last run is moved to now."""
        due: set[str] = set()
        async with self._db.unit() as session:
            repo = BackupRepository(session)
            for scope, expression in schedules.items():
                if scope is None or expression is None:
                    continue
                row = await repo.policy(scope)
                if row is None:  # the platform's own schedule: its last run is kept in a row of its own
                    row = BackupPolicy(scope=scope, tenant_id="", bot_id=None, last_run_at=now, updated_at=now)
                    repo.add_policy(row)
                    continue
                since = row.last_run_at or row.updated_at
                fire = CronSchedule.parse(expression).next_after(since)
                if fire is not None and fire <= now:
                    due.add(scope)
                    row.last_run_at = now
        return due

    async def retain(self, rules: dict[str, tuple[str, Rules]]) -> int:
        """Remove the backups past each bot's keep-last-N or max-age (a bot's newest ready backup is kept by age;
        a removed bot's backups follow its tenant's policy); how many were removed."""
        now = self._clock()
        async with self._db.read() as session:
            result = await session.execute(
                select(Backup.id, Backup.bot_id, Backup.tenant_id, Backup.created_at, Backup.state).order_by(
                    Backup.bot_id, Backup.created_at.desc()
                )
            )
            rows = result.all()
        by_bot: dict[str, list[tuple[str, str, datetime, str]]] = defaultdict(list)
        for backup_id, bot_id, tenant_id, created_at, state in rows:
            by_bot[bot_id].append((backup_id, tenant_id, created_at, state))
        doomed: list[tuple[str, str]] = []
        for bot_id, backups in by_bot.items():
            rule = rules.get(bot_id, (None, None))[1] or self._policies.defaults()
            doomed.extend(_past_retention(backups, rule, now))
        for backup_id, tenant_id in doomed:
            try:
                await self._backups.delete(tenant_id, backup_id)
            except NotFound:
                continue
            except PlatformError as err:
                log.warning("an old backup could not be removed", extra={"backup_id": backup_id, "reason": err.message})
        if doomed:
            log.info("old backups removed", extra={"count": len(doomed)})
        return len(doomed)


def _past_retention(
    backups: Sequence[tuple[str, str, datetime, str]], rule: Rules, now: datetime
) -> list[tuple[str, str]]:
    """Of one bot's backups (newest first), the ones retention removes: ready ones beyond the newest
    `keep_last` (0: no count limit) or older than `max_age_days` (0: no age limit), except the newest ready one,
    and failed ones a day old."""
    doomed: list[tuple[str, str]] = []
    ready = [b for b in backups if b[3] == "ready"]
    oldest_kept = now - timedelta(days=rule.max_age_days) if rule.max_age_days else None
    for index, (backup_id, tenant_id, created_at, _) in enumerate(ready):
        too_many = rule.keep_last > 0 and index >= rule.keep_last
        too_old = oldest_kept is not None and created_at < oldest_kept and index > 0
        if too_many or too_old:
            doomed.append((backup_id, tenant_id))
    for backup_id, tenant_id, created_at, state in backups:
        if state == "failed" and created_at < now - timedelta(days=1):
            doomed.append((backup_id, tenant_id))
    return doomed
