"""The list's census (every bot's live status and the counts by state) is counted once and kept while nothing it
depends on changes: a page of a large fleet costs its own rows, not a pass over every bot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from tests.unit.test_events import _Healthy
from wopr_platform.core.settings import Settings
from wopr_platform.docker.types import ContainerInfo
from wopr_platform.fleet.lifecycle.listing import BotQuery, page
from wopr_platform.fleet.lifecycle.views import BotViews
from wopr_platform.fleet.observation.health import HealthMonitor, ProbeConfig
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.fleet.observation.stats import StatsCollector

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    """A bot's status row (the columns of `fleet.repository.StatusRow`)."""

    id: str
    container_id: str | None
    tenant_id: str = "t"
    name: str = "bot"
    description: str | None = None
    image: str = "img"
    desired_state: str = "running"
    template_name: str | None = None
    created_at: datetime = START
    updated_at: datetime = START


def _container(bot: str, state: str) -> ContainerInfo:
    return ContainerInfo(f"c-{bot}", bot, bot, "t", state, "img", "sha", None, START, ip_address="10.0.0.2")


def _views() -> tuple[BotViews, ObservedState, HealthMonitor]:
    observed = ObservedState()
    health = HealthMonitor(observed, _Healthy(), defaults=ProbeConfig("/health", 10, 1, 3, 30))
    # the census reads only the observed state and the health; the stats and settings are not consulted
    views = BotViews(observed=observed, health=health, stats=cast(StatsCollector, None), settings=cast(Settings, None))
    return views, observed, health


def test_the_census_is_kept_while_nothing_changes_and_counted_again_after_a_change() -> None:
    views, observed, health = _views()
    rows: list[Any] = [Row(f"b{i}", f"c-b{i}") for i in range(5)]
    for row in rows[:3]:
        observed.apply(_container(row.id, "running"))
    first = views._census(rows)
    assert first.counts == {"running": 3, "stopped": 2}
    assert views._census(rows) is first  # nothing changed: the same census, no pass over the rows

    observed.apply(_container("b3", "exited"))  # the engine reported a change
    second = views._census(rows)
    assert second is not first and second.counts == {"running": 3, "exited": 1, "stopped": 1}

    health.version += 1  # a probe changed a bot's health
    assert views._census(rows) is not second

    other = list(rows)  # the list re-read after a write: another sequence, counted on its own
    assert views._census(other) is not views._census(rows)


def test_a_page_takes_its_counts_and_filters_from_the_census() -> None:
    views, observed, _ = _views()
    rows: list[Any] = [Row(f"b{i}", f"c-b{i}", created_at=START.replace(day=1 + i)) for i in range(4)]
    observed.apply(_container("b1", "running"))
    found = page(rows, BotQuery(state="running", limit=10), views._census(rows))
    assert ([r.id for r in found.rows], found.counts) == (["b1"], {"running": 1, "stopped": 3})
    observed.forget("c-b1")
    found = page(rows, BotQuery(limit=1), views._census(rows))
    assert ([r.id for r in found.rows], found.counts) == (["b0"], {"stopped": 4})
