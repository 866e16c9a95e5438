"""Five-field cron expressions for `cron:<expr>` update policies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wopr_platform.core.cron import CronSchedule, InvalidCron, validate_cron


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "0 3 * * *",
        "59 23 31 12 7",
        "0 0 1 1 0",
        "*/15 * * * *",
        "0-30/5 * * * *",
        "5,10,15 * * * *",
        "0 9-17 * * 1-5",
        "0 0 1 jan *",
        "0 0 * jan-mar mon-fri",
        "0 0 * * SUN",
        "0 0 * * sun,sat",
        "  0  3  *  *  *  ",
        "@daily",
        "@HOURLY",
        "@midnight",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
    ],
)
def test_valid_expressions_pass(expression: str) -> None:
    """Numbers, ranges, steps, lists, month and weekday names (any case) and the @ macros are accepted."""
    validate_cron(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "   ",
        "* * *",
        "* * * *",
        "* * * * * *",
        "99 * * * *",
        "60 * * * *",
        "-1 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 0 *",
        "* * * 13 *",
        "* * * * 8",
        "*/0 * * * *",
        "*/60 * * * *",
        "30-5 * * * *",
        "1-2-3 * * * *",
        "1,,2 * * * *",
        "1, * * * *",
        "a * * * *",
        "mon * * * *",
        "* * * foo *",
        "* * * * jan",
        "** * * * *",
        "? * * * *",
        "\u0663 * * * *",
        "@reboot",
        "@every 5m",
    ],
    ids=repr,
)
def test_invalid_expressions_raise(expression: str) -> None:
    """Wrong field counts, values out of range, zero or oversize steps, backwards ranges and junk all fail."""
    with pytest.raises(InvalidCron):
        validate_cron(expression)


def test_the_error_names_the_field() -> None:
    """The message says which field is wrong, so an API answer can point at it."""
    with pytest.raises(InvalidCron, match="hour"):
        validate_cron("0 25 * * *")
    with pytest.raises(InvalidCron, match="day of week"):
        validate_cron("0 0 * * 9")


def test_invalid_cron_is_a_value_error() -> None:
    """Pydantic validators turn ValueError into a 400, so InvalidCron must be one."""
    assert issubclass(InvalidCron, ValueError)


UTC_TIME = "%Y-%m-%d %H:%M"


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 3 * * *", "2026-11-25 02:59", "2026-11-25 03:00"),
        ("0 3 * * *", "2026-11-25 03:00", "2026-11-26 03:00"),
        ("*/15 * * * *", "2026-11-25 10:07", "2026-11-25 10:15"),
        ("5/20 * * * *", "2026-11-25 10:26", "2026-11-25 10:45"),
        ("0 9-17 * * 1-5", "2026-11-27 18:00", "2026-11-30 09:00"),  # Friday evening → Monday
        ("0 0 * * 7", "2026-11-25 00:00", "2026-11-29 00:00"),  # 7 is Sunday too
        ("0 0 29 2 *", "2026-03-01 00:00", "2028-02-29 00:00"),  # the next leap day
        ("0 0 13 * 5", "2026-11-25 00:00", "2026-11-27 00:00"),  # both day fields: either matches
        ("30 23 31 dec *", "2026-11-25 00:00", "2026-12-31 23:30"),
        ("@hourly", "2026-11-25 10:00", "2026-11-25 11:00"),
        ("@weekly", "2026-11-25 10:00", "2026-11-29 00:00"),
    ],
)
def test_next_fire_time(expression: str, after: str, expected: str) -> None:
    """The next fire time is strictly after the given moment and honours ranges, steps, names and both day fields."""
    moment = datetime.strptime(after, UTC_TIME).replace(tzinfo=UTC)
    fire = CronSchedule.parse(expression).next_after(moment)
    assert fire is not None
    assert fire.strftime(UTC_TIME) == expected
    assert fire.tzinfo is UTC


def test_a_date_that_never_comes_has_no_fire_time() -> None:
    """February 30th never occurs: no fire time, and no endless search."""
    assert CronSchedule.parse("0 0 30 2 *").next_after(datetime(2026, 1, 1, tzinfo=UTC)) is None
