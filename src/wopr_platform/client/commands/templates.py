"""`wopr templates ...`: the profile templates bots can be made from."""

from __future__ import annotations

from typing import Annotated

import typer

from wopr_platform.client import models, views
from wopr_platform.client.api import segment
from wopr_platform.client.output import Format, OutputOption, emit
from wopr_platform.client.state import connect

app = typer.Typer(help="Templates: the profiles bots are made from with `wopr bots create --template`.")


@app.command("ls")
def list_templates(ctx: typer.Context, output: OutputOption = Format.TABLE) -> None:
    """List the templates, their variables, and the files that failed to load."""
    with connect(ctx) as api:
        reply = api.get("/fleet/templates")
    emit(reply, output, lambda: views.templates(reply.parsed(models.TemplateList)))


@app.command("get")
def get_template(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The template's name.", show_default=False)],
    output: OutputOption = Format.TABLE,
) -> None:
    """Show one template: its env with the `${VARIABLE}` references as the file writes them, never their values."""
    with connect(ctx) as api:
        reply = api.get(f"/fleet/templates/{segment(name)}")
    emit(reply, output, lambda: views.template(reply.parsed(models.Template)))
