"""Pages and filters of a tenant's bot list, taken from the rows the list already holds in memory.

The rows are in the list's order (created, then id). A cursor names the last bot of a page by that order, so a
page goes on where the last one ended even when that bot was removed meanwhile; a cursor is opaque to clients
and anything but one the platform made is refused. Filters on the profile (name prefix, image, template) are read
from the rows, those on the live status (state, health) from what the engine and the probes last reported.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from wopr_platform.core.errors import ValidationFailed
from wopr_platform.fleet.schemas import BotListState

MAX_PAGE = 1000
ALL_TENANTS = "*"  # what a platform admin asks for to list every tenant's bots
STATES: tuple[str, ...] = get_args(BotListState)  # the order counts are given in


@dataclass(frozen=True, slots=True)
class BotQuery:
    """What a client asks of the list: a page (`limit` bots after the `after` cursor) and filters."""

    limit: int | None = None
    after: str | None = None
    state: str | None = None
    health: str | None = None
    name_prefix: str | None = None
    image: str | None = None
    template: str | None = None

    @property
    def whole(self) -> bool:
        """The whole list in its original shape (no page, no filter)."""
        return self == BotQuery()


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """What the list shows of a bot's container now: its state as BotStatus has it, and its health."""

    state: str
    health: str | None


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]
    next_after: str | None
    counts: dict[str, int]


def cursor_of(row: Any) -> str:
    """The cursor that names `row`'s place in the list."""
    return base64.urlsafe_b64encode(f"{row.created_at.isoformat()}|{row.id}".encode()).decode().rstrip("=")


def _place(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, bot_id = raw.split("|", 1)
        return datetime.fromisoformat(created), bot_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationFailed(
            "after: not a cursor of this list (use the nextAfter of the page before)",
            details={"field": "after", "code": "invalid_cursor"},
        ) from None


@dataclass(frozen=True, slots=True)
class Census:
    """Every row's live status, and the rows counted by state: one pass over the fleet, which a caller may keep
    for as long as neither the rows nor what the engine and the probes report change."""

    statuses: dict[str, LiveStatus]
    counts: dict[str, int]

    @classmethod
    def of(cls, rows: Sequence[Any], live: Callable[[Any], LiveStatus]) -> Census:
        counts: Counter[str] = Counter()
        statuses: dict[str, LiveStatus] = {}
        for row in rows:
            status = statuses[row.id] = live(row)
            counts[status.state] += 1
        return cls(statuses, {state: counts[state] for state in STATES if counts[state]})


def page(rows: Sequence[Any], query: BotQuery, census: Census) -> Page:
    """The bots of `rows` that `query` selects, at most `query.limit` of them after its cursor; the counts by
    state are of every row (the tenant's whole fleet), whatever the filters."""
    statuses = census.statuses
    start = 0
    if query.after is not None:
        created, bot_id = _place(query.after)
        start = bisect_right(rows, (created, bot_id), key=lambda row: (row.created_at, row.id))
    chosen: list[Any] = []
    limit = query.limit if query.limit is not None else len(rows)
    more = False
    for row in rows[start:]:
        if not _selected(row, statuses[row.id], query):
            continue
        if len(chosen) == limit:
            more = True
            break
        chosen.append(row)
    return Page(
        rows=chosen,
        next_after=cursor_of(chosen[-1]) if more and chosen else None,
        counts=census.counts,
    )


def _selected(row: Any, status: LiveStatus, query: BotQuery) -> bool:
    return (
        (query.name_prefix is None or row.name.startswith(query.name_prefix))
        and (query.image is None or row.image == query.image)
        and (query.template is None or row.template_name == query.template)
        and (query.state is None or status.state == query.state)
        and (query.health is None or (status.health or "none") == query.health)
    )
