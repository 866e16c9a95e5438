"""Signing in (with the second factor), signing up, signing out, and choosing the tenant to act for."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from wopr_platform.web.console import PREFIX, Refusal, View, action, console_of, public_action, refusal_text
from wopr_platform.web.upstream import Answer, Refused


def _next(view: View) -> str:
    """Where to go after signing in: a page of the console only (never another site)."""
    target = view.request.query_params.get("next") or view.field("next")
    if target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/bots"


def _invitation(target: str) -> str:
    """The token of the invitation a sign-in leads to, so that a newcomer can sign up with it instead."""
    parts = urlsplit(target)
    if parts.path != f"{PREFIX}/invitations/accept":
        return ""
    return parse_qs(parts.query).get("token", [""])[0]


async def _ask(view: View, path: str, body: dict[str, str]) -> Answer:
    """A public form's call to the API, with what the browser presented (no session is needed)."""
    return (await view.console.upstream.call(view.credentials, "POST", path, body=body)).checked()


def _again(template: str, *kept: str) -> Refusal:
    """A public form's page shown again with the API's reason, keeping the `kept` fields as they were sent."""

    async def again(view: View, err: Refused) -> Response:
        kept_values = {name: view.field(name) for name in kept}
        return await view.page(template, status=err.status, error=refusal_text(err), **kept_values)

    return again


async def _sign_in_again(view: View, err: Refused) -> Response:
    """The sign-in form again, asking for the second factor when the API wants it."""
    second = err.code in ("totp_required", "totp_invalid") or bool(view.field("code"))
    message = "enter the code of your authenticator app" if err.code == "totp_required" else refusal_text(err)
    return await view.page(
        "login.html",
        status=err.status,
        next=_next(view),
        email=view.field("email"),
        second_factor=second,
        error=message,
    )


async def sign_in_page(request: Request) -> Response:
    view = View(console_of(request), request)
    target = _next(view)
    return await view.page("login.html", next=target, email="", second_factor=False, invitation=_invitation(target))


@public_action(again=_sign_in_again)
async def sign_in(view: View) -> Response:
    body: dict[str, str] = {"email": view.field("email"), "password": view.field("password")}
    if code := view.field("code"):
        body["code" if code.isdigit() else "recoveryCode"] = code
    answer = await _ask(view, "/auth/login", body)
    response = RedirectResponse(_next(view), status_code=303)
    view.keep_session(response, answer)
    view.choose_tenant(response, None)
    return response


async def sign_up_page(request: Request) -> Response:
    view = View(console_of(request), request)
    return await view.page("signup.html", email="", invitation=request.query_params.get("invitation", ""))


@public_action(again=_again("signup.html", "email", "invitation"))
async def sign_up(view: View) -> Response:
    body: dict[str, str] = {"email": view.field("email"), "password": view.field("password")}
    if name := view.field("tenantName"):
        body["tenantName"] = name
    if invitation := view.field("invitation"):
        body["invitation"] = invitation
    await _ask(view, "/auth/signup", body)
    return view.redirect(f"{PREFIX}/login", message="Account ready: sign in with it.")


async def forgot_page(request: Request) -> Response:
    view = View(console_of(request), request)
    return await view.page("forgot.html")


@public_action(again=_again("forgot.html"))
async def forgot(view: View) -> Response:
    """Ask for a reset link by mail; the answer is the same whether or not the address has an account."""
    await _ask(view, "/auth/password-reset", {"email": view.field("email")})
    return view.redirect(
        f"{PREFIX}/login", message="If the address has an account, a link to set a new password is on its way."
    )


async def reset_page(request: Request) -> Response:
    view = View(console_of(request), request)
    return await view.page("reset.html", token=request.query_params.get("token", ""))


@public_action(again=_again("reset.html", "token"))
async def reset(view: View) -> Response:
    """Set a new password with the mailed link's token (the token is the credential)."""
    await _ask(
        view, "/auth/password-reset/confirm", {"token": view.field("token"), "newPassword": view.field("password")}
    )
    return view.redirect(f"{PREFIX}/login", message="Your password is set: sign in with it.")


@action(back=f"{PREFIX}/bots")
async def sign_out(view: View) -> Response:
    try:
        await view.send("POST", "/auth/logout")
    except Refused as err:
        if err.status != 401:
            raise
    response = view.redirect(f"{PREFIX}/login", message="Signed out.")
    view.forget_session(response)
    return response


@action(back=f"{PREFIX}/bots")
async def switch_tenant(view: View) -> Response:
    """Act for another tenant: one the person belongs to (any, for a platform admin); the API decides."""
    chosen = view.field("tenant")
    me = await view.me()
    if chosen not in me.tenants and not me.platform_admin:
        return view.redirect(f"{PREFIX}/bots", message="that tenant is not yours", error=True)
    response = view.redirect(f"{PREFIX}/bots", message=f"Acting for {chosen}.")
    view.choose_tenant(response, chosen)
    return response


async def home(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/bots", status_code=303)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/login", sign_in_page, methods=["GET"]),
    Route("/login", sign_in, methods=["POST"]),
    Route("/signup", sign_up_page, methods=["GET"]),
    Route("/signup", sign_up, methods=["POST"]),
    Route("/forgot", forgot_page, methods=["GET"]),
    Route("/forgot", forgot, methods=["POST"]),
    Route("/reset-password", reset_page, methods=["GET"]),
    Route("/reset-password", reset, methods=["POST"]),
    Route("/logout", sign_out, methods=["POST"]),
    Route("/tenant", switch_tenant, methods=["POST"]),
]
