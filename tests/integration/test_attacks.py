"""The attack suite: a real running server (served as production serves it, front door included) attacked over raw
sockets and HTTP, and checked afterwards for what changed and what leaked.

Covered here: connections that send nothing or too little (headers, bodies), oversized and chunked bodies, header
smuggling attempts, forged forwarded headers and request ids, duplicate headers and JSON keys, connection floods and
unbounded keep-alive, and another tenant's ids on every route. Reach from inside a bot to the host and to another
tenant's bot is attacked in tests/integration/test_bot_reach.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import STUB_IMAGE, TOKEN, Platform, PlatformFactory
from tests.ports import free_port

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
PER_CLIENT = 6
AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()


@pytest.fixture
async def platform(make_platform: PlatformFactory) -> Platform:
    """A platform with the AI gateway on, so that its routes are tried too."""
    return await make_platform(GATEWAY_ENABLED=True, GATEWAY_PORT=free_port())


@pytest.fixture
async def door(make_platform: PlatformFactory) -> Platform:
    """A platform with short front-door deadlines, a small per-client cap and a small request cap."""
    return await make_platform(
        HTTP_HEADER_TIMEOUT=HEADER_TIMEOUT,
        HTTP_BODY_TIMEOUT=BODY_TIMEOUT,
        HTTP_MAX_CONNECTIONS_PER_CLIENT=PER_CLIENT,
        HTTP_MAX_REQUESTS_PER_CONNECTION=3,
        HTTP_KEEPALIVE_TIMEOUT=1,
    )


class Raw:
    """One TCP connection to the platform, written and read byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_until_closed(self, timeout: float = 10.0) -> tuple[bytes, float]:
        """Everything the server sends until it closes (or resets) the connection, and how long that took."""
        began = time.monotonic()
        received = b""
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(timeout):
                while chunk := await self.reader.read(65_536):
                    received += chunk
        return received, time.monotonic() - began

    async def read_answer(self, timeout: float = 10.0) -> bytes:
        """One whole answer with a Content-Length body (the connection may stay open)."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
            return head + await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


@contextlib.asynccontextmanager
async def raw(platform: Platform) -> AsyncIterator[Raw]:
    port = platform.settings.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connection = Raw(reader, writer)
    try:
        yield connection
    finally:
        connection.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def error_of(answer: bytes) -> dict[str, Any]:
    """The `{"error","details"}` body of an answer, checked to have that shape."""
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert set(body) == {"error", "details"} and body["error"], body
    return dict(body)


async def bot_names(platform: Platform) -> set[str]:
    return {bot["name"] for bot in (await platform.client.get("/fleet/bots")).json()["bots"]}


# --- connections that send too little, too slowly ------------------------------------------------------------


async def test_a_connection_that_sends_nothing_is_answered_408_and_closed(door: Platform) -> None:
    async with raw(door) as connection:
        answer, took = await connection.read_until_closed()
    assert status_of(answer) == 408, answer
    assert error_of(answer)["details"]["code"] == "header_timeout"
    assert took < HEADER_TIMEOUT + 3


async def test_half_a_header_block_and_a_trickle_are_cut_off_at_the_deadline(door: Platform) -> None:
    async with raw(door) as connection:
        await connection.send(b"GET /fleet/bots HTTP/1.1\r\nHost: x\r\n")
        answer, took = await connection.read_until_closed()
    assert status_of(answer) == 408 and took < HEADER_TIMEOUT + 3

    # one header byte every 0.2 s keeps the connection busy but never finishes the headers
    async with raw(door) as connection:
        began = time.monotonic()
        with contextlib.suppress(ConnectionError):
            for byte in b"GET /fleet/bots HTTP/1.1\r\nX-Slow: " + b"a" * 100:
                await connection.send(bytes([byte]))
                await asyncio.sleep(0.2)
                if connection.reader.at_eof():
                    break
        answer, _ = await connection.read_until_closed()
    assert status_of(answer) in (408, 0)  # the 408 may be lost to the reset of bytes sent after it
    assert time.monotonic() - began < HEADER_TIMEOUT + 4


async def test_a_body_shorter_than_its_length_is_answered_408_and_creates_nothing(door: Platform) -> None:
    name = "short-" + uuid.uuid4().hex[:8]
    body = json.dumps({"name": name, "image": STUB_IMAGE}).encode()
    async with raw(door) as connection:
        await connection.send(
            b"POST /fleet/bots HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body) + 50).encode() + b"\r\n\r\n" + body
        )
        answer, took = await connection.read_until_closed()
    assert status_of(answer) == 408, answer
    assert error_of(answer)["details"]["code"] == "body_timeout"
    assert took < BODY_TIMEOUT + 3
    assert name not in await bot_names(door)


async def test_headers_over_the_limit_are_431(door: Platform) -> None:
    async with raw(door) as connection:
        await connection.send(b"GET /fleet/bots HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        answer, _ = await connection.read_until_closed()
    assert status_of(answer) == 431, answer[:200]
    assert error_of(answer)["details"]["code"] == "headers_too_large"


async def test_a_whole_request_larger_than_the_header_limit_in_one_piece_is_served(door: Platform) -> None:
    """Headers and a body bigger than the header limit arriving together are a request like any other (only
    the header block counts against the limit), on a fresh connection and on a kept-alive one."""
    body = b'{"name": "x", "image": "localhost/wopr-stub:latest", "description": "' + b"d" * 90_000 + b'"}'
    request = (
        b"POST /fleet/bots HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    async with raw(door) as connection:
        for _ in range(2):
            await connection.send(request)
            answer = await connection.read_answer()
            assert status_of(answer) == 400, answer[:300]  # the description is too long: the app answered
            assert error_of(answer)["details"]["code"] != "headers_too_large"


# --- bodies over the limit --------------------------------------------------------------------------------


async def test_a_declared_body_over_the_limit_is_413_before_any_of_it_is_sent(door: Platform) -> None:
    async with raw(door) as connection:
        await connection.send(
            b"POST /fleet/bots HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Type: application/json\r\n"
            b"Content-Length: 2000000\r\n\r\n"
        )
        answer = await connection.read_answer(timeout=BODY_TIMEOUT)  # before the body deadline: at once
    assert status_of(answer) == 413, answer
    assert b"connection: close" in answer.lower()
    assert error_of(answer)["details"]["code"] == "payload_too_large"


async def test_a_client_that_keeps_sending_after_the_413_still_reads_it(door: Platform) -> None:
    """The lingering close: the platform stops reading the body, yet the answer is not destroyed by a reset."""
    async with raw(door) as connection:
        await connection.send(
            b"POST /fleet/bots HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            for _ in range(40):  # 2.6 MB in chunks, well past the 1 MiB limit
                await connection.send(b"10000\r\n" + b"x" * 65_536 + b"\r\n")
        answer, _ = await connection.read_until_closed()
    assert status_of(answer) == 413, answer[:300]
    assert error_of(answer)["details"]["code"] == "payload_too_large"


# --- smuggling and malformed framing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        # Content-Length and Transfer-Encoding together: two readers may frame the body differently
        b"POST /fleet/bots HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /fleet/bots HTTP/1.1\r\nHost: x\r\n\r\n",
        # two different lengths
        b"POST /fleet/bots HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
        # a chunk size that is not hex
        b"POST /fleet/bots HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        # a header folded over two lines (obsolete, and read differently by different parsers)
        b"GET /fleet/bots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n " + TOKEN.encode() + b"\r\n\r\n",
        # a space before the colon
        b"GET /fleet/bots HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer " + TOKEN.encode() + b"\r\n\r\n",
        # a bare line feed ending the request line
        b"GET /fleet/bots HTTP/1.1\nHost: x\r\n\r\n",
        # a transfer coding that only looks like chunked
        b"POST /fleet/bots HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        # two transfer codings headers
        b"POST /fleet/bots HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"
        b"0\r\n\r\n",
    ],
    ids=[
        "cl-and-te",
        "two-lengths",
        "bad-chunk",
        "folded-header",
        "space-before-colon",
        "bare-lf",
        "xchunked",
        "two-te",
    ],
)
async def test_smuggling_attempts_are_refused_and_nothing_behind_them_is_served(
    door: Platform, request_bytes: bytes
) -> None:
    before = await bot_names(door)
    async with raw(door) as connection:
        await connection.send(request_bytes)
        answer, _ = await connection.read_until_closed()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3})", answer)
    assert statuses == [b"400"], answer[:400]  # one answer, refusing; never the smuggled request's
    assert error_of(answer)["details"]["code"] == "invalid_http"
    assert await bot_names(door) == before


# --- connection caps and keep-alive --------------------------------------------------------------------------


async def test_one_address_cannot_hold_more_than_its_share_of_connections(make_platform: PlatformFactory) -> None:
    platform = await make_platform(HTTP_HEADER_TIMEOUT=30, HTTP_MAX_CONNECTIONS_PER_CLIENT=PER_CLIENT)
    held = [await asyncio.open_connection("127.0.0.1", platform.settings.port) for _ in range(PER_CLIENT)]
    try:
        await asyncio.sleep(0.2)
        async with raw(platform) as extra:
            answer, _ = await extra.read_until_closed()
        assert status_of(answer) == 503, answer
        assert error_of(answer)["details"]["code"] == "too_many_connections"
        held.pop()[1].close()
        await asyncio.sleep(0.3)
        async with raw(platform) as again:  # a freed place is taken again
            await again.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(await again.read_answer()) == 200
    finally:
        for _, writer in held:
            writer.close()


async def test_keep_alive_is_bounded_in_requests_and_in_idle_time(door: Platform) -> None:
    async with raw(door) as connection:
        for number in range(1, 4):
            await connection.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await connection.read_answer()
            assert status_of(answer) == 200
            assert (b"connection: close" in answer.lower()) == (number == 3), answer
        _, took = await connection.read_until_closed()
        assert took < 2
    async with raw(door) as connection:
        await connection.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(await connection.read_answer()) == 200
        _, took = await connection.read_until_closed()  # idle after one answer: closed by the keep-alive timeout
        assert took < 4


# --- forged addresses and request ids ------------------------------------------------------------------------


async def _audited(platform: Platform, client_request_id: str) -> dict[str, Any]:
    events = (await platform.client.get("/audit", params={"limit": 500})).json()["events"]
    matching = [e for e in events if e["clientRequestId"] == client_request_id]
    assert len(matching) == 1, events[:3]
    return dict(matching[0])


async def test_forwarded_headers_from_an_untrusted_address_change_nothing(make_platform: PlatformFactory) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=3)
    marker = "forged-" + uuid.uuid4().hex[:8]
    response = await platform.client.post(
        f"/fleet/bots/{uuid.uuid4()}/stop",
        headers={"X-Forwarded-For": "203.0.113.7", "X-Request-ID": marker},
    )
    assert response.status_code == 404
    event = await _audited(platform, marker)
    assert event["clientAddress"] == "127.0.0.1"
    assert event["requestId"] == response.headers["x-request-id"] != marker
    assert event["id"] != marker

    # without a token, every request counts against the real address, whatever it claims to be
    anonymous = httpx.AsyncClient(base_url=platform.url, trust_env=False)
    async with anonymous:
        statuses = [
            (await anonymous.get("/fleet/bots", headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code
            for i in range(6)
        ]
    assert statuses.count(429) >= 3, statuses


async def test_forwarded_headers_from_a_trusted_proxy_name_the_client(make_platform: PlatformFactory) -> None:
    platform = await make_platform(TRUSTED_PROXIES="127.0.0.1,10.0.0.0/8")
    marker = "proxied-" + uuid.uuid4().hex[:8]
    # the client wrote 192.0.2.66 itself; our proxies appended the real client and then 10.1.2.3
    await platform.client.post(
        f"/fleet/bots/{uuid.uuid4()}/stop",
        headers={"X-Forwarded-For": "192.0.2.66, 203.0.113.9, 10.1.2.3", "X-Request-ID": marker},
    )
    assert (await _audited(platform, marker))["clientAddress"] == "203.0.113.9"


async def test_a_reused_request_id_names_two_distinct_records(platform: Platform) -> None:
    first = await platform.client.post(f"/fleet/bots/{uuid.uuid4()}/stop", headers={"X-Request-ID": "same"})
    second = await platform.client.post(f"/fleet/bots/{uuid.uuid4()}/stop", headers={"X-Request-ID": "same"})
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    events = (await platform.client.get("/audit")).json()["events"]
    same = [e for e in events if e["clientRequestId"] == "same"]
    assert len(same) == 2 and len({e["id"] for e in same}) == 2 and len({e["requestId"] for e in same}) == 2


# --- ambiguous requests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", "Bearer nope"), ("Authorization", f"Bearer {TOKEN}")],
        [("Authorization", f"Bearer {TOKEN}"), ("X-Tenant-Id", "victim"), ("X-Tenant-Id", "default")],
        [("Authorization", f"Bearer {TOKEN}"), ("Content-Type", "text/plain"), ("Content-Type", "application/json")],
    ],
    ids=["two-authorization", "two-tenants", "two-content-types"],
)
async def test_duplicate_security_headers_are_400_and_change_nothing(
    platform: Platform, headers: list[tuple[str, str]]
) -> None:
    name = "dup-" + uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as bare:
        response = await bare.post(
            "/fleet/bots", content=json.dumps({"name": name, "image": STUB_IMAGE}), headers=headers
        )
    assert response.status_code == 400, response.text
    assert response.json()["details"]["code"] == "duplicate_header"
    assert name not in await bot_names(platform)


async def test_duplicate_json_keys_are_400_and_change_nothing(platform: Platform) -> None:
    name = "dupkey-" + uuid.uuid4().hex[:8]
    created = await platform.client.post(
        "/fleet/bots",
        content=f'{{"name": "{name}", "image": "{STUB_IMAGE}", "image": "ghcr.io/elsewhere/bot:1"}}',
        headers={"content-type": "application/json"},
    )
    assert created.status_code == 400, created.text
    assert created.json()["details"] == {"code": "duplicate_json_key", "key": "image"}
    assert name not in await bot_names(platform)

    bot = await platform.create_bot(env={"MODE": "calm"})
    nested = await platform.client.patch(
        f"/fleet/bots/{bot['id']}",
        content='{"env": {"MODE": "calm", "MODE": "wild"}}',
        headers={"content-type": "application/json"},
    )
    assert nested.status_code == 400 and nested.json()["details"]["key"] == "MODE"
    after = await platform.bot(bot["id"])
    assert after["env"] == {"MODE": "calm"} and after["updatedAt"] == bot["updatedAt"]


# --- another tenant's ids on every route -----------------------------------------------------------------


def _id_routes(platform: Platform) -> list[tuple[str, str]]:
    """Every (method, path) of the API (its OpenAPI document, the wire truth) that names something by id."""
    paths: dict[str, dict[str, Any]] = platform.app.openapi()["paths"]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        if re.search(r"\{(bot_id|rollout_id|name)\}", path)
        for method in operations
    ]


async def test_another_tenants_ids_on_every_route_change_nothing_and_leak_nothing(platform: Platform) -> None:
    secret = "s3cret-" + uuid.uuid4().hex
    victim = await platform.create_bot(description="victim's", env={"API_KEY": secret}, secretEnv=["API_KEY"])
    victim = await platform.wait_for(victim["id"], state="running")
    audit_before = (await platform.client.get("/audit", params={"botId": victim["id"], "limit": 500})).json()["events"]
    routes = _id_routes(platform)
    assert len(routes) >= 12, routes  # the route table was read, not an empty list

    async with httpx.AsyncClient(
        base_url=platform.url,
        headers={"Authorization": f"Bearer {TOKEN}", "X-Tenant-Id": "mallory"},
        timeout=60,
        trust_env=False,
    ) as mallory:
        for method, path in routes:
            url = path.replace("{bot_id}", victim["id"]).replace("{rollout_id}", str(uuid.uuid4()))
            url = url.replace("{name}", "stable-discord")
            body = (
                {"description": "mallory was here"} if method == "PATCH" else {} if method in ("POST", "PUT") else None
            )
            response = await mallory.request(method, url, json=body)
            where = f"{method} {path} -> {response.status_code} {response.text[:200]}"
            assert secret not in response.text, where
            if "{bot_id}" in path:
                assert response.status_code == 404, where
            else:  # templates are shared; rollouts are per tenant: none of these may touch the victim's bot
                assert response.status_code < 500, where

    after = await platform.bot(victim["id"])
    for field in ("containerId", "state", "desiredState", "description", "updatedAt", "image"):
        assert after[field] == victim[field], field
    # mallory's calls are in mallory's log only: the victim's log about its bot is what it was
    of_victim = {"botId": victim["id"], "limit": 500}
    assert (await platform.client.get("/audit", params=of_victim)).json()["events"] == audit_before
