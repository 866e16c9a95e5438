"""Gateway keys: who a call through the gateway is from.

Two kinds, told apart by their prefix, both checked in constant time:

- a bot's key, `wgk_b_<bot id>_<epoch>_<mac>`: derived from the bot's id and key epoch with the platform's secret,
  so it is stored nowhere (not even hashed). It reaches the bot's container in its env (`BotGatewayEnv`); adding
  one to the epoch rotates it (the container is made again with the new key), and removing the bot ends it.
- a tenant's own key, `wgk_t_<id>_<secret>`: random, shown once; only a SHA-256 of the secret is kept, and
  revoking it is immediate.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wopr_platform.accounts import credentials
from wopr_platform.crypto.secretbox import SecretBox

BOT_PREFIX = "wgk_b_"
TENANT_PREFIX = "wgk_t_"
_BOT_KEY = re.compile(r"^wgk_b_([0-9a-f]{32})_([0-9]{1,9})_([0-9a-f]{64})$")
_TENANT_KEY = re.compile(r"^wgk_t_([0-9a-f]{16})_([0-9a-f]{64})$")

# what a bot's container is given: the gateway's own names, and the names the providers' SDKs read (only where the
# profile sets neither of a provider's pair itself: a bot with its own provider key calls the provider directly)
GATEWAY_URL = "WOPR_GATEWAY_URL"
GATEWAY_KEY = "WOPR_GATEWAY_KEY"
PROVIDER_ENV = (("OPENAI_BASE_URL", "OPENAI_API_KEY", "/v1"), ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", ""))
PROVIDED_VARIABLES = frozenset(name for pair in PROVIDER_ENV for name in pair[:2])


@dataclass(frozen=True, slots=True)
class BotKey:
    bot_id: str
    epoch: int
    mac: str


@dataclass(frozen=True, slots=True)
class TenantKey:
    key_id: str
    secret: str


def parse(key: str) -> BotKey | TenantKey | None:
    """The parts of a well-formed key; None for anything else."""
    found = _BOT_KEY.match(key)
    if found is not None:
        return BotKey(str(uuid.UUID(found.group(1))), int(found.group(2)), found.group(3))
    found = _TENANT_KEY.match(key)
    if found is not None:
        return TenantKey(found.group(1), found.group(2))
    return None


def _bot_mac(box: SecretBox, bot_id: str, epoch: int) -> str:
    return box.mac(f"gateway bot key\x00{bot_id}\x00{epoch}").hex()


def bot_key(box: SecretBox, bot_id: str, epoch: int) -> str:
    return f"{BOT_PREFIX}{uuid.UUID(bot_id).hex}_{epoch}_{_bot_mac(box, bot_id, epoch)}"


def bot_key_valid(box: SecretBox, key: BotKey, current_epoch: int) -> bool:
    expected = _bot_mac(box, key.bot_id, current_epoch)
    return credentials.same(expected, key.mac) and key.epoch == current_epoch


def new_tenant_key() -> tuple[str, str, str]:
    """(id, the key to show once, the hash to keep)."""
    key_id, secret = secrets.token_hex(8), secrets.token_hex(32)
    return key_id, f"{TENANT_PREFIX}{key_id}_{secret}", credentials.digest(secret)


def tenant_key_valid(key: TenantKey, stored_hash: str) -> bool:
    return credentials.same(credentials.digest(key.secret), stored_hash)


class BotGatewayEnv:
    """The gateway's address and the bot's key in every bot container's env (the fleet's `PlatformEnv`), and the
    name of the gateway resolving to the host."""

    def __init__(self, box: SecretBox, url: str, host: str) -> None:
        self._box = box
        self._url = url
        self.extra_hosts: tuple[str, ...] = (f"{host}:host-gateway",)

    def env(self, bot: Any, profile_env: Mapping[str, str]) -> Mapping[str, str]:
        key = bot_key(self._box, bot.id, int(bot.gateway_key_epoch or 0))
        given = {GATEWAY_URL: self._url, GATEWAY_KEY: key}
        for url_name, key_name, path in PROVIDER_ENV:
            if url_name not in profile_env and key_name not in profile_env:
                given[url_name] = self._url + path
                given[key_name] = key
        return given
