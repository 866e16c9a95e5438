"""The hook the fleet asks before a bot may run: what lies above it (billing) decides, the fleet knows nothing of
why. A refusal is a PlatformError (billing's: 402 insufficient_credits) and nothing is touched."""

from __future__ import annotations

from typing import Literal, Protocol

Action = Literal["create", "start", "restart", "change"]


class Admission(Protocol):
    async def admit(
        self, tenant_id: str, action: Action, *, memory_mb: int | None = None, channel: str | None = None
    ) -> None:
        """Return when the tenant may do this now; raise a PlatformError when it may not. A create or a change
        names the effective memory limit and the release channel the bot will have (None: unchanged)."""
        ...
