"""The Caddy config the platform owns: built from settings alone, the same for any fleet; and its settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wopr_platform.core.settings import Settings, SettingsError, load_settings
from wopr_platform.proxy import config
from wopr_platform.proxy.sync import layout_of


def _settings(**values: Any) -> Settings:
    return Settings(**{"WOPR_PLATFORM_ID": "p1", **values})


def _handlers(node: Any, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("handler") == kind:
            found.append(node)
        for value in node.values():
            found += _handlers(value, kind)
    elif isinstance(node, list):
        for item in node:
            found += _handlers(item, kind)
    return found


def test_defaults_follow_the_design() -> None:
    settings = Settings()
    assert settings.proxy_enabled is True
    assert settings.caddy_admin_url == "http://127.0.0.1:2019"
    assert settings.proxy_domain == "wopr.network"
    assert settings.proxy_listen == [":443"]
    assert settings.proxy_tls == "auto"


def test_settings_are_normalised() -> None:
    settings = _settings(
        PROXY_DOMAIN="Wopr.Example.",
        PROXY_LISTEN=" :443 , 127.0.0.1:8443,[::1]:9443",
        PROXY_TLS="OFF",
        CADDY_ADMIN_URL="http://caddy:2019/",
        PROXY_STATUS_IP="127.9.9.9",
        PROXY_ENABLED="false",
    )
    assert settings.proxy_domain == "wopr.example"
    assert settings.proxy_listen == [":443", "127.0.0.1:8443", "[::1]:9443"]
    assert settings.proxy_tls == "off"
    assert settings.caddy_admin_url == "http://caddy:2019"
    assert settings.proxy_status_ip == "127.9.9.9"
    assert settings.proxy_enabled is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PROXY_DOMAIN", "bad_domain.com"),
        ("PROXY_DOMAIN", ""),
        ("PROXY_DOMAIN", "a" * 64 + ".com"),
        ("PROXY_DOMAIN", "1.2.3.4"),
        ("PROXY_LISTEN", "443"),
        ("PROXY_LISTEN", ":99999"),
        ("PROXY_LISTEN", "nohost:"),
        ("PROXY_LISTEN", ""),
        ("PROXY_TLS", "maybe"),
        ("CADDY_ADMIN_URL", "ftp://x"),
        ("CADDY_ADMIN_URL", "localhost:2019"),
        ("PROXY_DNS_LISTEN", "localhost:53"),
        ("PROXY_DNS_LISTEN", "127.0.0.1"),
        ("PROXY_DNS_REFRESH", "0"),
        ("PROXY_CHECK_INTERVAL", "0"),
        ("PROXY_STATUS_IP", "10.0.0.1"),
        ("PROXY_STATUS_IP", "127.0.0.254"),
    ],
)
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """Start-up stops with one line naming the variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"^invalid setting {name}: ") as raised:
        load_settings()
    assert "\n" not in str(raised.value)


def test_the_layout_comes_from_the_settings() -> None:
    layout = layout_of(
        _settings(
            PROXY_DOMAIN="wopr.test",
            PROXY_LISTEN="127.0.0.1:18080",
            PROXY_TLS="off",
            PROXY_DNS_LISTEN="0.0.0.0:5300",
            PROXY_DNS_REFRESH="0.25",
        )
    )
    assert layout.dns_address == "127.0.0.1:5300"  # Caddy dials loopback when the responder binds every address
    assert (layout.refresh_ms, layout.tls, layout.host_label) == (250, False, 2)
    assert layout.status == config.StatusAddresses.for_platform("p1")


def test_status_addresses_are_four_loopback_addresses_per_platform() -> None:
    one = config.StatusAddresses.for_platform("p1")
    assert one == config.StatusAddresses.for_platform("p1")
    assert one != config.StatusAddresses.for_platform("p2")
    addresses = [one.unknown, one.stopped, one.unavailable, one.suspended]
    assert addresses == list(one.all)
    assert all(address.startswith("127.") for address in addresses)
    assert len(set(addresses)) == 4
    assert config.StatusAddresses.starting_at("127.9.9.9") == config.StatusAddresses(
        "127.9.9.9", "127.9.9.10", "127.9.9.11", "127.9.9.12"
    )


def test_the_servers_route_by_host_and_path_through_the_platforms_dns_only() -> None:
    layout = layout_of(_settings(PROXY_DOMAIN="wopr.network", PROXY_LISTEN=":443", PROXY_DNS_LISTEN="127.0.0.1:2053"))
    servers = config.servers(layout)
    assert list(servers) == ["wopr-p1-status", "wopr-p1"]  # the fallback first
    proxy, status = servers["wopr-p1"], servers["wopr-p1-status"]
    assert proxy["@id"] == "wopr-p1" and status["@id"] == "wopr-p1-status"
    assert proxy["listen"] == [":443"] and "automatic_https" not in proxy  # TLS left to Caddy
    assert status["automatic_https"] == {"disable": True}
    assert status["listen"] == [
        f"{a}:7437"
        for a in (layout.status.unknown, layout.status.stopped, layout.status.unavailable, layout.status.suspended)
    ]

    proxies = _handlers(proxy, "reverse_proxy")
    assert len(proxies) == 2
    names = sorted(p["dynamic_upstreams"]["name"] for p in proxies)
    assert names == ["{http.regexp.wopr.1}.i.wopr.internal", "{http.request.host.labels.2}.h.wopr.internal"]
    for handler in proxies:
        upstreams = handler["dynamic_upstreams"]
        assert upstreams["source"] == "a" and upstreams["port"] == "7437"
        assert upstreams["resolver"] == {"addresses": ["udp/127.0.0.1:2053"]}
        # the only static upstream is the platform's own status address, used when its DNS cannot be asked
        assert handler["upstreams"] == [{"dial": f"{layout.status.unavailable}:7437"}]
    text = json.dumps(servers)
    assert "{http.request.header" not in text  # nothing of the request picks an address
    assert proxy["routes"][-1]["handle"][0]["status_code"] == 404  # unknown hosts: 404, not Caddy's empty 200
    assert proxy["routes"][1]["match"] == [{"host": ["*.wopr.network"]}]
    assert proxy["routes"][0]["match"] == [{"host": ["wopr.network"], "path": ["/instance/*"]}]


def test_tls_off_disables_automatic_https_and_the_config_never_depends_on_bots() -> None:
    layout = layout_of(_settings(PROXY_TLS="off"))
    assert config.proxy_server(layout)["automatic_https"] == {"disable": True}
    assert config.servers(layout) == config.servers(layout_of(_settings(PROXY_TLS="off")))


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("bot.h.wopr.internal", ("h", "bot")),
        ("BOT.H.WOPR.INTERNAL.", ("h", "bot")),
        ("3f2a9c1e-0b7d-4e59-9c1a-2d4e6f8a0b1c.i.wopr.internal", ("i", "3f2a9c1e-0b7d-4e59-9c1a-2d4e6f8a0b1c")),
        ("a.b.h.wopr.internal", None),
        ("bot.x.wopr.internal", None),
        ("h.wopr.internal", None),
        ("bot.h.wopr.internal.evil", None),
        ("example.com", None),
    ],
)
def test_dns_names_of_the_zone(name: str, parsed: tuple[str, str] | None) -> None:
    assert config.parse_dns_name(name) == parsed
    if parsed is not None:
        assert config.parse_dns_name(config.dns_name(*parsed)) == parsed
