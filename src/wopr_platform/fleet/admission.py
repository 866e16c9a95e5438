"""The hook the fleet asks before a bot may run: what lies above it (billing) decides, the fleet knows nothing of
why. A refusal is a PlatformError (billing's: 402 insufficient_credits) and nothing is touched."""

from __future__ import annotations

from typing import Literal, Protocol

Action = Literal["create", "start", "restart"]


class Admission(Protocol):
    async def admit(self, tenant_id: str, action: Action) -> None:
        """Return when the tenant may run one more bot now; raise a PlatformError when it may not."""
        ...
