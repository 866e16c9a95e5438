"""The HTTP front door: deadlines and connection limits that uvicorn does not have, on uvicorn's httptools protocol.

uvicorn bounds the idle time between two requests of a connection (keep-alive) and nothing else: a client that
connects and sends nothing, sends half a header block, or announces a body it never sends holds a connection (and
a request task) for as long as it likes. Here every connection gets

- a deadline for each request's header block, counted from the connection (or from the request's first byte);
- a deadline for its body, counted from the end of its headers;
- a cap on connections in total and on connections from one client address (addresses of trusted proxies are
  exempt: every client behind them shares their address);
- a cap on requests served by one connection, so keep-alive is bounded in count as well as in time;
- a lingering close: when the platform answers before it has read the whole request (413 for a body over the limit,
  which the body limit answers as soon as the headers announce it), it stops sending, drops whatever still arrives
  for a moment, then closes. Closing at once with unread input would make the kernel reset the connection, and the
  reset can destroy the answer before the client has read it.

A connection that misses a deadline is answered 408 (unless its answer has begun) and closed; one over a
connection cap is answered 503 and closed. These answers are written here, before any request reaches the app, in
the API's own error shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from wopr_platform.api.errors import error_body
from wopr_platform.api.headers import API_POLICY, FIXED
from wopr_platform.core.networks import Networks

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DoorLimits:
    """The front door's settings (see core/settings.py for their environment names)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 2048
    max_connections_per_client: int = 128
    max_requests_per_connection: int = 1000
    linger: float = 2.0
    trusted_proxies: Networks = field(default_factory=Networks)


class Door:
    """The connection counts of one server, shared by its connections."""

    def __init__(self, limits: DoorLimits) -> None:
        self.limits = limits
        self.total = 0
        self.per_client: dict[str, int] = {}

    def admit(self, host: str) -> str | None:
        """Count a new connection from `host`, or say why it is refused."""
        limits = self.limits
        if self.total >= limits.max_connections:
            return "the server has as many connections as it accepts"
        count = self.per_client.get(host, 0)
        if count >= limits.max_connections_per_client and not limits.trusted_proxies.contains(host):
            return "this client address has as many connections as one address may hold"
        self.total += 1
        self.per_client[host] = count + 1
        return None

    def release(self, host: str) -> None:
        self.total -= 1
        count = self.per_client.get(host, 0) - 1
        if count > 0:
            self.per_client[host] = count
        else:
            self.per_client.pop(host, None)


def _answer(status: int, reason: str, message: str, code: str) -> bytes:
    """A whole HTTP/1.1 answer in the API's error shape, with the security headers every answer carries."""
    body = json.dumps(error_body(message, {"code": code})).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *FIXED,
        (b"content-security-policy", API_POLICY),
    ]
    lines = [f"HTTP/1.1 {status} {reason}".encode(), *(name + b": " + value for name, value in headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


BODY_TIMEOUT_ANSWER = _answer(408, "Request Timeout", "the request's body did not arrive in time", "body_timeout")
MAX_HEADER_BYTES = 65_536  # of a request line and header block together
HEADER_TIMEOUT_ANSWER = _answer(
    408, "Request Timeout", "the request's headers did not arrive in time", "header_timeout"
)
HEADERS_TOO_LARGE_ANSWER = _answer(
    431,
    "Request Header Fields Too Large",
    f"the request line and headers are larger than {MAX_HEADER_BYTES} bytes",
    "headers_too_large",
)
NOT_HTTP_ANSWER = _answer(400, "Bad Request", "the request is not valid HTTP/1.1", "invalid_http")
BUSY_ANSWER = "Service Unavailable"


class _LingeringTransport(asyncio.Transport):
    """The connection's transport as uvicorn sees it: `close()` lingers while the request is still arriving."""

    def __init__(self, inner: asyncio.Transport, protocol: FrontDoorProtocol) -> None:
        super().__init__()
        self._inner = inner
        self._protocol = protocol
        self._closing = False

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._protocol.awaits_input() and self._inner.can_write_eof():
            self._protocol.linger()
        else:
            self._inner.close()

    def is_closing(self) -> bool:
        return self._closing or self._inner.is_closing()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._inner.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self._inner.writelines(list_of_data)

    def write_eof(self) -> None:
        self._inner.write_eof()

    def can_write_eof(self) -> bool:
        return self._inner.can_write_eof()

    def abort(self) -> None:
        self._closing = True
        self._inner.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._inner.resume_reading()

    def is_reading(self) -> bool:
        return self._inner.is_reading()

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._inner.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._inner.set_write_buffer_limits(high, low)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._inner.get_protocol()


class FrontDoorProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and caps above; `door` is set by `protocol_for`."""

    door: ClassVar[Door]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._raw: asyncio.Transport | None = None
        self._admitted_as: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._in_request = False  # between a request's first byte and its last
        self._awaiting_headers = True  # until the header block of the next request is complete
        self._header_bytes = 0  # received while awaiting headers
        self._lingering = False
        self._served = 0

    # connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports only quack like asyncio's
        self._raw = transport
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        refused = self.door.admit(host)
        if refused is not None:
            log.warning("connection refused", extra={"client": host, "reason": refused})
            transport.write(_answer(503, BUSY_ANSWER, refused, "too_many_connections"))
            self._lingering = True
            self._close_raw_after_linger(transport)
            return
        self._admitted_as = host
        super().connection_made(_LingeringTransport(transport, self))
        self._arm(self.door.limits.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._in_request = False  # nothing more arrives: closing now must not linger
        if self._admitted_as is not None:
            self.door.release(self._admitted_as)
            self._admitted_as = None
        if self.transport is not None:  # None: refused before uvicorn saw the connection
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # read and dropped until the client stops or the linger ends
        if self._awaiting_headers:
            # only the part up to the end of the header block counts (a whole request, its body included, may
            # arrive in one piece); refused before it is parsed, so no request of it reaches the app
            end = data.find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else end + 4
            if self._header_bytes > MAX_HEADER_BYTES and self.transport is not None:
                self.transport.write(HEADERS_TOO_LARGE_ANSWER)
                self._in_request = True  # what is still arriving belongs to the refused request
                self.transport.close()
                return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """A request httptools cannot parse (including smuggling attempts such as both Content-Length and
        Transfer-Encoding): the API's error shape instead of uvicorn's plain text."""
        log.info("request is not valid HTTP", extra={"client": self._admitted_as, "reason": msg})
        self._in_request = True
        self.transport.write(NOT_HTTP_ANSWER)
        self.transport.close()

    def eof_received(self) -> None:
        if self._lingering and self._raw is not None:
            self._raw.close()
        return None

    # requests

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_request = True
        if self._deadline is None:
            self._arm(self.door.limits.header_timeout, self._headers_late)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._awaiting_headers = False
        super().on_headers_complete()
        self._served += 1
        if self._served >= self.door.limits.max_requests_per_connection and self.cycle is not None:
            self.cycle.keep_alive = False
        self._arm(self.door.limits.body_timeout, self._body_late)

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_request = False
        self._awaiting_headers = True
        self._header_bytes = 0
        super().on_message_complete()

    # deadlines

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        raw = self._raw
        if raw is None or raw.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            raw.write(HEADER_TIMEOUT_ANSWER)
        log.info("request headers too slow; connection closed", extra={"client": self._admitted_as})
        raw.close()

    def _body_late(self) -> None:
        self._deadline = None
        raw = self._raw
        if raw is None or raw.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.disconnected = True  # whatever the app still answers is dropped for this one
            raw.write(BODY_TIMEOUT_ANSWER)
        log.info("request body too slow; connection closed", extra={"client": self._admitted_as})
        raw.close()

    # lingering close

    def awaits_input(self) -> bool:
        """Whether the request being answered has not fully arrived yet."""
        return self._in_request

    def linger(self) -> None:
        """Stop sending, drop what still arrives, close when the client does or the linger time is up."""
        raw = self._raw
        if raw is None or raw.is_closing():
            return
        self._lingering = True
        self._disarm()
        self._close_raw_after_linger(raw)

    def _close_raw_after_linger(self, raw: asyncio.Transport) -> None:
        raw.resume_reading()  # reading may be paused for a body nobody reads any more
        if raw.can_write_eof():
            raw.write_eof()
        self._deadline = self.loop.call_later(self.door.limits.linger, raw.close)


def protocol_for(limits: DoorLimits) -> type[FrontDoorProtocol]:
    """A protocol class whose connections share one `Door` (one per server)."""
    return type("PlatformProtocol", (FrontDoorProtocol,), {"door": Door(limits)})
