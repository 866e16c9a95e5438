"""The console's only way to the platform: the platform's own HTTP API, called in this process.

Every page reads through the JSON routes and every button acts through them, with the browser's own session
cookie, CSRF token and chosen tenant, so the console can see and do exactly what its user may do through the API
and nothing more: the same authorization, rate limits, audit records and validation. The call goes through the
whole ASGI app (its middleware included) without a socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.types import ASGIApp, Message, Scope

JSON = b"application/json"
# marks a call as the console's, for a page or action that was itself counted by the API's rate limit (the API's
# `api.ratelimit.CONSOLE_CALL`; a client cannot set it: it sends headers, not scope entries)
CONSOLE_CALL = "wopr.console_call"


@dataclass(frozen=True, slots=True)
class Answer:
    """The API's answer to one call."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status < 400

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None

    def cookies(self) -> list[str]:
        """The `Set-Cookie` values of the answer (the session the API opened or closed)."""
        return [value.decode("latin-1") for name, value in self.headers if name == b"set-cookie"]

    def checked(self) -> Answer:
        """This answer, when the API said yes; `Refused` when it said no."""
        if not self.ok:
            raise Refused.of(self)
        return self


class Refused(Exception):
    """The API refused a call: its status, message and details, to be shown to the person."""

    def __init__(self, status: int, error: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = details or {}

    @property
    def code(self) -> str | None:
        code = self.details.get("code")
        return code if isinstance(code, str) else None

    @classmethod
    def of(cls, answer: Answer) -> Refused:
        try:
            body = answer.json()
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            details = body.get("details")
            return cls(answer.status, body["error"], details if isinstance(details, dict) else None)
        return cls(answer.status, f"the platform answered {answer.status}")


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the browser presented: its cookies (the session among them), the CSRF token of a form, the tenant it
    chose, and its address (the API's rate limits and audit records are the browser's)."""

    cookie: str | None
    csrf: str | None
    tenant: str | None
    client: tuple[str, int] | None
    scheme: str = "http"
    host: str = "localhost"


class Upstream:
    """Calls the platform's API app in this process."""

    def __init__(self, api: ASGIApp) -> None:
        self._api = api

    async def call(
        self,
        credentials: Credentials,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int | None] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One call; `headers` adds the call's own (e.g. an `Idempotency-Key`) to those of the credentials."""
        payload = orjson.dumps(body) if body is not None else b""
        sent_headers: list[tuple[bytes, bytes]] = [
            (b"host", credentials.host.encode("latin-1")),
            (b"accept", JSON),
            *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()),
        ]
        if credentials.cookie:
            sent_headers.append((b"cookie", credentials.cookie.encode("latin-1")))
        if credentials.csrf and method not in ("GET", "HEAD"):
            sent_headers.append((b"x-csrf-token", credentials.csrf.encode("latin-1")))
        if credentials.tenant:
            sent_headers.append((b"x-tenant-id", credentials.tenant.encode("latin-1")))
        if body is not None:
            sent_headers += [(b"content-type", JSON), (b"content-length", str(len(payload)).encode())]
        kept = {key: str(value) for key, value in (query or {}).items() if value is not None and value != ""}
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": credentials.scheme,
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": urlencode(kept).encode(),
            "headers": sent_headers,
            "client": credentials.client,
            "server": (credentials.host, 0),
            CONSOLE_CALL: True,
        }
        sent = False
        status = 500
        answer_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status, answer_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                answer_headers = list(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self._api(scope, receive, send)
        return Answer(status, b"".join(chunks), answer_headers)

    async def json(
        self,
        credentials: Credentials,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int | None] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The answer's JSON, or `Refused` when the API said no."""
        answer = await self.call(credentials, method, path, query=query, body=body, headers=headers)
        return answer.checked().json()
