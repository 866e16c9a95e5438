"""`wopr rollouts ...`: fleet-wide image updates in waves (the platform's operator only)."""

from __future__ import annotations

from typing import Annotated

import typer

from wopr_platform.client import models, views
from wopr_platform.client.api import segment
from wopr_platform.client.output import Format, OutputOption, emit
from wopr_platform.client.state import connect

app = typer.Typer(help="Rollouts: image updates across the fleet, in waves (the platform's operator only).")


@app.command("ls")
def list_rollouts(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=500)] = 50,
    output: OutputOption = Format.TABLE,
) -> None:
    """List rollouts, newest first."""
    with connect(ctx) as api:
        reply = api.get("/fleet/rollouts", params={"limit": str(limit)})
    emit(reply, output, lambda: views.rollouts(reply.parsed(models.RolloutList)))


@app.command("get")
def get_rollout(
    ctx: typer.Context,
    rollout_id: Annotated[str, typer.Argument(help="The rollout's id.", show_default=False)],
    output: OutputOption = Format.TABLE,
) -> None:
    """Show one rollout and its waves."""
    with connect(ctx) as api:
        reply = api.get(f"/fleet/rollouts/{segment(rollout_id)}")
    emit(reply, output, lambda: views.rollout(reply.parsed(models.Rollout)))
