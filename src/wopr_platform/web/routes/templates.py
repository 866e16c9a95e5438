"""The profile templates bots are made from."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
