"""Signing in with an email and a password to make the command line an API key: the session lives only for that
call (signed out at once), so what is stored is a key the tenant's admins can list and revoke."""

from __future__ import annotations

import contextlib
import socket

from wopr_platform.client import models
from wopr_platform.client.api import CSRF_HEADER, TENANT_HEADER, Api
from wopr_platform.client.errors import ApiError, ClientError, ExitCode

# a key holds at most its maker's scopes, and only a holder of `admin` may make one: such a maker holds them all
KEY_SCOPES = ("read", "read:secrets", "write", "deploy", "admin")
MAX_KEY_NAME = 100


class SecondFactorRequired(ClientError):
    """The account asks for a code from its authenticator app as well."""

    exit_code = ExitCode.NOT_LOGGED_IN


def key_name() -> str:
    """The name the new key is listed under, saying where it was made."""
    return f"wopr command line on {socket.gethostname()}"[:MAX_KEY_NAME]


def _explained(err: ApiError, session: models.Session) -> ApiError:
    """The refusals of `POST /keys` a person signing in can act on, said in the command line's terms."""
    if err.code == "scope_required":
        message = "your role may not make API keys (that needs the admin scope): ask an admin of the tenant for a key"
        return ApiError(err.status, f"{message} and run `wopr login --key`", err.details)
    if err.code == "tenant_required":
        yours = ", ".join(sorted(m.tenant_id for m in session.user.tenants)) or "none"
        return ApiError(err.status, f"choose the tenant with --tenant (yours: {yours})", err.details)
    return err


def make_key(api: Api, email: str, password: str, code: str | None, tenant: str | None) -> models.KeyCreated:
    """Sign in, make a key with every scope the user holds in the tenant, and sign out again."""
    body = {"email": email, "password": password} | ({"code": code} if code else {})
    try:
        session = api.request("POST", "/auth/login", json=body).parsed(models.Session)
    except ApiError as err:
        if err.code == "totp_required":
            raise SecondFactorRequired("this account asks for a code from its authenticator app: pass --code") from None
        raise
    headers = {CSRF_HEADER: session.csrf_token} | ({TENANT_HEADER: tenant} if tenant else {})
    try:
        answer = api.request("POST", "/keys", json={"name": key_name(), "scopes": list(KEY_SCOPES)}, headers=headers)
        return answer.parsed(models.KeyCreated)
    except ApiError as err:
        raise _explained(err, session) from None
    finally:
        with contextlib.suppress(ClientError):  # the session ends by itself if this fails; the key is made
            api.request("POST", "/auth/logout", headers={CSRF_HEADER: session.csrf_token})
