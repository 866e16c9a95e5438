"""Security headers and a request id on every answer: successes, errors, 404s, 413s, 429s and the last-resort 500."""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# An API answer is data, never a page: it may load nothing, be framed by nothing, and is never cached.
API_POLICY = b"default-src 'none'; frame-ancestors 'none'"
# FastAPI's /docs (Swagger UI) and /redoc pages load their scripts, styles, fonts and favicon from public CDNs and
# start with an inline script (fixed text: it holds no request data), then fetch /openapi.json.
DOCS_POLICY = (
    b"default-src 'none'; "
    b"script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    b"font-src https://fonts.gstatic.com; "
    b"img-src data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    b"connect-src 'self'; "
    b"worker-src blob:; "
    b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# The web console's pages: their own scripts, styles and images only (no inline script or style, nothing from
# elsewhere), calls and the event stream to this origin only, forms posted here only (and followed, when a post
# answers with a redirect, to the sites the console names: Stripe's payment pages).


def console_policy(form_targets: Collection[str] = ()) -> bytes:
    targets = "".join(f" {origin}" for origin in form_targets)
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        f"form-action 'self'{targets}; base-uri 'none'; frame-ancestors 'none'"
    ).encode()


# the console's scripts and styles may be kept by the browser, asked again each time (an unchanged file is a 304)
REVALIDATE = (b"cache-control", b"no-cache")
# The console's pages tell their own origin to the console and nothing to other sites: under `no-referrer` a
# browser sends `Origin: null` with a plain (not scripted) form post, which the console's same-origin check must
# refuse, as it would a sandboxed frame's.
SAME_ORIGIN_REFERRER = (b"referrer-policy", b"same-origin")
HSTS = b"max-age=31536000"
FIXED = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
# headers this layer owns: a value the app set for one of them is replaced (e.g. an event stream's `no-cache`)
OWNED = frozenset(
    {name for name, _ in FIXED}
    | {b"content-security-policy", b"strict-transport-security", b"server", b"x-powered-by", b"x-request-id"}
)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def client_request_id_of(scope: Scope) -> str | None:
    """The caller's own `X-Request-ID` when it is a short plain token: kept beside ours, never in its place."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given: str = value.decode("latin-1")
            return given if REQUEST_ID.match(given) else None
    return None


def _replaced(headers: list[tuple[bytes, bytes]], header: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [header if name == header[0] else (name, value) for name, value in headers]


class ResponseHeaders:
    """ASGI middleware: adds the security headers and `X-Request-ID` to every response start.

    The request id is always the platform's own (a caller could otherwise reuse another request's id); it is put in
    the request's state (`request.state.request_id`) for the audit log, with the caller's own `X-Request-ID`
    beside it (`client_request_id`) so a client can still find its calls.
    HSTS is sent only when the platform says it is reached over HTTPS (`PLATFORM_HTTPS`): over plain HTTP the
    header means nothing, and sent by mistake it would lock browsers out of a host that has no certificate.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        https: bool,
        docs_paths: Collection[str],
        console: str | None = None,
        console_form_targets: Collection[str] = (),
    ) -> None:
        self._app = app
        self._console_policy = console_policy(console_form_targets)
        self._docs_paths = frozenset(docs_paths)
        self._console = f"{console}/" if console else None
        self._static = f"{console}/static/" if console else None
        self._common = [*FIXED, *([(b"strict-transport-security", HSTS)] if https else [])]
        self._pages = _replaced(self._common, SAME_ORIGIN_REFERRER)
        self._cached = _replaced(self._pages, REVALIDATE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_request_id"] = client_request_id_of(scope)
        path: str = scope["path"]
        policy, common = API_POLICY, self._common
        if path in self._docs_paths:
            policy = DOCS_POLICY
        elif self._console is not None and (path.startswith(self._console) or path == self._console[:-1]):
            policy, common = self._console_policy, self._pages
            if self._static is not None and path.startswith(self._static):
                common = self._cached
        added = [*common, (b"content-security-policy", policy), (b"x-request-id", request_id.encode())]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in OWNED]
                message = {**message, "headers": kept + added}
            await send(message)

        await self._app(scope, receive, send_with_headers)
