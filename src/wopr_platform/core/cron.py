"""Five-field cron expressions used by `cron:<expr>` update policies: validation and next fire times (UTC)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {d: i for i, d in enumerate(_DAYS)}),
)
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_ATOM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/([0-9]+))?$")
# every calendar combination repeats within 28 years; a day-of-month/month pair that never occurs (Feb 30)
# gives up after that many days instead of looping forever
_SEARCH_DAYS = 366 * 28


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


def _field(part: str, field: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        match = _ATOM.match(item)
        if not match:
            raise InvalidCron(f"{field}: {item!r} is not valid")
        base, step_text = match.groups()
        step = 1
        if step_text is not None:
            step = int(step_text)
            if not 1 <= step <= high:
                raise InvalidCron(f"{field}: step {step_text} is out of range")
        if base == "*":
            start, end = low, high
        else:
            ends = [_value(end, low, high, names, field) for end in base.split("-")]
            start, end = ends[0], ends[-1]
            if start > end:
                raise InvalidCron(f"{field}: range {base} runs backwards")
            if len(ends) == 1 and step_text is not None:
                end = high  # `5/15` means from 5 to the end, every 15
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed expression; `next_after` gives its next fire time."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 is folded into 0)
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse five fields (or a macro such as @daily); raise InvalidCron with the reason otherwise."""
        text = expression.strip().lower()
        text = _MACROS.get(text, text)
        parts = text.split()
        if len(parts) != 5:
            raise InvalidCron("a cron expression has five fields: minute hour day-of-month month day-of-week")
        sets = [_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(0 if day == 7 else day for day in sets[4])
        return cls(sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] == "*", parts[4] == "*")

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week  # the unrestricted one matches every day
        return in_month or in_week  # both restricted: cron fires on either

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after `moment` (same timezone), or None if the calendar has none."""
        start = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        first_day = start.replace(hour=0, minute=0)
        for offset in range(_SEARCH_DAYS):
            day = first_day + timedelta(days=offset)
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate >= start:
                            return candidate
        return None


def validate_cron(expression: str) -> None:
    """Raise InvalidCron unless `expression` is five fields (or a macro such as @daily)."""
    CronSchedule.parse(expression)
