"""Update policies: when an available image update is applied to a bot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from wopr_platform.core.cron import CronSchedule

PolicyKind = Literal["on-push", "nightly", "manual", "cron"]


@dataclass(frozen=True, slots=True)
class UpdatePolicy:
    """`on-push` applies as soon as a new digest is seen, `manual` never by itself; `nightly` and `cron:<expr>`
    apply at their next fire time after the digest was seen, while the window after that time is open (a
    platform that was down through the window waits for the next one instead of updating at noon)."""

    kind: PolicyKind
    schedule: CronSchedule | None = None

    @classmethod
    def parse(cls, text: str, *, nightly_at: str) -> UpdatePolicy:
        """Parse a stored policy; `nightly_at` is the nightly time as HH:MM (UTC)."""
        if text == "on-push":
            return cls("on-push")
        if text == "manual":
            return cls("manual")
        if text == "nightly":
            hour, minute = nightly_at.split(":")
            return cls("nightly", CronSchedule.parse(f"{int(minute)} {int(hour)} * * *"))
        if text.startswith("cron:"):
            return cls("cron", CronSchedule.parse(text[len("cron:") :]))
        raise ValueError(f"unknown update policy {text!r}")

    @property
    def automatic(self) -> bool:
        return self.kind != "manual"

    def applies_at(self, seen_at: datetime, now: datetime, window: timedelta) -> datetime | None:
        """When an update first seen at `seen_at` applies: `now` if it is due, a later time, or None (never)."""
        if self.kind == "on-push":
            return now
        if self.schedule is None:
            return None
        fire = self.schedule.next_after(max(seen_at, now - window))
        if fire is None:
            return None
        return now if fire <= now else fire

    def due(self, seen_at: datetime, now: datetime, window: timedelta) -> bool:
        return self.applies_at(seen_at, now, window) == now
