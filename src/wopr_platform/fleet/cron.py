"""Validation of five-field cron expressions used by `cron:<expr>` update policies."""

from __future__ import annotations

import re

_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {
            m: i + 1
            for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
        },
    ),
    ("day of week", 0, 7, {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}),
)
_MACROS = {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}
_ATOM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/([0-9]+))?$")


class InvalidCron(ValueError):
    """The expression is not a valid five-field cron expression."""


def _value(text: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    if text.isdigit():
        number = int(text)
    elif text in names:
        number = names[text]
    else:
        raise InvalidCron(f"{field}: {text!r} is not a number or name")
    if not low <= number <= high:
        raise InvalidCron(f"{field}: {number} is outside {low}-{high}")
    return number


def validate_cron(expression: str) -> None:
    """Raise InvalidCron unless `expression` is five fields (or a macro such as @daily)."""
    text = expression.strip().lower()
    if text in _MACROS:
        return
    parts = text.split()
    if len(parts) != 5:
        raise InvalidCron("a cron expression has five fields: minute hour day-of-month month day-of-week")
    for part, (field, low, high, names) in zip(parts, _FIELDS, strict=True):
        for item in part.split(","):
            match = _ATOM.match(item)
            if not match:
                raise InvalidCron(f"{field}: {item!r} is not valid")
            base, step = match.groups()
            if step is not None and not 1 <= int(step) <= high:
                raise InvalidCron(f"{field}: step {step} is out of range")
            if base == "*":
                continue
            ends = base.split("-")
            values = [_value(end, low, high, names, field) for end in ends]
            if len(values) == 2 and values[0] > values[1]:
                raise InvalidCron(f"{field}: range {base} runs backwards")
