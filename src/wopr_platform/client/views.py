"""How each answer looks to a person: Rich tables and key-value grids, with durations, sizes and money made
readable. Every value is shown as text, never read as Rich markup (a bot's name may hold brackets)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from wopr_platform.client import models

MICROS = 1_000_000  # the API's amounts are in millionths of the currency unit
NONE = "-"


def duration(seconds: int | None) -> str:
    """Seconds as the two largest units: `3d 4h`, `5m 12s`, `40s`."""
    if seconds is None:
        return NONE
    units = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
    parts: list[str] = []
    rest = max(seconds, 0)
    for name, size in units:
        if rest >= size or (name == "s" and not parts):
            parts.append(f"{rest // size}{name}")
            rest %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def size(count: int) -> str:
    """Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 MiB`."""
    if count < 1024:
        return f"{count} B"
    units = ("KiB", "MiB", "GiB", "TiB")
    value, index = count / 1024, 0
    while value >= 1024 and index < len(units) - 1:
        value, index = value / 1024, index + 1
    return f"{value:.1f} {units[index]}"


def money(micros: int, currency: str | None = None) -> str:
    """Micro-units as money, with cents always and smaller fractions only when there are any: `5.00 USD`,
    `-0.0125`."""
    text = f"{Decimal(micros) / MICROS:.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    amount = f"{whole}.{fraction.ljust(2, '0')}"
    return f"{amount} {currency.upper()}" if currency else amount


def when(moment: datetime | None) -> str:
    """A time in UTC to the minute."""
    if moment is None:
        return NONE
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _table(*columns: str) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=column == "ID", overflow="fold")
    return table


def _row(table: Table, *values: str | None) -> None:
    table.add_row(*(Text(NONE if value is None or value == "" else value) for value in values))


def _grid(pairs: Iterable[tuple[str, str | None]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(Text(name), Text(NONE if value is None or value == "" else value))
    return grid


def _empty(what: str) -> Text:
    return Text(f"no {what}", style="dim")


# --- bots -------------------------------------------------------------------------------------------------------


def _state(bot: models.Bot) -> str:
    """The engine's state, with what the platform wants when that differs, and the warnings that apply."""
    shown = bot.state
    if bot.desired_state == "running" and bot.state != "running":
        shown += " (wants running)"
    elif bot.desired_state == "stopped" and bot.state == "running":
        shown += " (wants stopped)"
    flags = [flag for flag, on in (("crash-looping", bot.crash_looping), ("stale", bot.stale)) if on]
    return ", ".join([shown, *flags])


def bots(answer: models.BotList) -> RenderableType:
    if not answer.bots:
        return _empty("bots")
    table = _table("ID", "NAME", "STATE", "HEALTH", "UPTIME", "IMAGE")
    for bot in answer.bots:
        _row(table, bot.id, bot.name, _state(bot), bot.health, duration(bot.uptime_seconds), bot.image)
    return table


def bot(detail: models.BotDetail) -> RenderableType:
    stats = detail.stats
    pairs: list[tuple[str, str | None]] = [
        ("id", detail.id),
        ("name", detail.name),
        ("description", detail.description),
        ("image", detail.image),
        ("digest", detail.image_digest),
        ("state", _state(detail)),
        ("desired state", detail.desired_state),
        ("health", detail.health),
        ("uptime", duration(detail.uptime_seconds)),
        ("restarts", str(detail.restart_count)),
        ("restart policy", detail.restart_policy),
        ("release channel", detail.release_channel),
        ("update policy", detail.update_policy),
        ("volume", detail.volume_name),
        ("subdomain", detail.subdomain),
        ("url", f"{detail.urls.host}{detail.urls.path}" if detail.urls else None),
        ("template", f"{detail.template.name} v{detail.template.version}" if detail.template else None),
        (
            "limits",
            f"{detail.resources.memory_mb} MB, {detail.resources.cpus:g} CPUs, {detail.resources.pids} pids"
            if detail.resources
            else None,
        ),
        (
            "usage",
            f"{stats.cpu_percent:.1f}% CPU, {stats.memory_usage_mb:.0f}/{stats.memory_limit_mb:.0f} MB"
            if stats
            else None,
        ),
        ("env", "\n".join(f"{key}={value}" for key, value in sorted(detail.env.items()))),
    ]
    return _grid(pairs)


def update(result: models.UpdateResult) -> str:
    if result.outcome == "current":
        return f"Bot {result.bot_id} already runs the newest {result.new_image}"
    if result.success:
        digest = f" ({result.new_digest})" if result.new_digest else ""
        return f"Updated bot {result.bot_id}: {result.previous_image} -> {result.new_image}{digest}"
    back = ", rolled back" if result.rolled_back else ""
    return f"Update of bot {result.bot_id} {result.outcome}{back}: {result.error or 'no reason given'}"


# --- templates and rollouts -------------------------------------------------------------------------------------


def templates(answer: models.TemplateList) -> RenderableType:
    parts: list[RenderableType] = []
    if answer.templates:
        table = _table("NAME", "VERSION", "RELEASE", "IMAGE", "VARIABLES", "DESCRIPTION")
        for item in answer.templates:
            _row(
                table,
                item.name,
                str(item.version),
                item.release,
                item.image,
                " ".join(item.variables),
                item.description,
            )
        parts.append(table)
    else:
        parts.append(_empty("templates"))
    for error in answer.errors:
        where = f" ({error.field})" if error.field else ""
        parts.append(Text(f"not loaded: {error.file}{where}: {error.reason}", style="yellow"))
    return Group(*parts)


def template(item: models.Template) -> RenderableType:
    return _grid(
        [
            ("name", item.name),
            ("version", str(item.version)),
            ("description", item.description),
            ("release", item.release),
            ("image", item.image),
            ("channel", item.channel.plugin if item.channel else None),
            ("provider", item.provider.plugin if item.provider else None),
            ("variables", " ".join(item.variables)),
            ("file", item.file),
        ]
    )


def rollouts(answer: models.RolloutList) -> RenderableType:
    if not answer.rollouts:
        return _empty("rollouts")
    table = _table("ID", "STATE", "IMAGE", "TRIGGER", "WAVES", "STARTED", "FINISHED")
    for item in answer.rollouts:
        _row(
            table,
            item.id,
            item.state,
            item.image,
            item.trigger,
            str(len(item.waves)),
            when(item.created_at),
            when(item.finished_at),
        )
    return table


def rollout(item: models.Rollout) -> RenderableType:
    summary = _grid(
        [
            ("id", item.id),
            ("state", item.state),
            ("image", item.image),
            ("digest", item.to_digest),
            ("trigger", item.trigger),
            ("reason", item.reason),
            ("started", when(item.created_at)),
            ("finished", when(item.finished_at)),
        ]
    )
    waves = _table("WAVE", "STATE", "BOTS", "UPDATED", "FAILED", "ROLLED BACK", "SKIPPED")
    for wave in item.waves:
        counts = (wave.updated, wave.failed, wave.rolled_back, wave.skipped)
        _row(waves, str(wave.index), wave.state, str(len(wave.bot_ids)), *(str(count) for count in counts))
    return Group(summary, Text(""), waves)


# --- backups, keys, billing -------------------------------------------------------------------------------------


def backups(answer: models.BackupList) -> RenderableType:
    if not answer.backups:
        return _empty("backups")
    table = _table("ID", "BOT", "KIND", "STATE", "SIZE", "CREATED")
    for item in answer.backups:
        state = f"{item.state}: {item.error}" if item.error else item.state
        _row(table, item.id, item.bot_name, item.kind, state, size(item.archive_bytes), when(item.created_at))
    return table


def keys(answer: models.KeyList) -> RenderableType:
    if not answer.keys:
        return _empty("keys")
    table = _table("ID", "NAME", "PREFIX", "SCOPES", "CREATED", "EXPIRES", "LAST USED")
    for item in answer.keys:
        _row(
            table,
            item.id,
            item.name,
            item.prefix,
            " ".join(item.scopes),
            when(item.created_at),
            when(item.expires_at),
            when(item.last_used_at),
        )
    return table


def balance(answer: models.Balance) -> str:
    standing = f"; standing: {answer.standing.state}" if answer.standing else ""
    return (
        f"{answer.tenant_id}: {money(answer.balance, answer.currency)} "
        f"(a bot needs {money(answer.minimum, answer.currency)} to be created or started{standing})"
    )


def checkout(answer: models.HostedCheckout) -> str:
    charge = f"{answer.amount_cents // 100}.{answer.amount_cents % 100:02d} {answer.currency.upper()}"
    if answer.url is None:
        return f"the payment of {charge} ({answer.session_id}) is {answer.status}: nothing more to pay"
    return f"pay {charge} on Stripe's page, open in a browser:\n{answer.url}"


def transactions(answer: models.TransactionPage) -> RenderableType:
    if not answer.transactions:
        return _empty("transactions")
    table = _table("WHEN", "KIND", "AMOUNT", "MEMO", "ID")
    for item in answer.transactions:
        _row(table, when(item.created_at), item.kind, money(item.amount), item.memo, item.id)
    if answer.next is None:
        return table
    return Group(table, Text(f"older ones: wopr billing transactions --after {answer.next}", style="dim"))
