"""Billing (balance, transactions, buying credits) and the AI gateway's usage."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
