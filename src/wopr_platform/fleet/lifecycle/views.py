"""What the fleet's answers show of a bot: its profile joined with what the engine, the health probes and the
stats collector last reported (no Docker call, no query)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from wopr_platform.core.addresses import PublicAddress
from wopr_platform.core.settings import Settings
from wopr_platform.db.models import Bot
from wopr_platform.fleet import resources
from wopr_platform.fleet.observation.health import HealthMonitor
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.fleet.observation.stats import StatsCollector
from wopr_platform.fleet.schemas import BotDetail, BotList, BotProfile, BotStatus, Stats
from wopr_platform.fleet.secrets.redaction import redact_env


class BotViews:
    """Builds BotStatus, BotDetail and BotProfile answers."""

    def __init__(
        self, *, observed: ObservedState, health: HealthMonitor, stats: StatsCollector, settings: Settings
    ) -> None:
        self._observed = observed
        self._health = health
        self._stats = stats
        self._settings = settings

    def bot_list(self, rows: Sequence[Bot | Row[Any]], now: datetime) -> BotList:
        """Built without validation (`model_construct`): every value comes from the platform's own rows and
        observations, and this list can be a thousand bots long."""
        return BotList.model_construct(bots=[BotStatus.model_construct(**self._status(bot, now)) for bot in rows])

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

    def _status(self, bot: Bot | Row[Any], now: datetime) -> dict[str, Any]:
        """The fields of a BotStatus (by field name), from the row and what the engine last reported."""
        info = self._observed.for_bot(bot.id, bot.container_id)
        running = info is not None and info.state == "running"
        started = info.started_at if info is not None and running else None
        usage = self._stats.usage(info.id) if info is not None and running else None
        return {
            "id": bot.id,
            "name": bot.name,
            "description": bot.description,
            "image": bot.image,
            "container_id": info.id if info else bot.container_id,
            # the original's values for a bot without a container; `observedState` tells missing from unknown
            "state": info.state if info else "stopped",
            "observed_state": info.state if info else ("unknown" if self._observed.stale_reason else "missing"),
            "health": self._health.status(info) if info else None,
            "uptime": started,  # the original's field: when the running container started
            "uptime_seconds": int((now - started).total_seconds()) if started else None,
            "started_at": started,
            "created_at": bot.created_at,
            "updated_at": bot.updated_at,
            "desired_state": bot.desired_state,
            "restart_count": info.restart_count if info else 0,
            "crash_looping": self._observed.crash_looping(bot.id),
            "stale": self._observed.stale_reason is not None,
            "stats": (
                Stats.model_construct(
                    cpu_percent=usage.cpu_percent,
                    memory_usage_mb=usage.memory_usage_mb,
                    memory_limit_mb=usage.memory_limit_mb,
                    memory_percent=usage.memory_percent,
                )
                if usage
                else None
            ),
        }

    def _profile_extra(self, bot: Bot) -> dict[str, Any]:
        """The profile fields a BotStatus does not have (by field name)."""
        limits = resources.effective(bot.resources, self._settings.default_limits)
        return {
            "env": redact_env(bot.env, bot.secret_env_keys),
            "secret_env": list(bot.secret_env_keys or ()),
            "restart_policy": bot.restart_policy,
            "volume_name": bot.volume_name,
            "image_digest": bot.image_digest,
            "release_channel": bot.release_channel,
            "update_policy": bot.update_policy,
            "health_check": bot.health_check,
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
                "desired_state": bot.desired_state,
                "container_id": bot.container_id,
                "created_at": bot.created_at,
                "updated_at": bot.updated_at,
            }
        )
