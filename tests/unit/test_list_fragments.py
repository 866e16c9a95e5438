"""Each bot's status in the list is rendered once and kept while nothing it shows changes: a list of ten thousand
bots costs a comparison per bot. What is sent must always be what a fresh rendering would say."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any, cast

import orjson

from tests.unit.test_events import _Healthy
from tests.unit.test_list_census import START, Row
from wopr_platform.core.settings import Settings
from wopr_platform.docker.types import ContainerInfo
from wopr_platform.fleet.lifecycle.listing import BotQuery
from wopr_platform.fleet.lifecycle.views import BotViews
from wopr_platform.fleet.observation.health import HealthMonitor, ProbeConfig
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.fleet.observation.stats import StatsCollector, Usage


class Samples:
    """The stats collector's latest usage per container."""

    def __init__(self) -> None:
        self.by_container: dict[str, Usage] = {}

    def usage(self, container_id: str | None) -> Usage | None:
        return self.by_container.get(container_id) if container_id else None


def _container(bot: str, state: str, started: datetime | None = START, restarts: int = 0) -> ContainerInfo:
    return ContainerInfo(
        f"c-{bot}", bot, bot, "t", state, "img", "sha", None, started, restart_count=restarts, ip_address="10.0.0.2"
    )


class Fleet:
    def __init__(self) -> None:
        self.observed = ObservedState()
        self.health = HealthMonitor(self.observed, _Healthy(), defaults=ProbeConfig("/health", 10, 1, 3, 30))
        self.samples = Samples()
        self.views = BotViews(
            observed=self.observed,
            health=self.health,
            stats=cast(StatsCollector, self.samples),
            settings=cast(Settings, None),
        )

    def listed(self, rows: list[Any], now: datetime) -> list[dict[str, Any]]:
        """The list as sent, checked against every bot's status rendered afresh."""
        sent = orjson.loads(self.views.bot_list_json(rows, now))["bots"]
        fresh = [orjson.loads(orjson.dumps(self.views._status(row, now), option=orjson.OPT_UTC_Z)) for row in rows]
        assert sent == fresh
        paged = orjson.loads(self.views.bot_page_json(rows, BotQuery(limit=len(rows) or 1), now))
        assert paged["bots"] == fresh and paged["nextAfter"] is None
        return list(sent)


def test_the_list_shows_every_change_and_renders_only_what_changed() -> None:
    fleet = Fleet()
    rows: list[Any] = [Row(f"b{i}", f"c-b{i}") for i in range(3)]
    for row in rows:
        fleet.observed.apply(_container(row.id, "running"))
    now = START + timedelta(seconds=30)
    first = fleet.listed(rows, now)
    assert [bot["uptimeSeconds"] for bot in first] == [30, 30, 30]
    kept = {bot_id: fragment.json for bot_id, fragment in fleet.views._fragments.items()}
    fleet.listed([dataclasses.replace(row) for row in rows], now)  # the rows re-read, equal: nothing rendered
    assert all(fleet.views._fragments[bot_id].json is fragment for bot_id, fragment in kept.items())

    later = now + timedelta(seconds=2)  # uptime moves on
    assert [bot["uptimeSeconds"] for bot in fleet.listed(rows, later)] == [32, 32, 32]

    fleet.observed.apply(_container("b0", "exited"))  # the engine reports a change
    fleet.observed.apply(_container("b1", "running", restarts=1))
    fleet.samples.by_container["c-b2"] = Usage(1.5, 20.0, 256.0, 7.8)  # a stats sample
    shown = fleet.listed(rows, later)
    assert (shown[0]["state"], shown[0]["uptimeSeconds"]) == ("exited", None)
    assert shown[1]["restartCount"] == 1
    assert shown[2]["stats"]["cpuPercent"] == 1.5
    fleet.samples.by_container["c-b2"] = Usage(2.5, 20.0, 256.0, 7.8)  # the next sample
    assert fleet.listed(rows, later)[2]["stats"]["cpuPercent"] == 2.5

    rows[1] = dataclasses.replace(rows[1], description="renamed", updated_at=later)  # the row changed
    assert fleet.listed(rows, later)[1]["description"] == "renamed"
    fleet.observed.mark_stale("engine gone")  # every status says it is stale
    assert all(bot["stale"] for bot in fleet.listed(rows, later))


def test_statuses_of_deleted_bots_are_dropped_with_a_list_of_every_tenant() -> None:
    fleet = Fleet()
    rows: list[Any] = [Row(f"b{i}", None) for i in range(4)]
    fleet.views.bot_list_json(rows, START, every_tenant=True)
    assert len(fleet.views._fragments) == 4
    fleet.views.bot_list_json(rows[:1], START)  # one tenant's list: the others' are still there
    assert len(fleet.views._fragments) == 4
    fleet.views.bot_list_json(rows[:2], START, every_tenant=True)  # two bots deleted
    assert set(fleet.views._fragments) == {"b0", "b1"}
