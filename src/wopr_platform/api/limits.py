"""Refuse request bodies over the configured size before they are read into memory.

A body announced over the limit is answered 413 as soon as its headers are read; one that arrives without a length
is cut off at the limit. Either way the rest of it is never read: the front door (app/frontdoor.py) closes the
connection with a lingering close, so the 413 reaches the client before the connection ends."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wopr_platform.api.errors import send_error


class BodySizeLimit:
    """ASGI middleware: 413 when Content-Length or the streamed body exceeds `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int, streamed: frozenset[str] = frozenset()) -> None:
        self._app = app
        self._max = max_bytes
        self._streamed = streamed  # paths whose route streams its body and bounds it itself (backup uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self._streamed:
            await self._app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if b"content-length" in headers:
            try:
                declared = int(headers[b"content-length"])
            except ValueError:
                declared = self._max + 1
            if declared > self._max:
                await self._refuse(send)
                return
        received = 0
        started = False
        refused = False

        async def counting_receive() -> Message:
            # Past the limit the app is told the client went away (raising instead would reach the framework's
            # body parser, which turns any error into a 400) and whatever it answers is dropped for our 413.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self._app(scope, counting_receive, tracking_send)

    async def _refuse(self, send: Send) -> None:
        await send_error(
            send,
            413,
            f"request body is larger than {self._max} bytes",
            {"code": "payload_too_large", "limit": self._max},
            [(b"connection", b"close")],
        )
