"""The tenant's own settings: API keys, members and invitations, the audit log, routes; the person's account (password, second factor)."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
