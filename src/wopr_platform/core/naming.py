"""Every name that reaches Docker is derived here, from ids the platform chose, never from raw input."""

from __future__ import annotations

import hashlib
import json
import re

from wopr_platform.core.limits import Limits

LABEL_MANAGED = "wopr.managed"
LABEL_BOT_ID = "wopr.bot-id"
LABEL_TENANT = "wopr.tenant"
LABEL_PLATFORM = "wopr.platform"
LABEL_NETWORK = "wopr.network"
LABEL_SPEC_HASH = "wopr.spec-hash"
# the security settings every bot container gets (see DockerEngine.create); bump when they change, so the
# spec hash changes and the reconciler recreates the containers made under the old ones
HARDENING_VERSION = 1
TENANT_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
DEFAULT_TENANT = "default"
DEFAULT_PLATFORM = "default"
# in the options of a shared volume driver (FLEET_SWARM_VOLUME_OPTIONS): the name of the bot's volume, so that each
# bot's data has a place of its own
VOLUME_PLACEHOLDER = "{volume}"


def container_name(bot_id: str) -> str:
    """`wopr-<bot uuid>`: unique across tenants because the uuid is."""
    return f"wopr-{bot_id}"


def parked_container_name(bot_id: str, container_id: str) -> str:
    """The name a bot's previous container carries while its replacement is tried."""
    return f"wopr-{bot_id}-prev-{container_id[:12]}"


def _prefix(platform_id: str, tenant_id: str) -> str:
    if not TENANT_RE.match(tenant_id):
        raise ValueError(f"invalid tenant id {tenant_id!r}")
    return "wopr" if platform_id == DEFAULT_PLATFORM else f"wopr-{platform_id}"


def volume_name(platform_id: str, tenant_id: str, volume: str, generation: int = 0) -> str:
    """`wopr.<tenant>.<volume>` (`wopr-<platform>.` for a platform other than the default one), and
    `<that>..<generation>` for a later generation (a restore or an image update moves a bot onto a fresh volume).

    Platform and tenant ids hold no '.', so two tenants, or two platforms sharing an engine, can never
    derive the same volume name; a bot's `volumeName` holds no '..', so no generation looks like another name.
    """
    base = f"{_prefix(platform_id, tenant_id)}.{tenant_id}.{volume}"
    return base if generation == 0 else f"{base}..{generation}"


def network_name(platform_id: str, tenant_id: str) -> str:
    """`wopr.<tenant>.net` (`wopr-<platform>.` for a platform other than the default one): the tenant's bridge.

    Unique per platform and tenant for the same reason as volume names; never a name Docker gives a network
    of its own (`bridge`, `host`, `none`).
    """
    return f"{_prefix(platform_id, tenant_id)}.{tenant_id}.net"


def default_volume(bot_id: str) -> str:
    return f"data-{bot_id}"


def volume_labels(platform_id: str, tenant_id: str, bot_id: str | None = None) -> dict[str, str]:
    """Labels of what the platform makes for a tenant; a bot's volume also carries the bot's id, so every volume a
    bot was given (after a change of its `volumeName` too) can be found by it."""
    labels = {LABEL_MANAGED: "true", LABEL_PLATFORM: platform_id, LABEL_TENANT: tenant_id}
    if bot_id is not None:
        labels[LABEL_BOT_ID] = bot_id
    return labels


def network_labels(platform_id: str, tenant_id: str) -> dict[str, str]:
    return volume_labels(platform_id, tenant_id)


def labels(platform_id: str, tenant_id: str, bot_id: str, spec_hash: str, network: str) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_PLATFORM: platform_id,
        LABEL_BOT_ID: bot_id,
        LABEL_TENANT: tenant_id,
        LABEL_SPEC_HASH: spec_hash,
        LABEL_NETWORK: network,
    }


def spec_hash(
    image: str, env: dict[str, str], volume: str, restart_policy: str, *, network: str, limits: Limits
) -> str:
    """A digest of everything a container is made from (profile fields, network, limits, the hardening's
    version), stamped on the container to spot drift: a container made under other settings is recreated."""
    payload = json.dumps(
        {
            "image": image,
            "env": env,
            "volume": volume,
            "restart": restart_policy,
            "network": network,
            "memoryMb": limits.memory_mb,
            "cpus": limits.cpus,
            "pids": limits.pids,
            "hardening": HARDENING_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
