"""The routing table: a bot's route leads to its own running, healthy container, or says why it does not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from wopr_platform.core.addresses import PublicAddress
from wopr_platform.docker.types import ContainerInfo
from wopr_platform.proxy.table import BotRoute, RouteTable, decide, routes


def _bot(**fields: object) -> BotRoute:
    values: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "tenant_id": "default",
        "name": "b",
        "subdomain": "b",
        "desired_state": "running",
        "container_id": "c1",
        **fields,
    }
    return BotRoute.of(SimpleNamespace(**values))


def _container(bot: BotRoute, **fields: object) -> ContainerInfo:
    values: dict[str, object] = {
        "id": "c1",
        "name": f"wopr-{bot.id}",
        "bot_id": bot.id,
        "tenant_id": bot.tenant_id,
        "state": "running",
        "image": "img",
        "image_id": "sha256:x",
        "created_at": datetime.now(UTC),
        "ip_address": "172.17.0.9",
        **fields,
    }
    return ContainerInfo(**values)  # type: ignore[arg-type]


def test_a_running_healthy_bot_leads_to_its_container_on_7437() -> None:
    bot = _bot()
    route = decide(bot, _container(bot), "healthy")
    assert (route.state, route.upstream_ip, route.upstream) == ("up", "172.17.0.9", "172.17.0.9:7437")
    assert decide(bot, _container(bot), "starting").state == "up"  # a fresh container gets its first requests


@pytest.mark.parametrize(
    ("desired", "container_fields", "health", "state", "reason"),
    [
        ("stopped", {}, "healthy", "stopped", "stopped"),  # wanted stopped: even while it still runs
        ("running", None, "none", "unavailable", "no container"),
        ("running", {"state": "exited"}, "none", "unavailable", "container exited"),
        ("running", {"state": "restarting"}, "none", "unavailable", "container restarting"),
        ("running", {"ip_address": None}, "healthy", "unavailable", "container has no address"),
        ("running", {}, "unhealthy", "unavailable", "unhealthy"),
        ("running", {"tenant_id": "other"}, "healthy", "unavailable", "container belongs to another bot"),
        ("running", {"bot_id": "someone-else"}, "healthy", "unavailable", "container belongs to another bot"),
    ],
)
def test_a_bot_that_cannot_be_reached_has_no_upstream(
    desired: str, container_fields: dict[str, object] | None, health: str, state: str, reason: str
) -> None:
    bot = _bot(desired_state=desired)
    container = None if container_fields is None else _container(bot, **container_fields)
    route = decide(bot, container, health)
    assert (route.state, route.reason, route.upstream_ip, route.upstream) == (state, reason, None, None)


def test_the_table_indexes_by_subdomain_and_id_and_keeps_tenants_apart() -> None:
    a = _bot(subdomain="alpha", tenant_id="t1")
    b = _bot(subdomain="beta", tenant_id="t2")
    c = _bot(subdomain="gamma", tenant_id="t1")
    table = RouteTable.build([c, a, b])
    assert len(table) == 3
    assert table.by_subdomain["beta"] is b and table.by_id[a.id] is a
    assert table.of_tenant("t1") == [a, c]
    assert table.of_tenant("t2") == [b]
    assert table.of_tenant("nobody") == []
    assert RouteTable().by_subdomain == {} and RouteTable().built_at == 0.0


def test_routes_are_decided_with_each_bots_own_container() -> None:
    a, b = _bot(), _bot()
    containers = {a.id: _container(a, ip_address="172.17.0.2"), b.id: _container(b, ip_address="172.17.0.3")}
    decided = routes([a, b], lambda bot: containers.get(bot.id), lambda _: "healthy")
    assert [r.upstream_ip for r in decided] == ["172.17.0.2", "172.17.0.3"]


@pytest.mark.parametrize(
    ("listen", "tls", "host_url", "path_prefix"),
    [
        ([":443"], True, "https://b.wopr.network/", "https://wopr.network/instance/"),
        (["0.0.0.0:8443", ":443"], True, "https://b.wopr.network:8443/", "https://wopr.network:8443/instance/"),
        (["127.0.0.1:80"], False, "http://b.wopr.network/", "http://wopr.network/instance/"),
        (["127.0.0.1:18080"], False, "http://b.wopr.network:18080/", "http://wopr.network:18080/instance/"),
        (["[::1]:443"], True, "https://b.wopr.network/", "https://wopr.network/instance/"),
    ],
)
def test_public_urls_use_the_first_listen_address(
    listen: list[str], tls: bool, host_url: str, path_prefix: str
) -> None:
    address = PublicAddress.of(domain="wopr.network", listen=listen, tls=tls)
    assert address.urls("b", "id-1") == {"host": host_url, "path": f"{path_prefix}id-1/"}
    assert address.host("b") == "b.wopr.network"
