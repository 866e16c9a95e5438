"""The HTTP front door: what it costs a normal request, and what it does to an attack that holds connections.

Two platforms run side by side in this process: one served as production serves it (the front door's deadlines
and connection caps, `app/server.py`) and the baseline, the same app served by uvicorn with its defaults.

(a) Cost: `--requests` sequential `GET /health` and as many `POST /fleet/bots/{unknown id}/stop` with a small JSON
    body on a keep-alive connection, alternating between the two platforms in blocks (ABBA), after a warm-up.
(b) Attack: `--slow` connections from 127.0.0.2 that each send half a header block and then nothing (held open by
    the attacker), and a legitimate client on 127.0.0.1 timing `GET /health` on fresh connections meanwhile.
    Reported: how many of the attacker's connections the platform still holds `--hold` seconds later (a connection
    is held while the platform has neither answered nor closed it), and the legitimate latency during the attack.

    uv run python bench/front_door.py [--requests 2000] [--slow 500] [--hold 15] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

SECTION = "front_door"
BLOCK = 100  # requests per block of the ABBA alternation
ATTACKER = "127.0.0.2"  # a second loopback address, so the attacker and the legitimate client are two clients


async def timed_requests(client: httpx.AsyncClient, count: int, body: bool) -> list[float]:
    times = []
    path = f"/fleet/bots/{uuid.uuid4()}/stop"
    for _ in range(count):
        began = time.perf_counter()
        if body:
            response = await client.post(path, json={"reason": "benchmark", "force": False, "tags": ["a", "b"]})
            assert response.status_code == 404, response.text
        else:
            response = await client.get("/health")
            assert response.status_code == 200, response.text
        times.append(time.perf_counter() - began)
    return times


async def cost(platforms: dict[str, harness.Platform], requests: int, warmup: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, list[float]]] = {name: {"get": [], "post": []} for name in platforms}
    for platform in platforms.values():
        await timed_requests(platform.client, warmup, body=False)
        await timed_requests(platform.client, warmup, body=True)
    order = list(platforms)
    for block in range(max(1, requests // BLOCK)):
        for name in order if block % 2 == 0 else reversed(order):
            client = platforms[name].client
            results[name]["get"] += await timed_requests(client, BLOCK, body=False)
            results[name]["post"] += await timed_requests(client, BLOCK, body=True)
    return {name: {kind: harness.summary_ms(times) for kind, times in kinds.items()} for name, kinds in results.items()}


def _open_slow(port: int) -> socket.socket | None:
    sock = socket.socket()
    sock.setblocking(False)
    try:
        sock.bind((ATTACKER, 0))
        sock.connect_ex(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def _held(sock: socket.socket) -> bool:
    """Whether the platform still holds this connection: it neither answered nor closed it."""
    try:
        sock.recv(1, socket.MSG_PEEK)  # an answer (b"HTTP/1.1 408 ...") or the end (b"")
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


async def attack(platform: harness.Platform, slow: int, hold: float) -> dict[str, Any]:
    port = platform.settings.port
    sockets = [s for s in (_open_slow(port) for _ in range(slow)) if s is not None]
    await asyncio.sleep(0.5)
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.send(b"GET /health HTTP/1.1\r\nHost: bench\r\n")  # and nothing more
    latencies: list[float] = []
    failures = 0
    began = time.monotonic()
    async with httpx.AsyncClient(
        base_url=platform.url, trust_env=False, timeout=5, limits=httpx.Limits(max_keepalive_connections=0)
    ) as legit:
        while time.monotonic() - began < hold:
            start = time.perf_counter()
            try:
                response = await legit.get("/health")
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    failures += 1
            except httpx.HTTPError:
                failures += 1
            await asyncio.sleep(0.05)
    held = sum(_held(sock) for sock in sockets)
    for sock in sockets:
        sock.close()
    return {"opened": len(sockets), "held": held, "legit": harness.summary_ms(latencies), "failures": failures}


async def main(args: argparse.Namespace) -> int:
    facts = await harness.machine_facts()
    async with (
        harness.running_platform(FLEET_RATE_LIMIT=0, FLEET_STATS_INTERVAL=3600) as door,
        harness.running_platform(front_door=False, FLEET_RATE_LIMIT=0, FLEET_STATS_INTERVAL=3600) as baseline,
    ):
        platforms = {"front door": door, "uvicorn defaults": baseline}
        harness.log(f"cost: {args.requests} GET and {args.requests} POST per platform, ABBA blocks of {BLOCK}")
        costs = await cost(platforms, args.requests, args.warmup)
        attacks = {}
        for name, platform in platforms.items():
            harness.log(f"attack on {name}: {args.slow} half-sent requests held {args.hold} s")
            attacks[name] = await attack(platform, args.slow, args.hold)
    text = report(args, facts, costs, attacks)
    harness.publish(SECTION, text, write=args.write)
    return 0


def report(args: argparse.Namespace, facts: dict[str, str], costs: dict[str, Any], attacks: dict[str, Any]) -> str:
    names = list(costs)
    lines = ["## The HTTP front door: cost per request, and a slow-request attack", ""]
    lines += harness.facts_lines(facts)
    lines += [
        f"- Parameters: `--requests {args.requests} --warmup {args.warmup} --slow {args.slow} --hold {args.hold}`; "
        "both platforms in this process, served as production serves it (front door) and by uvicorn with its "
        "defaults (baseline); requests alternate between them in blocks of 100 (ABBA)",
        "",
        "Cost of one request on a keep-alive connection (ms):",
        "",
    ]
    rows = []
    for kind, label in (("get", "`GET /health`"), ("post", "`POST .../stop` with a JSON body (404)")):
        for name in names:
            s = costs[name][kind]
            rows.append((label, name, *(harness.fmt_ms(s[q]) for q in ("p50", "p90", "p99")), int(s["n"])))
    lines.append(harness.table(("request", "served by", "p50", "p90", "p99", "n"), rows))
    lines += ["", f"{args.slow} connections from one address send half a header block and then nothing:", ""]
    rows = []
    for name in names:
        a = attacks[name]
        legit = a["legit"]
        rows.append(
            (
                name,
                a["opened"],
                a["held"],
                harness.fmt_ms(legit["p50"]),
                harness.fmt_ms(legit["p99"]),
                a["failures"],
            )
        )
    lines.append(
        harness.table(
            (
                "served by",
                "opened",
                f"still held after {args.hold:g} s",
                "legit GET p50 ms",
                "legit GET p99 ms",
                "legit failures",
            ),
            rows,
        )
    )
    door, base = costs[names[0]], costs[names[1]]
    ratio = door["post"]["p50"] / base["post"]["p50"]
    held = attacks[names[0]]["held"]
    lines += [
        "",
        f"Front door p50 / baseline p50 for the POST: **{ratio:.2f}x**; attacker connections still held: "
        f"**{held}** (target 0) against {attacks[names[1]]['held']} for the baseline.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests of each kind per platform")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests of each kind first")
    parser.add_argument("--slow", type=int, default=500, help="attacker connections")
    parser.add_argument("--hold", type=float, default=15.0, help="seconds the attack lasts")
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not update docs/benchmarks.md")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(harness.run(lambda: main(arguments)))
