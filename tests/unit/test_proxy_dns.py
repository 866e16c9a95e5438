"""The route DNS responder: A answers for the zone only, refusals and format errors otherwise; real UDP."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from wopr_platform.proxy import dns


def _query(name: str, qtype: int = dns.TYPE_A, *, qid: int = 0x1234, flags: int = dns.FLAG_RD) -> bytes:
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1) + question + struct.pack("!HH", qtype, dns.CLASS_IN)


def _parse(packet: bytes) -> tuple[int, int, int, list[str]]:
    qid, flags, _, ancount, _, _ = struct.unpack("!HHHHHH", packet[:12])
    answers = []
    if ancount:
        rdata = packet[-4:]
        answers.append(".".join(str(b) for b in rdata))
        assert struct.unpack("!I", packet[-10:-6])[0] == 0  # TTL 0: Caddy's refresh decides
    return qid, flags, flags & 0xF, answers


async def _table(name: str) -> str | None:
    return {"bot.h.wopr.internal": "172.17.0.5"}.get(name, "127.1.1.1" if name.endswith(".wopr.internal") else None)


async def test_an_a_query_of_the_zone_gets_one_address() -> None:
    answer = await dns.reply(_query("Bot.H.wopr.internal"), _table)
    assert answer is not None
    qid, flags, rcode, answers = _parse(answer)
    assert (qid, rcode, answers) == (0x1234, dns.RCODE_OK, ["172.17.0.5"])
    assert flags & dns.FLAG_QR and flags & dns.FLAG_AA and flags & dns.FLAG_RD


async def test_other_types_get_no_record_and_other_names_are_refused() -> None:
    aaaa = await dns.reply(_query("bot.h.wopr.internal", qtype=28), _table)
    assert aaaa is not None and _parse(aaaa)[2:] == (dns.RCODE_OK, [])
    outside = await dns.reply(_query("example.com"), _table)
    assert outside is not None and _parse(outside)[2:] == (dns.RCODE_REFUSED, [])


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x00" * 5,
        struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01",  # a response, not a query
        struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0) + b"\x00\x00\x01\x00\x01",  # two questions
        struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",  # a compression pointer
        struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x05ab",  # a truncated label
        struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x01\xff\x00\x00\x01\x00\x01",  # not ASCII
        struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x03bot\x00\x00",  # no type and class
    ],
)
async def test_malformed_packets_are_dropped_or_get_a_format_error(packet: bytes) -> None:
    answer = await dns.reply(packet, _table)
    if answer is not None:
        assert _parse(answer)[2] == dns.RCODE_FORMAT_ERROR


async def test_the_responder_answers_over_udp_and_stops() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    responder = dns.DnsResponder(_table)
    await responder.open("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.setblocking(False)
            await loop.sock_connect(client, ("127.0.0.1", port))
            await loop.sock_sendall(client, _query("bot.h.wopr.internal"))
            answer = await asyncio.wait_for(loop.sock_recv(client, 512), 5)
            assert _parse(answer)[3] == ["172.17.0.5"]
            await loop.sock_sendall(client, b"junk")  # dropped, the responder keeps answering
            await loop.sock_sendall(client, _query("other.h.wopr.internal", qid=7))
            answer = await asyncio.wait_for(loop.sock_recv(client, 512), 5)
            assert _parse(answer)[0] == 7 and _parse(answer)[3] == ["127.1.1.1"]
        assert responder.queries == 2
        assert responder.listening
        with pytest.raises(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", port))
    finally:
        responder.close()
    assert not responder.listening
