"""Signing in (with the second factor), signing up, signing out, and choosing the tenant to act for."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from wopr_platform.web.console import (
    CSRF_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    TENANT_COOKIE,
    View,
    action,
    console_of,
    refusal_text,
)
from wopr_platform.web.upstream import Refused


def _next(view: View) -> str:
    """Where to go after signing in: a page of the console only (never another site)."""
    target = view.request.query_params.get("next") or view.field("next")
    if target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/bots"


async def sign_in_page(request: Request) -> Response:
    view = View(console_of(request), request)
    return await view.page("login.html", next=_next(view), email="", second_factor=False)


async def sign_in(request: Request) -> Response:
    view = View(console_of(request), request)
    if not view.same_origin():
        return HTMLResponse("cross-site form posts are refused", status_code=403)
    view.form = await request.form()
    email = view.field("email")
    body: dict[str, str] = {"email": email, "password": view.field("password")}
    if code := view.field("code"):
        body["code" if code.isdigit() else "recoveryCode"] = code
    answer = await view.console.upstream.call(view.credentials, "POST", "/auth/login", body=body)
    if not answer.ok:
        err = Refused.of(answer)
        second = err.code in ("totp_required", "totp_invalid") or bool(view.field("code"))
        message = "enter the code of your authenticator app" if err.code == "totp_required" else refusal_text(err)
        return await view.page(
            "login.html", status=err.status, next=_next(view), email=email, second_factor=second, error=message
        )
    session = answer.json()
    response = RedirectResponse(_next(view), status_code=303)
    for cookie in answer.cookies():  # the API's session cookie, as the API set it
        response.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))
    response.set_cookie(
        CSRF_COOKIE,
        session["csrfToken"],
        max_age=view.console.session_max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=view.console.secure,
    )
    response.delete_cookie(TENANT_COOKIE, path="/")
    return response


async def sign_up_page(request: Request) -> Response:
    view = View(console_of(request), request)
    return await view.page("signup.html", email="")


async def sign_up(request: Request) -> Response:
    view = View(console_of(request), request)
    if not view.same_origin():
        return HTMLResponse("cross-site form posts are refused", status_code=403)
    view.form = await request.form()
    email = view.field("email")
    body: dict[str, str] = {"email": email, "password": view.field("password")}
    if name := view.field("tenantName"):
        body["tenantName"] = name
    answer = await view.console.upstream.call(view.credentials, "POST", "/auth/signup", body=body)
    if not answer.ok:
        return await view.page("signup.html", status=answer.status, email=email, error=refusal_text(Refused.of(answer)))
    return view.redirect(f"{PREFIX}/login", message="Account ready: sign in with it.")


@action(back=f"{PREFIX}/bots")
async def sign_out(view: View) -> Response:
    try:
        await view.send("POST", "/auth/logout")
    except Refused as err:
        if err.status != 401:
            raise
    response = view.redirect(f"{PREFIX}/login", message="Signed out.")
    for name in (SESSION_COOKIE, CSRF_COOKIE, TENANT_COOKIE):
        response.delete_cookie(name, path="/")
    return response


@action(back=f"{PREFIX}/bots")
async def switch_tenant(view: View) -> Response:
    """Act for another tenant: one the person belongs to (any, for a platform admin); the API decides."""
    chosen = view.field("tenant")
    me = await view.me()
    if chosen not in me.tenants and not me.platform_admin:
        return view.redirect(f"{PREFIX}/bots", message="that tenant is not yours", error=True)
    response = view.redirect(f"{PREFIX}/bots", message=f"Acting for {chosen}.")
    response.set_cookie(
        TENANT_COOKIE,
        chosen,
        max_age=view.console.session_max_age,
        path="/",
        samesite="lax",
        secure=view.console.secure,
    )
    return response


async def home(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/bots", status_code=303)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/login", sign_in_page, methods=["GET"]),
    Route("/login", sign_in, methods=["POST"]),
    Route("/signup", sign_up_page, methods=["GET"]),
    Route("/signup", sign_up, methods=["POST"]),
    Route("/logout", sign_out, methods=["POST"]),
    Route("/tenant", switch_tenant, methods=["POST"]),
]
