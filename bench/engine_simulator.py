"""A simulator of the Docker Engine API and of WOPR instances' `/health`, for scale benchmarks only.

This machine holds a few hundred real containers, not 10,000. The simulator answers the calls the platform makes
(containers, volumes, networks, images, events, stats, logs) on a unix socket the platform's `DOCKER_HOST` points
at, keeps every object in memory, and waits before each answer about as long as dockerd took on this machine
(`LATENCY_MS`, the medians of `bench/create_start.py --trace` and `bench/repair.py`, with some spread). Starts run
at most `START_CONCURRENCY` at a time, as dockerd's do in practice. Each running container gets a loopback
address (127.x.y.z), and one HTTP listener on `0.0.0.0:7437` answers every container's `GET /health` as that
container (it reads the address the probe was sent to), so health probing costs the platform what it costs with
real instances.

It is never a substitute for the real engine in functional tests: the tests run against dockerd. Benchmarks use it
to drive 10,000 running bots (`bench/scale.py`), after checking it against the real engine at 200 bots.

    python bench/engine_simulator.py --socket /tmp/sim.sock [--health-port 7437] [--latency 1.0]

It counts every call by endpoint; `GET /_sim/calls` (on the same socket) answers the counts, `POST /_sim/reset`
zeroes them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import random
import re
import signal
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

API_VERSION = "1.43"
# what dockerd took to answer on this machine (median ms; docs/benchmarks.md, create_start and repair traces)
LATENCY_MS: dict[str, float] = {
    "ping": 0.3,
    "info": 2.0,
    "version": 0.5,
    "image_inspect": 1.0,
    "volume_create": 1.0,
    "volume_inspect": 0.3,
    "volume_remove": 5.0,
    "volume_list": 2.0,
    "network_list": 1.0,
    "network_inspect": 0.5,
    "network_create": 60.0,
    "network_remove": 80.0,
    "container_create": 14.0,
    "container_start": 200.0,
    "container_stop": 100.0,
    "container_restart": 300.0,
    "container_remove": 50.0,
    "container_inspect": 0.8,
    "container_list": 1.0,  # plus LIST_MS_PER_CONTAINER for each container listed
    "container_logs": 2.0,
    "container_stats": 5.0,
    "container_update": 5.0,
    "container_rename": 5.0,
    "container_pause": 20.0,
}
LIST_MS_PER_CONTAINER = 0.02
START_CONCURRENCY = 2
EVENT_HISTORY = 10_000
HEALTH_BODY = b'{"status":"ok"}'


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(at: datetime | None) -> str:
    return at.isoformat().replace("+00:00", "Z") if at else "0001-01-01T00:00:00Z"


@dataclass
class Container:
    id: str
    name: str
    image: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    networks: list[str]
    created: datetime
    state: str = "created"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int = 0
    restart_count: int = 0
    address: str | None = None
    cpu_ns: int = 0
    memory: int = field(default_factory=lambda: random.randint(8, 40) * 1_048_576)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    def network_settings(self) -> dict[str, Any]:
        return {
            "Networks": {
                name: {"IPAddress": self.address if self.state == "running" else "", "NetworkID": name}
                for name in self.networks
            }
        }

    def inspect(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Name": "/" + self.name,
            "Created": _iso(self.created),
            "Image": "sha256:" + hashlib.sha256(self.image.encode()).hexdigest(),
            "RestartCount": self.restart_count,
            "State": {
                "Status": self.state,
                "Running": self.state == "running",
                "Paused": self.state == "paused",
                "StartedAt": _iso(self.started_at),
                "FinishedAt": _iso(self.finished_at),
                "ExitCode": self.exit_code,
                "OOMKilled": False,
                "Pid": 1000 if self.state == "running" else 0,
            },
            "Config": {**self.config, "Image": self.image},
            "HostConfig": self.host_config,
            "NetworkSettings": self.network_settings(),
            "Mounts": [],
        }

    def row(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Names": ["/" + self.name],
            "Image": self.image,
            "ImageID": "sha256:" + hashlib.sha256(self.image.encode()).hexdigest(),
            "Created": int(self.created.timestamp()),
            "State": self.state,
            "Status": self.state,
            "Labels": self.labels,
            "NetworkSettings": self.network_settings(),
        }


class Simulator:
    """The engine's state, its answers and its events."""

    def __init__(self, latency: float, start_concurrency: int = START_CONCURRENCY) -> None:
        self.latency = latency
        self.containers: dict[str, Container] = {}
        self.names: dict[str, str] = {}
        self.by_address: dict[str, Container] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.networks: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENT_HISTORY)
        self.listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self.starts = asyncio.Semaphore(start_concurrency)
        self._addresses = itertools.count(2)

    async def wait(self, kind: str, extra_ms: float = 0.0) -> None:
        self.calls[kind] += 1
        median = LATENCY_MS[kind] + extra_ms
        if self.latency > 0 and median > 0:
            await asyncio.sleep(median * self.latency * random.lognormvariate(0, 0.25) / 1000)

    def address(self) -> str:
        n = next(self._addresses)
        return f"127.{1 + n // 65536 % 254}.{n // 256 % 256}.{n % 256}"

    def emit(self, container: Container, action: str, **extra: str) -> None:
        at = time.time_ns()
        attributes = {**container.labels, "name": container.name, "image": container.image, **extra}
        event = {
            "Type": "container",
            "Action": action,
            "status": action,
            "id": container.id,
            "Actor": {"ID": container.id, "Attributes": attributes},
            "time": at // 1_000_000_000,
            "timeNano": at,
        }
        self.events.append(event)
        for queue in self.listeners:
            queue.put_nowait(event)

    def find(self, ref: str) -> Container:
        cid = self.names.get(ref.lstrip("/"), ref)
        found = self.containers.get(cid)
        if found is None:
            matches = [c for c in self.containers.values() if c.id.startswith(ref)] if len(ref) >= 12 else []
            if len(matches) != 1:
                raise SimError(404, f"No such container: {ref}")
            found = matches[0]
        return found

    def run(self, container: Container) -> None:
        container.state = "running"
        container.started_at = _now()
        container.address = self.address()
        self.by_address[container.address] = container
        self.emit(container, "start")

    def halt(self, container: Container, code: int = 0) -> None:
        if container.address:
            self.by_address.pop(container.address, None)
        container.state = "exited"
        container.exit_code = code
        container.finished_at = _now()
        self.emit(container, "kill", signal="15")
        self.emit(container, "die", exitCode=str(code))
        self.emit(container, "stop")


class SimError(Exception):
    """An answer of the engine's errors: its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _filters(request: web.Request) -> dict[str, list[str]]:
    raw = request.query.get("filters")
    if not raw:
        return {}
    parsed = json.loads(raw)
    return {k: (list(v) if isinstance(v, list) else [k2 for k2, on in v.items() if on]) for k, v in parsed.items()}


def _labelled(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, _, value = item.partition("=")
        if key not in labels or (value and labels[key] != value):
            return False
    return True


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")


VERSION_PREFIX = re.compile(r"^/v\d+\.\d+")


def application(sim: Simulator) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        path = VERSION_PREFIX.sub("", request.path)
        method = request.method
        for pattern_method, pattern, handler in ROUTES:
            if method != pattern_method:
                continue
            match = pattern.fullmatch(path)
            if match:
                try:
                    return await handler(sim, request, *match.groups())
                except SimError as err:
                    return _json({"message": err.message}, err.status)
        sim.calls[f"unknown {method} {path}"] += 1
        return _json({"message": f"not simulated: {method} {path}"}, 404)

    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


# --- handlers ----------------------------------------------------------------------------------------------------


async def ping(sim: Simulator, request: web.Request) -> web.StreamResponse:
    await sim.wait("ping")
    return web.Response(text="OK", headers={"Api-Version": API_VERSION})


async def version(sim: Simulator, request: web.Request) -> web.StreamResponse:
    await sim.wait("version")
    return _json({"Version": "24.0.0-simulated", "ApiVersion": API_VERSION, "Os": "linux", "Arch": "amd64"})


async def info(sim: Simulator, request: web.Request) -> web.StreamResponse:
    await sim.wait("info")
    running = sum(1 for c in sim.containers.values() if c.state == "running")
    return _json(
        {
            "NCPU": 2,
            "MemTotal": 24 * 1024**3,
            "Containers": len(sim.containers),
            "ContainersRunning": running,
            "ServerVersion": "24.0.0-simulated",
            "Swarm": {"LocalNodeState": "inactive", "ControlAvailable": False},
        }
    )


async def image_inspect(sim: Simulator, request: web.Request, name: str) -> web.StreamResponse:
    await sim.wait("image_inspect")
    digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
    repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    return _json({"Id": digest, "RepoTags": [name], "RepoDigests": [f"{repo}@{digest}"], "Config": {"Labels": {}}})


async def volume_create(sim: Simulator, request: web.Request) -> web.StreamResponse:
    await sim.wait("volume_create")
    body = await request.json()
    name = body.get("Name") or uuid.uuid4().hex
    volume = sim.volumes.setdefault(
        name, {"Name": name, "Labels": body.get("Labels") or {}, "Driver": "local", "Mountpoint": f"/sim/{name}"}
    )
    return _json(volume, 201)


async def volume_inspect(sim: Simulator, request: web.Request, name: str) -> web.StreamResponse:
    await sim.wait("volume_inspect")
    if name not in sim.volumes:
        raise SimError(404, f"get {name}: no such volume")
    return _json(sim.volumes[name])


async def volume_remove(sim: Simulator, request: web.Request, name: str) -> web.StreamResponse:
    await sim.wait("volume_remove")
    if sim.volumes.pop(name, None) is None:
        raise SimError(404, f"get {name}: no such volume")
    return web.Response(status=204)


async def volume_list(sim: Simulator, request: web.Request) -> web.StreamResponse:
    await sim.wait("volume_list")
    wanted = _filters(request).get("label", [])
    return _json({"Volumes": [v for v in sim.volumes.values() if _labelled(v["Labels"], wanted)], "Warnings": []})


async def network_list(sim: Simulator, request: web.Request) -> web.StreamResponse:
    await sim.wait("network_list")
    filters = _filters(request)
    rows = [n for n in sim.networks.values() if _labelled(n["Labels"], filters.get("label", []))]
    if "name" in filters:
        rows = [n for n in rows if any(part in n["Name"] for part in filters["name"])]
    return _json(rows)


async def network_inspect(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    await sim.wait("network_inspect")
    for network in sim.networks.values():
        if ref in (network["Name"], network["Id"]):
            return _json(network)
    raise SimError(404, f"network {ref} not found")


async def network_create(sim: Simulator, request: web.Request) -> web.StreamResponse:
    await sim.wait("network_create")
    body = await request.json()
    name = body["Name"]
    if name in sim.networks:
        raise SimError(409, f"network with name {name} already exists")
    network_id = uuid.uuid4().hex + uuid.uuid4().hex
    sim.networks[name] = {
        "Name": name,
        "Id": network_id,
        "Driver": body.get("Driver", "bridge"),
        "Labels": body.get("Labels") or {},
        "IPAM": body.get("IPAM") or {"Config": []},
        "Options": body.get("Options") or {},
        "Internal": bool(body.get("Internal")),
        "Containers": {},
    }
    return _json({"Id": network_id, "Warning": ""}, 201)


async def network_remove(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    await sim.wait("network_remove")
    for name, network in list(sim.networks.items()):
        if ref in (name, network["Id"]):
            if any(name in c.networks for c in sim.containers.values()):
                raise SimError(403, f"error while removing network: network {name} has active endpoints")
            del sim.networks[name]
            return web.Response(status=204)
    raise SimError(404, f"network {ref} not found")


async def container_create(sim: Simulator, request: web.Request) -> web.StreamResponse:
    await sim.wait("container_create")
    body = await request.json()
    name = request.query.get("name") or uuid.uuid4().hex[:12]
    if name in sim.names:
        raise SimError(409, f'Conflict. The container name "/{name}" is already in use')
    endpoints = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).keys()
    mode = (body.get("HostConfig") or {}).get("NetworkMode")
    networks = list(endpoints) or ([mode] if mode and mode != "default" else ["bridge"])
    config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    container = Container(
        id=uuid.uuid4().hex + uuid.uuid4().hex,
        name=name,
        image=str(body.get("Image", "")),
        config=config,
        host_config=body.get("HostConfig") or {},
        networks=networks,
        created=_now(),
    )
    sim.containers[container.id] = container
    sim.names[name] = container.id
    sim.emit(container, "create")
    return _json({"Id": container.id, "Warnings": []}, 201)


async def container_start(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    container = sim.find(ref)
    async with sim.starts:
        await sim.wait("container_start")
    if container.state == "running":
        return web.Response(status=304)
    sim.run(container)
    return web.Response(status=204)


async def container_stop(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    container = sim.find(ref)
    await sim.wait("container_stop")
    if container.state != "running":
        return web.Response(status=304)
    sim.halt(container)
    return web.Response(status=204)


async def container_restart(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    container = sim.find(ref)
    await sim.wait("container_restart")
    if container.state == "running":
        sim.halt(container)
    container.restart_count += 1
    sim.run(container)
    sim.emit(container, "restart")
    return web.Response(status=204)


async def container_pause(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    container = sim.find(ref)
    await sim.wait("container_pause")
    container.state = "paused"
    sim.emit(container, "pause")
    return web.Response(status=204)


async def container_unpause(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    container = sim.find(ref)
    await sim.wait("container_pause")
    container.state = "running"
    sim.emit(container, "unpause")
    return web.Response(status=204)


async def container_remove(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    container = sim.find(ref)
    await sim.wait("container_remove")
    if container.state == "running":
        if request.query.get("force") not in ("1", "true", "True"):
            raise SimError(409, "You cannot remove a running container. Stop the container before attempting removal")
        sim.halt(container, 137)
    del sim.containers[container.id]
    sim.names.pop(container.name, None)
    sim.emit(container, "destroy")
    return web.Response(status=204)


async def container_inspect(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    await sim.wait("container_inspect")
    return _json(sim.find(ref).inspect())


async def container_list(sim: Simulator, request: web.Request) -> web.StreamResponse:
    filters = _filters(request)
    show_all = request.query.get("all") in ("1", "true", "True")
    rows = [
        c.row()
        for c in sim.containers.values()
        if (show_all or c.state == "running") and _labelled(c.labels, filters.get("label", []))
    ]
    await sim.wait("container_list", LIST_MS_PER_CONTAINER * len(rows))
    return _json(rows)


async def container_logs(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    container = sim.find(ref)
    await sim.wait("container_logs")
    line = f"sim: {container.name} running\n".encode()
    frame = bytes([1, 0, 0, 0]) + len(line).to_bytes(4, "big") + line
    return web.Response(body=frame, content_type="application/vnd.docker.multiplexed-stream")


async def container_stats(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    container = sim.find(ref)
    await sim.wait("container_stats")
    container.cpu_ns += random.randint(1_000_000, 20_000_000)
    system = time.monotonic_ns() * 2
    return _json(
        {
            "read": _iso(_now()),
            "cpu_stats": {
                "cpu_usage": {"total_usage": container.cpu_ns},
                "system_cpu_usage": system,
                "online_cpus": 2,
            },
            "memory_stats": {"usage": container.memory, "limit": 512 * 1_048_576, "stats": {}},
        }
    )


async def container_update(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    container = sim.find(ref)
    await sim.wait("container_update")
    body = await request.json()
    container.host_config.update(body)
    return _json({"Warnings": []})


async def container_rename(sim: Simulator, request: web.Request, ref: str) -> web.StreamResponse:
    container = sim.find(ref)
    await sim.wait("container_rename")
    new = request.query["name"]
    if new in sim.names:
        raise SimError(409, f"the name {new} is already in use")
    sim.names.pop(container.name, None)
    container.name = new
    sim.names[new] = container.id
    sim.emit(container, "rename")
    return web.Response(status=204)


async def events(sim: Simulator, request: web.Request) -> web.StreamResponse:
    sim.calls["events"] += 1
    filters = _filters(request)
    wanted_labels = filters.get("label", [])
    wanted_actions = set(filters.get("event", []))

    def matches(event: dict[str, Any]) -> bool:
        attributes = event["Actor"]["Attributes"]
        return _labelled(attributes, wanted_labels) and (not wanted_actions or event["Action"] in wanted_actions)

    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sim.listeners.add(queue)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        since = request.query.get("since")
        if since:
            floor = int(float(since) * 1e9)
            for event in list(sim.events):
                if event["timeNano"] >= floor and matches(event):
                    await response.write(json.dumps(event).encode() + b"\n")
        while True:
            event = await queue.get()
            if matches(event):
                await response.write(json.dumps(event).encode() + b"\n")
    finally:
        sim.listeners.discard(queue)


async def sim_calls(sim: Simulator, request: web.Request) -> web.StreamResponse:
    running = sum(1 for c in sim.containers.values() if c.state == "running")
    return _json({"calls": dict(sim.calls), "containers": len(sim.containers), "running": running})


async def sim_reset(sim: Simulator, request: web.Request) -> web.StreamResponse:
    sim.calls.clear()
    return _json({})


ID = r"/([^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], Any]] = [
    (method, re.compile(pattern), handler)
    for method, pattern, handler in [
        ("GET", r"/_ping", ping),
        ("HEAD", r"/_ping", ping),
        ("GET", r"/version", version),
        ("GET", r"/info", info),
        ("GET", r"/images/(.+)/json", image_inspect),
        ("POST", r"/volumes/create", volume_create),
        ("GET", r"/volumes", volume_list),
        ("GET", r"/volumes" + ID, volume_inspect),
        ("DELETE", r"/volumes" + ID, volume_remove),
        ("GET", r"/networks", network_list),
        ("POST", r"/networks/create", network_create),
        ("GET", r"/networks" + ID, network_inspect),
        ("DELETE", r"/networks" + ID, network_remove),
        ("POST", r"/containers/create", container_create),
        ("GET", r"/containers/json", container_list),
        ("POST", r"/containers" + ID + "/start", container_start),
        ("POST", r"/containers" + ID + "/stop", container_stop),
        ("POST", r"/containers" + ID + "/restart", container_restart),
        ("POST", r"/containers" + ID + "/pause", container_pause),
        ("POST", r"/containers" + ID + "/unpause", container_unpause),
        ("POST", r"/containers" + ID + "/update", container_update),
        ("POST", r"/containers" + ID + "/rename", container_rename),
        ("GET", r"/containers" + ID + "/json", container_inspect),
        ("GET", r"/containers" + ID + "/logs", container_logs),
        ("GET", r"/containers" + ID + "/stats", container_stats),
        ("DELETE", r"/containers" + ID, container_remove),
        ("GET", r"/events", events),
        ("GET", r"/_sim/calls", sim_calls),
        ("POST", r"/_sim/reset", sim_reset),
    ]
]


# --- instances' /health ------------------------------------------------------------------------------------------


class HealthServer(asyncio.Protocol):
    """`GET /health` of every simulated instance, on one listener: the address a probe was sent to says which."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while b"\r\n\r\n" in self._buffer:
            head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
            self._answer(head)

    def _answer(self, head: bytes) -> None:
        assert self._transport is not None
        self._sim.calls["health"] += 1
        address = self._transport.get_extra_info("sockname")[0]
        container = self._sim.by_address.get(address)
        ok = container is not None and container.state == "running"
        body = HEALTH_BODY if ok else b'{"status":"down"}'
        status = b"200 OK" if ok else b"503 Service Unavailable"
        close = b"connection: close" in head.lower()
        self._transport.write(
            b"HTTP/1.1 "
            + status
            + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + (b"\r\nconnection: close" if close else b"")
            + b"\r\n\r\n"
            + body
        )
        if close:
            self._transport.close()


async def serve(socket_path: str, health_port: int, latency: float, start_concurrency: int) -> None:
    sim = Simulator(latency, start_concurrency)
    runner = web.AppRunner(application(sim), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.UnixSite(runner, socket_path)
    await site.start()
    loop = asyncio.get_running_loop()
    health = await loop.create_server(lambda: HealthServer(sim), "0.0.0.0", health_port, reuse_address=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"engine simulator on unix://{socket_path}, instances' /health on :{health_port}", flush=True)
    await stop.wait()
    health.close()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", required=True, help="the unix socket to serve the Engine API on")
    parser.add_argument("--health-port", type=int, default=7437, help="where instances' /health is answered")
    parser.add_argument("--latency", type=float, default=1.0, help="scale of the simulated latencies (0: none)")
    parser.add_argument(
        "--start-concurrency", type=int, default=START_CONCURRENCY, help="container starts at once (dockerd here: ~2)"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.socket, args.health_port, args.latency, args.start_concurrency))


if __name__ == "__main__":
    main()
