"""`wopr backups ...`: snapshots of bots' data volumes, made, restored and removed."""

from __future__ import annotations

from typing import Annotated

import typer

from wopr_platform.client import models, views
from wopr_platform.client.api import LONG_TIMEOUT, segment
from wopr_platform.client.commands.confirm import YesOption, confirmed
from wopr_platform.client.output import Format, OutputOption, emit, say, working
from wopr_platform.client.state import connect

app = typer.Typer(help="Backups: snapshots of bots' data volumes.")

BackupId = Annotated[str, typer.Argument(help="The backup's id (see `wopr backups ls`).", show_default=False)]


@app.command("ls")
def list_backups(
    ctx: typer.Context,
    bot: Annotated[str | None, typer.Option(help="Only the backups of this bot id.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=500)] = 100,
    output: OutputOption = Format.TABLE,
) -> None:
    """List the tenant's backups, newest first."""
    params = {"limit": str(limit)} | ({"botId": bot} if bot else {})
    with connect(ctx) as api:
        reply = api.get("/backups", params=params)
    emit(reply, output, lambda: views.backups(reply.parsed(models.BackupList)))


@app.command("create")
def create_backup(
    ctx: typer.Context,
    bot_id: Annotated[str, typer.Argument(help="The bot to back up.", show_default=False)],
    output: OutputOption = Format.TABLE,
) -> None:
    """Back up a bot's data volume now (the bot is paused while its files are read)."""
    with connect(ctx) as api, working(f"Backing up bot {bot_id}"):
        reply = api.post("/backups", {"botId": bot_id}, timeout=LONG_TIMEOUT)

    def summary() -> str:
        made = reply.parsed(models.Backup)
        paused = f", paused {made.pause_ms} ms" if made.pause_ms is not None else ""
        return f"Backed up bot {made.bot_name}: backup {made.id} ({views.size(made.archive_bytes)}{paused})"

    emit(reply, output, summary)


@app.command("restore")
def restore_backup(
    ctx: typer.Context,
    backup_id: BackupId,
    into: Annotated[str | None, typer.Option(help="Restore into this other bot of the tenant.")] = None,
    output: OutputOption = Format.TABLE,
) -> None:
    """Restore a backup into its bot (or --into another): the bot moves onto a fresh volume once it is whole."""
    with connect(ctx) as api, working(f"Restoring backup {backup_id}"):
        reply = api.post(
            f"/backups/{segment(backup_id)}/restore", {"botId": into} if into else None, timeout=LONG_TIMEOUT
        )

    def summary() -> str:
        bot = reply.parsed(models.BotProfile)
        return f"Restored backup {backup_id} into bot {bot.name} ({bot.id})"

    emit(reply, output, summary)


@app.command("rm")
def remove_backup(ctx: typer.Context, backup_id: BackupId, yes: YesOption = False) -> None:
    """Remove a backup and its archive."""
    confirmed(f"Remove backup {backup_id} for good?", yes)
    with connect(ctx) as api:
        api.delete(f"/backups/{segment(backup_id)}")
    say(f"Removed backup {backup_id}")
