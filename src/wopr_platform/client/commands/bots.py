"""`wopr bots ...`: list, show, create, follow, start, stop, restart, update and remove bots."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from wopr_platform.client import logs, models, views
from wopr_platform.client.api import LONG_TIMEOUT, segment
from wopr_platform.client.commands.confirm import YesOption, confirmed
from wopr_platform.client.errors import ExitCode
from wopr_platform.client.output import Format, OutputOption, emit, note, say, working, write
from wopr_platform.client.state import connect

app = typer.Typer(help="Bots: list, show, create, follow logs, start, stop, restart, update and remove them.")

BotId = Annotated[str, typer.Argument(help="The bot's id (see `wopr bots ls`).", show_default=False)]


def _pairs(values: list[str], option: str) -> dict[str, str]:
    """`KEY=VALUE` arguments as a mapping (a value may itself hold `=`)."""
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        pairs[key] = rest
    return pairs


@app.command("ls")
def list_bots(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="Only bots in this state (running, exited, stopped, ...).")] = None,
    health: Annotated[str | None, typer.Option(help="Only bots of this health (healthy, unhealthy, starting).")] = None,
    name_prefix: Annotated[str | None, typer.Option(help="Only bots whose name starts so.")] = None,
    image: Annotated[str | None, typer.Option(help="Only bots of this image reference.")] = None,
    template: Annotated[str | None, typer.Option(help="Only bots made from this template.")] = None,
    output: OutputOption = Format.TABLE,
) -> None:
    """List the tenant's bots with their state, health and uptime (the filters are the API's)."""
    asked = {"state": state, "health": health, "namePrefix": name_prefix, "image": image, "template": template}
    with connect(ctx) as api:
        reply = api.get("/fleet/bots", params={key: value for key, value in asked.items() if value is not None})
    emit(reply, output, lambda: views.bots(reply.parsed(models.BotList)))


@app.command("get")
def get_bot(ctx: typer.Context, bot_id: BotId, output: OutputOption = Format.TABLE) -> None:
    """Show one bot: its profile and live status (secret env values show as ***)."""
    with connect(ctx) as api:
        reply = api.get(f"/fleet/bots/{segment(bot_id)}")
    emit(reply, output, lambda: views.bot(reply.parsed(models.BotDetail)))


@app.command("create")
def create_bot(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Option(help="The bot's name; with --template, the template's by default.")
    ] = None,
    image: Annotated[
        str | None, typer.Option(help="The image to run; with --template, the template's by default.")
    ] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE in the bot's environment.")] = None,
    secret: Annotated[
        list[str] | None, typer.Option(help="An --env KEY whose value is secret: sealed at rest, shown as ***.")
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="Make the bot from this template (see `wopr templates ls`).")
    ] = None,
    var: Annotated[list[str] | None, typer.Option(help="KEY=VALUE for a variable of the --template.")] = None,
    output: OutputOption = Format.TABLE,
) -> None:
    """Create a bot and start it."""
    body: dict[str, Any] = {"env": _pairs(env or [], "--env")}
    if secret:
        body["secretEnv"] = secret
    if template is not None:
        body |= {"template": template, "variables": _pairs(var or [], "--var")}
    elif name is None or image is None:
        raise typer.BadParameter("a bot needs --name and --image, or --template", param_hint="--name")
    elif var:
        raise typer.BadParameter("variables are for a --template", param_hint="--var")
    body |= {field: value for field, value in (("name", name), ("image", image)) if value is not None}
    with connect(ctx) as api, working("Creating the bot (pulling its image, starting it)"):
        reply = api.post("/fleet/bots", body, timeout=LONG_TIMEOUT)

    def summary() -> str:
        made = reply.parsed(models.BotProfile)
        return f"Created bot {made.name} ({made.id}), {made.desired_state}"

    emit(reply, output, summary)


@app.command("logs")
def bot_logs(
    ctx: typer.Context,
    bot_id: BotId,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep printing new lines until interrupted. The API has no streaming logs, so this reads the last "
            "lines again every --interval seconds and prints the new ones.",
        ),
    ] = False,
    tail: Annotated[int, typer.Option(help="How many of the last lines to print.", min=1, max=logs.MAX_TAIL)] = 100,
    interval: Annotated[float, typer.Option(help="Seconds between two reads with --follow.", min=0.2)] = 1.0,
) -> None:
    """Print a bot's last lines of output (stdout and stderr), or follow them with -f."""
    with connect(ctx) as api:
        if not follow:
            write(api.get(f"/fleet/bots/{segment(bot_id)}/logs", params={"tail": str(tail)}).text)
            return

        def out(lines: list[str]) -> None:
            write("".join(f"{line}\n" for line in lines))

        def gap() -> None:
            note(
                f"wopr: more than {logs.FOLLOW_WINDOW} new lines, or a new container, since the last read: "
                "some lines may be missing"
            )

        try:
            logs.follow(api, bot_id, tail, interval, out, gap)
        except KeyboardInterrupt:
            return


def _action(ctx: typer.Context, bot_id: str, action: str, doing: str, done: str, output: Format) -> None:
    with connect(ctx) as api, working(f"{doing} bot {bot_id}"):
        reply = api.post(f"/fleet/bots/{segment(bot_id)}/{action}", timeout=LONG_TIMEOUT)
    emit(reply, output, lambda: f"{done} bot {bot_id}")


@app.command("start")
def start_bot(ctx: typer.Context, bot_id: BotId, output: OutputOption = Format.TABLE) -> None:
    """Start a stopped bot."""
    _action(ctx, bot_id, "start", "Starting", "Started", output)


@app.command("stop")
def stop_bot(ctx: typer.Context, bot_id: BotId, output: OutputOption = Format.TABLE) -> None:
    """Stop a bot; it stays stopped until started (the platform will not restart it)."""
    _action(ctx, bot_id, "stop", "Stopping", "Stopped", output)


@app.command("restart")
def restart_bot(ctx: typer.Context, bot_id: BotId, output: OutputOption = Format.TABLE) -> None:
    """Restart a bot's container."""
    _action(ctx, bot_id, "restart", "Restarting", "Restarted", output)


@app.command("update")
def update_bot(ctx: typer.Context, bot_id: BotId, output: OutputOption = Format.TABLE) -> None:
    """Update a bot to the newest digest of its image now, gated by its health (rolled back if it fails; exit 1)."""
    with connect(ctx) as api, working(f"Updating bot {bot_id} (pull, start, health check)"):
        reply = api.post(f"/fleet/bots/{segment(bot_id)}/update", timeout=LONG_TIMEOUT)
    result = reply.parsed(models.UpdateResult)
    emit(reply, output, lambda: views.update(result))
    if not result.success:
        raise typer.Exit(ExitCode.REFUSED)


@app.command("rm")
def remove_bot(
    ctx: typer.Context,
    bot_id: BotId,
    yes: YesOption = False,
    volumes: Annotated[bool, typer.Option("--volumes", help="Remove its data volumes too (kept otherwise).")] = False,
) -> None:
    """Remove a bot and its container; its data volume is kept unless --volumes."""
    confirmed(f"Remove bot {bot_id}{' and its data volumes' if volumes else ''} for good?", yes)
    with connect(ctx) as api:
        api.delete(f"/fleet/bots/{segment(bot_id)}", params={"removeVolumes": "true"} if volumes else None)
    say(f"Removed bot {bot_id}")
