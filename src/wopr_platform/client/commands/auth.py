"""`wopr login` and `wopr logout`: where the platform is and the key to call it with, checked before it is kept."""

from __future__ import annotations

import os
import sys
from typing import Annotated
from urllib.parse import urlsplit

import typer

from wopr_platform.client import config, signin
from wopr_platform.client.api import Api
from wopr_platform.client.errors import ApiError
from wopr_platform.client.output import note, say
from wopr_platform.client.state import Options

PASSWORD_VAR = "WOPR_PASSWORD"  # noqa: S105 (the name of the variable, not a password)


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise typer.BadParameter("must be an http:// or https:// URL, e.g. http://127.0.0.1:3100", param_hint="--url")
    return url.rstrip("/")


def _secret(label: str, hint: str) -> str:
    """Read a secret with a hidden prompt; without a terminal to prompt on, say where else it can come from."""
    if not sys.stdin.isatty():
        raise typer.BadParameter(f"no terminal to ask for the {label} on: {hint}")
    return str(typer.prompt(label[0].upper() + label[1:], hide_input=True))


def _verify(url: str, key: str, tenant: str | None) -> None:
    """Call `GET /auth/me` with the key: a 401 refuses it; a key or the operator token is no user, so 404 is good."""
    with Api(url, key, tenant) as api:
        try:
            api.get("/auth/me")
        except ApiError as err:
            if err.status == 404 and err.code == "not_found":
                return
            if err.status == 401:
                raise ApiError(401, f"the platform refused the key: {err.message}", err.details) from None
            raise


def _key_from_password(url: str, email: str, code: str | None, tenant: str | None) -> str:
    password = os.environ.get(PASSWORD_VAR) or _secret("password", f"set {PASSWORD_VAR}")
    with Api(url) as api:
        try:
            made = signin.make_key(api, email, password, code, tenant)
        except signin.SecondFactorRequired:
            if code is not None or not sys.stdin.isatty():
                raise
            made = signin.make_key(api, email, password, _secret("code from your authenticator app", ""), tenant)
    note(f"Made the API key {made.prefix} ({made.name}) for the command line; `wopr keys rm {made.id}` revokes it.")
    return made.secret


def login(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(help="The platform's address, e.g. http://127.0.0.1:3100.")],
    key: Annotated[
        str | None,
        typer.Option(help="An API key (wopr_...) or the operator's token; asked for, hidden, when no --email."),
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(help=f"Sign in as this user (password from {PASSWORD_VAR} or a hidden prompt) to make a key."),
    ] = None,
    code: Annotated[
        str | None, typer.Option(help="The authenticator app's current code, for an account with a second factor.")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option(help="The tenant to act for, kept with the key (the operator's token: any tenant).")
    ] = None,
) -> None:
    """Log in: check the key (or sign in and make one) and keep it, private to you, for the next commands."""
    url = _checked_url(url)
    tenant = tenant or (ctx.find_object(Options) or Options()).tenant
    if key is not None and email is not None:
        raise typer.BadParameter("give --key or --email, not both", param_hint="--key")
    if email is not None:
        key = _key_from_password(url, email, code, tenant)
    elif key is None:
        key = _secret("API key", "pass --key, or --email to sign in")
    _verify(url, key, tenant)
    path = config.config_path()
    config.save(path, config.Credentials(url=url, key=key, tenant=tenant))
    say(f"Logged in to {url}" + (f" for tenant {tenant}" if tenant else "") + f"; the key is kept in {path}")


def logout() -> None:
    """Log out: forget the stored URL and key (an API key itself stays valid until revoked with `wopr keys rm`)."""
    path = config.config_path()
    if config.forget(path):
        say(f"Logged out: removed {path}")
    else:
        say(f"Not logged in: nothing stored in {path}")
    if os.environ.get(config.KEY_VAR):
        note(f"{config.KEY_VAR} is still set in this environment, and commands use it")
