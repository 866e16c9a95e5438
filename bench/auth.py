"""What identifying the caller costs: `GET /fleet/bots` with `--bots` running bots, called with the operator token,
with an API key and with a session cookie, side by side in one run.

The three clients take turns in blocks of `--block` requests (the order rotates every round), after a warm-up, so
they share the machine's noise. The operator token is compared with the configured one in memory; a key and a
session are looked up by their hash in the platform's cache of callers (a database query on the first request and
after any change to accounts).
Target: the p99 of the key and of the session within 10% of the operator token's.

    uv run python bench/auth.py [--bots 200] [--requests 1000] [--block 50] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import list_bots

SECTION = "auth"
TENANT = "bench"
PASSWORD = "a long benchmark passphrase"
TARGET_RATIO = 1.10


async def clients(platform: harness.Platform) -> dict[str, httpx.AsyncClient]:
    """The three callers, acting for the benchmark's tenant."""
    base = {"base_url": platform.url, "trust_env": False, "timeout": 60}
    anonymous = httpx.AsyncClient(**base)  # type: ignore[arg-type]
    for email in ("root@bench.test", "owner@bench.test"):  # the first user is the platform admin: not measured
        body: dict[str, Any] = {"email": email, "password": PASSWORD}
        if email.startswith("owner"):
            body["tenantId"] = TENANT
        (await anonymous.post("/auth/signup", json=body)).raise_for_status()
    login = await anonymous.post("/auth/login", json={"email": "owner@bench.test", "password": PASSWORD})
    login.raise_for_status()
    session = httpx.AsyncClient(**base, cookies=dict(login.cookies))  # type: ignore[arg-type]
    session.headers["X-CSRF-Token"] = login.json()["csrfToken"]
    made = await session.post("/keys", json={"name": "bench", "scopes": ["read"]})
    made.raise_for_status()
    key = httpx.AsyncClient(**base, headers={"Authorization": f"Bearer {made.json()['secret']}"})  # type: ignore[arg-type]
    await anonymous.aclose()
    platform.client.headers["X-Tenant-Id"] = TENANT
    return {"operator token": platform.client, "API key": key, "session cookie": session}


async def main(args: argparse.Namespace) -> int:
    harness.log("building the stub image")
    harness.build_stub_image()
    facts = await harness.machine_facts()
    async with harness.running_platform(
        FLEET_RATE_LIMIT=0, FLEET_STATS_INTERVAL=3600, FLEET_RESYNC_INTERVAL=3600
    ) as platform:
        callers = await clients(platform)
        harness.log(f"creating {args.bots} bots for tenant {TENANT}")
        created = await list_bots.create_bots(platform, args.bots, args.concurrency)
        await list_bots.wait_ready(platform, len(created.latencies), args.ready_timeout)
        for client in callers.values():
            for _ in range(args.warmup):
                (await client.get("/fleet/bots")).raise_for_status()
        times: dict[str, list[float]] = {name: [] for name in callers}
        names = list(callers)
        rounds = max(1, args.requests // args.block)
        for number in range(rounds):
            order = names[number % len(names) :] + names[: number % len(names)]
            for name in order:
                client = callers[name]
                for _ in range(args.block):
                    began = time.perf_counter()
                    response = await client.get("/fleet/bots")
                    times[name].append(time.perf_counter() - began)
                    if response.status_code != 200 or len(response.json()["bots"]) != len(created.latencies):
                        raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
        for client in callers.values():
            if client is not platform.client:
                await client.aclose()
    stats = {name: harness.summary_ms(values) for name, values in times.items()}
    text = report(args, facts, stats, len(created.latencies))
    harness.publish(SECTION, text, write=args.write)
    return 0


def report(args: argparse.Namespace, facts: dict[str, str], stats: dict[str, dict[str, float]], bots: int) -> str:
    base = stats["operator token"]
    lines = [f"## Identifying the caller: `GET /fleet/bots` with {bots} running bots", ""]
    lines += harness.facts_lines(facts)
    lines += [
        f"- Parameters: `--bots {args.bots} --requests {args.requests} --block {args.block} --warmup {args.warmup}`; "
        "platform in-process (SQLite), the three callers take turns in blocks, order rotating every round",
        "",
    ]
    rows = []
    for name, s in stats.items():
        ratio = s["p99"] / base["p99"]
        rows.append((name, *(harness.fmt_ms(s[q]) for q in ("p50", "p90", "p99", "max")), f"{ratio:.2f}x", int(s["n"])))
    lines.append(harness.table(("caller", "p50 ms", "p90 ms", "p99 ms", "max ms", "p99 / operator's", "n"), rows))
    worst = max(stats[name]["p99"] / base["p99"] for name in stats if name != "operator token")
    met = worst <= TARGET_RATIO
    lines += [
        "",
        f"Worst p99 against the operator token's: **{worst:.2f}x**. Target within {TARGET_RATIO:.2f}x: "
        f"**{'met' if met else 'not met'}**.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=200, help="running bots in the list")
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per caller")
    parser.add_argument("--block", type=int, default=50, help="requests per turn")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests per caller first")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel creates while setting up")
    parser.add_argument("--ready-timeout", type=float, default=300, help="seconds to wait for all bots to be healthy")
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not update docs/benchmarks.md")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(harness.run(lambda: main(arguments)))
