"""How the console writes values for people: instants, ages, amounts, sizes (Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def when(value: Any) -> str:
    """An instant as people read it (UTC, to the second)."""
    moment = _parse(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


def ago(value: Any) -> str:
    """How long ago an instant was (for uptimes and ages)."""
    moment = _parse(value)
    if moment is None:
        return "—"
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    return "just now" if seconds < 0 else duration(seconds)


def duration(seconds: int) -> str:
    """A length of time in its largest unit: 3d, 5h, 12m, 40s."""
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds // length}{unit}"
    return f"{seconds}s"


def credits(value: Any) -> str:
    """An amount in the ledger's integer units (millicredits are not shown: integers only)."""
    return f"{value:,}" if isinstance(value, int) else "—"


def size(value: Any) -> str:
    if not isinstance(value, int | float):
        return "—"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"
