"""Five-field cron expressions for `cron:<expr>` update policies."""

from __future__ import annotations

import pytest

from wopr_platform.fleet.cron import InvalidCron, validate_cron


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
