"""Records every authenticated mutating call once its answer is decided, before the client receives its end."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wopr_platform.api.auth import Principal
from wopr_platform.audit.schemas import AuditRecord, TargetKind
from wopr_platform.audit.writer import AuditWriter

MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
CHANGES = frozenset({"PATCH", "PUT"})  # calls whose changed field names are recorded
# path parameters that name what a call acts on, in order of preference
TARGETS: tuple[tuple[str, TargetKind], ...] = (
    ("bot_id", "bot"),
    ("rollout_id", "rollout"),
    ("name", "template"),
    ("tenant_id", "tenant"),
    ("user_id", "user"),
    ("key_id", "key"),
    ("invitation_id", "invitation"),
)
# what a 201 of each creating route made (its new id is the answer's `id`)
CREATED: dict[str, TargetKind] = {
    "/fleet/bots": "bot",
    "/tenants": "tenant",
    "/keys": "key",
    "/invitations": "invitation",
}
CAPTURE_LIMIT = 65_536  # bytes of an error (or 201) answer read for its code (or new id); they are small
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_FIELDS = 50


def _json(data: bytes | bytearray) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _error_code(body: bytes | bytearray) -> str | None:
    parsed = _json(body)
    details = parsed.get("details") if isinstance(parsed, dict) else None
    code = details.get("code") if isinstance(details, dict) else None
    return code[:60] if isinstance(code, str) else None


def _changed_fields(body: bytes | bytearray) -> tuple[str, ...] | None:
    """The names of the fields a (successful, so validated) PATCH set; never a value."""
    parsed = _json(body)
    if not isinstance(parsed, dict):
        return None
    names = sorted(k for k, v in parsed.items() if v is not None and isinstance(k, str) and FIELD_NAME.match(k))
    return tuple(names[:MAX_FIELDS])


def _target(
    scope: Scope, route: str | None, status: int, answer: bytes | bytearray
) -> tuple[TargetKind | None, str | None]:
    params = scope.get("path_params") or {}
    for key, kind in TARGETS:
        value = params.get(key)
        if isinstance(value, str) and value:
            return kind, (value.lower() if kind != "template" else value)[:200]
    made = CREATED.get(route or "")
    if status == 201 and made is not None:  # something created: its new id
        parsed = _json(answer)
        created = parsed.get("id") if isinstance(parsed, dict) else None
        if isinstance(created, str) and created:
            return made, created[:200]
    return None, None


class AuditMiddleware:
    """ASGI middleware: one audit record per POST/PATCH/PUT/DELETE that passed authentication.

    Calls refused before authentication (401, unknown routes, a malformed id, an unreadable body) change nothing
    and carry no identity, so they are not recorded. The record is queued when the last chunk of the answer is
    handed to the server, so by the time a client has its answer, GET /audit (which flushes the queue) shows it.
    """

    def __init__(self, app: ASGIApp, *, writer: AuditWriter) -> None:
        self._app = app
        self._writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self._app(scope, receive, send)
            return
        started = time.monotonic()
        at = datetime.now(UTC)
        state = scope.setdefault("state", {})
        status = 0
        recorded = False
        answer = bytearray()
        capture = False
        request_body: bytearray | None = bytearray() if scope["method"] in CHANGES else None

        async def record(status: int, error_code: str | None) -> None:
            nonlocal recorded
            recorded = True
            principal = state.get("principal")
            route = getattr(scope.get("route"), "path", None)
            if not isinstance(principal, Principal) or not isinstance(route, str):
                return
            kind, target = _target(scope, route, status, answer)
            fields = _changed_fields(request_body) if request_body is not None and status < 400 else None
            client = scope.get("client")
            await self._writer.put(
                AuditRecord(
                    at=at,
                    actor=principal.subject[:100],
                    tenant_id=principal.tenant_id,
                    action=f"{scope['method']} {route}"[:220],
                    target_kind=kind,
                    target_id=target,
                    status=status,
                    error_code=error_code,
                    fields=fields,
                    request_id=str(state.get("request_id", ""))[:64],
                    client_request_id=state.get("client_request_id"),
                    client_address=str(client[0])[:64] if client else None,
                    duration_ms=int((time.monotonic() - started) * 1000),
                )
            )

        async def teeing_receive() -> Message:
            message = await receive()
            if request_body is not None and message["type"] == "http.request":
                request_body.extend(message.get("body", b""))
            return message

        async def recording_send(message: Message) -> None:
            nonlocal status, capture
            if message["type"] == "http.response.start":
                status = int(message["status"])
                capture = status >= 400 or status == 201
            elif message["type"] == "http.response.body" and not recorded:
                if capture and len(answer) < CAPTURE_LIMIT:
                    answer.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    await record(status, _error_code(answer) if status >= 400 else None)
            await send(message)

        try:
            await self._app(scope, teeing_receive if request_body is not None else receive, recording_send)
        except BaseException as err:
            if not recorded:  # the last-resort handler answers 500 outside this middleware
                code = "internal_error" if isinstance(err, Exception) else "cancelled"
                await record(status if status >= 400 else 500, code)
            raise
