"""Pages and filters of the bot list (fleet/lifecycle/listing.py): every bot once across the pages, a cursor that
survives the removal of the bot it names, filters on the profile and on the live status, tampered cursors refused."""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from wopr_platform.core.errors import ValidationFailed
from wopr_platform.fleet.lifecycle.listing import BotQuery, Census, LiveStatus, cursor_of, page

START = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    id: str
    name: str
    image: str
    template_name: str | None
    created_at: datetime


ROWS = [
    Row(f"id-{i:02}", f"{'web' if i % 2 else 'chat'}-{i}", f"img:{i % 3}", "t" if i < 4 else None, START + timedelta(i))
    for i in range(10)
]
# running: even ids (healthy below 6); stopped: the rest
LIVE = {
    r.id: LiveStatus("running", "healthy" if i < 6 else "starting") if i % 2 == 0 else LiveStatus("stopped", None)
    for i, r in enumerate(ROWS)
}


def _live(row: Row) -> LiveStatus:
    return LIVE[row.id]


def _all_pages(rows: list[Row], query: BotQuery) -> list[list[str]]:
    pages, after = [], None
    while True:
        found = page(rows, dataclasses.replace(query, after=after), Census.of(rows, _live))
        pages.append([row.id for row in found.rows])
        if found.next_after is None:
            return pages
        after = found.next_after


def test_pages_hold_every_bot_once_in_order_and_the_last_says_so() -> None:
    assert _all_pages(ROWS, BotQuery(limit=4)) == [
        ["id-00", "id-01", "id-02", "id-03"],
        ["id-04", "id-05", "id-06", "id-07"],
        ["id-08", "id-09"],
    ]
    exact = page(ROWS, BotQuery(limit=10), Census.of(ROWS, _live))
    assert len(exact.rows) == 10 and exact.next_after is None  # no empty page after a full last one
    assert exact.counts == {"running": 5, "stopped": 5}


def test_a_cursor_goes_on_after_its_bot_was_removed() -> None:
    first = page(ROWS, BotQuery(limit=3), Census.of(ROWS, _live))
    assert [r.id for r in first.rows] == ["id-00", "id-01", "id-02"]
    without = [row for row in ROWS if row.id != "id-02"]  # the page's last bot is gone before the next read
    assert [r.id for r in page(without, BotQuery(limit=3, after=first.next_after), Census.of(without, _live)).rows] == [
        "id-03",
        "id-04",
        "id-05",
    ]


def test_filters_on_the_profile_and_the_live_status_and_counts_stay_the_fleets() -> None:
    def ids(**query: object) -> list[str]:
        return [row.id for row in page(ROWS, BotQuery(**query), Census.of(ROWS, _live)).rows]  # type: ignore[arg-type]

    assert ids(state="running") == ["id-00", "id-02", "id-04", "id-06", "id-08"]
    assert ids(state="running", health="starting") == ["id-06", "id-08"]
    assert ids(health="none") == ["id-01", "id-03", "id-05", "id-07", "id-09"]
    assert ids(name_prefix="web-") == ["id-01", "id-03", "id-05", "id-07", "id-09"]
    assert ids(image="img:0") == ["id-00", "id-03", "id-06", "id-09"]
    assert ids(template="t", state="stopped") == ["id-01", "id-03"]
    assert ids(state="exited") == []
    filtered = page(ROWS, BotQuery(state="running", limit=2), Census.of(ROWS, _live))
    assert filtered.counts == {"running": 5, "stopped": 5}
    assert [
        r.id for r in page(ROWS, BotQuery(state="running", after=filtered.next_after), Census.of(ROWS, _live)).rows
    ] == [
        "id-04",
        "id-06",
        "id-08",
    ]


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        base64.urlsafe_b64encode(b"no separator").decode(),
        base64.urlsafe_b64encode(b"yesterday|x").decode(),
    ],
)
def test_a_cursor_the_platform_did_not_make_is_a_400(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        page(ROWS, BotQuery(limit=2, after=cursor), Census.of(ROWS, _live))
    assert refused.value.details["code"] == "invalid_cursor"
    assert cursor_of(ROWS[0]) != cursor
