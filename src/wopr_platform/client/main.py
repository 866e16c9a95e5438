"""The `wopr` command: the Typer app, its root options, and the one place failures become a line and an exit code."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from wopr_platform import __version__
from wopr_platform.client import output
from wopr_platform.client.commands import auth, backups, billing, bots, keys, rollouts, templates
from wopr_platform.client.errors import ClientError
from wopr_platform.client.state import Options

EXIT_CODES = (
    "Exit codes: 0 done; 1 the API refused (a 4xx other than 401 and 404) or failed (5xx); 2 a wrong command line; "
    "3 not logged in, or the key was refused (401); 4 not found (404); 5 the server cannot be reached."
)

app = typer.Typer(
    name="wopr",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a traceback of a bug must not print the key it held
)
app.command()(auth.login)
app.command()(auth.logout)
app.add_typer(bots.app, name="bots")
app.add_typer(templates.app, name="templates")
app.add_typer(rollouts.app, name="rollouts")
app.add_typer(backups.app, name="backups")
app.add_typer(keys.app, name="keys")
app.add_typer(billing.app, name="billing")


def _version(shown: bool) -> None:
    if shown:
        output.say(f"wopr {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant", "-t", help="Act for this tenant (X-Tenant-Id), over WOPR_TENANT and the one stored at login."
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Run WOPR bots on a wopr-platform from the command line. Start with `wopr login --url URL`.

    WOPR_URL and WOPR_KEY in the environment take the place of the stored login, for scripts.
    """
    ctx.obj = Options(tenant=tenant)


def main() -> None:
    """Run `wopr`: a failure the client knows is one line on stderr and its exit code, never a traceback."""
    try:
        app()
    except ClientError as err:
        output.report(err)
        sys.exit(err.exit_code)
