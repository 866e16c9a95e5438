"""Refuse request bodies over the configured size before they are read into memory."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wopr_platform.api.errors import send_error

# A refused body is read and dropped up to this many bytes before the answer: closing a connection with unread
# input makes the kernel reset it, and the reset can destroy the 413 before the client has read it.
DRAIN_LIMIT = 16 * 1_048_576


async def _drain(receive: Receive) -> None:
    """Read and drop the rest of the request body, at most DRAIN_LIMIT bytes of it."""
    dropped = 0
    while dropped <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        dropped += len(message.get("body", b""))


class BodySizeLimit:
    """ASGI middleware: 413 when Content-Length or the streamed body exceeds `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if b"content-length" in headers:
            try:
                declared = int(headers[b"content-length"])
            except ValueError:
                declared = self._max + 1
            if declared > self._max:
                if declared <= self._max + DRAIN_LIMIT and b"expect" not in headers:
                    await _drain(receive)
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
                    if message.get("more_body", False):
                        await _drain(receive)
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
