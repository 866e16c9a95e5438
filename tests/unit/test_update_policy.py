"""Update policies (when an available update applies) and rollout wave plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wopr_platform.core.policy import UpdatePolicy
from wopr_platform.updates.rollouts import plan_waves

HOUR = timedelta(hours=1)


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def test_on_push_is_due_at_once_and_manual_never() -> None:
    seen, now = at("2026-11-25 10:00"), at("2026-11-25 10:00")
    assert UpdatePolicy.parse("on-push", nightly_at="03:00").due(seen, now, HOUR)
    manual = UpdatePolicy.parse("manual", nightly_at="03:00")
    assert not manual.automatic
    assert manual.applies_at(seen, now + timedelta(days=30), HOUR) is None


@pytest.mark.parametrize(
    ("seen", "now", "expected"),
    [
        ("2026-11-25 12:00", "2026-11-25 12:05", "2026-11-26 03:00"),  # waits for the night
        ("2026-11-25 12:00", "2026-11-26 03:00", "due"),
        ("2026-11-25 12:00", "2026-11-26 03:59", "due"),  # still inside the one-hour window
        ("2026-11-25 12:00", "2026-11-26 04:00", "2026-11-27 03:00"),  # missed the window: the next night
        ("2026-11-26 03:30", "2026-11-26 03:40", "2026-11-27 03:00"),  # seen after tonight's time: tomorrow
    ],
)
def test_nightly_applies_inside_its_window_after_the_digest_was_seen(seen: str, now: str, expected: str) -> None:
    policy = UpdatePolicy.parse("nightly", nightly_at="03:00")
    when = policy.applies_at(at(seen), at(now), HOUR)
    assert when == (at(now) if expected == "due" else at(expected))


def test_nightly_time_is_configurable_and_cron_uses_its_expression() -> None:
    seen = at("2026-11-25 12:00")
    assert UpdatePolicy.parse("nightly", nightly_at="22:15").applies_at(seen, seen, HOUR) == at("2026-11-25 22:15")
    weekly = UpdatePolicy.parse("cron:0 6 * * mon", nightly_at="03:00")
    assert weekly.applies_at(seen, seen, HOUR) == at("2026-11-30 06:00")  # 2026-11-25 is a Wednesday
    assert weekly.due(seen, at("2026-11-30 06:10"), HOUR)


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown update policy"):
        UpdatePolicy.parse("weekly", nightly_at="03:00")


@pytest.mark.parametrize(
    ("total", "sizes", "ends"),
    [
        (1, ["1", "25%", "100%"], [1]),
        (3, ["1", "25%", "100%"], [1, 3]),
        (20, ["1", "25%", "100%"], [1, 5, 20]),
        (1000, ["1", "10%", "50%", "100%"], [1, 100, 500, 1000]),
        (10, ["5"], [5, 10]),  # the rest always follows the last wave
        (4, ["100%"], [4]),
        (7, ["3", "2", "50%"], [3, 4, 7]),  # sizes that do not grow are dropped
    ],
)
def test_wave_plan(total: int, sizes: list[str], ends: list[int]) -> None:
    assert plan_waves(total, sizes) == ends
