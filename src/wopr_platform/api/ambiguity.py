"""Refuse requests that two readers could understand differently.

A proxy in front of the platform may check one copy of a header (or of a JSON key) while the platform would act on
another, so a request with two `Authorization` or `X-Tenant-Id` headers, or a JSON body that names a key twice, is
a 400 here instead of "the first one wins" (headers) or "the last one wins" (JSON).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wopr_platform.api.errors import send_error

# headers whose meaning depends on there being one of them
SINGLE_HEADERS = frozenset(
    {
        b"authorization",
        b"x-tenant-id",
        b"host",
        b"content-length",
        b"content-type",
        b"transfer-encoding",
        b"x-request-id",
        b"x-forwarded-proto",
        b"idempotency-key",
    }
)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
        result[key] = value
    return result


def duplicate_key(body: bytes) -> str | None:
    """The first key some object of the JSON `body` names twice; None when there is none or it is not JSON (its
    own parser answers that)."""
    try:
        json.loads(body, object_pairs_hook=_unique_object)
    except DuplicateKey as err:
        return err.key
    except ValueError:
        return None
    return None


def _is_json(content_type: bytes | None) -> bool:
    """The framework parses a body as JSON when it says so, or says nothing."""
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class Unambiguous:
    """ASGI middleware: 400 for a repeated security-relevant header or a JSON body with a repeated key.

    It sits inside the body limit, so the body it reads whole is bounded.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        seen: set[bytes] = set()
        content_type: bytes | None = None
        for name, value in scope.get("headers", ()):
            if name in SINGLE_HEADERS:
                if name in seen:
                    header = name.decode("latin-1")
                    await send_error(
                        send,
                        400,
                        f"the request has more than one {header} header",
                        {"code": "duplicate_header", "header": header},
                    )
                    return
                seen.add(name)
                if name == b"content-type":
                    content_type = value
        if scope["method"] not in BODY_METHODS or not _is_json(content_type):
            await self._app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self._app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        key = duplicate_key(body) if body else None
        if key is not None:
            await send_error(
                send,
                400,
                f"the JSON body names the key {key[:100]!r} more than once",
                {"code": "duplicate_json_key", "key": key[:100]},
            )
            return
        await self._app(scope, _replay([body], None, receive), send)


def _replay(bodies: list[bytes], last: Message | None, receive: Receive) -> Receive:
    """A receive that hands out the body already read (or the message that ended the read), then the real one."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False} for body in bodies]
    if last is not None:
        pending.append(last)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
