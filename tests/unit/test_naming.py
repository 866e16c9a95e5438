"""Names the platform derives for Docker: valid for Docker, and never shared between tenants or platforms."""

from __future__ import annotations

import itertools
import random
import re
import string
import uuid
from typing import Any

import pytest

from wopr_platform.core import naming
from wopr_platform.core.limits import Limits
from wopr_platform.fleet.schemas import VOLUME_RE

# moby's RestrictedNamePattern, which container and local volume names must match
DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+\Z")
PLATFORM_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?\Z")  # the WOPR_PLATFORM_ID setting's pattern

PLATFORMS = ["default", "wopr", "t-1", "a", "x" * 32]
TENANTS = ["default", "a", "b", "a-b", "ab", "a-b-c", "wopr", "0", "z" * 63]
VOLUMES = ["x", "b.x", "a-b.x", "default.x", "wopr.a.x", "v.v.v", "a_b", "data-" + str(uuid.uuid4()), "y" * 63]


def _random_id(rng: random.Random, alphabet: str, inner: str, longest: int) -> str:
    length = rng.randint(1, longest)
    if length == 1:
        return rng.choice(alphabet)
    return rng.choice(alphabet) + "".join(rng.choice(inner) for _ in range(length - 2)) + rng.choice(alphabet)


def _random_triples(count: int) -> list[tuple[str, str, str]]:
    rng = random.Random(1234)
    lower = string.ascii_lowercase + string.digits
    volume_chars = string.ascii_letters + string.digits + "_.-"
    triples = []
    for _ in range(count):
        platform = rng.choice(["default", _random_id(rng, lower, lower + "-", 8)])
        tenant = _random_id(rng, lower, lower + "-", 8)
        volume = rng.choice(string.ascii_letters) + "".join(rng.choice(volume_chars) for _ in range(rng.randint(0, 8)))
        if VOLUME_RE.match(volume) and ".." not in volume:
            triples.append((platform, tenant, volume))
    return triples


def _triples() -> list[tuple[str, str, str]]:
    return list(itertools.product(PLATFORMS, TENANTS, VOLUMES)) + _random_triples(5000)


def test_fixtures_are_valid_inputs() -> None:
    """The samples below are ids and volume names the platform would actually accept."""
    for platform, tenant, volume in _triples():
        assert PLATFORM_ID.match(platform), platform
        assert naming.TENANT_RE.match(tenant), tenant
        assert VOLUME_RE.match(volume) and ".." not in volume, volume


def test_no_two_tenants_or_platforms_share_a_volume_name() -> None:
    """Different (platform, tenant, volume) always give different Docker volume names."""
    seen: dict[str, tuple[str, str, str]] = {}
    for triple in _triples():
        name = naming.volume_name(*triple)
        assert seen.setdefault(name, triple) == triple, f"{triple} and {seen[name]} both map to {name}"


def test_a_volume_name_can_be_read_back() -> None:
    """The platform and tenant are recoverable from the name (everything before the first two dots)."""
    for platform, tenant, volume in _triples():
        prefix, found_tenant, found_volume = naming.volume_name(platform, tenant, volume).split(".", 2)
        assert prefix == ("wopr" if platform == "default" else f"wopr-{platform}")
        assert (found_tenant, found_volume) == (tenant, volume)


def test_volume_names_are_valid_docker_names() -> None:
    """Every derived volume name matches Docker's name rule."""
    for triple in _triples():
        assert DOCKER_NAME.match(naming.volume_name(*triple)), triple


@pytest.mark.parametrize("tenant", ["", "A", "a.b", "a/b", "-a", "a-", "a_b", "a\n", "a" * 64, "tënant"], ids=repr)
def test_a_tenant_that_could_blur_the_boundary_is_refused(tenant: str) -> None:
    """Tenant ids with dots, slashes, upper case, edge dashes or a trailing newline never reach Docker."""
    with pytest.raises(ValueError, match="tenant"):
        naming.volume_name("default", tenant, "x")


def test_container_names_are_valid_and_per_bot() -> None:
    """Container names (current and parked) match Docker's rule and differ between bots and from each other."""
    bots = [str(uuid.uuid4()) for _ in range(50)]
    names = [naming.container_name(bot) for bot in bots]
    parked = [naming.parked_container_name(bot, "f" * 64) for bot in bots]
    for name in names + parked:
        assert DOCKER_NAME.match(name), name
    assert len(set(names) | set(parked)) == 100


def test_default_volume_is_a_valid_volume_name_per_bot() -> None:
    """A bot without volumeName gets one that passes the API's own rule and is unique to the bot."""
    first, second = naming.default_volume(str(uuid.uuid4())), naming.default_volume(str(uuid.uuid4()))
    assert first != second
    assert VOLUME_RE.match(first) and VOLUME_RE.match(second)


def test_labels_scope_containers_to_platform_tenant_and_bot() -> None:
    """The labels carry what list filters and event filters select on."""
    labels = naming.labels("p1", "t1", "b1", "h1", "n1")
    assert labels == {
        "wopr.managed": "true",
        "wopr.platform": "p1",
        "wopr.tenant": "t1",
        "wopr.bot-id": "b1",
        naming.LABEL_SPEC_HASH: "h1",
        "wopr.network": "n1",
    }
    assert naming.volume_labels("p1", "t1") == {"wopr.managed": "true", "wopr.platform": "p1", "wopr.tenant": "t1"}
    assert naming.volume_labels("p1", "t1", "b1") == {
        "wopr.managed": "true",
        "wopr.platform": "p1",
        "wopr.tenant": "t1",
        "wopr.bot-id": "b1",
    }


def test_spec_hash_ignores_env_order_and_sees_every_field() -> None:
    """The drift stamp is the same for the same spec however env is ordered, and changes with any field."""
    net, limits = "wopr.t1.net", Limits(memory_mb=512, cpus=1.0, pids=256)

    def stamp(image: str, env: dict[str, str], volume: str, restart: str, **extra: Any) -> str:
        return naming.spec_hash(image, env, volume, restart, **{"network": net, "limits": limits, **extra})

    base = stamp("img:1", {"A": "1", "B": "2"}, "vol", "always")
    assert stamp("img:1", {"B": "2", "A": "1"}, "vol", "always") == base
    changed = [
        stamp("img:2", {"A": "1", "B": "2"}, "vol", "always"),
        stamp("img:1", {"A": "1", "B": "3"}, "vol", "always"),
        stamp("img:1", {"A": "1"}, "vol", "always"),
        stamp("img:1", {"A": "1", "B": "2"}, "vol2", "always"),
        stamp("img:1", {"A": "1", "B": "2"}, "vol", "no"),
        stamp("img:1", {"A": "1", "B": "2"}, "vol", "always", network="wopr.t2.net"),
        stamp("img:1", {"A": "1", "B": "2"}, "vol", "always", limits=Limits(memory_mb=1024, cpus=1.0, pids=256)),
        stamp("img:1", {"A": "1", "B": "2"}, "vol", "always", limits=Limits(memory_mb=512, cpus=0.5, pids=256)),
        stamp("img:1", {"A": "1", "B": "2"}, "vol", "always", limits=Limits(memory_mb=512, cpus=1.0, pids=128)),
    ]
    assert base not in changed
    assert len(set(changed)) == len(changed)


def test_network_names_are_per_platform_and_tenant_valid_and_never_dockers_own() -> None:
    """Each tenant of each platform gets its own bridge network, with a valid name Docker does not use itself."""
    seen: dict[str, tuple[str, str]] = {}
    for platform, tenant, _ in _triples():
        name = naming.network_name(platform, tenant)
        assert seen.setdefault(name, (platform, tenant)) == (platform, tenant), f"{name} is shared"
        assert DOCKER_NAME.match(name) and name not in ("bridge", "host", "none", "default"), name
    assert naming.network_name("default", "acme") == "wopr.acme.net"
    assert naming.network_name("p1", "acme") == "wopr-p1.acme.net"
    with pytest.raises(ValueError, match="tenant"):
        naming.network_name("default", "a.b")
    assert naming.network_labels("p1", "t1") == {"wopr.managed": "true", "wopr.platform": "p1", "wopr.tenant": "t1"}
