"""A minimal DNS responder (UDP, A records only) through which Caddy asks the platform where a request goes.

It answers only the names of the routing zone (see `proxy.config`), always with one A record and TTL 0 (Caddy
keeps an answer for its own `refresh`); anything else is refused. It never recurses and never answers with an
address the routing table did not produce. `answer` is a coroutine, so a lookup may first wait for the table to
catch up with a change just committed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

log = logging.getLogger(__name__)

TYPE_A = 1
CLASS_IN = 1
RCODE_OK = 0
RCODE_FORMAT_ERROR = 1
RCODE_NAME_ERROR = 3
RCODE_REFUSED = 5
FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_RD = 0x0100
MAX_NAME = 255

Answer = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Query:
    """The single question of a standard query."""

    id: int
    flags: int
    name: str
    qtype: int
    qclass: int
    question: bytes  # the question section as sent, echoed in the response


def parse_query(packet: bytes) -> Query | None:
    """The question of a standard query, or None when the packet is not one we can answer."""
    if len(packet) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & FLAG_QR or (flags >> 11) & 0xF != 0 or qdcount != 1:
        return None
    labels: list[str] = []
    offset = 12
    while True:
        if offset >= len(packet):
            return None
        length = packet[offset]
        if length == 0:
            offset += 1
            break
        if length > 63:  # compression pointers do not occur in a question we accept
            return None
        label = packet[offset + 1 : offset + 1 + length]
        if len(label) != length:
            return None
        try:
            labels.append(label.decode("ascii"))
        except UnicodeDecodeError:
            return None
        offset += 1 + length
        if offset - 12 > MAX_NAME:
            return None
    if offset + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack("!HH", packet[offset : offset + 4])
    return Query(qid, flags, ".".join(labels).lower(), qtype, qclass, packet[12 : offset + 4])


def response(query: Query, rcode: int, address: str | None = None) -> bytes:
    """The answer to `query`: `address` as its one A record (TTL 0), or none."""
    flags = FLAG_QR | FLAG_AA | (query.flags & FLAG_RD) | rcode
    answers = 1 if address is not None else 0
    head = struct.pack("!HHHHHH", query.id, flags, 1, answers, 0, 0)
    if address is None:
        return head + query.question
    record = b"\xc0\x0c" + struct.pack("!HHIH", TYPE_A, CLASS_IN, 0, 4) + ipaddress.IPv4Address(address).packed
    return head + query.question + record


async def reply(packet: bytes, answer: Answer) -> bytes | None:
    """The response to one packet (None: drop it). `answer(name)` gives an address, or None outside the zone."""
    query = parse_query(packet)
    if query is None:
        if len(packet) >= 12 and not struct.unpack("!H", packet[2:4])[0] & FLAG_QR:
            qid = struct.unpack("!H", packet[:2])[0]
            return struct.pack("!HHHHHH", qid, FLAG_QR | RCODE_FORMAT_ERROR, 0, 0, 0, 0)
        return None
    if query.qclass != CLASS_IN:
        return response(query, RCODE_REFUSED)
    address = await answer(query.name)
    if address is None:
        return response(query, RCODE_REFUSED)
    if query.qtype != TYPE_A:
        return response(query, RCODE_OK)  # the name exists, with no record of that type (AAAA, ...)
    return response(query, RCODE_OK, address)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsResponder) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        task = asyncio.ensure_future(self._reply(data, addr))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _reply(self, data: bytes, addr: tuple[str | int, int]) -> None:
        try:
            answer = await reply(data, self._server.answer)
        except Exception:
            log.exception("DNS query failed")
            return
        if answer is not None and self._transport is not None:
            self._server.queries += 1
            self._transport.sendto(answer, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        for task in self._pending:
            task.cancel()

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS socket error", extra={"reason": str(exc)})


class DnsResponder:
    """Serves `answer` over UDP on `host:port` while open."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.queries = 0
        self._transport: asyncio.DatagramTransport | None = None

    @property
    def listening(self) -> bool:
        return self._transport is not None

    async def open(self, host: str, port: int) -> None:
        """Bind the socket (OSError when the address is taken)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=(host, port))
        self._transport = transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
