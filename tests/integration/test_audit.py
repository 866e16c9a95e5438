"""The audit log: one row per authenticated mutating call, with who/what/target/outcome and never a secret;
GET /audit filters, pages, validates and stays within the caller's tenant; nothing queued is lost at shutdown."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import STUB_IMAGE, TOKEN, Platform, PlatformFactory
from tests.ports import free_port
from wopr_platform.api.permissions import ROUTES
from wopr_platform.audit.repository import AuditRepository
from wopr_platform.audit.schemas import AuditRecord

MUTATING = ("post", "patch", "put", "delete")
TEMPLATE_VARIABLES = ("TELEGRAM_BOT_TOKEN", "ANTHROPIC_API_KEY")


def _secret(name: str) -> str:
    return f"secret-{name}-{uuid.uuid4().hex}"


async def _events(platform: Platform, **params: Any) -> list[dict[str, Any]]:
    response = await platform.client.get("/audit", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"events", "nextBefore"}
    return list(body["events"])


async def _raw_rows(platform: Platform) -> list[Any]:
    async with platform.app.state.services.database.read() as session:
        return list((await session.execute(text("SELECT * FROM audit_events ORDER BY id"))).all())


class Calls:
    """Mutating calls made by a test, each with its own request id, to match against the log."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.made: list[tuple[str, httpx.Response]] = []

    async def __call__(self, method: str, template: str, path: str, **kwargs: Any) -> httpx.Response:
        request_id = "t-" + uuid.uuid4().hex
        headers = {"X-Request-ID": request_id, **kwargs.pop("headers", {})}
        response = await self.platform.client.request(method, path, headers=headers, **kwargs)
        assert response.headers["x-request-id"] != request_id  # ours is always the platform's own
        self.made.append((f"{method} {template}", response))
        return response


@pytest.fixture
async def platform(make_platform: PlatformFactory) -> Platform:
    """A platform with the AI gateway on, so that its routes are tried too."""
    return await make_platform(GATEWAY_ENABLED=True, GATEWAY_PORT=free_port())


@pytest.fixture
async def calls(platform: Platform) -> AsyncIterator[Calls]:
    yield Calls(platform)


def _assert_event(event: dict[str, Any], action: str, response: httpx.Response, started: datetime) -> None:
    assert event["action"] == action
    assert event["actor"] == "operator"
    assert event["tenantId"] == "default"
    assert event["status"] == response.status_code
    code = response.json()["details"]["code"] if response.status_code >= 400 else None
    assert event["errorCode"] == code, (event, response.text)
    assert event["requestId"] == response.headers["x-request-id"]
    assert event["clientRequestId"] == response.request.headers.get("x-request-id")
    assert event["clientAddress"] == "127.0.0.1"
    assert isinstance(event["durationMs"], int) and event["durationMs"] >= 0
    at = datetime.fromisoformat(event["at"])
    assert started - timedelta(seconds=1) <= at <= datetime.now(UTC)


# --- what is recorded -------------------------------------------------------------------------------------


async def test_every_mutating_route_is_recorded_once_without_secrets(platform: Platform, calls: Calls) -> None:
    """Each POST/PATCH/PUT/DELETE route of the API document, called once, gives exactly one matching row."""
    started = datetime.now(UTC)
    secrets = {name: _secret(name) for name in ("CREATE_KEY", "PATCH_KEY", *TEMPLATE_VARIABLES)}
    document = (await platform.client.get("/openapi.json")).json()
    # the tenant's actions; account-level ones (sign-up, sign-in, password) belong to no tenant's log
    routes = sorted(
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in MUTATING and ROUTES[f"{method.upper()} {path}"] not in ("public", "identified", "signed_in")
    )
    assert ("PATCH", "/fleet/bots/{bot_id}") in routes and ("POST", "/fleet/seed") in routes

    create = {"name": "audited-" + uuid.uuid4().hex[:6], "image": STUB_IMAGE, "env": {"KEY": secrets["CREATE_KEY"]}}
    created = await calls("POST", "/fleet/bots", "/fleet/bots", json=create)
    assert created.status_code == 201, created.text
    bot_id = created.json()["id"]
    doomed = await platform.create_bot()  # (made outside `calls`: it is checked as a row below too)
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("PATCH", "/fleet/bots/{bot_id}"): {"description": "changed", "env": {"KEY": secrets["PATCH_KEY"]}},
        ("POST", "/fleet/seed"): {
            "templates": ["telegram-anthropic"],
            "image": STUB_IMAGE,
            "variables": {name: secrets[name] for name in TEMPLATE_VARIABLES},
        },
    }
    for method, route in routes:
        if (method, route) == ("POST", "/fleet/bots"):
            continue
        target = doomed["id"] if method == "DELETE" else bot_id
        path = route.replace("{bot_id}", target).replace("{rollout_id}", str(uuid.uuid4()))
        path = path.replace("{name}", "stable-discord").replace("{tenant_id}", "audited")
        path = path.replace("{user_id}", str(uuid.uuid4())).replace("{key_id}", str(uuid.uuid4()))
        body = bodies.get((method, route))
        response = await calls(method, route, path, **({"json": body} if body is not None else {}))
        assert response.status_code < 500, f"{method} {path}: {response.text}"

    events = await _events(platform, limit=500)
    by_request = {event["requestId"]: event for event in events}
    assert len(by_request) == len(events)
    assert len(events) == len(calls.made) + 1  # + the doomed bot's creation
    ours = [r.headers["x-request-id"] for _, r in calls.made]
    assert [e["requestId"] for e in events if e["requestId"] in ours] == list(reversed(ours)), "newest first"
    for action, response in calls.made:
        event = by_request[response.headers["x-request-id"]]
        _assert_event(event, action, response, started)
        method, route = action.split(" ", 1)
        if "{bot_id}" in route:
            expected = doomed["id"] if method == "DELETE" else bot_id
            assert (event["targetKind"], event["targetId"]) == ("bot", expected)
        elif route == "/fleet/bots":
            assert (event["targetKind"], event["targetId"]) == ("bot", bot_id)
        elif "{tenant_id}" in route:
            assert (event["targetKind"], event["targetId"]) == ("tenant", "audited")
        expected_fields = ["description", "env"] if action == "PATCH /fleet/bots/{bot_id}" else None
        assert event["fields"] == (expected_fields if response.status_code < 400 else None)
    patched = by_request[
        calls.made[[a for a, _ in calls.made].index("PATCH /fleet/bots/{bot_id}")][1].headers["x-request-id"]
    ]
    assert patched["status"] == 200 and patched["fields"] == ["description", "env"]

    listing = (await platform.client.get("/audit", params={"limit": 500})).text
    stored = repr(await _raw_rows(platform))
    for name, value in {**secrets, "TOKEN": TOKEN}.items():
        assert value not in listing, f"{name} is in GET /audit"
        assert value not in stored, f"{name} is in the audit_events table"


async def test_refusals_are_recorded_and_reads_are_not(platform: Platform, calls: Calls) -> None:
    """A refused change (400, 404, 409) is recorded with its code; reads, 401s and /health are not."""
    started = datetime.now(UTC)
    bot = await platform.create_bot()
    before = len(await _events(platform))
    refused = [
        await calls("PATCH", "/fleet/bots/{bot_id}", f"/fleet/bots/{bot['id']}", json={}),
        await calls("PATCH", "/fleet/bots/{bot_id}", f"/fleet/bots/{bot['id']}", json={"env": {"1A": "x"}}),
        await calls("DELETE", "/fleet/bots/{bot_id}", f"/fleet/bots/{uuid.uuid4()}"),
        await calls("POST", "/fleet/bots", "/fleet/bots", json={"name": bot["name"], "image": STUB_IMAGE}),
    ]
    assert [r.status_code for r in refused] == [400, 400, 404, 409]
    for path in ("/fleet/bots", f"/fleet/bots/{bot['id']}", "/fleet/templates", "/health", "/audit"):
        await platform.client.get(path)
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = await anonymous.delete(f"/fleet/bots/{bot['id']}", headers=headers)
            assert response.status_code == 401
    events = await _events(platform)
    assert len(events) == before + len(refused)
    for event, (action, response) in zip(events, reversed(calls.made), strict=False):
        _assert_event(event, action, response, started)
        assert event["fields"] is None
    assert [e["errorCode"] for e in events[: len(refused)]] == [
        "conflict",
        "not_found",
        "validation_failed",
        "validation_failed",
    ]


async def test_audit_needs_the_token(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as anonymous:
        response = await anonymous.get("/audit")
    assert response.status_code == 401
    assert set(response.json()) == {"error", "details"}


# --- GET /audit -------------------------------------------------------------------------------------------


async def test_filters_and_pages(platform: Platform) -> None:
    one = await platform.create_bot()
    two = await platform.create_bot()
    await platform.client.post(f"/fleet/bots/{one['id']}/stop")
    middle = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await platform.client.post(f"/fleet/bots/{one['id']}/start")
    await platform.client.patch(f"/fleet/bots/{two['id']}", json={"description": "x"})
    await platform.client.delete(f"/fleet/bots/{two['id']}")

    everything = await _events(platform)
    assert [e["action"] for e in everything] == [
        "DELETE /fleet/bots/{bot_id}",
        "PATCH /fleet/bots/{bot_id}",
        "POST /fleet/bots/{bot_id}/start",
        "POST /fleet/bots/{bot_id}/stop",
        "POST /fleet/bots",
        "POST /fleet/bots",
    ]
    ids = [e["id"] for e in everything]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)

    of_one = await _events(platform, botId=one["id"].upper())
    assert [e["action"] for e in of_one] == [
        "POST /fleet/bots/{bot_id}/start",
        "POST /fleet/bots/{bot_id}/stop",
        "POST /fleet/bots",
    ]
    assert {e["targetId"] for e in of_one} == {one["id"]}
    assert await _events(platform, botId=str(uuid.uuid4())) == []

    stops = await _events(platform, action="POST /fleet/bots/{bot_id}/stop")
    assert [e["targetId"] for e in stops] == [one["id"]]
    assert [e["action"] for e in await _events(platform, action="DELETE")] == ["DELETE /fleet/bots/{bot_id}"]
    assert len(await _events(platform, action="POST")) == 4

    later = await _events(platform, since=middle.isoformat())
    assert [e["action"] for e in later] == [a["action"] for a in everything[:3]]
    earlier = await _events(platform, until=middle.isoformat())
    assert [e["action"] for e in earlier] == [a["action"] for a in everything[3:]]
    naive = middle.replace(tzinfo=None).isoformat()  # a time without an offset is UTC
    assert len(await _events(platform, since=naive)) == 3

    pages: list[list[int]] = []
    params: dict[str, Any] = {"limit": 4}
    while True:
        response = await platform.client.get("/audit", params=params)
        assert response.status_code == 200
        body = response.json()
        pages.append([e["id"] for e in body["events"]])
        if body["nextBefore"] is None:
            break
        params["before"] = body["nextBefore"]
    assert pages == [ids[:4], ids[4:]]
    two_pages = await platform.client.get("/audit", params={"limit": 3})
    assert two_pages.json()["nextBefore"] == ids[2]
    last = await platform.client.get("/audit", params={"limit": 3, "before": ids[2]})
    assert [e["id"] for e in last.json()["events"]] == ids[3:]
    assert last.json()["nextBefore"] == ids[-1]  # a full page: the next one is empty
    assert (await platform.client.get("/audit", params={"before": ids[-1]})).json() == {
        "events": [],
        "nextBefore": None,
    }


@pytest.mark.parametrize(
    "params",
    [
        {"botId": "nope"},
        {"botId": "1" * 36},
        {"action": "GET /fleet/bots"},
        {"action": "patch /fleet/bots/{bot_id}"},
        {"action": "DELETE  /x"},
        {"action": "DELETE /" + "x" * 300},
        {"action": "POST /fleet/bots?x=1"},
        {"since": "yesterday"},
        {"since": "0.0"},
        {"until": "1700000000"},
        {"since": "2024-13-01T00:00:00Z"},
        {"until": "2024-01-01T25:00:00Z"},
        {"since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00Z"},
        {"since": "2024-01-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"},
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "ten"},
        {"limit": "1.5"},
        {"before": "0"},
        {"before": "-1"},
        {"before": str(2**63)},
        {"before": "abc"},
    ],
    ids=repr,
)
async def test_bad_filters_are_400(platform: Platform, params: dict[str, str]) -> None:
    response = await platform.client.get("/audit", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error", "details"} and body["error"]
    assert body["details"]["code"] == "validation_failed"


async def test_another_tenants_events_are_never_shown(platform: Platform) -> None:
    """Rows of another tenant, even about the same bot id, stay out of every answer."""
    bot = await platform.create_bot()
    now = datetime.now(UTC)
    foreign = [
        AuditRecord(
            at=now,
            actor="someone-else",
            tenant_id="other-tenant",
            action=action,
            target_kind="bot",
            target_id=bot["id"],
            status=200,
            error_code=None,
            fields=None,
            request_id=f"foreign-{i}",
            client_request_id=None,
            client_address="192.0.2.1",
            duration_ms=1,
        )
        for i, action in enumerate(["DELETE /fleet/bots/{bot_id}", "POST /fleet/bots"])
    ]
    async with platform.app.state.services.database.unit() as session:
        await AuditRepository(session).add(foreign)
    for params in ({}, {"botId": bot["id"]}, {"action": "DELETE"}, {"since": (now - timedelta(minutes=1)).isoformat()}):
        events = await _events(platform, **params)
        assert all(e["tenantId"] == "default" and not e["requestId"].startswith("foreign") for e in events), params
    assert len(await _events(platform)) == 1  # only the bot's creation
    assert len(await _raw_rows(platform)) == 3


async def test_each_tenant_sees_its_own_calls(platform: Platform) -> None:
    """The operator acting for a tenant (X-Tenant-Id) sees that tenant's calls, recorded under it, and no other's."""
    for tenant in ("tenant-a", "tenant-b"):
        response = await platform.client.post(
            "/fleet/bots",
            json={"name": f"bot-of-{tenant}", "image": STUB_IMAGE},
            headers={"X-Tenant-Id": tenant},
        )
        assert response.status_code == 201, response.text
    seen = {}
    for tenant in ("tenant-a", "tenant-b", "tenant-c"):
        response = await platform.client.get("/audit", headers={"X-Tenant-Id": tenant})
        assert response.status_code == 200, response.text
        seen[tenant] = response.json()["events"]
    assert [e["tenantId"] for e in seen["tenant-a"]] == ["tenant-a"]
    assert [e["tenantId"] for e in seen["tenant-b"]] == ["tenant-b"]
    assert seen["tenant-a"][0]["targetId"] != seen["tenant-b"][0]["targetId"]
    assert seen["tenant-c"] == [] and await _events(platform) == []


# --- durability -------------------------------------------------------------------------------------------


async def _hold_audit_table(platform: Platform) -> Callable[[], Awaitable[int]]:
    """Keep the database from taking audit rows (a real lock, held by another connection) until released.

    Returns the release function, which also counts the rows the table held while it was locked.
    """
    url = make_url(platform.settings.database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(str(url.database), timeout=10, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")  # the one write lock: readers go on, writers wait

        async def release_sqlite() -> int:
            count = int(connection.execute("SELECT count(*) FROM audit_events").fetchone()[0])
            connection.execute("ROLLBACK")
            connection.close()
            return count

        return release_sqlite
    import asyncpg

    conn = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE")  # inserts wait, reads go on

    async def release_postgres() -> int:
        count = int(await conn.fetchval("SELECT count(*) FROM audit_events"))
        await transaction.rollback()
        await conn.close()
        return count

    return release_postgres


async def test_records_wait_for_a_busy_database_without_slowing_requests_and_survive_shutdown(
    make_platform: PlatformFactory,
) -> None:
    """With the table locked, mutating calls still answer at once; a clean shutdown then writes every record."""
    platform = await make_platform()
    bot = await platform.create_bot()
    await _events(platform)  # the creation is stored
    release = await _hold_audit_table(platform)
    request_ids = []
    slowest = 0.0
    try:
        for i in range(20):
            request_id = f"busy-{i}"
            began = time.monotonic()
            if i % 2:
                response = await platform.client.patch(
                    f"/fleet/bots/{bot['id']}", json={}, headers={"X-Request-ID": request_id}
                )
            else:
                response = await platform.client.delete(
                    f"/fleet/bots/{uuid.uuid4()}", headers={"X-Request-ID": request_id}
                )
            slowest = max(slowest, time.monotonic() - began)
            assert response.status_code in (400, 404)
            request_ids.append(request_id)
        stopping = asyncio.create_task(platform.stop())
        await asyncio.sleep(0.5)
    finally:
        rows_while_locked = await release()
    await asyncio.wait_for(stopping, 30)
    assert slowest < 1.0, f"a request waited {slowest:.2f} s for the audit log"
    assert rows_while_locked == 1, "the records were written while the table was locked?"

    again = await make_platform(WOPR_PLATFORM_ID=platform.settings.platform_id)
    events = await _events(again, limit=500)
    assert [e["clientRequestId"] for e in events[:20]] == list(reversed(request_ids))
    assert len(events) == 21
