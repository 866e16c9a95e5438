"""What every console page and action shares: who is signed in, calls to the API on their behalf, rendering, and
the answers a page or a form gets (a page, a redirect with a message, a refusal shown in plain words).

Pages are server-rendered with Jinja2 (autoescaped) and enhanced by htmx (`hx-boost`: links and forms swap the
page's body without a full reload; a few parts refresh themselves). They work without JavaScript too: every action
is a plain form post answered by a redirect.

CSRF: a form carries the session's CSRF token (kept by the console in its own cookie when it signs the person in)
and the console hands it to the API in `X-CSRF-Token`; the API checks it against the session, as it does for any
caller with the cookie. The console also refuses a post whose `Origin` is another site's.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from wopr_platform.web import formats, rows
from wopr_platform.web.upstream import Answer, Credentials, Refused, Upstream

log = logging.getLogger(__name__)

PREFIX = "/ui"
SESSION_COOKIE = "wopr_session"  # the API's own session cookie (set by its sign-in answer)
CSRF_COOKIE = "wopr_csrf"  # the session's CSRF token, for the console's forms
TENANT_COOKIE = "wopr_tenant"  # the tenant chosen in the switcher (the API reads it too, for a session)
FLASH_COOKIE = "wopr_flash"  # the outcome of the last action, shown once by the next page
FLASH_MAX = 600

Handler = Callable[["View"], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
Refusal = Callable[["View", Refused], Awaitable[Response]]  # what a form's post answers when the API says no


@dataclass(frozen=True, slots=True)
class Me:
    """The signed-in person, as `/auth/me` says."""

    id: str
    email: str
    platform_admin: bool
    totp: bool
    tenants: dict[str, str]  # tenant id -> role

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Me:
        return cls(
            id=body["id"],
            email=body["email"],
            platform_admin=bool(body["platformAdmin"]),
            totp=bool(body["totp"]),
            tenants={item["tenantId"]: item["role"] for item in body["tenants"]},
        )


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("wopr_platform.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["when"] = formats.when
    env.filters["ago"] = formats.ago
    env.filters["credits"] = formats.credits
    env.filters["size"] = formats.size
    env.globals["PREFIX"] = PREFIX
    env.globals["bot_row"] = functools.partial(rows.bot_row, prefix=PREFIX)
    env.globals["bot_rows"] = functools.partial(rows.bot_rows, prefix=PREFIX)
    return env


class Console:
    """The console's long-lived parts: the way to the API, the templates, how its cookies are set."""

    def __init__(self, upstream: Upstream, *, secure: bool, session_max_age: int, checkout_origin: str) -> None:
        self.upstream = upstream
        self.env = environment()
        self.secure = secure
        self.session_max_age = session_max_age
        self.checkout_origin = checkout_origin  # the one other site a buyer is sent to: Stripe's payment pages


class View:
    """One request to the console."""

    def __init__(self, console: Console, request: Request) -> None:
        self.console = console
        self.request = request
        self.form: FormData | None = None
        self._me: Me | None = None
        client = request.scope.get("client")
        self.credentials = Credentials(
            cookie=request.headers.get("cookie"),
            csrf=request.cookies.get(CSRF_COOKIE),
            tenant=request.cookies.get(TENANT_COOKIE) or None,
            client=(client[0], client[1]) if client else None,
            scheme=request.url.scheme,
            host=request.headers.get("host", "localhost"),
        )

    @property
    def signed_in(self) -> bool:
        return bool(self.request.cookies.get(SESSION_COOKIE))

    @property
    def htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"

    # --- the API -------------------------------------------------------------------------------------------------

    async def get(self, path: str, *, tenant: str | None = None, **query: str | int | None) -> Any:
        """GET an API route's JSON, for `tenant` or else the tenant acted for (`Refused` when the API says no)."""
        credentials = self.credentials if tenant is None else replace(self.credentials, tenant=tenant)
        return await self.console.upstream.json(credentials, "GET", path, query=query)

    async def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        tenant: str | None = None,
        **query: str | int | None,
    ) -> Any:
        """A state-changing call, with the form's CSRF token (for `tenant`, else the tenant acted for; `headers`
        are the call's own, e.g. an `Idempotency-Key`)."""
        credentials = self._with_form_csrf()
        if tenant is not None:
            credentials = replace(credentials, tenant=tenant)
        return await self.console.upstream.json(credentials, method, path, query=query, body=body, headers=headers)

    async def text(self, path: str, **query: str | int | None) -> str:
        answer = await self.console.upstream.call(self.credentials, "GET", path, query=query)
        return answer.checked().body.decode("utf-8", "replace")

    def _with_form_csrf(self) -> Credentials:
        given = self.form.get("csrf") if self.form is not None else None
        token = given if isinstance(given, str) else self.request.headers.get("x-csrf-token")
        return replace(self.credentials, csrf=token)

    async def me(self) -> Me:
        if self._me is None:
            self._me = Me.of(await self.get("/auth/me"))
        return self._me

    @property
    def tenant(self) -> str | None:
        return self.credentials.tenant

    # --- forms ---------------------------------------------------------------------------------------------------

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else default

    # --- answers -------------------------------------------------------------------------------------------------

    async def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A whole page (or, for an htmx request that names a fragment, the same template: htmx swaps what it
        asked for)."""
        me = self._me
        if me is None and self.signed_in:
            try:
                me = await self.me()
            except Refused:
                me = None
        flash = self._flash()
        html = self.console.env.get_template(template).render(
            me=me,
            tenant=self.current_tenant(me),
            csrf=self.credentials.csrf or "",
            flash=flash,
            path=self.request.url.path,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        if flash is not None:
            response.delete_cookie(FLASH_COOKIE, path=PREFIX)
        return response

    def fragment(self, template: str, **context: Any) -> HTMLResponse:
        """A part of a page (what a self-refreshing part asks for)."""
        html = self.console.env.get_template(template).render(csrf=self.credentials.csrf or "", **context)
        return HTMLResponse(html)

    def current_tenant(self, me: Me | None) -> str | None:
        if self.tenant:
            return self.tenant
        if me is not None and len(me.tenants) == 1:
            return next(iter(me.tenants))
        return "default" if me is not None and me.platform_admin else None

    def redirect(self, to: str, *, message: str | None = None, error: bool = False) -> Response:
        """After an action: go to `to` (303, so the browser GETs it), with a message shown once there."""
        response = RedirectResponse(to, status_code=303)
        if message is not None:
            self.set_flash(response, message, error=error)
        return response

    def set_flash(self, response: Response, message: str, *, error: bool) -> None:
        value = json.dumps({"error": error, "text": message[:FLASH_MAX]}, separators=(",", ":"))
        response.set_cookie(
            FLASH_COOKIE,
            quote(value),
            max_age=120,
            path=PREFIX,
            httponly=True,
            samesite="lax",
            secure=self.console.secure,
        )

    def _flash(self) -> dict[str, Any] | None:
        raw = self.request.cookies.get(FLASH_COOKIE)
        if not raw:
            return None
        try:
            value = json.loads(unquote(raw))
        except ValueError:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("text"), str):
            return None
        return {"error": bool(value.get("error")), "text": value["text"]}

    # --- the browser's cookies -----------------------------------------------------------------------------------

    def keep_session(self, response: Response, answer: Answer) -> None:
        """Hand the browser the session the API's `answer` opened: the API's cookie as the API set it, and the
        session's CSRF token (the answer's `csrfToken`) in the console's own cookie, for the forms."""
        for cookie in answer.cookies():
            response.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))
        response.set_cookie(
            CSRF_COOKIE,
            answer.json()["csrfToken"],
            max_age=self.console.session_max_age,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.console.secure,
        )

    def forget_session(self, response: Response) -> None:
        """The browser forgets the session (ended by the API): its cookie, its CSRF token and the tenant chosen."""
        for name in (SESSION_COOKIE, CSRF_COOKIE, TENANT_COOKIE):
            response.delete_cookie(name, path="/")

    def choose_tenant(self, response: Response, tenant: str | None) -> None:
        """The tenant the browser acts for from now on (None: no choice, the console picks as for a new session)."""
        if tenant is None:
            response.delete_cookie(TENANT_COOKIE, path="/")
            return
        response.set_cookie(
            TENANT_COOKIE,
            tenant,
            max_age=self.console.session_max_age,
            path="/",
            samesite="lax",
            secure=self.console.secure,
        )

    def to_sign_in(self) -> Response:
        target = self.request.url.path
        if self.request.url.query:
            target += "?" + self.request.url.query
        if self.htmx:  # htmx follows a redirect inside the page: make the browser itself go
            return Response(status_code=204, headers={"HX-Redirect": f"{PREFIX}/login"})
        return RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303)

    def same_origin(self) -> bool:
        """A post from one of our own pages: no `Origin` (an old browser, a plain client) or ours."""
        origin = self.request.headers.get("origin")
        if origin is None:
            return True
        return urlsplit(origin).netloc == self.request.headers.get("host", "")


def refusal_text(err: Refused) -> str:
    """The API's refusal in one line: its message and the field or code it named."""
    parts = [err.error]
    field_name = err.details.get("field")
    if isinstance(field_name, str):
        parts.append(f"({field_name})")
    return " ".join(parts)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def page(handler: Handler) -> Endpoint:
    """A page: signed in (or sent to sign in), and a refusal of the API shown as a page that says why."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        view = View(console_of(request), request)
        if not view.signed_in:
            return view.to_sign_in()
        try:
            await view.me()
            return await handler(view)
        except Refused as err:
            return await refused(view, err)

    return endpoint


def action(back: str | Callable[[Request], str]) -> Callable[[Handler], Endpoint]:
    """A form post: same origin, signed in; a refusal goes back to `back` (a path, or made from the request) with
    the API's reason shown there."""

    async def went_back(view: View, err: Refused) -> Response:
        if signed_out(err):
            return view.to_sign_in()
        target = back(view.request) if callable(back) else back
        return view.redirect(target, message=refusal_text(err), error=True)

    def wrap(handler: Handler) -> Endpoint:
        return _form_post(handler, went_back, signed_in=True)

    return wrap


def public_action(again: Refusal) -> Callable[[Handler], Endpoint]:
    """A form post of a page for someone not signed in (signing in or up, a forgotten password): same origin; a
    refusal shows the form's page again (`again`) with the API's reason."""

    def wrap(handler: Handler) -> Endpoint:
        return _form_post(handler, again, signed_in=False)

    return wrap


def _form_post(handler: Handler, refusal: Refusal, *, signed_in: bool) -> Endpoint:
    """A form post from one of the console's own pages (another site's is refused), by someone signed in if
    `signed_in`; `refusal` answers when the API says no."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        view = View(console_of(request), request)
        if not view.same_origin():
            return HTMLResponse("cross-site form posts are refused", status_code=403)
        if signed_in and not view.signed_in:
            return view.to_sign_in()
        view.form = await request.form()
        try:
            return await handler(view)
        except Refused as err:
            return await refusal(view, err)

    return endpoint


def signed_out(err: Refused) -> bool:
    """The refusal says the session is gone (not, e.g., a wrong password entered again to confirm a change)."""
    return err.status == 401 and err.code in (None, "session_expired")


async def refused(view: View, err: Refused) -> Response:
    if signed_out(err):
        return view.to_sign_in()
    if view.tenant and (err.code == "tenant_not_found" or err.details.get("header") == "X-Tenant-Id"):
        response = view.redirect(f"{PREFIX}/bots", message="that tenant is not yours any more", error=True)
        view.choose_tenant(response, None)
        return response
    return await view.page("error.html", status=err.status, error=refusal_text(err), code=err.status)
