"""What every store takes as an object's key: `<folder>/<name>`, each of letters, digits, `.`, `_` and `-` and not
starting with a dot (so a key never names a path outside a store's directory, nor a store's own temporary files)."""

from __future__ import annotations

import re

from wopr_platform.core.errors import ValidationFailed

_PART = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
KEY = re.compile(rf"^{_PART}/{_PART}\Z")
READ_CHUNK = 1024 * 1024  # what a store hands out at a time when an object is read


def checked(key: str) -> str:
    if not KEY.match(key):
        raise ValidationFailed("not a valid object key", details={"key": key[:200]})
    return key
