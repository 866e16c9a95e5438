"""Tenant routing through a real Caddy: how soon a new bot answers, how soon a route change applies with 1000
routes, and what clients and WebSockets see while routes churn. Beside it, the raw baseline: the same routing
table written into Caddy's config as static routes and posted to a second Caddy's admin API (one reload per change).

Phases (one platform in-process, its own Caddy; `--bots` running bots, `--routes` routes in all):
1. a burst of `--bots` creates (`--concurrency` at a time): when each answers through the proxy, how many times
   Caddy loaded a config, how many times the routing table was rebuilt;
2. bots without a container up to `--routes` (stored directly, desired stopped; the reconciler makes their
   containers), so the table holds `--routes` routes;
3. `--creates` sequential creates: `POST /fleet/bots` until the bot answers by its host through the proxy;
4. `--changes` subdomain changes of running bots: `PATCH` until the new host answers;
5. `--churn` confirmed route changes while `--clients` keep-alive clients send requests back to back to one bot and
   a WebSocket to it echoes a message after each change: failed requests, idle connections the proxy closed,
   WebSocket closes;
6. the baseline Caddy: the same table as static routes (1000 hosts, 1000 paths); a one-route change posted to its
   admin API (reload time, and until the host answers), and the churn of phase 5 against it.

    uv run python bench/proxy.py [--bots 100] [--routes 1000] [--creates 20] [--changes 50] [--churn 100] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

SECTION = "proxy"
DOMAIN = "wopr.bench"
DEFAULTS = {"bots": 100, "routes": 1000, "creates": 20, "changes": 50, "churn": 100}
POLL_SECONDS = 0.005
LOAD_MARKER = '"msg":"admin endpoint started"'


# --- a Caddy process ----------------------------------------------------------------------------------------


@dataclass
class CaddyProcess:
    """`caddy run` with only its admin endpoint, in a temp dir; stopped by PID."""

    directory: Path
    admin_port: int = field(default_factory=harness.free_port)
    http_port: int = field(default_factory=harness.free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def loads(self) -> int:
        """Config loads so far (the boot config excluded), from Caddy's own log."""
        return (self.directory / "caddy.log").read_text(errors="replace").count(LOAD_MARKER) - 1

    async def start(self) -> None:
        binary = shutil.which("caddy")
        if binary is None:
            raise SystemExit("the proxy benchmark needs Caddy (apt-get install caddy)")
        boot = self.directory / "boot.json"
        boot.write_text(json.dumps({"admin": {"listen": f"127.0.0.1:{self.admin_port}", "config": {"persist": False}}}))
        env = {**os.environ, "XDG_CONFIG_HOME": str(self.directory), "XDG_DATA_HOME": str(self.directory)}
        with (self.directory / "caddy.log").open("ab") as sink:
            self.process = subprocess.Popen(
                [binary, "run", "--config", str(boot)], env=env, stdout=sink, stderr=subprocess.STDOUT
            )
        async with httpx.AsyncClient(trust_env=False, timeout=2) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.admin_url}/config/")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError("caddy did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# --- measuring ----------------------------------------------------------------------------------------------


async def until_answers(
    client: httpx.AsyncClient, host: str, path: str = "/hello", contains: str = "", timeout: float = 30
) -> float:
    """perf_counter() when `host` first answered 200 (containing `contains`) through the proxy."""
    deadline = time.perf_counter() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            response = await client.get(path, headers={"Host": host})
            if response.status_code == 200 and contains in response.text:
                return time.perf_counter()
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{host}{path} did not answer within {timeout} s")
        await asyncio.sleep(POLL_SECONDS)


@dataclass
class Churn:
    ok: int = 0
    failed: int = 0
    idle_closed: int = 0
    failures: list[str] = field(default_factory=list)
    ws_messages: int = 0
    ws_closed: int = 0
    changes: int = 0
    seconds: float = 0.0


async def hammer(proxy_url: str, host: str, expected: str, stop: asyncio.Event, churn: Churn) -> None:
    """Requests back to back on one keep-alive connection; a failure on a reused connection before any answer
    byte is an idle connection the proxy closed (retried, counted apart)."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=proxy_url, timeout=10, trust_env=False, limits=limits) as client:
        while not stop.is_set():
            events: list[str] = []

            async def trace(name: str, info: dict[str, Any], events: list[str] = events) -> None:
                events.append(name)

            try:
                response = await client.get("/hello", headers={"Host": host}, extensions={"trace": trace})
            except httpx.TransportError as err:
                if "connection.connect_tcp.complete" not in events and (
                    "http11.receive_response_headers.complete" not in events
                ):
                    churn.idle_closed += 1
                else:
                    churn.failed += 1
                    churn.failures.append(repr(err))
                continue
            if response.status_code == 200 and response.text == expected:
                churn.ok += 1
            else:
                churn.failed += 1
                churn.failures.append(f"{response.status_code} {response.text[:60]!r}")


class EchoSocket:
    """A WebSocket to a bot through the proxy that echoes one message per step; a close is counted and the
    socket opened again (what a client has to do when the proxy drops it)."""

    def __init__(self, proxy_port: int, host: str, churn: Churn) -> None:
        self._uri = f"ws://{host}:{proxy_port}/ws"
        self._port = proxy_port
        self._churn = churn
        self._socket: Any = None

    async def open(self) -> None:
        self._socket = await websockets.connect(self._uri, host="127.0.0.1", port=self._port, ping_interval=None)

    async def step(self, index: int) -> None:
        try:
            await self._socket.send(f"m{index}")
            if await asyncio.wait_for(self._socket.recv(), 10) == f"m{index}":
                self._churn.ws_messages += 1
        except (websockets.ConnectionClosed, TimeoutError):
            self._churn.ws_closed += 1
            await self._socket.close()
            await self.open()

    async def close(self) -> None:
        await self._socket.close()


async def churn_against(
    proxy_url: str,
    proxy_port: int,
    host: str,
    expected: str,
    changes: int,
    clients: int,
    change: Any,
) -> Churn:
    """`changes` calls of `change(index)` (each returns once the change answers), each followed by a WebSocket
    echo, while `clients` keep-alive clients send requests."""
    churn = Churn(changes=changes)
    stop = asyncio.Event()
    socket = EchoSocket(proxy_port, host, churn)
    await socket.open()
    tasks = [asyncio.create_task(hammer(proxy_url, host, expected, stop, churn)) for _ in range(clients)]
    started = time.perf_counter()
    try:
        for index in range(changes):
            await change(index)
            await socket.step(index)
    finally:
        churn.seconds = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*tasks)
        await socket.close()
    return churn


# --- the baseline: the same table as static routes in a second Caddy's config ---------------------------------


def static_server(routes: list[dict[str, Any]], http_port: int) -> dict[str, Any]:
    """What a proxy that writes routes into Caddy's config would hold: a host and a path route per bot."""

    def target(route: dict[str, Any]) -> dict[str, Any]:
        if route["upstream"]:
            return {"handler": "reverse_proxy", "upstreams": [{"dial": route["upstream"]}]}
        return {"handler": "static_response", "status_code": 503, "body": "bot is unavailable\n"}

    entries: list[dict[str, Any]] = []
    for route in routes:
        entries.append({"match": [{"host": [route["host"]]}], "handle": [target(route)], "terminal": True})
        entries.append(
            {
                "match": [{"host": [DOMAIN], "path": [f"{route['pathPrefix']}*"]}],
                "handle": [
                    {"handler": "rewrite", "strip_path_prefix": route["pathPrefix"].rstrip("/")},
                    target(route),
                ],
                "terminal": True,
            }
        )
    entries.append({"handle": [{"handler": "static_response", "status_code": 404, "body": "unknown host\n"}]})
    return {"listen": [f"127.0.0.1:{http_port}"], "routes": entries, "automatic_https": {"disable": True}}


# --- the run --------------------------------------------------------------------------------------------------


async def fill(platform: harness.Platform, count: int) -> None:
    """Store `count` bots wanting to be stopped, straight into the database (the reconciler makes containers)."""
    from wopr_platform.db.models import Bot

    now = datetime.now(UTC)
    async with platform.app.state.sessions() as session, session.begin():
        for index in range(count):
            bot_id = str(uuid.uuid4())
            session.add(
                Bot(
                    id=bot_id,
                    tenant_id="default",
                    name=f"filler-{index:04d}",
                    subdomain=f"filler-{index:04d}",
                    image=harness.STUB_IMAGE,
                    env={},
                    restart_policy="unless-stopped",
                    volume_name=f"data-{bot_id}",
                    release_channel="stable",
                    update_policy="manual",
                    desired_state="stopped",
                    created_at=now,
                    updated_at=now,
                )
            )


async def main(args: argparse.Namespace) -> int:
    harness.log("building the stub image")
    harness.build_stub_image()
    facts = await harness.machine_facts()
    workdir = Path(tempfile.mkdtemp(prefix="wopr-bench-caddy-"))
    caddy = CaddyProcess(workdir / "platform")
    raw = CaddyProcess(workdir / "raw")
    for server in (caddy, raw):
        server.directory.mkdir()
        await server.start()
    dns_port = harness.free_port()
    results: dict[str, Any] = {}
    try:
        async with harness.running_platform(
            PROXY_ENABLED="true",
            CADDY_ADMIN_URL=caddy.admin_url,
            PROXY_DOMAIN=DOMAIN,
            PROXY_LISTEN=f"127.0.0.1:{caddy.http_port}",
            PROXY_TLS="off",
            PROXY_DNS_LISTEN=f"127.0.0.1:{dns_port}",
        ) as platform:
            results = await run_phases(args, platform, caddy, raw)
    finally:
        caddy.stop()
        raw.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    text = report(args, facts, results)
    harness.publish(SECTION, text, write=args.write)
    return 0


async def wait_proxy_ready(platform: harness.Platform) -> None:
    for _ in range(400):
        ready = (await platform.client.get("/health/ready")).json()
        if ready["checks"]["proxy"]["ok"]:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the proxy never became ready: {ready}")


async def proxy_state(platform: harness.Platform) -> dict[str, Any]:
    return dict((await platform.client.get("/proxy/routes")).json()["proxy"])


async def run_phases(
    args: argparse.Namespace, platform: harness.Platform, caddy: CaddyProcess, raw: CaddyProcess
) -> dict[str, Any]:
    await wait_proxy_ready(platform)
    results: dict[str, Any] = {}
    proxy = httpx.AsyncClient(base_url=caddy.proxy_url, timeout=10, trust_env=False)
    try:
        # 1. a burst of creates
        loads, builds = caddy.loads(), (await proxy_state(platform))["table"]["builds"]
        limit = asyncio.Semaphore(args.concurrency)
        answered: list[float] = []

        async def create(index: int) -> dict[str, Any]:
            async with limit:
                started = time.perf_counter()
                response = await platform.client.post(
                    "/fleet/bots",
                    json={"name": f"bench-{index:03d}", "image": harness.STUB_IMAGE, "env": {"STUB_MESSAGE": "b"}},
                )
                assert response.status_code == 201, response.text
                bot = dict(response.json())
            done = await until_answers(proxy, f"{bot['subdomain']}.{DOMAIN}", contains=" b")
            answered.append(done - started)
            return bot

        harness.log(f"phase 1: a burst of {args.bots} creates, {args.concurrency} at a time")
        burst_started = time.perf_counter()
        running = await asyncio.gather(*(create(index) for index in range(args.bots)))
        state = await proxy_state(platform)
        results["burst"] = {
            "seconds": time.perf_counter() - burst_started,
            "answered": harness.summary_ms(answered),
            "caddy_loads": caddy.loads() - loads,
            "table_builds": state["table"]["builds"] - builds,
        }

        # 2. the rest of the routes
        harness.log(f"phase 2: {args.routes - args.bots} bots without a container, stored directly")
        await fill(platform, args.routes - args.bots)
        await wait_all_containers(platform, args.routes)

        # 3. create -> answering, with the full table
        harness.log(f"phase 3: {args.creates} sequential creates")
        post_ms, after_ms, total_ms = [], [], []
        made = []
        for index in range(args.creates):
            await asyncio.sleep(args.settle)
            started = time.perf_counter()
            response = await platform.client.post(
                "/fleet/bots",
                json={"name": f"timed-{index:03d}", "image": harness.STUB_IMAGE, "env": {"STUB_MESSAGE": "t"}},
            )
            returned = time.perf_counter()
            assert response.status_code == 201, response.text
            bot = response.json()
            done = await until_answers(proxy, f"{bot['subdomain']}.{DOMAIN}", contains=" t")
            post_ms.append(returned - started)
            after_ms.append(done - returned)
            total_ms.append(done - started)
            made.append(bot["id"])
        for bot_id in made:
            await platform.client.delete(f"/fleet/bots/{bot_id}?removeVolumes=true")
        results["create"] = {
            "post": harness.summary_ms(post_ms),
            "after": harness.summary_ms(after_ms),
            "total": harness.summary_ms(total_ms),
        }

        # 4. route change latency with the full table
        state = await proxy_state(platform)
        results["routes"] = state["table"]["routes"]
        harness.log(f"phase 4: {args.changes} route changes with {results['routes']} routes")
        loads = caddy.loads()
        patch_ms, change_ms, lookup_build = [], [], []
        for index in range(args.changes):
            await asyncio.sleep(args.settle)
            bot = running[index % len(running)]
            subdomain = f"moved-{index}-{uuid.uuid4().hex[:6]}"
            started = time.perf_counter()
            response = await platform.client.patch(f"/fleet/bots/{bot['id']}", json={"subdomain": subdomain})
            returned = time.perf_counter()
            assert response.status_code == 200, response.text
            done = await until_answers(proxy, f"{subdomain}.{DOMAIN}", contains=" b")
            patch_ms.append(returned - started)
            change_ms.append(done - started)
            bot["subdomain"] = subdomain
            lookup_build.append((await proxy_state(platform))["table"]["lastBuildMs"] / 1000)
        results["change"] = {
            "patch": harness.summary_ms(patch_ms),
            "answer": harness.summary_ms(change_ms),
            "build": harness.summary_ms(lookup_build),
            "caddy_loads": caddy.loads() - loads,
        }

        # 5. churn through the platform's routing
        steady, moving = running[0], running[1]
        host = f"{steady['subdomain']}.{DOMAIN}"
        expected = (await proxy.get("/hello", headers={"Host": host})).text

        async def change_platform_route(index: int) -> None:
            subdomain = f"churn-{index}-{uuid.uuid4().hex[:6]}"
            response = await platform.client.patch(f"/fleet/bots/{moving['id']}", json={"subdomain": subdomain})
            assert response.status_code == 200, response.text
            await until_answers(proxy, f"{subdomain}.{DOMAIN}")

        harness.log(f"phase 5: {args.churn} route changes under load, through the platform's routing")
        loads = caddy.loads()
        results["churn"] = await churn_against(
            caddy.proxy_url, caddy.http_port, host, expected, args.churn, args.clients, change_platform_route
        )
        results["churn_loads"] = caddy.loads() - loads

        # 6. the baseline: the same table as static routes, one reload per change
        harness.log("phase 6: the baseline, the same table as static routes in a second Caddy")
        table = (await platform.client.get("/proxy/routes")).json()["routes"]
        for route in table:
            route["host"] = f"{route['subdomain']}.{DOMAIN}"
        server = static_server(table, raw.http_port)
        async with httpx.AsyncClient(base_url=raw.admin_url, timeout=60, trust_env=False) as admin:
            path = "/config/apps/http/servers/static"
            put = await admin.put(path, json=server)
            assert put.status_code == 200, put.text
            raw_client = httpx.AsyncClient(base_url=raw.proxy_url, timeout=10, trust_env=False)
            moving_route = next(i for i, r in enumerate(table) if r["botId"] == moving["id"])
            reload_ms, raw_answer_ms = [], []
            try:
                for index in range(args.changes):
                    await asyncio.sleep(args.settle)
                    subdomain = f"raw-{index}-{uuid.uuid4().hex[:6]}"
                    server["routes"][2 * moving_route]["match"] = [{"host": [f"{subdomain}.{DOMAIN}"]}]
                    started = time.perf_counter()
                    response = await admin.patch(path, json=server)
                    returned = time.perf_counter()
                    assert response.status_code == 200, response.text
                    done = await until_answers(raw_client, f"{subdomain}.{DOMAIN}", contains=" b")
                    reload_ms.append(returned - started)
                    raw_answer_ms.append(done - started)
                results["raw_change"] = {
                    "reload": harness.summary_ms(reload_ms),
                    "answer": harness.summary_ms(raw_answer_ms),
                    "body_kib": len(json.dumps(server)) / 1024,
                }

                async def change_static_route(index: int) -> None:
                    subdomain = f"rawchurn-{index}-{uuid.uuid4().hex[:6]}"
                    server["routes"][2 * moving_route]["match"] = [{"host": [f"{subdomain}.{DOMAIN}"]}]
                    response = await admin.patch(path, json=server)
                    assert response.status_code == 200, response.text
                    await until_answers(raw_client, f"{subdomain}.{DOMAIN}")

                harness.log(f"phase 6: {args.churn} reloads under load, the baseline")
                loads = raw.loads()
                results["raw_churn"] = await churn_against(
                    raw.proxy_url, raw.http_port, host, expected, args.churn, args.clients, change_static_route
                )
                results["raw_churn_loads"] = raw.loads() - loads
            finally:
                await raw_client.aclose()
        results["state"] = await proxy_state(platform)
    finally:
        await proxy.aclose()
    return results


async def wait_all_containers(platform: harness.Platform, count: int, timeout: float = 600) -> None:
    """Until the reconciler has made a container for each of `count` bots."""
    deadline = time.monotonic() + timeout
    while True:
        bots = (await platform.client.get("/fleet/bots")).json()["bots"]
        with_container = sum(1 for bot in bots if bot["observedState"] not in ("missing", "unknown"))
        if len(bots) >= count and with_container >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {with_container} of {count} bots have a container after {timeout} s")
        await asyncio.sleep(1)


def report(args: argparse.Namespace, facts: dict[str, str], r: dict[str, Any]) -> str:
    f = harness.fmt_ms

    def row(label: str, s: dict[str, float]) -> list[object]:
        return [label, f(s["p50"]), f(s["p90"]), f(s["p99"]), f(s["max"]), s["n"]]

    reduced = [name for name, default in DEFAULTS.items() if getattr(args, name) < default]
    lines = ["## Tenant routing through Caddy: route latency, and connections during route changes", ""]
    if reduced:
        lines += [
            f"> **Validation run** at reduced scale ({', '.join(f'--{n} {getattr(args, n)}' for n in reduced)}); "
            "it checks that the script works, the numbers are indicative only.",
            "",
        ]
    burst, create, change, raw_change = r["burst"], r["create"], r["change"], r["raw_change"]
    churn, raw_churn = r["churn"], r["raw_churn"]
    lines += harness.facts_lines(facts)
    lines += [
        f"- Parameters: `--bots {args.bots} --routes {args.routes} --creates {args.creates} --changes {args.changes} "
        f"--churn {args.churn} --clients {args.clients} --concurrency {args.concurrency} --settle {args.settle}`; "
        f"Caddy {caddy_version()} (Debian), platform in-process (uvicorn, SQLite WAL), default proxy settings "
        "(`PROXY_DNS_REFRESH` 1 s); clients poll the proxy every 5 ms",
        "- Routing: the platform's Caddy config never changes with the routes; Caddy looks each host and path up "
        "in the platform's route DNS. Baseline: the same table written as static routes (a host route and a path "
        f"route per bot, {raw_change['body_kib']:.0f} KiB of JSON) into a second Caddy, one `PATCH` of its server "
        "block per change, as a proxy manager that rewrites Caddy's config does.",
        "",
        "| ms | p50 | p90 | p99 | max | n |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = [
        row(f"burst of {args.bots} creates: `POST` until the bot answers by host", burst["answered"]),
        row(f"create with {r['routes']} routes: `POST /fleet/bots`", create["post"]),
        row("... then until the bot answers by host", create["after"]),
        row("**create until answering**", create["total"]),
        row(f"route change with {r['routes']} routes: `PATCH` (new subdomain)", change["patch"]),
        row("**route change until the new host answers**", change["answer"]),
        row(f"routing table rebuild ({r['routes']} routes)", change["build"]),
        row(f"baseline: Caddy reload, {r['routes']} routes posted (`PATCH` of the server block)", raw_change["reload"]),
        row("baseline: **route change until the new host answers**", raw_change["answer"]),
    ]
    lines += ["| " + " | ".join(str(cell) for cell in cells) + " |" for cells in rows]
    lines += [
        "",
        f"Burst of {args.bots} creates: {burst['seconds']:.1f} s; Caddy config loads during it: "
        f"**{burst['caddy_loads']}**; routing table rebuilds: {burst['table_builds']}. Caddy loads during the "
        f"{args.changes} route changes: **{change['caddy_loads']}**.",
        "",
        f"During {args.churn} route changes (each confirmed through the proxy), {args.clients} keep-alive clients "
        "sending requests back to back to one bot, and one WebSocket to it echoing a message after each change:",
        "",
        harness.table(
            [
                "",
                "seconds",
                "requests answered",
                "**failed**",
                "idle connections closed by the proxy",
                "Caddy loads",
                "WebSocket echoes",
                "**WebSocket closed**",
            ],
            [
                [
                    "platform routing",
                    f"{churn.seconds:.1f}",
                    churn.ok,
                    churn.failed,
                    churn.idle_closed,
                    r["churn_loads"],
                    churn.ws_messages,
                    churn.ws_closed,
                ],
                [
                    "baseline (reload per change)",
                    f"{raw_churn.seconds:.1f}",
                    raw_churn.ok,
                    raw_churn.failed,
                    raw_churn.idle_closed,
                    r["raw_churn_loads"],
                    raw_churn.ws_messages,
                    raw_churn.ws_closed,
                ],
            ],
        ),
        "",
        "An idle connection closed by the proxy fails the next request sent on it before any answer came back; "
        "clients retry those (they are counted apart from failed requests). Caddy 2.6 closes every proxied "
        "WebSocket on each config load (the baseline reopens it after each close).",
    ]
    failures = churn.failures + raw_churn.failures
    if failures:
        lines += ["", "Failures: " + "; ".join(sorted(set(failures))[:10])]
    return "\n".join(lines)


def caddy_version() -> str:
    binary = shutil.which("caddy") or "caddy"
    done = subprocess.run([binary, "version"], capture_output=True, text=True, check=False)
    return done.stdout.split()[0] if done.stdout else "?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=DEFAULTS["bots"], help="running bots, created in one burst")
    parser.add_argument("--routes", type=int, default=DEFAULTS["routes"], help="routes in all (bots stored)")
    parser.add_argument("--creates", type=int, default=DEFAULTS["creates"], help="timed sequential creates")
    parser.add_argument("--changes", type=int, default=DEFAULTS["changes"], help="timed route changes")
    parser.add_argument("--churn", type=int, default=DEFAULTS["churn"], help="route changes under load")
    parser.add_argument("--clients", type=int, default=3, help="keep-alive clients during the churn")
    parser.add_argument("--concurrency", type=int, default=8, help="creates at a time in the burst")
    parser.add_argument("--settle", type=float, default=0.2, help="seconds of quiet before each timed run")
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.bots < 2 or args.routes < args.bots:
        parser.error("--bots must be at least 2 and --routes at least --bots")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(harness.run(lambda: main(arguments)))
