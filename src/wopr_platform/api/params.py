"""Query parameters several routes take, parsed one way."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BeforeValidator

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_8601(value: object) -> object:
    """Only ISO 8601 text is a time here (pydantic would also read `0.0` or `1700000000` as one)."""
    if isinstance(value, str) and not ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date and time, e.g. 2026-01-31T12:00:00Z")
    return value


def as_utc(value: datetime | None) -> datetime | None:
    """A time without an offset is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


Time = Annotated[datetime | None, BeforeValidator(_iso_8601)]
