"""The instance client against a real HTTP server on a loopback address: what counts as healthy, and keep-alive."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from wopr_platform.core.instance import INSTANCE_PORT
from wopr_platform.instance.client import DETAIL_CHARS, InstanceClient

ROUTES = {
    "/health": (200, b'{"status":"ok"}'),
    "/plain": (204, b""),
    "/broken": (500, b'{"status":"ok"}'),
    "/degraded": (200, b'{"status":"degraded"}'),
    "/text": (200, b"fine"),
}


class Instance:
    """A tiny HTTP/1.1 server on port 7437 (as instances listen) of a loopback address of its own."""

    def __init__(self) -> None:
        self.address = ""
        self.connections = 0
        self.open = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        for _ in range(20):  # another test may hold an address: pick another
            address = f"127.{random.randrange(1, 255)}.{random.randrange(256)}.{random.randrange(1, 255)}"
            try:
                self._server = await asyncio.start_server(self._serve, address, INSTANCE_PORT)
            except OSError:
                continue
            self.address = address
            return
        raise RuntimeError("no free loopback address")

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1].decode()
                if path == "/slow":
                    await asyncio.sleep(30)
                status, body = ROUTES.get(path, (404, b""))
                head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                writer.write(head.encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


@pytest.fixture
async def instance() -> AsyncIterator[Instance]:
    server = Instance()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[InstanceClient]:
    probes = InstanceClient(timeout=2)
    yield probes
    await probes.close()


@pytest.mark.parametrize("path", ["/health", "/plain", "/text"])
async def test_a_2xx_answer_is_healthy_unless_its_status_says_otherwise(
    instance: Instance, client: InstanceClient, path: str
) -> None:
    result = await client.probe(instance.address, path)
    assert (result.ok, result.detail) == (True, "ok")


async def test_a_500_is_unhealthy(instance: Instance, client: InstanceClient) -> None:
    result = await client.probe(instance.address, "/broken")
    assert (result.ok, result.detail) == (False, "HTTP 500")


async def test_a_degraded_status_is_unhealthy(instance: Instance, client: InstanceClient) -> None:
    result = await client.probe(instance.address, "/degraded")
    assert (result.ok, result.detail) == (False, "status degraded")


async def test_no_answer_in_time_is_unhealthy_with_a_short_reason(instance: Instance, client: InstanceClient) -> None:
    result = await client.probe(instance.address, "/slow", 0.2)
    assert not result.ok and "Timeout" in result.detail and len(result.detail) <= DETAIL_CHARS


async def test_a_refused_connection_is_unhealthy_with_a_short_reason(client: InstanceClient) -> None:
    result = await client.probe("127.0.0.1", "/health", 1)  # nothing listens on port 7437 there
    assert not result.ok and "Connect" in result.detail and len(result.detail) <= DETAIL_CHARS


async def test_probes_of_one_address_reuse_one_connection(instance: Instance, client: InstanceClient) -> None:
    for _ in range(5):
        assert (await client.probe(instance.address, "/health")).ok
    assert (await client.probe(instance.address, "/broken")).detail == "HTTP 500"
    assert instance.connections == 1


async def test_close_closes_the_pool(instance: Instance) -> None:
    probes = InstanceClient(timeout=2)
    assert (await probes.probe(instance.address, "/health")).ok
    assert instance.open == 1
    await probes.close()
    async with asyncio.timeout(5):
        while instance.open:
            await asyncio.sleep(0.01)
