"""The bots table's rows, written in Python: a page may hold a thousand, and a Jinja macro took three times as long
to render them (Markup.format, escaping as it goes, took longer still). The bots page renders them all at once, the
live page one at a time (the same function)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from markupsafe import Markup, escape

from wopr_platform.web.formats import duration

NO_USAGE = "<td></td><td></td>"


def bot_row(bot: Mapping[str, Any], across: bool = False, *, prefix: str) -> Markup:
    """One `<tr id="b-<id>">`: (tenant,) name, state, health, image, uptime, CPU, memory. CSS colours the state and
    health cells by their class."""
    bot_id, state, health = escape(bot["id"]), escape(bot["state"]), escape(bot["health"] or "")
    up = bot.get("uptimeSeconds")
    stats = bot.get("stats")
    usage = NO_USAGE
    if stats:
        usage = f"<td>{float(stats['cpuPercent']):.1f}%</td><td>{round(float(stats['memoryUsageMb']))} MB</td>"
    tenant = f"<td>{escape(bot.get('tenantId', ''))}</td>" if across else ""
    # every value from the API is escaped above or is a number formatted here
    return Markup(  # noqa: S704
        f'<tr id="b-{bot_id}">{tenant}<td><a href="{prefix}/bots/{bot_id}">{escape(bot["name"])}</a></td>'
        f'<td class="{state}">{state}</td><td class="{health or "none"}">{health}</td><td>{escape(bot["image"])}</td>'
        f"<td>{duration(up) if isinstance(up, int) else ''}</td>{usage}</tr>"
    )


def bot_rows(bots: Iterable[Mapping[str, Any]], across: bool = False, *, prefix: str) -> Markup:
    return Markup("\n").join(bot_row(bot, across, prefix=prefix) for bot in bots)
