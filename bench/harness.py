"""Shared pieces of the benchmarks: an in-process platform, the stub image, a counting Docker proxy, statistics,
machine facts and the writer of `docs/benchmarks.md`.

Everything a benchmark creates on the engine carries a `wopr.platform=<id>` label and the id is registered here,
so `run()` can sweep it away even after Ctrl-C, SIGTERM or a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import platform as pyplatform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker
import httpx

from wopr_platform.core.errors import PlatformError
from wopr_platform.firewall.iptables import HostFirewall

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
# the WOPR instance image every benchmark's bots run: the project's own, built from stub/ by build_stub_image (it
# serves the instance contract of DESIGN.md, which is all the platform talks to)
INSTANCE_REPOSITORY = "localhost/wopr-stub"
STUB_IMAGE = f"{INSTANCE_REPOSITORY}:latest"
# what every benchmark platform runs with: that image allowed and no other, no tenant routing (benchmarks that need
# it start their own Caddy), and room for hundreds of bots in one tenant (the largest tenant subnet, 253; no quota)
BENCH_SETTINGS = {
    "FLEET_IMAGE_ALLOWLIST": INSTANCE_REPOSITORY,
    "PROXY_ENABLED": "false",
    "FLEET_TENANT_SUBNET_PREFIX": "24",
    "FLEET_TENANT_MAX_BOTS": "0",
    "FLEET_TENANT_MAX_MEMORY_MB": "0",
    "FLEET_TENANT_MAX_CPUS": "0",
}
DOCKER_SOCKET = "/var/run/docker.sock"
API_VERSION = "v1.41"  # what the platform's adapter speaks
TOKEN = "bench-token-" + uuid.uuid4().hex
LABEL_PLATFORM = "wopr.platform"

# every platform id (label value) this process used; swept by run() whatever happens
_PLATFORM_IDS: set[str] = set()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def new_platform_id(suffix: str = "") -> str:
    """A label value matching the platform's WOPR_PLATFORM_ID pattern, registered for the final sweep."""
    platform_id = f"bench-{uuid.uuid4().hex[:10]}{suffix}"
    _PLATFORM_IDS.add(platform_id)
    return platform_id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- engine and image -------------------------------------------------------------------------------------


def build_stub_image(tag: str = STUB_IMAGE) -> None:
    """Build the stub WOPR image with the repo's own script (cached layers make a rebuild cheap)."""
    try:
        subprocess.run(["docker", "version"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        raise SystemExit(f"the benchmarks need a running Docker engine: {err}") from None
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-stub-image"), tag], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"building {tag} failed:\n{done.stderr}")


async def cleanup_engine(platform_ids: Iterable[str], concurrency: int = 8) -> tuple[int, int]:
    """Force-remove every container, then every volume, labelled with one of `platform_ids`."""
    ids = sorted(set(platform_ids))
    if not ids:
        return 0, 0
    client = aiodocker.Docker()
    limit = asyncio.Semaphore(concurrency)
    removed = [0, 0]

    async def drop(what: int, call: Callable[[], Awaitable[Any]]) -> None:
        async with limit:
            try:
                await call()
                removed[what] += 1
            except aiodocker.DockerError as err:
                if err.status != 404:
                    log(f"cleanup: {err}")

    try:
        swarm = ((await client.system.info()).get("Swarm") or {}).get("LocalNodeState") == "active"
        for platform_id in ids:
            label = f"{LABEL_PLATFORM}={platform_id}"
            if swarm:  # a Swarm platform's bots are services: their tasks' containers go with them
                services = await client.services.list(filters={"label": [label]})
                await asyncio.gather(*(drop(0, lambda s=s: client.services.delete(s["ID"])) for s in services))
                for _ in range(300):
                    if not await client.containers.list(all=True, filters={"label": [label]}):
                        break
                    await asyncio.sleep(0.1)
            containers = await client.containers.list(all=True, filters={"label": [label]})
            await asyncio.gather(*(drop(0, lambda c=c: c.delete(force=True, v=True)) for c in containers))
            volumes = (await client.volumes.list(filters={"label": [label]})).get("Volumes") or []
            await asyncio.gather(
                *(drop(1, lambda n=v["Name"]: client._query_json(f"volumes/{n}", method="DELETE")) for v in volumes)
            )
            # the tenant networks too (not counted): the engine has room for only a few dozen bridges
            for network in await client.networks.list(filters={"label": [label]}):
                try:
                    await client._query_json(f"networks/{network['Id']}", method="DELETE")
                except aiodocker.DockerError as err:
                    if err.status != 404:
                        log(f"cleanup: {err}")
            # and the host firewall chains the platform leaves in place when it stops
            try:
                await HostFirewall(platform_id).remove()
            except PlatformError as err:
                log(f"cleanup: {err.message}")
    finally:
        await client.close()
    return removed[0], removed[1]


# --- a counting proxy in front of dockerd -------------------------------------------------------------------

_VERSION_PREFIX = re.compile(r"^/v\d+\.\d+")
_HEX_ID = re.compile(r"^[0-9a-f]{12,64}$")
_OBJECT_ROUTES = ("containers", "volumes", "networks", "exec", "plugins", "secrets", "services", "tasks", "nodes")
_COLLECTION_VERBS = {"json", "create", "prune"}


def endpoint_key(method: str, target: str) -> str:
    """`GET /v1.41/containers/3f2a.../json?x=1` -> `GET /containers/{id}/json` (names and ids folded)."""
    path = _VERSION_PREFIX.sub("", target.split("?", 1)[0])
    parts = path.strip("/").split("/")
    if parts and parts[0] in _OBJECT_ROUTES and len(parts) > 1 and parts[1] not in _COLLECTION_VERBS:
        parts[1] = "{id}"
    elif parts and parts[0] == "images" and len(parts) > 1 and parts[1] not in _COLLECTION_VERBS | {"search"}:
        tail = parts[-1] if len(parts) > 2 and parts[-1] in {"json", "history", "push", "tag", "get"} else None
        parts = ["images", "{name}", *([tail] if tail else [])]
    elif parts and _HEX_ID.match(parts[-1]):
        parts[-1] = "{id}"
    return f"{method} /{'/'.join(parts)}"


@dataclass
class DockerCall:
    key: str
    seconds: float  # time to the first byte of the answer
    sent: float = 0.0  # time.perf_counter() when the request head passed the proxy


@dataclass
class DockerProxy:
    """A unix-socket proxy in front of dockerd that counts (and times) every HTTP request passing through it.

    HTTP/1.1 keep-alive is followed by parsing request heads and skipping bodies (Content-Length or chunked);
    a connection it cannot parse is piped through uncounted. Answers are piped byte for byte.
    """

    upstream: str = DOCKER_SOCKET
    counts: Counter[str] = field(default_factory=Counter)
    calls: list[DockerCall] = field(default_factory=list)
    unparsed_connections: int = 0
    _dir: str | None = None
    _server: asyncio.AbstractServer | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def path(self) -> str:
        assert self._dir is not None
        return os.path.join(self._dir, "docker.sock")

    @property
    def url(self) -> str:
        return "unix://" + self.path

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def snapshot(self) -> Counter[str]:
        return Counter(self.counts)

    async def start(self) -> str:
        self._dir = tempfile.mkdtemp(prefix="wopr-bench-proxy-")
        self._server = await asyncio.start_unix_server(self._accept, path=self.path, limit=1 << 20)
        return self.url

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(client_reader, client_writer)
        except asyncio.CancelledError:
            pass  # closed by close(); returning normally keeps asyncio's stream callback quiet
        finally:
            self._tasks.discard(task)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.upstream, limit=1 << 20)
        except OSError:
            client_writer.close()
            return
        pending: deque[tuple[str, float]] = deque()
        pumps = [
            asyncio.create_task(self._requests(client_reader, up_writer, pending)),
            asyncio.create_task(self._answers(up_reader, client_writer, pending)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for writer in (up_writer, client_writer):
                writer.close()

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pending: deque[tuple[str, float]]
    ) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as err:
                if err.partial:
                    writer.write(err.partial)
                return
            writer.write(head)
            lines = head.decode("latin-1").split("\r\n")
            request_line = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            if len(request_line) != 3 or "upgrade" in headers.get("connection", "").lower():
                self.unparsed_connections += 1
                await self._pipe(reader, writer)
                return
            key = endpoint_key(request_line[0], request_line[1])
            self.counts[key] += 1
            pending.append((key, time.perf_counter()))
            if "chunked" in headers.get("transfer-encoding", "").lower():
                while True:
                    size_line = await reader.readuntil(b"\r\n")
                    writer.write(size_line)
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                            writer.write(trailer)
                        writer.write(b"\r\n")
                        break
                    writer.write(await reader.readexactly(size + 2))
            else:
                remaining = int(headers.get("content-length", "0") or 0)
                while remaining > 0:
                    chunk = await reader.read(min(remaining, 1 << 16))
                    if not chunk:
                        return
                    writer.write(chunk)
                    remaining -= len(chunk)
            await writer.drain()

    async def _answers(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pending: deque[tuple[str, float]]
    ) -> None:
        while chunk := await reader.read(1 << 16):
            if pending:  # no pipelining from aiohttp: the first bytes after a request belong to its answer
                key, sent = pending.popleft()
                self.calls.append(DockerCall(key, time.perf_counter() - sent, sent))
            writer.write(chunk)
            await writer.drain()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(1 << 16):
            writer.write(chunk)
            await writer.drain()


# --- the platform -------------------------------------------------------------------------------------------


@dataclass
class Platform:
    url: str
    settings: Any
    client: httpx.AsyncClient
    app: Any

    @property
    def platform_id(self) -> str:
        return str(self.settings.platform_id)


def _quiet_server_class() -> type[Any]:
    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn without its own SIGINT/SIGTERM capture: signals reach asyncio and cancel the benchmark,
        which then stops this server itself, instead of the server vanishing under running requests."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return QuietServer


@asynccontextmanager
async def running_platform(*, front_door: bool = True, **overrides: Any) -> AsyncIterator[Platform]:
    """A real wopr-platform served by uvicorn in this process (temp SQLite DB), torn down and swept after.

    It is served as production serves it (`app.server.server_config`: the front door's deadlines and caps);
    `front_door=False` serves it with uvicorn's defaults instead, the baseline of bench/front_door.py.

    `overrides` are settings by environment name (e.g. FLEET_STATS_INTERVAL=3600, DOCKER_HOST=...).
    If the server stops on its own (a signal reaches uvicorn first), the calling task is cancelled so the
    benchmark unwinds through its own cleanup.
    """
    import uvicorn

    from wopr_platform.app.asgi import create_app
    from wopr_platform.app.server import server_config
    from wopr_platform.core.logging import configure_logging
    from wopr_platform.core.settings import Settings

    data_dir = Path(tempfile.mkdtemp(prefix="wopr-bench-"))
    port = free_port()
    values: dict[str, Any] = {
        "PORT": port,
        "HOST": "127.0.0.1",
        "ENV": "test",
        "LOG_LEVEL": "warning",
        "FLEET_API_TOKEN": TOKEN,
        "WOPR_DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'platform.db'}",
        "WOPR_PLATFORM_ID": new_platform_id(),
        **BENCH_SETTINGS,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**values)
    _PLATFORM_IDS.add(settings.platform_id)
    configure_logging(settings.log_level)
    app = create_app(settings)
    if front_door:
        config = server_config(app, settings)
        config.lifespan = "on"
    else:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    server = _quiet_server_class()(config)
    caller = asyncio.current_task()
    stopping = False
    task = asyncio.create_task(server.serve(), name="uvicorn")

    def _server_ended(_: asyncio.Task[None]) -> None:
        if not stopping and caller is not None and not caller.done() and not caller.cancelling():
            caller.cancel()

    task.add_done_callback(_server_ended)
    client = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120,
        trust_env=False,
    )
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("platform exited during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError("platform did not start within 60 s")
            await asyncio.sleep(0.02)
        yield Platform(url=f"http://127.0.0.1:{port}", settings=settings, client=client, app=app)
    finally:
        stopping = True
        await client.aclose()
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=30)
        except BaseException as err:
            if not isinstance(err, SystemExit | asyncio.CancelledError | TimeoutError):
                log(f"platform shutdown: {type(err).__name__}: {err}")
            server.force_exit = True
        removed = await cleanup_engine([settings.platform_id])
        if any(removed):
            log(f"cleanup: removed {removed[0]} containers and {removed[1]} volumes of {settings.platform_id}")
        shutil.rmtree(data_dir, ignore_errors=True)


# --- the platform as a process of its own -----------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def platform_env(platform_id: str, folder: Path, database_url: str, docker_host: str, **extra: str) -> dict[str, str]:
    """The environment of a platform process for a benchmark: its own id, data dir, database and engine, no tenant
    routing, no quotas, no rate limit (a benchmark's clients are one caller making thousands of calls)."""
    return {
        **os.environ,
        "PORT": str(free_port()),
        "HOST": "127.0.0.1",
        "ENV": "production",
        "LOG_LEVEL": "warning",
        "FLEET_API_TOKEN": TOKEN,
        "WOPR_DATA_DIR": str(folder),
        "DATABASE_URL": database_url,
        "DOCKER_HOST": docker_host,
        "WOPR_PLATFORM_ID": platform_id,
        **BENCH_SETTINGS,
        "FLEET_RATE_LIMIT": "0",
        "PLATFORM_SECRET": "bench-secret-" + "x" * 32,
        **extra,
    }


@asynccontextmanager
async def database_url(kind: str, folder: Path) -> AsyncIterator[str]:
    """A fresh database for a platform process: a SQLite file in `folder`, or a throwaway PostgreSQL server."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'platform.db'}"
        return
    import asyncpg

    with postgres_server() as port:
        admin = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
        await admin.execute('CREATE DATABASE "bench"')
        await admin.close()
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/bench"


class PlatformProcess:
    """The platform as a process of its own, so its CPU and memory are its alone."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{env['PORT']}"

    async def start(self) -> float:
        """Start it; returns the seconds until `GET /health` answers."""
        started = time.perf_counter()
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "wopr_platform", "serve", env=self.env, stdout=out, stderr=out
            )
        async with httpx.AsyncClient(base_url=self.url, trust_env=False, timeout=5) as client:
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"the platform exited ({self.proc.returncode}); see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health")).status_code == 200:
                        return time.perf_counter() - started
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=60)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime

    def client(self, connections: int) -> httpx.AsyncClient:
        """An API client with the operator's token and room for `connections` requests at once."""
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=300,
            trust_env=False,
            limits=httpx.Limits(max_connections=connections),
        )

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


# --- PostgreSQL ----------------------------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise SystemExit(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextlib.contextmanager
def postgres_server() -> Iterator[int]:
    """A throwaway PostgreSQL server; yields its port."""
    base = Path(tempfile.mkdtemp(prefix="wopr-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = free_port()
    data = base / "data"
    subprocess.run(
        _as_postgres([_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    start = [_pg_bin("pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-o", options, "-w", "start"]
    subprocess.run(_as_postgres(start), check=True, capture_output=True)
    try:
        yield port
    finally:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]), capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


# --- statistics ---------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "min": min(ms) if ms else float("nan"),
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else float("nan"),
        "mean": sum(ms) / len(ms) if ms else float("nan"),
    }


def fmt_ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def rss_mb() -> float:
    """This process's resident set size now (the platform runs in-process, so it is included)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- machine facts and the report ---------------------------------------------------------------------------


async def machine_facts() -> dict[str, str]:
    facts = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "cpu": "?",
        "memory": "?",
        "kernel": pyplatform.release(),
        "python": pyplatform.python_version(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    with contextlib.suppress(OSError, IndexError):
        facts["load"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            # the figures a benchmark writes are not a change to what it measured
            [
                "git",
                "-C",
                str(ROOT),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":!docs/benchmarks.md",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        facts["commit"] = commit + (" (with uncommitted changes)" if dirty else "")
    client = aiodocker.Docker()
    try:
        version = await client.version()
        info = await client.system.info()
        facts["docker"] = (
            f"{version.get('Version')} (API {version.get('ApiVersion')}, {info.get('Driver')}, "
            f"cgroup {info.get('CgroupVersion', '?')})"
        )
        facts["engine_busy"] = f"{info.get('ContainersRunning', '?')} running / {info.get('Containers', '?')} total"
    except aiodocker.DockerError as err:
        facts["docker"] = f"unknown ({err})"
    finally:
        await client.close()
    return facts


def facts_lines(facts: dict[str, str]) -> list[str]:
    return [
        f"- Date: {facts['date']}; commit {facts.get('commit', '?')}",
        f"- Machine: {facts['cpus']} CPUs ({facts['cpu']}), {facts['memory']} RAM, Linux {facts['kernel']}, "
        f"Python {facts['python']}; load average {facts.get('load', '?')} when the run started",
        f"- Docker: {facts.get('docker', '?')}; containers on the engine when the run started: "
        f"{facts.get('engine_busy', '?')} (the engine is shared with other work)",
    ]


_HEADER = """# Benchmarks

Performance targets of the fleet core, measured against the raw Docker engine on the same machine.
Each section is written by its script in `bench/` (see `bench/README.md`) and replaced as a whole on every
run; edit the scripts, not the sections.
"""


def publish(section: str, text: str, *, write: bool) -> None:
    """Print a report and, when asked, store it as `section` of docs/benchmarks.md."""
    print("\n" + text)
    if write:
        write_section(section, text)
        log(f"wrote section '{section}' of {DOCS.relative_to(ROOT)}")


def write_section(name: str, body: str, path: Path = DOCS) -> None:
    """Replace (or append) the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else _HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text, count=1) if pattern.search(text) else text.rstrip() + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text.rstrip() + "\n")
    tmp.replace(path)


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def dump_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)


# --- running a benchmark ------------------------------------------------------------------------------------


def run(main: Callable[[], Awaitable[int]]) -> int:
    """asyncio.run(main()) with SIGTERM treated like Ctrl-C, then a final sweep of everything labelled by us."""

    terminated: list[bool] = []

    async def wrapper() -> int:
        task = asyncio.current_task()
        assert task is not None

        def on_sigterm() -> None:
            terminated.append(True)
            task.cancel()

        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
        return await main()

    code = 1
    try:
        code = asyncio.run(wrapper())
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("terminated" if terminated else "interrupted")
        code = 143 if terminated else 130
    finally:
        if _PLATFORM_IDS:
            try:
                removed = asyncio.run(cleanup_engine(_PLATFORM_IDS))
                if any(removed):
                    log(f"final sweep removed {removed[0]} containers and {removed[1]} volumes")
            except Exception as err:
                log(f"final sweep failed: {err}; remove by label {LABEL_PLATFORM}={sorted(_PLATFORM_IDS)}")
    return code
