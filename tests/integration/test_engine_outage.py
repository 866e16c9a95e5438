"""A real Docker engine outage: dockerd is stopped (SIGTERM) under a running platform and started again.

While it is away, reads answer from the last known state (marked stale), mutations are refused with 503 and
readiness names Docker. Once it is back the platform reconnects, resubscribes and resyncs by itself, the bots
that should run run and answer their health checks again, and mutations work.

Stopping the engine stops every container on it, so this test only runs when WOPR_TEST_RESTART_DOCKERD=1
(scripts/test sets it); dockerd is running again when the test ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker
import httpx
import pytest

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory

pytestmark = pytest.mark.slow

DOCKER_SOCKET = "/var/run/docker.sock"
DOCKER_PIDFILE = Path("/var/run/docker.pid")
ENGINE_STOP_TIMEOUT = 90.0
ENGINE_START_TIMEOUT = 90.0
RECONNECT_TIMEOUT = 30.0
RECOVER_TIMEOUT = 60.0


@dataclass(frozen=True)
class Dockerd:
    """How the running dockerd was started, read from /proc, so that it can be started the same way again."""

    pid: int
    argv: list[str]
    environ: dict[str, str]
    cwd: str

    @classmethod
    def current(cls) -> Dockerd:
        pid = int(DOCKER_PIDFILE.read_text().strip())
        proc = Path(f"/proc/{pid}")
        argv = [arg.decode() for arg in (proc / "cmdline").read_bytes().split(b"\0") if arg]
        pairs = (entry.decode().split("=", 1) for entry in (proc / "environ").read_bytes().split(b"\0") if entry)
        environ = {pair[0]: pair[1] for pair in pairs if len(pair) == 2}
        return cls(pid=pid, argv=argv, environ=environ, cwd=os.readlink(proc / "cwd"))


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a dockerd whose parent has not reaped it yet is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _engine_answers() -> bool:
    transport = httpx.AsyncHTTPTransport(uds=DOCKER_SOCKET)
    try:
        async with httpx.AsyncClient(transport=transport, timeout=3, trust_env=False) as client:
            return (await client.get("http://docker/_ping")).status_code == 200
    except httpx.TransportError:
        return False


async def _until(what: str, timeout: float, check: Any) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.2)


async def _stop_engine(dockerd: Dockerd) -> None:
    os.kill(dockerd.pid, signal.SIGTERM)

    async def gone() -> bool:
        return not await _engine_answers() and not _alive(dockerd.pid)

    await _until("dockerd stopping", ENGINE_STOP_TIMEOUT, gone)


async def _start_engine(dockerd: Dockerd, log: Path) -> None:
    """Start dockerd again as it was started (a new process, in a session of its own, outliving the test)."""
    with log.open("ab") as sink:
        subprocess.Popen(
            dockerd.argv,
            env=dockerd.environ,
            cwd=dockerd.cwd,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    await _until("dockerd answering /_ping", ENGINE_START_TIMEOUT, _engine_answers)


async def _ensure_engine(dockerd: Dockerd, log: Path) -> None:
    """Leave the suite a running engine: wait out a dockerd still stopping, then start one if none answers."""
    if await _engine_answers():
        return
    deadline = time.monotonic() + ENGINE_STOP_TIMEOUT
    while _alive(dockerd.pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    if not await _engine_answers():
        await _start_engine(dockerd, log)


async def _bots(platform: Platform) -> list[dict[str, Any]]:
    response = await platform.client.get("/fleet/bots")
    assert response.status_code == 200, response.text
    return list(response.json()["bots"])


def _assert_engine_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["details"]["code"] == "engine_unavailable", response.text


async def _print_diagnostics(platform: Platform, log: Path) -> None:
    """What the platform believed and what dockerd said, for a failure report."""
    for path in ("/fleet/bots", "/fleet/drift", "/health/ready"):
        try:
            response = await platform.client.get(path)
            print(f"----- GET {path}: {response.status_code} -----\n{response.text}")
        except httpx.HTTPError as err:
            print(f"----- GET {path}: {err!r} -----")
    if log.exists():
        print(f"----- dockerd log -----\n{log.read_text(errors='replace')[-5000:]}")


@pytest.fixture
def dockerd() -> Dockerd:
    if os.environ.get("WOPR_TEST_RESTART_DOCKERD") != "1":
        pytest.skip("stops and restarts the real dockerd (every container on it); set WOPR_TEST_RESTART_DOCKERD=1")
    if os.environ.get("DOCKER_HOST", f"unix://{DOCKER_SOCKET}") != f"unix://{DOCKER_SOCKET}":
        pytest.skip("restarts only the local dockerd at /var/run/docker.sock")
    if not DOCKER_PIDFILE.exists():
        pytest.skip(f"no {DOCKER_PIDFILE}: cannot tell which dockerd to restart")
    found = Dockerd.current()
    if not found.argv:
        pytest.skip(f"cannot read dockerd's command line from /proc/{found.pid}")
    return found


async def test_engine_outage_reads_stay_stale_mutations_503_and_it_recovers_by_itself(
    dockerd: Dockerd, make_platform: PlatformFactory, docker: aiodocker.Docker, tmp_path: Path
) -> None:
    """Two running bots and a stopped one live through dockerd going away and coming back."""
    platform = await make_platform()
    running = [await platform.create_bot() for _ in range(2)]
    stopped = await platform.create_bot()
    for bot in [*running, stopped]:
        await platform.wait_for(bot["id"], state="running", health="healthy")
    assert (await platform.client.post(f"/fleet/bots/{stopped['id']}/stop")).status_code == 200
    await platform.wait_for(stopped["id"], state="exited", desiredState="stopped")
    ids = {bot["id"] for bot in [*running, stopped]}
    log = tmp_path / "dockerd.log"

    try:
        await _stop_engine(dockerd)

        # reads: the last known state, marked stale
        async def stale() -> bool:
            return all(bot["stale"] for bot in await _bots(platform))

        await _until("the platform noticing the engine is gone", RECONNECT_TIMEOUT, stale)
        assert {bot["id"] for bot in await _bots(platform)} == ids
        for bot_id in ids:
            detail = await platform.bot(bot_id)
            assert detail["stale"] is True

        # mutations: 503, and a refused create leaves nothing behind
        _assert_engine_unavailable(await platform.client.post(f"/fleet/bots/{stopped['id']}/start"))
        _assert_engine_unavailable(await platform.client.post(f"/fleet/bots/{running[0]['id']}/stop"))
        _assert_engine_unavailable(
            await platform.client.post("/fleet/bots", json={"name": "during-outage", "image": STUB_IMAGE})
        )
        assert {bot["id"] for bot in await _bots(platform)} == ids

        # liveness stays up; readiness says why it is not ready
        assert (await platform.client.get("/health")).status_code == 200
        ready = await platform.client.get("/health/ready")
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["docker"]["ok"] is False
        assert "docker" in ready.json()["checks"]["docker"]["reason"].lower()

        await _start_engine(dockerd, log)
        restarted = int(DOCKER_PIDFILE.read_text().strip())
        assert restarted != dockerd.pid and _alive(restarted)  # dockerd wrote its own pid file

        # no request below makes the platform reconnect: it does so by itself
        async def fresh() -> bool:
            return not any(bot["stale"] for bot in await _bots(platform))

        await _until("the platform reconnecting to the engine", RECONNECT_TIMEOUT, fresh)
        for bot in running:
            back = await platform.wait_for(bot["id"], timeout=RECOVER_TIMEOUT, state="running", health="healthy")
            assert back["containerId"] == bot["containerId"]  # the same container, started again
            # what the platform serves is what the engine says now, not what it said before the outage
            info = await docker.containers.container(bot["containerId"]).show()
            assert back["startedAt"][:19] == info["State"]["StartedAt"][:19], (back, info["State"])
        assert (await platform.bot(stopped["id"]))["state"] == "exited"
        assert (await platform.client.get("/health/ready")).status_code == 200
        for bot in [*running, stopped]:
            found = await docker.containers.list(all=True, filters={"label": [f"wopr.bot-id={bot['id']}"]})
            assert [c.id for c in found] == [bot["containerId"]]
        info = await docker.containers.container(stopped["containerId"]).show()
        assert info["State"]["Running"] is False

        created = await platform.create_bot()
        await platform.wait_for(created["id"], state="running", health="healthy")
        await asyncio.sleep(2)  # a few reconciler passes: the stopped bot stays stopped
        assert (await platform.bot(stopped["id"]))["state"] == "exited"
    except BaseException:
        await _print_diagnostics(platform, log)
        raise
    finally:
        await _ensure_engine(dockerd, log)
