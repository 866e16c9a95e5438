"""Registry credentials: read from a Docker config.json-format file, looked up by registry name."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from wopr_platform.core.reference import DOCKER_HUB

DOCKER_HUB_SERVER_ADDRESS = "https://index.docker.io/v1/"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


@dataclass(frozen=True, slots=True)
class RegistryCredentials:
    """A username and password (or token) for one registry."""

    username: str
    password: str = field(repr=False)


def normalise_registry(key: str) -> str:
    """Reduce a credentials key (`host`, `https://host`, `https://host/v1/`) to a registry name as in ImageReference."""
    text = key.strip()
    text = urlsplit(text).netloc if "://" in text else text.split("/", 1)[0]
    text = text.rsplit("@", 1)[-1].lower()
    return DOCKER_HUB if text in _DOCKER_HUB_ALIASES else text


def _parse_entry(key: str, entry: object, source: str) -> RegistryCredentials | None:
    where = f"{source}: auths[{key!r}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object")
    if "auth" in entry:
        encoded = entry["auth"]
        if not isinstance(encoded, str):
            raise ValueError(f"{where}.auth must be a base64 string")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as err:
            raise ValueError(f"{where}.auth is not base64 of 'user:password'") from err
        username, colon, password = decoded.partition(":")
        if not colon or not username:
            raise ValueError(f"{where}.auth must decode to 'user:password'")
        return RegistryCredentials(username, password)
    user, secret = entry.get("username"), entry.get("password")
    if user is None and secret is None:
        if entry.get("identitytoken") or entry.get("registrytoken"):
            raise ValueError(f"{where} holds a token, not a username and password; tokens are not supported")
        return None  # an empty entry, as Docker writes next to a credsStore
    if not isinstance(user, str) or not user or not isinstance(secret, str):
        raise ValueError(f"{where} needs both 'username' and 'password' as strings")
    return RegistryCredentials(user, secret)


class CredentialStore:
    """Registry credentials by registry name, read from a Docker config.json-format file."""

    def __init__(self, entries: Mapping[str, RegistryCredentials] | None = None) -> None:
        self._entries = {normalise_registry(key): value for key, value in (entries or {}).items()}

    @classmethod
    def from_file(cls, path: Path | None) -> CredentialStore:
        """Read `{"auths": {host: {"auth": base64(user:pass)} | {"username", "password"}}}`; None → empty store."""
        if path is None:
            return cls()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ValueError(f"registry credentials file {path}: cannot read it ({err.strerror or err})") from err
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"registry credentials file {path}: not JSON (line {err.lineno}: {err.msg})") from err
        return cls.from_config(data, source=f"registry credentials file {path}")

    @classmethod
    def from_config(cls, data: object, *, source: str = "registry credentials") -> CredentialStore:
        """Build from an already parsed config.json document."""
        auths = data.get("auths") if isinstance(data, dict) else None
        if not isinstance(auths, dict):
            raise ValueError(f'{source}: expected an object {{"auths": {{"<registry>": {{...}}}}}}')
        entries: dict[str, RegistryCredentials] = {}
        for key, entry in auths.items():
            if not isinstance(key, str) or not normalise_registry(key):
                raise ValueError(f"{source}: auths key {key!r} is not a registry host")
            credentials = _parse_entry(key, entry, source)
            if credentials is not None:
                entries[normalise_registry(key)] = credentials
        return cls(entries)

    def for_registry(self, registry: str) -> RegistryCredentials | None:
        """The credentials for `registry` ("docker.io", "ghcr.io", "127.0.0.1:5000"), if any."""
        return self._entries.get(normalise_registry(registry))

    def engine_auth(self, registry: str) -> dict[str, str] | None:
        """The same credentials shaped for the Docker engine's X-Registry-Auth on a pull."""
        credentials = self.for_registry(registry)
        if credentials is None:
            return None
        name = normalise_registry(registry)
        return {
            "username": credentials.username,
            "password": credentials.password,
            "serveraddress": DOCKER_HUB_SERVER_ADDRESS if name == DOCKER_HUB else name,
        }


# --- header parsing ---------------------------------------------------------------------------------------
