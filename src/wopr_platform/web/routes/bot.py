"""One bot: its profile (secrets masked), live status and logs, its actions, image updates and backups; creating a
bot from a template."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from wopr_platform.web.console import PREFIX, View, action, page, refusal_text
from wopr_platform.web.upstream import Refused

LOG_LINES = 200
HISTORY = 10
BACKUPS = 20
VARIABLE_FIELD = "var."  # a create form's field for a template variable: var.<NAME>
# an edit form's field for a new value of a secret key: secret.<KEY>
SECRET_FIELD = "secret."  # noqa: S105 (a field name's prefix, not a secret)
DROP_FIELD = "drop."  # an edit form's checkbox that removes a secret key: drop.<KEY>
REDACTED = "***"  # what the API shows for a secret value, and takes back as "keep the stored one"


def _bot_id(request: Request) -> str:
    return str(request.path_params["bot_id"])


def _bot_page(request: Request) -> str:
    return f"{PREFIX}/bots/{_bot_id(request)}"


def _new_page(request: Request) -> str:
    return f"{PREFIX}/bots/new"


# --- reading the parts of a bot's page ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Logs:
    """The bot's last lines, or why they cannot be shown (`final`: no use asking again)."""

    text: str | None = None
    refusal: str | None = None
    final: bool = False


async def _logs(view: View, bot_id: str) -> Logs:
    try:
        return Logs(text=await view.text(f"/fleet/bots/{bot_id}/logs", tail=LOG_LINES))
    except Refused as err:
        if err.status == 401:
            raise
        if err.status == 403:
            return Logs(
                refusal="Logs are not shown to your role: they may hold secrets (they need the read:secrets scope).",
                final=True,
            )
        return Logs(refusal=refusal_text(err), final=err.status < 500)


async def _image(view: View, bot_id: str) -> dict[str, Any]:
    status, history = await asyncio.gather(
        view.get(f"/fleet/bots/{bot_id}/image-status"), view.get(f"/fleet/bots/{bot_id}/updates", limit=HISTORY)
    )
    return {"image_status": status, "updates": history["updates"]}


async def _backups(view: View, bot_id: str) -> list[dict[str, Any]]:
    found = await view.get("/backups", botId=bot_id, limit=BACKUPS)
    return list(found["backups"])


def _env_lines(bot: dict[str, Any]) -> str:
    """The bot's plain (not secret) env as the edit form shows it: KEY=VALUE lines."""
    secret = set(bot["secretEnv"])
    return "\n".join(f"{key}={value}" for key, value in sorted(bot["env"].items()) if key not in secret)


@page
async def bot_page(view: View) -> Response:
    bot_id = _bot_id(view.request)
    bot = await view.get(f"/fleet/bots/{bot_id}")
    logs, image, backups = await asyncio.gather(_logs(view, bot_id), _image(view, bot_id), _backups(view, bot_id))
    return await view.page(
        "bot_page.html",
        bot=bot,
        secret_keys=sorted(bot["secretEnv"]),
        env_lines=_env_lines(bot),
        logs=logs,
        backups=backups,
        **image,
    )


@page
async def status_part(view: View) -> Response:
    """The live status (asked again when an event of the bot arrives); a removed bot says so and stops asking."""
    try:
        bot = await view.get(f"/fleet/bots/{_bot_id(view.request)}")
    except Refused as err:
        if err.status != 404:
            raise
        return view.fragment("bot_status.html", bot=None, gone=refusal_text(err))
    return view.fragment("bot_status.html", bot=bot)


@page
async def logs_part(view: View) -> Response:
    bot_id = _bot_id(view.request)
    return view.fragment("bot_logs.html", bot={"id": bot_id}, logs=await _logs(view, bot_id))


# --- creating a bot from a template ------------------------------------------------------------------------------


async def _new_page_answer(
    view: View, *, chosen: str, name: str = "", image: str = "", status: int = 200, error: str | None = None
) -> Response:
    found = await view.get("/fleet/templates")
    templates = found["templates"]
    picked = next((t for t in templates if t["name"] == chosen), None)
    return await view.page(
        "bot_new.html",
        status=status,
        templates=templates,
        chosen=chosen,
        picked=picked,
        name=name,
        image=image or (picked["image"] if picked else ""),
        error=error,
    )


@page
async def new_bot_page(view: View) -> Response:
    return await _new_page_answer(view, chosen=view.request.query_params.get("template", "").strip())


@action(back=_new_page)
async def create_bot(view: View) -> Response:
    """Make a bot from a template; a refusal shows the form again (without the secret values) and the reason."""
    assert view.form is not None
    chosen = view.field("template")
    body: dict[str, Any] = {"template": chosen}
    if name := view.field("name"):
        body["name"] = name
    if image := view.field("image"):
        body["image"] = image
    variables = {
        key.removeprefix(VARIABLE_FIELD): value
        for key in view.form
        if key.startswith(VARIABLE_FIELD) and (value := view.field(key))
    }
    if variables:
        body["variables"] = variables
    try:
        bot = await view.send("POST", "/fleet/bots", body)
    except Refused as err:
        if err.status == 401:
            raise
        return await _new_page_answer(
            view, chosen=chosen, name=name, image=image, status=err.status, error=refusal_text(err)
        )
    return view.redirect(f"{PREFIX}/bots/{bot['id']}", message=f"Bot {bot['name']} created from {chosen}.")


# --- actions on one bot ------------------------------------------------------------------------------------------


async def _power(view: View, verb: str, done: str) -> Response:
    bot_id = _bot_id(view.request)
    await view.send("POST", f"/fleet/bots/{bot_id}/{verb}")
    return view.redirect(f"{PREFIX}/bots/{bot_id}", message=done)


@action(back=_bot_page)
async def start_bot(view: View) -> Response:
    return await _power(view, "start", "Bot started.")


@action(back=_bot_page)
async def stop_bot(view: View) -> Response:
    return await _power(view, "stop", "Bot stopped.")


@action(back=_bot_page)
async def restart_bot(view: View) -> Response:
    return await _power(view, "restart", "Bot restarted.")


@action(back=_bot_page)
async def delete_bot(view: View) -> Response:
    await view.send("DELETE", f"/fleet/bots/{_bot_id(view.request)}")
    return view.redirect(f"{PREFIX}/bots", message="Bot deleted (its data volume is kept).")


class BadLines(ValueError):
    """Text that is not KEY=VALUE lines."""


def _parse_lines(text: str, what: str) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and # comments skipped); the API checks the keys and values."""
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise BadLines(f"{what}, line {number}: write KEY=VALUE")
        found[key.strip()] = value
    return found


def _settings_patch(view: View, bot: dict[str, Any]) -> dict[str, Any]:
    """The PATCH the edit form asks for: env and secretEnv when they change, image when it changes.

    Each secret key is sent as `***` (the API keeps its stored value) unless the form gives a new value or drops it;
    a dropped key named again among the plain lines stays with that value, no longer secret."""
    assert view.form is not None
    old_secret = set(bot["secretEnv"])
    env = _parse_lines(view.field("env"), "Environment")
    dropped = {key for key in old_secret if view.field(DROP_FIELD + key)}
    secret = old_secret - dropped
    for key in secret:
        env[key] = view.field(SECRET_FIELD + key) or REDACTED
    added = _parse_lines(view.field("secrets"), "New secrets")
    env.update(added)
    secret |= added.keys()
    changes: dict[str, Any] = {}
    if env != bot["env"] or secret != old_secret:
        changes["env"] = env
        changes["secretEnv"] = sorted(secret)
    image = view.field("image")
    if image and image != bot["image"]:
        changes["image"] = image
    return changes


@action(back=_bot_page)
async def change_bot(view: View) -> Response:
    bot_id = _bot_id(view.request)
    back = f"{PREFIX}/bots/{bot_id}"
    bot = await view.get(f"/fleet/bots/{bot_id}")
    try:
        changes = _settings_patch(view, bot)
    except BadLines as err:
        return view.redirect(back, message=str(err), error=True)
    if not changes:
        return view.redirect(back, message="Nothing to change.")
    await view.send("PATCH", f"/fleet/bots/{bot_id}", changes)
    names = " and ".join(sorted({"image" if key == "image" else "environment" for key in changes}))
    return view.redirect(back, message=f"Bot's {names} changed.")


@action(back=_bot_page)
async def update_bot(view: View) -> Response:
    bot_id = _bot_id(view.request)
    result = await view.send("POST", f"/fleet/bots/{bot_id}/update")
    outcome = result["outcome"]
    if outcome == "current":
        message, error = "The bot already runs the newest image.", False
    elif outcome == "updated":
        message, error = f"Updated to {result['newImage']}.", False
    else:
        why = f": {result['error']}" if result.get("error") else ""
        message, error = f"The update did not take ({outcome.replace('_', ' ')}){why}.", True
    return view.redirect(f"{PREFIX}/bots/{bot_id}", message=message, error=error)


@action(back=_bot_page)
async def back_up_bot(view: View) -> Response:
    bot_id = _bot_id(view.request)
    backup = await view.send("POST", "/backups", {"botId": bot_id})
    paused = f", the bot paused {backup['pauseMs']} ms" if backup.get("pauseMs") is not None else ""
    return view.redirect(f"{PREFIX}/bots/{bot_id}", message=f"Backup {backup['id']} made{paused}.")


@action(back=_bot_page)
async def restore_bot(view: View) -> Response:
    """Restore one of the bot's backups into this bot (named, so a backup of another bot never lands elsewhere)."""
    bot_id = _bot_id(view.request)
    backup_id = str(view.request.path_params["backup_id"])
    await view.send("POST", f"/backups/{backup_id}/restore", {"botId": bot_id})
    return view.redirect(f"{PREFIX}/bots/{bot_id}", message=f"Backup {backup_id} restored.")


routes: list[BaseRoute] = [
    Route("/bots/new", new_bot_page, methods=["GET"]),
    Route("/bots", create_bot, methods=["POST"]),
    Route("/bots/{bot_id}", bot_page, methods=["GET"]),
    Route("/bots/{bot_id}/status", status_part, methods=["GET"]),
    Route("/bots/{bot_id}/logs", logs_part, methods=["GET"]),
    Route("/bots/{bot_id}/start", start_bot, methods=["POST"]),
    Route("/bots/{bot_id}/stop", stop_bot, methods=["POST"]),
    Route("/bots/{bot_id}/restart", restart_bot, methods=["POST"]),
    Route("/bots/{bot_id}/delete", delete_bot, methods=["POST"]),
    Route("/bots/{bot_id}/settings", change_bot, methods=["POST"]),
    Route("/bots/{bot_id}/update", update_bot, methods=["POST"]),
    Route("/bots/{bot_id}/backups", back_up_bot, methods=["POST"]),
    Route("/bots/{bot_id}/backups/{backup_id}/restore", restore_bot, methods=["POST"]),
]
