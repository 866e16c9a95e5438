"""What the fleet's answers show of a bot: its profile joined with what the engine, the health probes and the
stats collector last reported (no Docker call, no query)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from wopr_platform.core.addresses import PublicAddress
from wopr_platform.core.settings import Settings
from wopr_platform.db.models import Bot
from wopr_platform.docker.types import ContainerInfo
from wopr_platform.fleet import resources
from wopr_platform.fleet.lifecycle import listing
from wopr_platform.fleet.lifecycle.listing import BotQuery
from wopr_platform.fleet.observation.health import HealthMonitor
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.fleet.observation.stats import StatsCollector, Usage
from wopr_platform.fleet.repository import StatusRow
from wopr_platform.fleet.schemas import BotDetail, BotProfile
from wopr_platform.fleet.secrets.redaction import redact_env

MAX_CENSUSES = 64  # tenants' lists counted and kept at once (dropped all together when full)
MAX_FRAGMENTS = 50_000  # bots' rendered statuses kept at once (dropped all together when full)


# what a bot's status shows besides its row, as the engine, the probes and the stats collector last said: its
# container's record, its stats sample, its health, its uptime in whole seconds, the crash-loop and stale flags (a
# plain tuple: one is made for every bot of every list)
_Live = tuple[ContainerInfo | None, Usage | None, str | None, int | None, bool, bool]


@dataclass(slots=True)
class _Fragment:
    """A bot's status as JSON, and what it was rendered from."""

    row: Bot | StatusRow
    live: _Live
    json: bytes


class BotViews:
    """Builds BotStatus, BotDetail and BotProfile answers."""

    def __init__(
        self, *, observed: ObservedState, health: HealthMonitor, stats: StatsCollector, settings: Settings
    ) -> None:
        self._observed = observed
        self._health = health
        self._stats = stats
        self._settings = settings
        # by the identity of the rows they count: (the rows, the versions they were counted at, the census)
        self._censuses: dict[int, tuple[Sequence[Bot | StatusRow], tuple[int, int], listing.Census]] = {}
        self._fragments: dict[str, _Fragment] = {}  # by bot id, see `_status_json`

    def bot_list_json(self, rows: Sequence[Bot | StatusRow], now: datetime, *, every_tenant: bool = False) -> bytes:
        """The BotList answer rendered straight to JSON: the one answer not built as its model, because the list can
        be ten thousand bots long and building a model per bot costs three times the rendering. The same fields as
        BotStatus, by their wire names; the fuzz run checks every answer against BotList's schema. `every_tenant`:
        the rows are every bot there is, so the statuses kept of bots not among them are dropped."""
        body = b'{"bots":[' + b",".join([self._status_json(bot, now) for bot in rows]) + b"]}"
        if every_tenant and len(self._fragments) > len(rows):
            self._fragments = {bot.id: self._fragments[bot.id] for bot in rows}  # the bots deleted since
        return body

    def bot_page_json(self, rows: Sequence[Bot | StatusRow], query: BotQuery, now: datetime) -> bytes:
        """A page of the BotList (see `listing.page`), rendered as `bot_list_json` is, with the cursor of the next
        page (null on the last) and the tenant's bots counted by state."""
        found = listing.page(rows, query, self._census(rows))
        return (
            b'{"bots":['
            + b",".join([self._status_json(bot, now) for bot in found.rows])
            + b'],"nextAfter":'
            + orjson.dumps(found.next_after)
            + b',"counts":'
            + orjson.dumps(found.counts)
            + b"}"
        )

    def _status_json(self, bot: Bot | StatusRow, now: datetime) -> bytes:
        """`_status` as JSON, rendered again only when something it shows changed: its row (a plain row, compared
        by value; a profile object can change in place, so it is always rendered), the container's state, start
        and restarts, its health, its stats sample, its uptime in whole seconds, the crash loop and the stale
        flags. A list of ten thousand bots then costs a comparison per bot, not a status built and encoded per
        bot."""
        live = self._live(bot, now)
        kept = self._fragments.get(bot.id)
        if (
            kept is not None
            and kept.live == live  # a container's record and a stats sample are replaced, not changed: mostly `is`
            and (kept.row is bot or kept.row == bot)
            and not isinstance(bot, Bot)
        ):
            return kept.json
        fragment = orjson.dumps(self._render(bot, live), option=orjson.OPT_UTC_Z)
        if len(self._fragments) >= MAX_FRAGMENTS:
            self._fragments.clear()
        self._fragments[bot.id] = _Fragment(bot, live, fragment)
        return fragment

    def _census(self, rows: Sequence[Bot | StatusRow]) -> listing.Census:
        """Every row's live status, kept while the rows (the list's cache holds one sequence per tenant until a
        write) and the observed state and health stay as they were: a page of a large fleet then costs its own
        rows, not a pass over every bot."""
        key = (self._observed.version, self._health.version)
        kept = self._censuses.get(id(rows))
        if kept is not None and kept[0] is rows and kept[1] == key:
            return kept[2]
        census = listing.Census.of(rows, self.live)
        if len(self._censuses) >= MAX_CENSUSES:
            self._censuses.clear()
        self._censuses[id(rows)] = (rows, key, census)
        return census

    def live(self, bot: Bot | StatusRow) -> listing.LiveStatus:
        """The state and health the list shows for the bot (from memory)."""
        info = self._observed.for_bot(bot.id, bot.container_id)
        return listing.LiveStatus(info.state if info else "stopped", self._health.status(info) if info else None)

    def detail(self, bot: Bot, now: datetime) -> BotDetail:
        return BotDetail.model_validate({**self._status(bot, now), **self._profile_extra(bot), "urls": self._urls(bot)})

    def _urls(self, bot: Bot) -> dict[str, str] | None:
        """The bot's public URLs through the proxy (None when tenant routing is off)."""
        settings = self._settings
        if not settings.proxy_enabled:
            return None
        address = PublicAddress.of(
            domain=settings.proxy_domain, listen=settings.proxy_listen, tls=settings.proxy_tls == "auto"
        )
        return address.urls(bot.subdomain, bot.id)

    def _status(self, bot: Bot | StatusRow, now: datetime) -> dict[str, Any]:
        """A BotStatus by wire names, from the row and what the engine last reported."""
        return self._render(bot, self._live(bot, now))

    def _live(self, bot: Bot | StatusRow, now: datetime) -> _Live:
        observed = self._observed
        info = observed.for_bot(bot.id, bot.container_id)
        running = info if info is not None and info.state == "running" else None
        return (
            info,
            self._stats.usage(running.id) if running is not None else None,
            self._health.status(info) if info is not None else None,
            int((now - running.started_at).total_seconds()) if running and running.started_at else None,
            observed.crash_looping(bot.id),
            observed.stale_reason is not None,
        )

    @staticmethod
    def _render(bot: Bot | StatusRow, live: _Live) -> dict[str, Any]:
        """A BotStatus by wire names, from the row and its live parts."""
        info, usage, health, uptime, crash_looping, stale = live
        started = info.started_at if info is not None and info.state == "running" else None
        return {
            "id": bot.id,
            "tenantId": bot.tenant_id,
            "name": bot.name,
            "description": bot.description,
            "image": bot.image,
            "containerId": info.id if info else bot.container_id,
            # the original's values for a bot without a container; `observedState` tells missing from unknown
            "state": info.state if info else "stopped",
            "observedState": info.state if info else ("unknown" if stale else "missing"),
            "health": health,
            "uptime": started,  # the original's field: when the running container started
            "uptimeSeconds": uptime,
            "startedAt": started,
            "createdAt": bot.created_at,
            "updatedAt": bot.updated_at,
            "desiredState": bot.desired_state,
            "restartCount": info.restart_count if info else 0,
            "crashLooping": crash_looping,
            "stale": stale,
            "stats": (
                {
                    "cpuPercent": usage.cpu_percent,
                    "memoryUsageMb": usage.memory_usage_mb,
                    "memoryLimitMb": usage.memory_limit_mb,
                    "memoryPercent": usage.memory_percent,
                }
                if usage
                else None
            ),
        }

    def _profile_extra(self, bot: Bot) -> dict[str, Any]:
        """The profile fields a BotStatus does not have (by wire name)."""
        limits = resources.effective(bot.resources, self._settings.default_limits)
        return {
            "env": redact_env(bot.env, bot.secret_env_keys),
            "secretEnv": list(bot.secret_env_keys or ()),
            "restartPolicy": bot.restart_policy,
            "volumeName": bot.volume_name,
            "imageDigest": bot.image_digest,
            "releaseChannel": bot.release_channel,
            "updatePolicy": bot.update_policy,
            "healthCheck": bot.health_check,
            "template": {"name": bot.template_name, "version": bot.template_version} if bot.template_name else None,
            "subdomain": bot.subdomain,
            "resources": resources.wire(limits),
        }

    def profile(self, bot: Bot) -> BotProfile:
        return BotProfile.model_validate(
            {
                "id": bot.id,
                "name": bot.name,
                "description": bot.description,
                "image": bot.image,
                **self._profile_extra(bot),
                "desiredState": bot.desired_state,
                "containerId": bot.container_id,
                "createdAt": bot.created_at,
                "updatedAt": bot.updated_at,
            }
        )
