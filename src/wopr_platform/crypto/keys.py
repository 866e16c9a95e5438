"""The key that seals secrets at rest: `PLATFORM_SECRET`, or outside production a key generated in the data dir.

A generated key lives in `<WOPR_DATA_DIR>/platform-secret` (mode 0600), so the embedded default encrypts secrets
without any setting. It protects a copied database or a dump, not a copied data dir; production refuses to store
secrets without `PLATFORM_SECRET`. Once `PLATFORM_SECRET` is set, a generated key that exists is still accepted for
reading, like the `PLATFORM_SECRET_PREVIOUS` entries, and the values sealed with it move to the new key at start.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from wopr_platform.core.settings import Settings
from wopr_platform.crypto.secretbox import SecretBox
from wopr_platform.crypto.stream import StreamKeys

log = logging.getLogger(__name__)

KEY_FILE = "platform-secret"


def _read_key_file(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def _generate_key_file(path: Path) -> str:
    """Create the key file once (0600, never overwritten: a second process racing here reads the first's key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = _read_key_file(path)
        if existing is None:
            raise RuntimeError(f"the key file {path} exists but is empty") from None
        return existing
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    log.warning(
        "secrets at rest are sealed with a key generated in the data dir; set PLATFORM_SECRET for production",
        extra={"file": str(path)},
    )
    return key


def key_material(settings: Settings) -> tuple[str, list[str]] | None:
    """The current secret and the earlier ones still accepted for reading; None in production without
    PLATFORM_SECRET."""
    previous = [item.get_secret_value() for item in settings.platform_secret_previous]
    key_file = settings.data_dir / KEY_FILE
    if settings.platform_secret is not None:
        generated = _read_key_file(key_file)
        if generated is not None:
            previous.append(generated)
        return settings.platform_secret.get_secret_value(), previous
    if settings.env == "production":
        return None
    return _read_key_file(key_file) or _generate_key_file(key_file), previous


def secret_box(settings: Settings) -> SecretBox | None:
    """The box for secret env values; None in production without PLATFORM_SECRET (storing secrets is refused)."""
    material = key_material(settings)
    if material is None:
        log.warning("PLATFORM_SECRET is not set: bots with secret env values cannot be created or changed")
        return None
    return SecretBox(*material)


def stream_keys(settings: Settings) -> StreamKeys | None:
    """The keys that seal backup archives (derived from the same secret); None in production without
    PLATFORM_SECRET (backups are refused)."""
    material = key_material(settings)
    return None if material is None else StreamKeys(*material)
