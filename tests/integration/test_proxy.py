"""Tenant routing through a real Caddy to real bot containers: by host and by path, the right bot and no other,
503 for stopped and unhealthy bots (on plain Docker and on Swarm), 404 for unknown hosts, routes back by
themselves after Caddy restarts."""

from __future__ import annotations

import asyncio
import time
import uuid
from urllib.parse import urlsplit

import httpx

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory, both_backends
from tests.figures import figure, scrape
from tests.fixtures.caddy import DOMAIN, Caddy
from tests.integration.proxy_support import host, proxy_client, routed_platform, until_answer, wait_ready
from tests.ports import free_port
from wopr_platform.fleet.schemas import BotCreate


async def _other_tenant_bot(platform: Platform, tenant: str, **fields: object) -> dict[str, object]:
    """A bot of another tenant, made through the fleet service (the API has one tenant until issue 7)."""
    request = BotCreate.model_validate({"name": "bot-" + uuid.uuid4().hex[:8], "image": STUB_IMAGE, **fields})
    profile = await platform.app.state.services.fleet.create_bot(tenant, request)
    return dict(profile.model_dump(by_alias=True, mode="json"))


async def test_host_and_path_reach_the_right_bot_and_never_another_tenants(
    make_platform: PlatformFactory, caddy: Caddy
) -> None:
    platform = await routed_platform(make_platform, caddy)
    alpha = await platform.create_bot(name="Alpha_" + uuid.uuid4().hex[:6], env={"STUB_MESSAGE": "alpha"})
    beta = await platform.create_bot(env={"STUB_MESSAGE": "beta"}, subdomain="beta-" + uuid.uuid4().hex[:6])
    gamma = await _other_tenant_bot(platform, "tenant-b", env={"STUB_MESSAGE": "gamma"})
    assert alpha["subdomain"] == alpha["name"].lower().replace("_", "-")  # derived from the name
    for bot in (alpha, beta):
        await platform.wait_for(str(bot["id"]), state="running")

    async with proxy_client(caddy) as client:
        for bot, tenant, message in (
            (alpha, "default", "alpha"),
            (beta, "default", "beta"),
            (gamma, "tenant-b", "gamma"),
        ):
            status = await platform.app.state.services.fleet.get_bot(tenant, bot["id"])
            expected = f"hello from {str(status.container_id)[:12]} {message}"  # the stub's hostname
            by_host = await until_answer(client, host(str(bot["subdomain"])), "/hello", 200)
            assert by_host.text == expected
            by_path = await until_answer(client, DOMAIN, f"/instance/{bot['id']}/hello", 200)
            assert by_path.text == expected
            # the query string survives the prefix being stripped; the bare prefix redirects to the slash form
            assert (await client.get(f"/instance/{bot['id']}/hello?x=1", headers={"Host": DOMAIN})).text == expected
            bare = await client.get(f"/instance/{bot['id']}", headers={"Host": DOMAIN})
            assert (bare.status_code, bare.headers["location"]) == (308, f"/instance/{bot['id']}/")
        # a host route is the host's bot whatever the path says; an unknown id is no bot at all
        crossed = await client.get(f"/instance/{gamma['id']}/hello", headers={"Host": host(str(alpha["subdomain"]))})
        assert crossed.status_code == 404 and "alpha" not in crossed.text and "gamma" not in crossed.text
        unknown_id = await client.get(f"/instance/{uuid.uuid4()}/hello", headers={"Host": DOMAIN})
        assert (unknown_id.status_code, unknown_id.text) == (404, "no such bot\n")

    # the public URLs the API shows are the ones that work
    detail = await platform.bot(str(alpha["id"]))
    assert detail["subdomain"] == alpha["subdomain"]
    port = f":{caddy.http_port}"
    assert detail["urls"] == {
        "host": f"http://{alpha['subdomain']}.{DOMAIN}{port}/",
        "path": f"http://{DOMAIN}{port}/instance/{alpha['id']}/",
    }
    async with httpx.AsyncClient(timeout=10, trust_env=False) as anyone:
        for url in detail["urls"].values():
            parts = urlsplit(url)
            response = await anyone.get(f"{caddy.proxy_url}{parts.path}hello", headers={"Host": parts.netloc})
            assert response.text.endswith(" alpha"), (url, response.text)

    # the routing table shows the caller's tenant only
    table = await platform.client.get("/proxy/routes")
    assert table.status_code == 200, table.text
    body = table.json()
    assert {route["botId"] for route in body["routes"]} == {alpha["id"], beta["id"]}
    assert body["proxy"]["ok"] is True
    route = next(route for route in body["routes"] if route["botId"] == alpha["id"])
    assert route["state"] == "up" and route["upstream"].endswith(":7437")
    assert route["host"] == f"{alpha['subdomain']}.{DOMAIN}" and route["pathPrefix"] == f"/instance/{alpha['id']}/"
    # another tenant sees its own routes, and not the proxy's state: that is the whole platform's
    async with httpx.AsyncClient(
        base_url=platform.url, headers={**platform.client.headers, "X-Tenant-Id": "tenant-b"}, trust_env=False
    ) as tenant_b:
        theirs = (await tenant_b.get("/proxy/routes")).json()
    assert [route["botId"] for route in theirs["routes"]] == [gamma["id"]]
    assert theirs["proxy"] is None
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as anonymous:
        assert (await anonymous.get("/proxy/routes")).status_code == 401


@both_backends
async def test_stopped_bot_answers_503_and_200_again_once_started_and_unknown_hosts_404(
    make_platform: PlatformFactory, caddy: Caddy
) -> None:
    platform = await routed_platform(make_platform, caddy)
    bot = await platform.create_bot(env={"STUB_MESSAGE": "up"})
    name = host(bot["subdomain"])
    async with proxy_client(caddy) as client:
        await until_answer(client, name, "/hello", 200, contains="up")

        assert (await platform.client.post(f"/fleet/bots/{bot['id']}/stop")).status_code == 200
        stopped = await until_answer(client, name, "/hello", 503, contains="stopped", timeout=10)
        assert stopped.headers["content-type"].startswith("text/plain")
        assert stopped.text == "bot is stopped\n"
        by_path = await until_answer(client, DOMAIN, f"/instance/{bot['id']}/hello", 503, timeout=10)
        assert by_path.text == "bot is stopped\n"

        assert (await platform.client.post(f"/fleet/bots/{bot['id']}/start")).status_code == 200
        await until_answer(client, name, "/hello", 200, contains="up", timeout=15)

        for unknown in (host("nobody-" + uuid.uuid4().hex[:8]), "elsewhere.example", f"a.b.{DOMAIN}", "127.0.0.1"):
            response = await client.get("/hello", headers={"Host": unknown})
            assert response.status_code == 404, (unknown, response.status_code, response.text)
            assert response.text in ("unknown host\n", "no such bot\n")
        apex = await client.get("/hello", headers={"Host": DOMAIN})
        assert apex.status_code == 404
    samples = await scrape(platform.client)  # Caddy asked the platform's DNS for the bot, and for the unknown one
    assert figure(samples, "wopr_proxy_route_lookups_total", result="found") >= 1
    assert figure(samples, "wopr_proxy_route_lookups_total", result="unknown") >= 1


async def test_an_unhealthy_bot_answers_503_without_any_config_change(
    make_platform: PlatformFactory, caddy: Caddy
) -> None:
    platform = await routed_platform(make_platform, caddy)
    loads = caddy.loads()
    sick = await platform.create_bot(
        env={"STUB_HEALTH": "fail", "STUB_MESSAGE": "sick"},
        healthCheck={"intervalSeconds": 1, "retries": 1, "startPeriodSeconds": 0},
    )
    await platform.wait_for(sick["id"], state="running", health="unhealthy")
    async with proxy_client(caddy) as client:
        # its /hello would answer; the proxy does not send tenants to a bot that fails its health check
        response = await until_answer(client, host(sick["subdomain"]), "/hello", 503, timeout=10)
        assert response.text == "bot is unavailable\n"
    routes = (await platform.client.get("/proxy/routes")).json()["routes"]
    assert [(r["state"], r["reason"]) for r in routes] == [("unavailable", "unhealthy")]
    assert caddy.loads() == loads


async def test_killed_caddy_gets_its_routes_back_by_itself_and_the_platform_keeps_working(
    make_platform: PlatformFactory, caddy: Caddy
) -> None:
    platform = await routed_platform(make_platform, caddy)
    bot = await platform.create_bot(env={"STUB_MESSAGE": "survivor"})
    name = host(bot["subdomain"])
    async with proxy_client(caddy) as client:
        await until_answer(client, name, "/hello", 200, contains="survivor")

    caddy.kill()
    deadline = time.monotonic() + 10
    while True:  # the platform notices, says so, and keeps serving its API
        ready = await platform.client.get("/health/ready")
        if ready.status_code == 503:
            break
        assert time.monotonic() < deadline, ready.text
        await asyncio.sleep(0.1)
    check = ready.json()["checks"]["proxy"]
    assert check["ok"] is False and "Caddy" in check["reason"], check
    other = await platform.create_bot(env={"STUB_MESSAGE": "made-while-down"})
    assert (await platform.client.get("/fleet/bots")).status_code == 200
    assert (await platform.client.get("/proxy/routes")).json()["proxy"]["caddy"]["ok"] is False

    caddy.start()  # back with an empty config; no call to the platform from here on
    async with proxy_client(caddy) as client:
        await until_answer(client, name, "/hello", 200, contains="survivor", timeout=15)
        await until_answer(client, host(other["subdomain"]), "/hello", 200, contains="made-while-down")
    await wait_ready(platform)


async def test_lost_or_edited_config_is_put_back(make_platform: PlatformFactory, caddy: Caddy) -> None:
    platform = await routed_platform(make_platform, caddy)
    bot = await platform.create_bot(env={"STUB_MESSAGE": "kept"})
    name = host(bot["subdomain"])
    server = f"wopr-{platform.settings.platform_id}"
    async with proxy_client(caddy) as client, httpx.AsyncClient(base_url=caddy.admin_url, trust_env=False) as admin:
        await until_answer(client, name, "/hello", 200, contains="kept")
        # someone edits the platform's server block: every host answers "hijacked"
        edited = {**caddy.config()["apps"]["http"]["servers"][server]}
        edited["routes"] = [{"handle": [{"handler": "static_response", "body": "hijacked"}]}]
        assert (await admin.patch(f"/config/apps/http/servers/{server}", json=edited)).status_code == 200
        await until_answer(client, name, "/hello", 200, contains="kept", timeout=10)
        # someone loads a config without it
        assert (await admin.post("/load", json={"admin": caddy.config()["admin"]})).status_code == 200
        await until_answer(client, name, "/hello", 200, contains="kept", timeout=10)
    assert server in caddy.config()["apps"]["http"]["servers"]


async def test_subdomains_are_validated_unique_across_tenants_and_patchable(
    make_platform: PlatformFactory, caddy: Caddy
) -> None:
    platform = await routed_platform(make_platform, caddy)
    for bad in ("UPPER", "under_score", "-dash", "dash-", "www", "api", "xn--punycode", "a" * 64, "", "a.b", 7):
        response = await platform.client.post(
            "/fleet/bots", json={"name": "bad-sub", "image": STUB_IMAGE, "subdomain": bad}
        )
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["details"]["errors"][0]["field"] == "subdomain"
    assert (await platform.client.get("/fleet/bots")).json() == {"bots": []}

    reserved_name = await platform.create_bot(name="admin")  # a reserved name gets its id as subdomain
    assert reserved_name["subdomain"] == reserved_name["id"]

    taken = "shared-" + uuid.uuid4().hex[:6]
    await _other_tenant_bot(platform, "tenant-b", subdomain=taken)
    clash = await platform.client.post("/fleet/bots", json={"name": "mine", "image": STUB_IMAGE, "subdomain": taken})
    assert clash.status_code == 409, clash.text
    assert clash.json()["details"] == {"code": "conflict", "field": "subdomain"}
    names = [bot["name"] for bot in (await platform.client.get("/fleet/bots")).json()["bots"]]
    assert names == ["admin"]  # nothing was made

    # a bot named like another tenant's subdomain gets its id instead
    same_name = await platform.create_bot(name=taken)
    assert same_name["subdomain"] == same_name["id"]

    bot = await platform.create_bot(env={"STUB_MESSAGE": "moving"})
    before = bot["subdomain"]
    async with proxy_client(caddy) as client:
        await until_answer(client, host(before), "/hello", 200, contains="moving")
        refused = await platform.client.patch(f"/fleet/bots/{bot['id']}", json={"subdomain": taken})
        assert refused.status_code == 409, refused.text
        assert (await platform.client.patch(f"/fleet/bots/{bot['id']}", json={"subdomain": "WWW"})).status_code == 400
        assert (await platform.bot(bot["id"]))["subdomain"] == before

        after = "moved-" + uuid.uuid4().hex[:6]
        changed = await platform.client.patch(f"/fleet/bots/{bot['id']}", json={"subdomain": after})
        assert changed.status_code == 200, changed.text
        assert changed.json()["subdomain"] == after
        assert changed.json()["containerId"] == bot["containerId"]  # a route change recreates nothing
        await until_answer(client, host(after), "/hello", 200, contains="moving")
        await until_answer(client, host(before), "/hello", 404)


async def test_without_caddy_the_platform_starts_works_and_reports_it(make_platform: PlatformFactory) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    platform = await make_platform(
        PROXY_ENABLED=True,
        CADDY_ADMIN_URL=nobody,
        PROXY_CHECK_INTERVAL=0.5,
        PROXY_DNS_LISTEN=f"127.0.0.1:{free_port()}",
    )
    deadline = time.monotonic() + 10
    while (ready := await platform.client.get("/health/ready")).json()["checks"]["proxy"].get("reason") is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert ready.status_code == 503
    check = ready.json()["checks"]["proxy"]
    assert check["ok"] is False and check["enabled"] is True and "cannot be reached" in check["reason"], check
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], state="running")
    routes = (await platform.client.get("/proxy/routes")).json()
    assert [r["botId"] for r in routes["routes"]] == [bot["id"]]
    assert routes["proxy"]["caddy"]["ok"] is False


async def test_with_routing_off_nothing_routes_and_readiness_does_not_wait_for_caddy(platform: Platform) -> None:
    ready = await platform.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["proxy"] == {"ok": True, "enabled": False}
    off = await platform.client.get("/proxy/routes")
    assert off.status_code == 503 and off.json()["details"]["code"] == "proxy_disabled"
    bot = await platform.create_bot()
    detail = await platform.bot(bot["id"])
    assert detail["urls"] is None and detail["subdomain"] == bot["name"]
