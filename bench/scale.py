"""Ten thousand bots on one platform: list latency, steady-state CPU and memory, and a restart, on the engine
simulator (`bench/engine_simulator.py`) or on the real engine.

The platform runs as its own process (`python -m wopr_platform serve`), so its CPU time and resident memory are
read from /proc for it alone, apart from this script's clients and the simulator. Bots are created through the
API, `--concurrency` at a time, spread over tenants of 250 (a tenant's network holds at most 253), in steps
(`--steps 1000,10000`); after each step the script waits until every bot is running and healthy, lets the fleet
settle, and measures the platform's CPU over `--cpu-window` seconds with no request made, and its memory. At the
last step it times `GET /fleet/bots?tenant=*&limit=100` and the full `GET /fleet/bots?tenant=*`, then restarts
the platform (SIGTERM, start again) and times until the API answers and until the resync is done (the first
reconciler pass after start: `wopr_reconcile_pass_duration_seconds_count` on `/metrics`), counting the engine
calls the restart caused (the simulator counts them; on the real engine they are not counted).

    uv run python bench/scale.py                                  # 10,000 bots on the simulator, SQLite
    uv run python bench/scale.py --database postgres              # the same on PostgreSQL
    uv run python bench/scale.py --engine both --steps 200        # the simulator's check: 200 real bots, then
                                                                  # 200 simulated, and each figure's ratio
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

SECTION = "scale"
TENANT_SIZE = 250
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SIMULATOR = Path(__file__).resolve().parent / "engine_simulator.py"


@dataclass
class Step:
    bots: int
    create_seconds: float = 0.0
    ready_seconds: float = 0.0
    creates: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cpu_percent: float = 0.0
    rss_mb: float = 0.0
    engine_calls_per_s: float | None = None


@dataclass
class Run:
    engine: str
    database: str
    idle_rss_mb: float = 0.0
    steps: list[Step] = field(default_factory=list)
    page: dict[str, float] = field(default_factory=dict)
    full: dict[str, float] = field(default_factory=dict)
    full_bytes: int = 0
    restart_api_s: float = 0.0
    restart_resync_s: float = 0.0
    restart_calls: dict[str, int] = field(default_factory=dict)
    restart_rss_mb: float = 0.0


# --- processes -------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def simulator(folder: Path, start_concurrency: int) -> AsyncIterator[str]:
    """The engine simulator in its own process; yields its DOCKER_HOST."""
    socket_path = folder / "engine.sock"
    with (folder / "simulator.log").open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SIMULATOR),
            "--socket",
            str(socket_path),
            "--start-concurrency",
            str(start_concurrency),
            stdout=out,
            stderr=out,
        )
    try:
        for _ in range(200):
            if socket_path.exists():
                break
            if proc.returncode is not None:
                raise RuntimeError(f"the simulator exited; see {folder / 'simulator.log'}")
            await asyncio.sleep(0.05)
        yield f"unix://{socket_path}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def simulator_calls(docker_host: str, reset: bool = False) -> dict[str, Any]:
    transport = httpx.AsyncHTTPTransport(uds=docker_host.removeprefix("unix://"))
    async with httpx.AsyncClient(transport=transport, base_url="http://engine", timeout=10) as client:
        answer = await (client.post("/_sim/reset") if reset else client.get("/_sim/calls"))
        result: dict[str, Any] = answer.json()
        return result


# --- the measurements ---------------------------------------------------------------------------------------


def headers(index: int) -> dict[str, str]:
    return {"X-Tenant-Id": f"scale-{index // TENANT_SIZE:03d}"}


async def create_bots(client: httpx.AsyncClient, first: int, last: int, concurrency: int, step: Step) -> None:
    limit = asyncio.Semaphore(concurrency)
    done = 0

    async def one(index: int) -> None:
        nonlocal done
        body = {"name": f"s{index:05d}-{uuid.uuid4().hex[:4]}", "image": harness.STUB_IMAGE}
        async with limit:
            t0 = time.perf_counter()
            response = await client.post("/fleet/bots", json=body, headers=headers(index))
            elapsed = time.perf_counter() - t0
        if response.status_code == 201:
            step.creates.append(elapsed)
        else:
            step.failures.append(f"{response.status_code} {response.text[:200]}")
            if len(step.failures) <= 3:
                harness.log(f"create failed: {step.failures[-1]}")
        done += 1
        if done % max((last - first) // 10, 1) == 0:
            harness.log(f"created {done}/{last - first} ({len(step.failures)} failed)")

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(first, last)))
    step.create_seconds = time.perf_counter() - started


async def all_healthy(client: httpx.AsyncClient, count: int, timeout: float) -> float:
    started = time.perf_counter()
    while True:
        answer = (await client.get("/fleet/bots", params={"tenant": "*", "limit": 1, "state": "running"})).json()
        running = (answer.get("counts") or {}).get("running", 0)
        waiting = 0
        for health in ("starting", "unhealthy"):
            page = (await client.get("/fleet/bots", params={"tenant": "*", "limit": 1, "health": health})).json()
            waiting += len(page.get("bots", [1]))
        if running >= count and waiting == 0:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            harness.log(f"not all healthy after {timeout:.0f} s: {running} running, some starting or unhealthy")
            return time.perf_counter() - started
        await asyncio.sleep(1)


async def timed_gets(client: httpx.AsyncClient, params: dict[str, Any], count: int) -> tuple[dict[str, float], int]:
    times: list[float] = []
    size = 0
    for _ in range(count):
        t0 = time.perf_counter()
        response = await client.get("/fleet/bots", params=params)
        times.append(time.perf_counter() - t0)
        response.raise_for_status()
        size = len(response.content)
    return harness.summary_ms(times), size


async def resync_done(client: httpx.AsyncClient, timeout: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with contextlib.suppress(httpx.HTTPError):
            text = (await client.get("/metrics")).text
            for line in text.splitlines():
                if line.startswith("wopr_reconcile_pass_duration_seconds_count") and float(line.split()[-1]) >= 1:
                    ready = await client.get("/health/ready")
                    if ready.status_code == 200:
                        return time.perf_counter() - started
        await asyncio.sleep(0.1)
    return float("nan")


async def measure(args: argparse.Namespace, database: str, engine: str) -> Run:
    run = Run(engine=engine, database=database)
    folder = Path(tempfile.mkdtemp(prefix="wopr-bench-scale-"))
    platform_id = harness.new_platform_id("-scale")
    async with contextlib.AsyncExitStack() as stack:
        if engine == "sim":
            docker_host = await stack.enter_async_context(simulator(folder, args.sim_starts))
        else:
            harness.build_stub_image()
            docker_host = f"unix://{harness.DOCKER_SOCKET}"
        url = await stack.enter_async_context(harness.database_url(database, folder))
        isolation = "false" if engine == "sim" else "true"
        env = harness.platform_env(platform_id, folder, url, docker_host, BOT_HOST_ISOLATION=isolation)
        platform = harness.PlatformProcess(env, folder / "platform.log")
        stack.push_async_callback(platform.stop)
        await platform.start()
        await asyncio.sleep(3)
        run.idle_rss_mb = platform.rss_mb()
        harness.log(f"{engine}/{database}: platform up, idle RSS {run.idle_rss_mb:.0f} MB")
        client = await stack.enter_async_context(platform.client(args.concurrency + 4))
        made = 0
        for target in args.steps:
            step = Step(bots=target)
            await create_bots(client, made, target, args.concurrency, step)
            made = target
            step.ready_seconds = await all_healthy(client, target, timeout=max(120, target / 10))
            await asyncio.sleep(args.settle)
            calls_before = (await simulator_calls(docker_host))["calls"] if engine == "sim" else None
            cpu_before, t0 = platform.cpu_seconds(), time.perf_counter()
            await asyncio.sleep(args.cpu_window)
            elapsed = time.perf_counter() - t0
            step.cpu_percent = (platform.cpu_seconds() - cpu_before) / elapsed * 100
            step.rss_mb = platform.rss_mb()
            if calls_before is not None:
                calls_after = (await simulator_calls(docker_host))["calls"]
                engine_calls = sum(calls_after.values()) - sum(calls_before.values())
                engine_calls -= calls_after.get("health", 0) - calls_before.get("health", 0)
                step.engine_calls_per_s = engine_calls / elapsed
            run.steps.append(step)
            harness.log(
                f"{target} bots: created in {step.create_seconds:.0f} s, all healthy {step.ready_seconds:.0f} s later; "
                f"CPU {step.cpu_percent:.1f}% of a core, RSS {step.rss_mb:.0f} MB"
            )
        run.page, _ = await timed_gets(client, {"tenant": "*", "limit": 100}, args.page_requests)
        run.full, run.full_bytes = await timed_gets(client, {"tenant": "*"}, args.full_requests)
        harness.log(f"list: page p99 {run.page['p99']:.1f} ms, full p99 {run.full['p99']:.1f} ms")

        await platform.stop()
        if engine == "sim":
            await simulator_calls(docker_host, reset=True)
        run.restart_api_s = await platform.start()
        run.restart_resync_s = await resync_done(client, timeout=300) + run.restart_api_s
        await asyncio.sleep(5)
        run.restart_rss_mb = platform.rss_mb()
        if engine == "sim":
            run.restart_calls = {k: v for k, v in (await simulator_calls(docker_host))["calls"].items() if v}
        harness.log(f"restart: API in {run.restart_api_s:.1f} s, resync done {run.restart_resync_s:.1f} s")
    return run


# --- the report ------------------------------------------------------------------------------------------------


def report(args: argparse.Namespace, facts: dict[str, str], runs: list[Run]) -> str:
    f = harness.fmt_ms
    names = {"sim": f"engine simulator, {args.sim_starts} starts at once", "real": "real engine"}
    engine = names.get(args.engine, f"real engine beside the {names['sim']}")
    lines = [f"## {max(args.steps):,} bots on one platform ({engine})", ""]
    lines += harness.facts_lines(facts)
    lines.append(
        f"- Parameters: steps {', '.join(str(s) for s in args.steps)}; {args.concurrency} creates at a time over "
        f"tenants of {TENANT_SIZE}; CPU over {args.cpu_window:.0f} s after {args.settle:.0f} s of quiet; "
        f"{args.page_requests} page and {args.full_requests} full list requests; platform in its own process"
    )
    lines.append("")
    rows = []
    for run in runs:
        for step in run.steps:
            created = harness.summary_ms(step.creates) if step.creates else {"p50": float("nan")}
            calls = f"{step.engine_calls_per_s:.1f}" if step.engine_calls_per_s is not None else "not counted"
            rows.append(
                [
                    f"{run.engine}, {run.database}",
                    f"{step.bots:,}",
                    f"{step.bots / step.create_seconds:.0f}/s (p50 {f(created['p50'])} ms)",
                    f"{step.cpu_percent:.1f}%",
                    f"{step.rss_mb:.0f} MB",
                    calls,
                    len(step.failures),
                ]
            )
    lines.append(
        harness.table(
            ["engine, database", "bots running", "creates", "CPU (of one core)", "RSS", "engine calls/s", "failed"],
            rows,
        )
    )
    lines.append("")
    rows = []
    for run in runs:
        rows.append(
            [
                f"{run.engine}, {run.database}",
                f"{f(run.page['p50'])} / **{f(run.page['p99'])}** ms",
                f"{f(run.full['p50'])} / **{f(run.full['p99'])}** ms ({run.full_bytes / 1024:.0f} KB)",
                f"{run.idle_rss_mb:.0f} MB",
                f"**{run.restart_api_s:.1f} s** / **{run.restart_resync_s:.1f} s**",
                ", ".join(f"`{k}` {v}" for k, v in sorted(run.restart_calls.items())) or "not counted",
            ]
        )
    lines.append(
        harness.table(
            [
                "engine, database",
                "`?limit=100` p50 / p99",
                "full list p50 / p99",
                "idle RSS",
                "restart: API / resync",
                "engine calls of the restart",
            ],
            rows,
        )
    )
    real = {run.database: run for run in runs if run.engine == "real"}
    sim = {run.database: run for run in runs if run.engine == "sim"}
    for database in sorted(real.keys() & sim.keys()):
        lines += ["", f"The simulator beside the real engine ({database}): each figure's ratio, simulator / real.", ""]
        lines.append(
            harness.table(
                ["figure", "real engine", "simulator", "ratio", "within 2x"], _compared(real[database], sim[database])
            )
        )
    return "\n".join(lines)


def _figures(run: Run) -> dict[str, float]:
    last = run.steps[-1]
    return {
        "creates a second": last.bots / last.create_seconds,
        "create p50 (ms)": harness.percentile(last.creates, 50) * 1000 if last.creates else float("nan"),
        "CPU in steady state (% of a core)": last.cpu_percent,
        "RSS (MB)": last.rss_mb,
        "`?limit=100` p99 (ms)": run.page["p99"],
        "full list p99 (ms)": run.full["p99"],
        "restart: API (s)": run.restart_api_s,
        "restart: resync (s)": run.restart_resync_s,
    }


def _compared(real: Run, sim: Run) -> list[list[str]]:
    rows = []
    simulated = _figures(sim)
    for name, value in _figures(real).items():
        ratio = simulated[name] / value if value else float("nan")
        within = 0.5 <= ratio <= 2.0
        rows.append([name, f"{value:.3g}", f"{simulated[name]:.3g}", f"{ratio:.2f}", "yes" if within else "**no**"])
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--engine", choices=["sim", "real", "both"], default="sim", help="both: the real engine, then the simulator"
    )
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--steps", default="1000,10000", help="bots running at each measuring step")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--settle", type=float, default=300.0)
    parser.add_argument("--cpu-window", type=float, default=60.0)
    parser.add_argument("--page-requests", type=int, default=300)
    parser.add_argument("--full-requests", type=int, default=30)
    parser.add_argument(
        "--sim-starts", type=int, default=2, help="the simulator's starts at once (2, as dockerd; more to seed faster)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    args.steps = sorted(int(s) for s in args.steps.split(","))
    return args


async def main() -> int:
    args = parse_args()
    facts = await harness.machine_facts()
    databases = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    engines = ["real", "sim"] if args.engine == "both" else [args.engine]
    runs = [await measure(args, database, engine) for database in databases for engine in engines]
    section = f"{SECTION}_{args.engine}_{max(args.steps)}"
    harness.publish(section, report(args, facts, runs), write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(harness.run(main))
