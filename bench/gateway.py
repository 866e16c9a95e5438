"""The metered AI gateway against the stand-in provider called directly, side by side in one run (issue: "the
gateway adds at most 5 ms at p99 (non-streamed) over calling the stand-in provider directly, with 200 concurrent
streams in flight, and time to first streamed byte is within 5 ms of direct").

Three processes, so that neither side's figures carry the other processes' work on their event loop:

- this one: the platform (`harness.running_platform`, SQLite, billing on) with its gateway listener on its own
  loopback port, served as production serves it (uvloop, httptools);
- the stand-in provider, `tests/fixtures/fake_provider.py` served by uvicorn (`--role provider`);
- the load generator (`--role load`): `httpx.AsyncClient` (trust_env=False) for both sides, same code, same body.

The load generator keeps `--streams` streamed chat completions in flight on the side being measured (long streams,
one chunk every `--chunk-delay` s, lengths spread over `--stream-tokens`, each restarted as it ends; on a switch of
side they are cut and restarted on the other side, the first of each with what is left of a stream in progress, and
measuring waits until all are streaming again plus `--settle` s). Meanwhile it times, one at a time on a keep-alive
connection, non-streamed chat completions (`max_tokens` 5) and, interleaved with them, the time to the first
streamed byte of short streams (`max_tokens` 1, time from sending the request to the first SSE `data:` chunk).
Sides alternate in batches, ABBA, after untimed warm-up calls. Every answer is checked (status 200, whole); a run
with any failure is not valid.

Targets: gateway p99 - direct p99 <= 5 ms for the non-streamed calls; gateway p50 - direct p50 <= 5 ms for the
time to first byte (its p99 is shown too). Also reported: the CPU each process used while each side was timed, and
whether the gateway recorded (and charged) every call sent to it, with the ledger balanced.

`--profile` instruments the gateway in this process (its phases per non-streamed call, the SQL statements it runs
and their wall times, the event loop's lag) and prints that after the section; a profiled run is never written.
`--quick` is a validation run (200 calls, 50 short streams, 50 background streams, 2 batches per side).

    uv run python bench/gateway.py [--calls 2000] [--ttfb 500] [--streams 200] [--batches 10] [--chunk-delay 0.05]
        [--stream-tokens 200 600] [--quick] [--profile] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests/fixtures/fake_provider.py

import harness

SECTION = "gateway"
TARGET_MS = 5.0
DOLLAR = 1_000_000  # micro-dollars
GRANT = 100_000 * DOLLAR  # the credits the benchmark's tenant starts with
MODEL = "gpt-4o-mini"
PROMPT = [{"role": "user", "content": "say five words please"}]
CALL_BODY: dict[str, Any] = {"model": MODEL, "messages": PROMPT, "max_tokens": 5}
STREAM_BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": PROMPT,
    "stream": True,
    "stream_options": {"include_usage": True},  # the gateway asks for it anyway: the same answer both ways
}
SIDES = ("gateway", "direct")
SWITCH_WARMUP = (10, 2)  # untimed calls and short streams after every switch of side
START_TIMEOUT = 60.0


def _use_loop(kind: str) -> None:
    if kind == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# --- the stand-in provider's process ------------------------------------------------------------------------


async def provider_main(chunk_delay: float) -> int:
    """Serve the fake provider until stdin closes; print its URL first and its counts last (JSON lines)."""
    from tests.fixtures.fake_provider import FakeProvider, serve_fake_provider

    provider = FakeProvider()
    provider.output_tokens = 1_000_000  # each request's max_tokens sets its length
    provider.chunk_delay = chunk_delay
    requests = 0
    loop = asyncio.get_running_loop()
    async with serve_fake_provider(provider) as url:
        print(json.dumps({"url": url}), flush=True)
        eof = loop.run_in_executor(None, sys.stdin.read)
        while not eof.done():
            await asyncio.wait({eof}, timeout=2.0)
            requests += len(provider.requests)
            provider.requests.clear()  # only counted here; a long run must not keep them all
    requests += len(provider.requests)
    counts = {
        "requests": requests,
        "streams_finished": provider.streams_finished,
        "streams_cancelled": provider.streams_cancelled,
    }
    print(json.dumps(counts), flush=True)
    return 0


# --- the load generator's process ---------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class SideLoad:
    """One side as the load generator reaches it, and what it measured there."""

    name: str
    base_url: str
    key: str
    calls: list[float] = field(default_factory=list)
    ttfb: list[float] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)  # streams in flight when each timed request began
    failures: Counter[str] = field(default_factory=Counter)
    requests: int = 0  # every request sent to this side (warm-up and streams included)
    streams_completed: int = 0
    streams_cut: int = 0  # cut by a switch of side or the end of the run
    wall: float = 0.0  # seconds of timed batches
    cpu: Counter[str] = field(default_factory=Counter)  # CPU seconds per process during timed batches
    open: int = 0  # streams in flight now
    streaming: int = 0  # streams that have had their first chunk and not ended


class Load:
    def __init__(self, config: dict[str, Any]) -> None:
        self.cfg = config
        self.sides = {
            "gateway": SideLoad("gateway", config["gateway"], config["key"]),
            "direct": SideLoad("direct", config["direct"], "sk-bench-direct"),
        }
        self.current: str | None = None
        self.arrived: set[int] = set()  # workers streaming on the current side since the last switch
        self.stopping = False
        self.changed = asyncio.Event()
        self.pids: dict[str, int] = {**config["pids"], "load generator": os.getpid()}
        self._callers: dict[str, httpx.AsyncClient] = {}
        self._streamers: dict[str, httpx.AsyncClient] = {}
        self._drains: set[asyncio.Task[None]] = set()

    def _client(self, side: SideLoad, connections: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=side.base_url,
            headers={"Authorization": f"Bearer {side.key}"},
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            trust_env=False,
        )

    async def run(self) -> dict[str, Any]:
        streams = int(self.cfg["streams"])
        for name, side in self.sides.items():
            self._callers[name] = self._client(side, 8)
            self._streamers[name] = self._client(side, streams + 20)
        workers = [asyncio.create_task(self._stream_worker(i)) for i in range(streams)]
        status = asyncio.create_task(self._status())
        began = time.monotonic()
        try:
            await self._measure()
        finally:
            status.cancel()
            self.stopping = True
            self.changed.set()
            await asyncio.wait(workers, timeout=30)
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for client in [*self._callers.values(), *self._streamers.values()]:
                await client.aclose()
        return {
            "seconds": time.monotonic() - began,
            "sides": {
                name: {
                    "calls": side.calls,
                    "ttfb": side.ttfb,
                    "in_flight": side.in_flight,
                    "failures": dict(side.failures),
                    "requests": side.requests,
                    "streams_completed": side.streams_completed,
                    "streams_cut": side.streams_cut,
                    "wall": side.wall,
                    "cpu": dict(side.cpu),
                }
                for name, side in self.sides.items()
            },
        }

    async def _status(self) -> None:
        while True:
            await asyncio.sleep(10)
            harness.log(
                f"load: on {self.current}, {len(self.arrived)} streams arrived; "
                + "; ".join(
                    f"{s.name}: {s.open} open, {s.streaming} streaming, {s.requests} sent, {len(s.calls)} timed, "
                    f"{sum(s.failures.values())} failed"
                    for s in self.sides.values()
                )
            )

    def _plan(self) -> list[tuple[str, int, int]]:
        """(side, calls, short streams) per timed batch, the sides in ABBA order."""
        batches = int(self.cfg["batches"])
        plan = []
        for index in range(2 * batches):
            side = SIDES[((index + 1) // 2) % 2]
            number = index // 2
            calls = self.cfg["calls"] // batches + (number < self.cfg["calls"] % batches)
            ttfb = self.cfg["ttfb"] // batches + (number < self.cfg["ttfb"] % batches)
            plan.append((side, calls, ttfb))
        return plan

    async def _measure(self) -> None:
        visited: set[str] = set()
        for number, (name, calls, ttfb) in enumerate(self._plan()):
            if name != self.current:
                await self._switch(name)
                if name in visited:
                    await self._batch(name, *SWITCH_WARMUP, timed=False)
                else:
                    visited.add(name)
                    warmup = int(self.cfg["warmup"])
                    await self._batch(name, warmup, max(1, warmup // 5), timed=False)
            harness.log(f"batch {number + 1}/{2 * self.cfg['batches']}: {name}, {calls} calls + {ttfb} short streams")
            await self._batch(name, calls, ttfb, timed=True)

    async def _switch(self, name: str) -> None:
        """Move the background streams to side `name`: wait until all stream there, then let it settle."""
        self.current = name
        self.arrived = set()
        self.changed.set()
        self.changed = asyncio.Event()
        deadline = time.monotonic() + START_TIMEOUT
        while len(self.arrived) < self.cfg["streams"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(self.arrived)} of {self.cfg['streams']} streams started on {name}")
            await asyncio.sleep(0.02)
        await asyncio.sleep(float(self.cfg["settle"]))

    async def _batch(self, name: str, calls: int, ttfb: int, *, timed: bool) -> None:
        side = self.sides[name]
        kinds: list[str] = []
        every = max(1, calls // ttfb) if ttfb else calls + 1
        for index in range(calls):
            kinds.append("call")
            if (index + 1) % every == 0 and kinds.count("ttfb") < ttfb:
                kinds.append("ttfb")
        kinds += ["ttfb"] * (ttfb - kinds.count("ttfb"))
        cpu_before = {process: _cpu_seconds(pid) for process, pid in self.pids.items()}
        began = time.perf_counter()
        for kind in kinds:
            open_now = side.open
            seconds = await (self._call(side) if kind == "call" else self._first_byte(side))
            if timed and seconds is not None:
                (side.calls if kind == "call" else side.ttfb).append(seconds)
                side.in_flight.append(open_now)
        await asyncio.gather(*self._drains)
        if timed:
            side.wall += time.perf_counter() - began
            for process, pid in self.pids.items():
                side.cpu[process] += _cpu_seconds(pid) - cpu_before[process]

    async def _call(self, side: SideLoad) -> float | None:
        """One non-streamed chat completion: seconds from sending to the whole answer (None: it failed)."""
        client = self._callers[side.name]
        side.requests += 1
        try:
            began = time.perf_counter()
            response = await client.post("/chat/completions", json=CALL_BODY)
            seconds = time.perf_counter() - began
        except httpx.HTTPError as err:
            side.failures[f"call: {type(err).__name__}"] += 1
            return None
        if response.status_code != 200 or b'"choices"' not in response.content:
            side.failures[f"call: {response.status_code}"] += 1
            return None
        return seconds

    async def _first_byte(self, side: SideLoad) -> float | None:
        """One short stream (one token): seconds from sending to its first `data:` chunk. The rest of it (the
        token comes `--chunk-delay` later) is read to its end and checked by a task of its own meanwhile."""
        client = self._callers[side.name]
        side.requests += 1
        body = {**STREAM_BODY, "max_tokens": 1}
        first: float | None = None
        tail = b""
        try:
            began = time.perf_counter()
            response = await client.send(client.build_request("POST", "/chat/completions", json=body), stream=True)
        except httpx.HTTPError as err:
            side.failures[f"short stream: {type(err).__name__}"] += 1
            return None
        chunks = response.aiter_raw()
        try:
            async for chunk in chunks:
                tail = (tail + chunk)[-32:]
                if b"data:" in chunk:
                    first = time.perf_counter() - began
                    break
        except httpx.HTTPError as err:
            side.failures[f"short stream: {type(err).__name__}"] += 1
            await response.aclose()
            return None
        drain = asyncio.create_task(self._drain(side, response, chunks, tail))
        self._drains.add(drain)
        drain.add_done_callback(self._drains.discard)
        return first

    async def _drain(self, side: SideLoad, response: httpx.Response, chunks: AsyncIterator[bytes], tail: bytes) -> None:
        try:
            async for chunk in chunks:
                tail = (tail + chunk)[-32:]
        except httpx.HTTPError as err:
            side.failures[f"short stream: {type(err).__name__}"] += 1
            return
        finally:
            await response.aclose()
        if response.status_code != 200 or b"[DONE]" not in tail:
            side.failures[f"short stream: {response.status_code}{'' if b'[DONE]' in tail else ', incomplete'}"] += 1

    async def _stream_worker(self, number: int) -> None:
        """Keeps one long stream in flight on the current side, restarted as it ends. The first one after a switch
        of side has what is left of a stream in progress (1 to MAX tokens), so that streams end and restart at the
        steady rate from the start of a stretch on either side, however short the stretch."""
        rng = random.Random(number)
        low, high = self.cfg["stream_tokens"]
        previous: str | None = None
        while not self.stopping:
            name = self.current
            if name is None:
                await self.changed.wait()
                continue
            side = self.sides[name]
            tokens = rng.randint(low, high) if name == previous else rng.randint(1, high)
            previous = name
            body = {**STREAM_BODY, "max_tokens": tokens}
            side.requests += 1
            side.open += 1
            streaming = cut = False
            tail = b""
            try:
                async with self._streamers[name].stream("POST", "/chat/completions", json=body) as response:
                    if response.status_code != 200:
                        side.failures[f"stream: {response.status_code}"] += 1
                        await response.aread()
                        await asyncio.sleep(0.1)
                        continue
                    async for chunk in response.aiter_raw():
                        if not streaming:
                            streaming = True
                            side.streaming += 1
                            if self.current == name:
                                self.arrived.add(number)
                        tail = (tail + chunk)[-32:]
                        if self.current != name or self.stopping:
                            cut = True
                            break
                if cut:
                    side.streams_cut += 1
                elif b"[DONE]" in tail:
                    side.streams_completed += 1
                else:
                    side.failures["stream: incomplete"] += 1
            except httpx.HTTPError as err:
                side.failures[f"stream: {type(err).__name__}"] += 1
                await asyncio.sleep(0.1)
            finally:
                side.open -= 1
                if streaming:
                    side.streaming -= 1


async def load_main(config: dict[str, Any]) -> int:
    result = await Load(config).run()
    print(json.dumps(result), flush=True)
    return 0


# --- --profile: where the gateway's time goes (this process, instrumented) ---------------------------------

_TRACE: contextvars.ContextVar[list[tuple[str, float]] | None] = contextvars.ContextVar("bench_trace", default=None)


@dataclass
class Profile:
    """Phases of each non-streamed gateway call (wall time in the gateway's ASGI app), and the event loop's lag."""

    calls: list[tuple[float, list[tuple[str, float]]]] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)
    statements: dict[str, list[float]] = field(default_factory=dict)  # wall time of each SQL statement, by kind
    recording: bool = True

    def install(self) -> None:
        from wopr_platform.app.gateway import GatewayApp
        from wopr_platform.db.unit import Database
        from wopr_platform.gateway.calls import GatewayCalls
        from wopr_platform.providers.client import Reply

        for owner, name, phase in (
            (GatewayApp, "_body", "read request body"),
            (GatewayCalls, "authenticate_and_route", "authenticate_and_route (in memory once read)"),
            (GatewayCalls, "begin", "begin (reserve from the lease in memory)"),
            (GatewayApp, "_send_upstream", "upstream call to answer head (openai SDK)"),
            (Reply, "read", "upstream answer body"),
            (GatewayCalls, "finish", "finish (the call's row: group commit)"),
        ):
            self._time(owner, name, phase)
        self._time_context(Database, "read", "sessions")
        self._time_context(Database, "unit", "sessions")
        self._count(Database, "core_unit", "core units")
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        def statement(conn: Any, _cursor: Any, text: str, *_: Any) -> None:
            conn.info["bench_began"] = time.perf_counter()
            trace = _TRACE.get()
            if trace is not None:
                trace.append(("sql: " + " ".join(text.split()[:3]), 0.0))

        def executed(conn: Any, _cursor: Any, text: str, *_: Any) -> None:
            began = conn.info.pop("bench_began", None)
            if began is not None and self.recording:
                kind = " ".join(text.split()[:3])
                self.statements.setdefault(kind, []).append(time.perf_counter() - began)

        event.listen(Engine, "before_cursor_execute", statement)
        event.listen(Engine, "after_cursor_execute", executed)
        original_call = GatewayApp.__call__
        profile = self

        async def call(app: Any, scope: Any, receive: Any, send: Any) -> None:
            trace: list[tuple[str, float]] = []
            token = _TRACE.set(trace)
            began = time.perf_counter()
            try:
                await original_call(app, scope, receive, send)
            finally:
                _TRACE.reset(token)
                if profile.recording and any(phase == "upstream answer body" for phase, _ in trace):
                    profile.calls.append((time.perf_counter() - began, trace))

        GatewayApp.__call__ = call  # type: ignore[method-assign]

    @staticmethod
    def _time(owner: Any, name: str, phase: str) -> None:
        original = getattr(owner, name, None)
        if original is None:
            harness.log(f"profile: {owner.__name__}.{name} is gone; not timed")
            return

        async def timed(*args: Any, **kwargs: Any) -> Any:
            trace = _TRACE.get()
            began = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                if trace is not None:
                    trace.append((phase, time.perf_counter() - began))

        setattr(owner, name, timed)

    @staticmethod
    def _count(owner: Any, name: str, phase: str) -> None:
        """A coroutine function: counted."""
        original = getattr(owner, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            trace = _TRACE.get()
            if trace is not None:
                trace.append((phase, 0.0))
            return await original(*args, **kwargs)

        setattr(owner, name, counted)

    @staticmethod
    def _time_context(owner: Any, name: str, phase: str) -> None:
        """An async context manager: counted."""
        original = getattr(owner, name)

        @contextlib.asynccontextmanager
        async def timed(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            trace = _TRACE.get()
            async with original(*args, **kwargs) as value:
                if trace is not None:
                    trace.append((phase, 0.0))
                yield value

        setattr(owner, name, timed)

    async def watch_loop(self, interval: float = 0.01) -> None:
        """How late the event loop wakes a task that sleeps `interval`: the wait of anything ready to run."""
        while True:
            began = time.perf_counter()
            await asyncio.sleep(interval)
            if self.recording:
                self.lag.append(time.perf_counter() - began - interval)

    def lines(self) -> list[str]:
        phases: dict[str, list[float]] = {}
        counts: Counter[str] = Counter()
        for total, trace in self.calls:
            phases.setdefault("whole call in the gateway app", []).append(total)
            for phase, seconds in trace:
                if phase in ("sessions", "core units") or phase.startswith("sql: "):
                    counts[phase] += 1
                else:
                    phases.setdefault(phase, []).append(seconds)
            accounted = sum(seconds for _, seconds in trace)
            phases.setdefault("rest (parse, estimate, answer to the caller)", []).append(total - accounted)
        calls = max(1, len(self.calls))
        sql = sum(count for kind, count in counts.items() if kind.startswith("sql: "))
        rows = []
        for phase, values in phases.items():
            ms = harness.summary_ms(values)
            rows.append((phase, *(_ms(ms[q]) for q in ("p50", "p90", "p99", "max")), int(ms["n"])))
        lag = harness.summary_ms(self.lag)
        rows.append(
            ("event loop lag (10 ms sleep, all the run)", *(_ms(lag[q]) for q in ("p50", "p90", "p99", "max")), "")
        )
        statement_rows = []
        for kind, values in sorted(self.statements.items(), key=lambda item: -len(item[1]))[:12]:
            ms = harness.summary_ms(values)
            statement_rows.append((f"`{kind}`", *(_ms(ms[q]) for q in ("p50", "p90", "p99", "max")), int(ms["n"])))
        kinds = ", ".join(
            f"{count / calls:g} `{kind[5:]}`" for kind, count in counts.most_common() if kind.startswith("sql: ")
        )
        return [
            "Profile: phases of the non-streamed calls through the gateway (all of them, warm-up included), wall "
            "time inside the gateway's ASGI app (ms):",
            "",
            harness.table(("phase", "p50", "p90", "p99", "max", "n"), rows),
            "",
            f"Database work per non-streamed call: {counts['sessions'] / calls:g} sessions with {sql / calls:g} SQL "
            f"statements on the event loop ({kinds or 'none'}), and {counts['core units'] / calls:g} units run whole "
            "on the database's own thread (`Database.core_unit`: the call's row, with those of the calls ending "
            "alongside).",
            "",
            "Wall time of each SQL statement of the whole platform (all calls and streams, from the statement's "
            "execute to its result through aiosqlite's thread: lock waits included), ms:",
            "",
            harness.table(("statement", "p50", "p90", "p99", "max", "n"), statement_rows),
        ]


# --- this process: the platform, the set-up, the report -----------------------------------------------------


@dataclass
class Child:
    process: asyncio.subprocess.Process
    name: str


@contextlib.asynccontextmanager
async def child(name: str, *args: str) -> AsyncIterator[Child]:
    """This script in another role; stdin and stdout piped, stderr shared. Stopped (by its PID) at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve()),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=64 * 1024 * 1024,
    )
    try:
        yield Child(process, name)
    finally:
        if process.returncode is None:
            with contextlib.suppress(Exception):
                assert process.stdin is not None
                process.stdin.close()
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), timeout=15)
            except TimeoutError:
                harness.log(f"{name} did not end: terminating pid {process.pid}")
                process.terminate()
                try:
                    await asyncio.wait_for(asyncio.shield(process.wait()), timeout=5)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def read_json_line(found: Child, timeout: float) -> dict[str, Any]:
    assert found.process.stdout is not None
    line = await asyncio.wait_for(found.process.stdout.readline(), timeout)
    if not line:
        raise RuntimeError(f"{found.name} ended without an answer (exit status {await found.process.wait()})")
    data: dict[str, Any] = json.loads(line)
    return data


async def set_up_gateway(platform: harness.Platform, provider_url: str, gateway_url: str) -> str:
    """Provider, model and a tenant key, the tenant's credits; a key of the default tenant."""
    client = platform.client
    response = await client.put(
        "/gateway/providers/fakeai",
        json={"kind": "openai", "baseUrl": provider_url + "/v1", "apiKey": "sk-bench-" + uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    prices = {"inputPrice": DOLLAR, "outputPrice": 2 * DOLLAR}  # per million tokens
    response = await client.put("/gateway/models", json={"model": MODEL, "provider": "fakeai", **prices})
    assert response.status_code == 201, response.text
    made = await client.post("/gateway/keys", json={"name": "bench"})
    assert made.status_code == 201, made.text
    granted = await client.post(
        "/tenants/default/credits/grants",
        json={"amount": GRANT, "memo": "benchmark"},
        headers={"Idempotency-Key": "bench-" + uuid.uuid4().hex},
    )
    assert granted.status_code == 201, granted.text
    key = str(made.json()["key"])
    deadline = time.monotonic() + START_TIMEOUT
    async with httpx.AsyncClient(trust_env=False, headers={"Authorization": f"Bearer {key}"}) as probe:
        while True:
            try:
                listed = await probe.get(gateway_url + "/v1/models")
                assert listed.status_code == 200, listed.text
                return key
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway never listened") from None
                await asyncio.sleep(0.05)


async def gateway_books(platform: harness.Platform) -> dict[str, Any]:
    """What the platform recorded: calls and their cost, the balance, whether the ledger balances."""
    client = platform.client
    usage = (await client.get("/gateway/usage")).json()
    check = (await client.get("/billing/ledger-check")).json()
    balance = (await client.get("/tenants/default/credits")).json()
    return {
        "calls": sum(int(row["calls"]) for row in usage["usage"]),
        "cost": int(usage["totalCost"]),
        "ledger_ok": bool(check["ok"]),
        "charged": GRANT - int(balance["balance"]),
    }


async def main(args: argparse.Namespace) -> int:
    facts = await harness.machine_facts()
    gateway_port = harness.free_port()
    profile = Profile() if args.profile else None
    if profile is not None:
        profile.install()
    provider_args = ("--role", "provider", "--chunk-delay", str(args.chunk_delay), "--loop", args.loop)
    async with child("the stand-in provider", *provider_args) as provider:
        provider_url = str((await read_json_line(provider, START_TIMEOUT))["url"])
        harness.log(f"stand-in provider at {provider_url} (pid {provider.process.pid})")
        async with harness.running_platform(
            GATEWAY_ENABLED=True,
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=gateway_port,
            GATEWAY_RATE_LIMIT=1_000_000,  # the limiter stays on the path, high enough to refuse nothing
            BILLING_ENABLED=True,
            BILLING_MIN_BALANCE=0,
            PLATFORM_SECRET="bench-platform-secret-" + uuid.uuid4().hex,
            FLEET_RATE_LIMIT=0,
            FLEET_STATS_INTERVAL=3600,
        ) as platform:
            gateway_url = f"http://127.0.0.1:{gateway_port}"
            key = await set_up_gateway(platform, provider_url, gateway_url)
            harness.log(f"gateway at {gateway_url} (pid {os.getpid()}); starting the load generator")
            config = {
                "gateway": gateway_url + "/v1",
                "direct": provider_url + "/v1",
                "key": key,
                "pids": {"platform + gateway": os.getpid(), "stand-in provider": provider.process.pid},
                "calls": args.calls,
                "ttfb": args.ttfb,
                "streams": args.streams,
                "batches": args.batches,
                "warmup": args.warmup,
                "settle": args.settle,
                "stream_tokens": args.stream_tokens,
            }
            load_args = ("--role", "load", "--config", json.dumps(config), "--loop", args.loop)
            watcher = asyncio.create_task(profile.watch_loop()) if profile is not None else None
            async with child("the load generator", *load_args) as load:
                result = await read_json_line(load, 3600)
            if watcher is not None:
                watcher.cancel()
            await asyncio.sleep(3.0)  # the gateway finishes the streams cut at the end and posts their charges
            books = await gateway_books(platform)
        assert provider.process.stdin is not None
        provider.process.stdin.close()
        provider_counts = await read_json_line(provider, 30)
    text, met = report(args, facts, result, books, provider_counts)
    if profile is not None:
        text += "\n\n" + "\n".join(profile.lines())
    harness.publish(SECTION, text, write=not args.no_write and profile is None)
    return 0 if met else 1


def _ms(value: float) -> str:
    return f"{value:.2f}"


def report(
    args: argparse.Namespace,
    facts: dict[str, str],
    result: dict[str, Any],
    books: dict[str, Any],
    provider_counts: dict[str, Any],
) -> tuple[str, bool]:
    sides = result["sides"]
    gateway, direct = sides["gateway"], sides["direct"]
    calls = {name: harness.summary_ms(side["calls"]) for name, side in sides.items()}
    ttfb = {name: harness.summary_ms(side["ttfb"]) for name, side in sides.items()}
    failures = {name: sum(side["failures"].values()) for name, side in sides.items()}
    same_money = books["charged"] == books["cost"]
    valid = not any(failures.values()) and books["ledger_ok"] and same_money
    call_gap = calls["gateway"]["p99"] - calls["direct"]["p99"]
    ttfb_gap = ttfb["gateway"]["p50"] - ttfb["direct"]["p50"]
    call_met = valid and call_gap <= TARGET_MS
    ttfb_met = valid and ttfb_gap <= TARGET_MS
    low, high = args.stream_tokens
    stream_seconds = (low * args.chunk_delay, high * args.chunk_delay)
    validation = (
        args.calls < 2000 or args.ttfb < 500 or args.streams < 200 or args.chunk_delay > 0.05 or args.loop != "uvloop"
    )
    lines = ["## AI gateway: added latency and time to first streamed byte, against the provider directly", ""]
    if validation:
        lines += [
            "> **Validation run** below the default scale (or with a lighter load or another loop); the numbers are "
            "indicative only.",
            "",
        ]
    lines += harness.facts_lines(facts)
    lines += [
        f"- Parameters: `--calls {args.calls} --ttfb {args.ttfb} --streams {args.streams} --batches {args.batches} "
        f"--warmup {args.warmup} --settle {args.settle:g} --chunk-delay {args.chunk_delay:g} "
        f"--stream-tokens {low} {high} --loop {args.loop}`",
        "- Set-up: three processes on this machine, all on "
        f"{args.loop}: (1) the platform in-process (`harness.running_platform`, SQLite, `BILLING_ENABLED`, "
        "`GATEWAY_RATE_LIMIT` 1,000,000/min so the limiter is on the path but refuses nothing) with its gateway "
        "listener on its own loopback port; (2) the stand-in provider (`tests/fixtures/fake_provider.py`, uvicorn); "
        "(3) the load generator, `httpx.AsyncClient` (`trust_env=False`) for both sides, same code and bodies; "
        "direct calls go to the stand-in's `/v1/chat/completions`, gateway calls to the gateway's, which calls the "
        "same stand-in",
        f"- Background load: {args.streams} streamed chat completions in flight **on the side being measured** "
        f"(through the gateway while the gateway is timed, straight to the stand-in while direct is), one token "
        f"chunk every {args.chunk_delay * 1000:g} ms, {low}-{high} tokens each ({stream_seconds[0]:g}-"
        f"{stream_seconds[1]:g} s), restarted as each ends; on a switch of side they are cut and restarted on the "
        f"other side (the first one of each with what is left of a stream in progress: 1-{high} tokens, so that "
        f"streams end and restart from the start of a stretch), and timing resumes once all stream there plus "
        f"{args.settle:g} s",
        f"- Timed, one request at a time on a keep-alive connection: non-streamed chat completions (`max_tokens` 5, "
        f"whole answer read) and, interleaved, short streams (`max_tokens` 1): time from sending to the first SSE "
        f"`data:` chunk (the rest is read to its end and checked alongside); sides alternate in {args.batches} "
        f"batches each, ABBA, after untimed warm-up calls "
        f"({args.warmup} at the first visit of a side, {SWITCH_WARMUP[0]} after each switch)",
        f"- Streams in flight when a timed request began: gateway min {min(gateway['in_flight'], default=0)} / "
        f"median {harness.percentile(gateway['in_flight'], 50):.0f}, direct min "
        f"{min(direct['in_flight'], default=0)} / median {harness.percentile(direct['in_flight'], 50):.0f}; "
        f"run took {result['seconds']:.0f} s",
        "",
        "Non-streamed chat completion, whole answer (ms):",
        "",
    ]
    quantiles = ("p50", "p90", "p99", "max")
    rows: list[tuple[object, ...]] = [
        (name, *(_ms(calls[name][q]) for q in quantiles), int(calls[name]["n"])) for name in ("direct", "gateway")
    ]
    rows.append(("gateway - direct", *(f"**{_ms(calls['gateway'][q] - calls['direct'][q])}**" for q in quantiles), ""))
    lines += [harness.table(("path", *quantiles, "n"), rows), ""]
    lines += ["Time to first streamed byte (ms):", ""]
    rows = [(name, *(_ms(ttfb[name][q]) for q in quantiles), int(ttfb[name]["n"])) for name in ("direct", "gateway")]
    rows.append(("gateway - direct", *(f"**{_ms(ttfb['gateway'][q] - ttfb['direct'][q])}**" for q in quantiles), ""))
    lines += [harness.table(("path", *quantiles, "n"), rows), ""]
    lines += [f"CPU used during the timed batches, % of one core ({facts['cpus']} cores in all):", ""]
    processes = list(gateway["cpu"])
    rows = [
        (name, *(f"{100 * sides[name]['cpu'][process] / sides[name]['wall']:.0f}" for process in processes))
        for name in ("direct", "gateway")
    ]
    lines += [harness.table(("side measured", *processes), rows), ""]
    made = gateway["requests"]
    failure_text = "; ".join(
        f"{name}: " + ", ".join(f"{count} {kind}" for kind, count in side["failures"].items())
        for name, side in sides.items()
        if side["failures"]
    )
    lines += [
        f"Every request checked: failures **{failure_text or 'none'}** "
        f"(requests sent: gateway {made}, direct {direct['requests']}; streams completed gateway "
        f"{gateway['streams_completed']}, direct {direct['streams_completed']}; cut at switches gateway "
        f"{gateway['streams_cut']}, direct {direct['streams_cut']}). The gateway recorded {books['calls']} calls "
        f"({'all' if books['calls'] == made else '**not all**'} of those sent to it) at "
        f"{books['cost'] / DOLLAR:.4f} USD, and the tenant's balance went down by "
        f"{books['charged'] / DOLLAR:.4f} USD ({'the same' if same_money else '**not the same**'}); "
        f"ledger balanced: {'yes' if books['ledger_ok'] else '**no**'}; "
        f"the stand-in answered {provider_counts['requests']} requests.",
        "",
        f"Targets: non-streamed p99, gateway - direct = {_ms(call_gap)} ms (target <= {TARGET_MS:g} ms): "
        f"**{'met' if call_met else 'missed'}**; time to first byte, p50 gateway - direct = {_ms(ttfb_gap)} ms "
        f"(target <= {TARGET_MS:g} ms; p99 difference "
        f"{_ms(ttfb['gateway']['p99'] - ttfb['direct']['p99'])} ms shown, not judged): "
        f"**{'met' if ttfb_met else 'missed'}**" + ("" if valid else " (**not valid: some requests failed**)") + ".",
    ]
    return "\n".join(lines), call_met and ttfb_met


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="timed non-streamed calls per side")
    parser.add_argument("--ttfb", type=int, default=500, help="timed short streams (first byte) per side")
    parser.add_argument("--streams", type=int, default=200, help="background streams in flight")
    parser.add_argument("--batches", type=int, default=10, help="timed batches per side (ABBA)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls at the first visit of each side")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds after the streams moved to a side")
    parser.add_argument("--chunk-delay", type=float, default=0.05, help="seconds before each streamed token")
    parser.add_argument(
        "--stream-tokens",
        type=int,
        nargs=2,
        default=[200, 600],
        metavar=("MIN", "MAX"),
        help="background stream length",
    )
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop of all three")
    parser.add_argument("--quick", action="store_true", help="a validation run: 200 calls, 50 streams, 2 batches")
    parser.add_argument(
        "--profile", action="store_true", help="time the gateway's phases (instrumented: printed, never written)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--role", choices=("main", "provider", "load"), default="main", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parsed = parser.parse_args(argv)
    if parsed.quick:
        parsed.calls, parsed.ttfb, parsed.streams, parsed.batches = 200, 50, 50, 2
        parsed.warmup = min(parsed.warmup, 20)
    if parsed.batches < 1 or parsed.calls < parsed.batches or parsed.streams < 1:
        parser.error("need --batches >= 1, --calls >= --batches and --streams >= 1")
    return parsed


if __name__ == "__main__":
    arguments = parse_args()
    _use_loop(arguments.loop)
    if arguments.role == "provider":
        sys.exit(asyncio.run(provider_main(arguments.chunk_delay)))
    elif arguments.role == "load":
        sys.exit(asyncio.run(load_main(json.loads(arguments.config))))
    else:
        sys.exit(harness.run(lambda: main(arguments)))
