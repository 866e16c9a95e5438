"""`wopr keys ...`: the tenant's API keys, for programs and scripts."""

from __future__ import annotations

from typing import Annotated

import typer

from wopr_platform.client import models, views
from wopr_platform.client.api import segment
from wopr_platform.client.commands.confirm import YesOption, confirmed
from wopr_platform.client.output import Format, OutputOption, emit, note, say
from wopr_platform.client.state import connect

app = typer.Typer(help="API keys of the tenant (they need the admin scope).")


@app.command("ls")
def list_keys(ctx: typer.Context, output: OutputOption = Format.TABLE) -> None:
    """List the tenant's keys that are not revoked (never their secrets)."""
    with connect(ctx) as api:
        reply = api.get("/keys")
    emit(reply, output, lambda: views.keys(reply.parsed(models.KeyList)))


@app.command("create")
def create_key(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="What the key is for.", show_default=False)],
    scope: Annotated[
        list[str],
        typer.Option(
            help="A scope: read, read:secrets, write, deploy or admin; repeat for several.", show_default=False
        ),
    ],
    expires: Annotated[str | None, typer.Option(help="When it stops working, ISO 8601 (2027-03-01T00:00:00Z).")] = None,
    allow: Annotated[
        list[str] | None, typer.Option(help="An address or network it may be used from; repeat for several.")
    ] = None,
    output: OutputOption = Format.TABLE,
) -> None:
    """Make a key; its secret is printed this once, alone on stdout (the rest goes to stderr)."""
    body: dict[str, object] = {"name": name, "scopes": scope}
    if expires is not None:
        body["expiresAt"] = expires
    if allow:
        body["allowedAddresses"] = allow
    with connect(ctx) as api:
        reply = api.post("/keys", body)

    def secret() -> str:
        made = reply.parsed(models.KeyCreated)
        note(f"Made key {made.id} ({made.prefix}, {' '.join(made.scopes)}); its secret, shown this once:")
        return made.secret

    emit(reply, output, secret)


@app.command("rm")
def remove_key(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (see `wopr keys ls`).", show_default=False)],
    yes: YesOption = False,
) -> None:
    """Revoke a key: its next use, on any replica, is refused."""
    confirmed(f"Revoke key {key_id}?", yes)
    with connect(ctx) as api:
        api.delete(f"/keys/{segment(key_id)}")
    say(f"Revoked key {key_id}")
