"""Route changes never drop a connection: requests in flight, keep-alive clients and open WebSockets all survive
100 route changes, because a route change never reloads Caddy (a reload would close every proxied WebSocket)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import httpx
import websockets

from tests.conftest import Platform, PlatformFactory
from tests.fixtures.caddy import Caddy
from tests.integration.proxy_support import host, proxy_client, routed_platform, until_answer

ROUTE_CHANGES = 100
BURST_CREATES = 20
HAMMER_CLIENTS = 3


async def _change_routes(platform: Platform, client: httpx.AsyncClient, bot_id: str, count: int) -> str:
    """`count` subdomain changes of one bot, each confirmed through the proxy before the next; the last one."""
    subdomain = ""
    for index in range(count):
        subdomain = f"churn-{index}-{uuid.uuid4().hex[:6]}"
        response = await platform.client.patch(f"/fleet/bots/{bot_id}", json={"subdomain": subdomain})
        assert response.status_code == 200, response.text
        await until_answer(client, host(subdomain), "/health", 200, timeout=10)
    return subdomain


@dataclass
class Traffic:
    """What a keep-alive client sending requests back to back saw."""

    ok: int = 0
    idle_closed: int = 0  # a pooled connection the server had closed: the client retries (its normal duty)
    failed: list[str] = field(default_factory=list)


async def _hammer(caddy: Caddy, host_header: str, expected: str, stop: asyncio.Event, traffic: Traffic) -> None:
    """Requests back to back on one keep-alive connection. A request that fails on a reused connection before
    any byte of an answer came back met a connection the proxy had closed while idle (counted apart, retried);
    any other failure is a failed request."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=caddy.proxy_url, timeout=10, trust_env=False, limits=limits) as client:
        while not stop.is_set():
            events: list[str] = []

            async def trace(name: str, info: dict[str, object], events: list[str] = events) -> None:
                events.append(name)

            try:
                response = await client.get("/hello", headers={"Host": host_header}, extensions={"trace": trace})
            except httpx.TransportError as err:
                reused = "connection.connect_tcp.complete" not in events
                answered = "http11.receive_response_headers.complete" in events
                if reused and not answered:
                    traffic.idle_closed += 1
                else:
                    traffic.failed.append(f"{err!r} after {events[-3:]}")
                continue
            if response.status_code == 200 and response.text == expected:
                traffic.ok += 1
            else:
                traffic.failed.append(f"{response.status_code} {response.text[:80]!r}")


async def _two_bots(platform: Platform) -> tuple[dict[str, str], dict[str, str], str]:
    """A bot whose route stays put, one whose route changes, and what the first answers on /hello."""
    steady = await platform.create_bot(env={"STUB_MESSAGE": "steady"})
    moving = await platform.create_bot(env={"STUB_MESSAGE": "moving"})
    status = await platform.wait_for(steady["id"], state="running")
    await platform.wait_for(moving["id"], state="running")
    return steady, moving, f"hello from {status['containerId'][:12]} steady"


async def test_clients_sending_requests_during_100_route_changes_see_no_failure(
    make_platform: PlatformFactory, caddy: Caddy
) -> None:
    platform = await routed_platform(make_platform, caddy)
    steady, moving, expected = await _two_bots(platform)
    async with proxy_client(caddy) as client:
        await until_answer(client, host(steady["subdomain"]), "/hello", 200, contains="steady")
        loads = caddy.loads()
        stop = asyncio.Event()
        traffic = Traffic()
        clients = [
            asyncio.create_task(_hammer(caddy, host(steady["subdomain"]), expected, stop, traffic))
            for _ in range(HAMMER_CLIENTS)
        ]
        try:
            await _change_routes(platform, client, moving["id"], ROUTE_CHANGES)
        finally:
            stop.set()
            await asyncio.gather(*clients)
    print(
        f"\nduring {ROUTE_CHANGES} route changes: {traffic.ok} requests answered, {len(traffic.failed)} failed, "
        f"{traffic.idle_closed} idle keep-alive connections closed by the proxy (retried)"
    )
    assert traffic.failed == [], traffic.failed[:10]
    assert traffic.ok >= ROUTE_CHANGES, traffic  # the clients were busy all along
    assert caddy.loads() == loads, "a route change reloaded Caddy"


async def test_a_websocket_through_the_proxy_stays_open_across_100_route_changes(
    make_platform: PlatformFactory, caddy: Caddy
) -> None:
    platform = await routed_platform(make_platform, caddy)
    steady, moving, _ = await _two_bots(platform)
    loads = caddy.loads()
    uri = f"ws://{host(steady['subdomain'])}:{caddy.http_port}/ws"
    async with proxy_client(caddy) as client:
        await until_answer(client, host(steady["subdomain"]), "/hello", 200, contains="steady")
        async with websockets.connect(uri, host="127.0.0.1", port=caddy.http_port, ping_interval=None) as socket:
            await socket.send("before")
            assert await asyncio.wait_for(socket.recv(), 10) == "before"
            for index in range(ROUTE_CHANGES):
                await _change_routes(platform, client, moving["id"], 1)
                await socket.send(f"message {index}")
                assert await asyncio.wait_for(socket.recv(), 10) == f"message {index}"
            pong = await socket.ping(b"still there")
            await asyncio.wait_for(pong, 10)
            await socket.send(b"\x00\x01binary")
            assert await asyncio.wait_for(socket.recv(), 10) == b"\x00\x01binary"
            assert socket.close_code is None
    assert caddy.loads() == loads, "a route change reloaded Caddy"


async def test_a_burst_of_creates_and_route_changes_is_batched_and_never_reloads_caddy(
    make_platform: PlatformFactory, caddy: Caddy
) -> None:
    platform = await routed_platform(make_platform, caddy)
    loads = caddy.loads()
    before = (await platform.client.get("/proxy/routes")).json()["proxy"]["table"]["builds"]
    limit = asyncio.Semaphore(8)

    async def create(index: int) -> dict[str, str]:
        async with limit:
            return await platform.create_bot(env={"STUB_MESSAGE": f"burst-{index}"})

    bots = await asyncio.gather(*(create(index) for index in range(BURST_CREATES)))
    renamed = {bot["id"]: f"renamed-{index}-{uuid.uuid4().hex[:6]}" for index, bot in enumerate(bots)}
    patches = await asyncio.gather(
        *(platform.client.patch(f"/fleet/bots/{bot_id}", json={"subdomain": sub}) for bot_id, sub in renamed.items())
    )
    assert [response.status_code for response in patches] == [200] * BURST_CREATES
    async with proxy_client(caddy) as client:
        for index, bot in enumerate(bots):
            await until_answer(client, host(renamed[bot["id"]]), "/hello", 200, contains=f"burst-{index}")
    table = (await platform.client.get("/proxy/routes")).json()["proxy"]["table"]
    builds = table["builds"] - before
    # every create and patch commits more than once; the table is rebuilt at most once per tick for all of them
    assert 1 <= builds < 2 * BURST_CREATES, builds
    assert table["routes"] == BURST_CREATES
    assert caddy.loads() == loads, "creating bots or changing their routes reloaded Caddy"
