"""For platform admins: rollouts and their waves, tenants, users."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
