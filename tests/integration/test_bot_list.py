"""GET /fleet/bots for large fleets: pages by cursor and filters on the profile and the live status, against real
bots, with the original shape kept when neither is asked for and bad parameters a 400 that changes nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory, postgres_only, several_replicas
from wopr_platform.db.engine import READER_APPLICATION_NAME

pytestmark = pytest.mark.slow


async def _list(platform: Platform, **params: Any) -> dict[str, Any]:
    response = await platform.client.get("/fleet/bots", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_pages_and_filters_of_the_bot_list(platform: Platform) -> None:
    made = [await platform.create_bot(name=name) for name in ("alpha-1", "alpha-2", "beta-1", "beta-2")]
    ids = [bot["id"] for bot in made]
    for bot_id in ids:
        await platform.wait_for(bot_id, state="running", health="healthy")
    assert (await platform.client.post(f"/fleet/bots/{ids[3]}/stop")).status_code == 200
    await platform.wait_for(ids[3], state="exited")

    whole = await _list(platform)
    assert set(whole) == {"bots"} and [bot["id"] for bot in whole["bots"]] == ids  # the original shape

    first = await _list(platform, limit=3)
    assert [bot["id"] for bot in first["bots"]] == ids[:3] and first["nextAfter"]
    assert first["counts"] == {"running": 3, "exited": 1}
    last = await _list(platform, limit=3, after=first["nextAfter"])
    assert [bot["id"] for bot in last["bots"]] == ids[3:] and last["nextAfter"] is None

    assert [b["id"] for b in (await _list(platform, state="exited"))["bots"]] == [ids[3]]
    assert [b["id"] for b in (await _list(platform, health="healthy"))["bots"]] == ids[:3]
    assert [b["id"] for b in (await _list(platform, namePrefix="alpha-"))["bots"]] == ids[:2]
    assert [b["id"] for b in (await _list(platform, namePrefix="beta-", state="running"))["bots"]] == [ids[2]]
    assert len((await _list(platform, image=STUB_IMAGE))["bots"]) == 4
    assert (await _list(platform, image="elsewhere/other:1"))["bots"] == []

    other = await platform.client.get("/fleet/bots", params={"limit": 10}, headers={"X-Tenant-Id": "someone-else"})
    assert other.status_code == 200 and other.json()["bots"] == [] and other.json()["counts"] == {}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": "many"},
        {"state": "sleeping"},
        {"health": "fine"},
        {"limit": 2, "after": "not-a-cursor"},
        {"namePrefix": "x" * 64},
    ],
    ids=repr,
)
async def test_bad_list_parameters_are_a_400(platform: Platform, params: dict[str, Any]) -> None:
    response = await platform.client.get("/fleet/bots", params=params)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "details"}


async def test_a_platform_admin_lists_another_tenants_bots_or_every_tenants(platform: Platform) -> None:
    ours = await platform.create_bot(name="ours")
    made = await platform.client.post(
        "/fleet/bots", json={"name": "theirs", "image": STUB_IMAGE}, headers={"X-Tenant-Id": "other-team"}
    )
    assert made.status_code == 201, made.text
    theirs = made.json()

    everyone = await _list(platform, tenant="*")
    assert [(b["id"], b["tenantId"]) for b in everyone["bots"]] == [
        (ours["id"], "default"),
        (theirs["id"], "other-team"),
    ]
    assert "counts" not in everyone  # no page asked for: the original shape
    assert sum((await _list(platform, tenant="*", limit=10))["counts"].values()) == 2
    assert [b["id"] for b in (await _list(platform, tenant="other-team"))["bots"]] == [theirs["id"]]
    assert [b["id"] for b in (await _list(platform, tenant="*", namePrefix="the"))["bots"]] == [theirs["id"]]
    # without the parameter: the tenant acted for, as before
    assert [b["id"] for b in (await _list(platform))["bots"]] == [ours["id"]]

    bad = await platform.client.get("/fleet/bots", params={"tenant": "Not A Tenant"})
    assert bad.status_code == 400 and bad.json()["details"]["field"] == "tenant"
    # acting for a tenant, even the operator is not a platform admin there; nor is a tenant's own key
    acting = await platform.client.get("/fleet/bots", params={"tenant": "*"}, headers={"X-Tenant-Id": "other-team"})
    assert acting.status_code == 403 and acting.json()["details"]["code"] == "platform_admin_required"


async def _listed_soon(platform: Platform, expected: list[tuple[str, str]], within: float = 2.0) -> None:
    """The replica's list shows (id, description) of each bot as expected within `within` seconds: well within the
    bound on a cached list's age (LIST_CACHE_SECONDS) of a replica that cannot hear the database."""
    deadline = time.monotonic() + within
    while True:
        shown = [(b["id"], b["description"]) for b in (await _list(platform))["bots"]]
        if shown == expected:
            return
        assert time.monotonic() < deadline, shown
        await asyncio.sleep(0.05)


@several_replicas
async def test_a_replica_lists_changes_made_by_another_or_by_hand_at_once(make_platform: PlatformFactory) -> None:
    """Each replica keeps its list of bots until the database says a bot changed (a trigger notifies every
    replica), whoever made the change: another replica's API, or a statement typed into the database."""
    first = await make_platform()
    second = await make_platform(DATABASE_URL=first.settings.database_url, WOPR_PLATFORM_ID=first.settings.platform_id)
    await _listed_soon(second, [])  # cached on the second replica now
    bot = await first.create_bot(name="heard", description="made on the first")
    await _listed_soon(second, [(bot["id"], "made on the first")])

    async with first.app.state.services.database.unit() as session:
        await session.execute(text("UPDATE bots SET description = 'typed by hand' WHERE id = :id"), {"id": bot["id"]})
    await _listed_soon(second, [(bot["id"], "typed by hand")])
    await _listed_soon(first, [(bot["id"], "typed by hand")])

    assert (await first.client.delete(f"/fleet/bots/{bot['id']}")).status_code == 204
    await _listed_soon(second, [])


@postgres_only
async def test_the_list_reads_on_after_its_connections_are_cut(platform: Platform) -> None:
    """The list reads through connections of its own, handed out without a ping: when the server drops them, the
    read runs again on the main engine and the list is whole and current."""
    bot = await platform.create_bot(name="cut", description="before")
    await _listed_soon(platform, [(bot["id"], "before")])
    async with platform.app.state.services.database.unit() as session:
        cut = await session.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
            {"name": READER_APPLICATION_NAME},
        )
        assert len(cut.all()) >= 1
        await session.execute(text("UPDATE bots SET description = 'after' WHERE id = :id"), {"id": bot["id"]})
    shown = await _list(platform)
    assert [(b["id"], b["description"]) for b in shown["bots"]] == [(bot["id"], "after")]
    await _listed_soon(platform, [(bot["id"], "after")])
