"""Where `wopr` keeps the platform's URL and the key it calls with: one JSON file only its owner can read.

The file is `$XDG_CONFIG_HOME/wopr/config.json` (`~/.config/wopr/config.json` by default), mode 0600 in a 0700
directory, replaced atomically so a reader never sees half of it. `WOPR_URL`, `WOPR_KEY` and `WOPR_TENANT` in the
environment take the place of what the file holds, for scripts that should not depend on a login.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wopr_platform.client.errors import ClientError, NotLoggedIn

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
URL_VAR = "WOPR_URL"
KEY_VAR = "WOPR_KEY"
TENANT_VAR = "WOPR_TENANT"


class ConfigUnreadable(ClientError):
    """The stored file exists but is not what `wopr login` writes."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Where the platform is, the bearer key to call it with, and the tenant to act for (None: the key's own)."""

    url: str
    key: str
    tenant: str | None = None


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The file's path, following the XDG base directory rule (an empty or relative XDG_CONFIG_HOME is ignored)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "wopr" / "config.json"


def load(path: Path) -> Credentials | None:
    """What `wopr login` stored, or None when nothing is."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ConfigUnreadable(f"cannot read {path}: {err.strerror}") from err
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ConfigUnreadable(f"{path} is not a wopr config file; run `wopr login` again")
    url, key, tenant = data.get("url"), data.get("key"), data.get("tenant")
    if not isinstance(url, str) or not isinstance(key, str) or not isinstance(tenant, str | None):
        raise ConfigUnreadable(f"{path} is not a wopr config file; run `wopr login` again")
    return Credentials(url=url, key=key, tenant=tenant)


def save(path: Path, credentials: Credentials) -> None:
    """Store the credentials: written to a private temporary file beside the target, then renamed over it."""
    path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    path.parent.chmod(DIRECTORY_MODE)  # ours: tighten it if it was made by someone else's umask
    data = {"url": credentials.url, "key": credentials.key}
    if credentials.tenant is not None:
        data["tenant"] = credentials.tenant
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def forget(path: Path) -> bool:
    """Remove the stored credentials; False when there were none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def current(path: Path, env: Mapping[str, str], tenant: str | None = None) -> Credentials:
    """The credentials to call with: the environment's over the stored file's, and `tenant` over both. The stored
    key goes only to the stored URL (a WOPR_URL naming another server needs its own WOPR_KEY), and the stored
    tenant only with the stored key."""
    stored = load(path)
    env_url, env_key = env.get(URL_VAR) or None, env.get(KEY_VAR) or None
    if env_key is not None:
        url = env_url or (stored.url if stored else None)
        key: str | None = env_key
    elif stored is not None and env_url not in (None, stored.url):
        raise NotLoggedIn(f"{URL_VAR} names another server than the one logged in to; set {KEY_VAR} too")
    else:
        url, key = (stored.url, stored.key) if stored else (env_url, None)
    if not url or not key:
        raise NotLoggedIn(f"not logged in: run `wopr login --url URL`, or set {URL_VAR} and {KEY_VAR}")
    stored_tenant = stored.tenant if stored is not None and env_key is None else None
    chosen = tenant or env.get(TENANT_VAR) or stored_tenant
    return Credentials(url=url, key=key, tenant=chosen)
