"""The second factor's arithmetic: TOTP secrets and codes (RFC 6238: SHA-1, 6 digits, 30-second steps, as every
authenticator app reads them) and single-use recovery codes.

A code is checked against the current time step and one on either side (clock drift), and only for a step later
than the last one used, so a code seen once (over a shoulder, in a log) never signs in again.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import pyotp

from wopr_platform.accounts import credentials

ISSUER = "WOPR"
DRIFT = 1  # time steps accepted on either side of the current one
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 symbols: 5 bits each, no 0/o or 1/l to misread
RECOVERY_LENGTH = 16  # symbols: 80 bits, far beyond guessing, even offline against the stored SHA-256
RECOVERY_GROUP = 4  # shown as xxxx-xxxx-xxxx-xxxx


def new_secret() -> str:
    """A random base32 secret of 160 bits (the size RFC 4226 recommends)."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str) -> str:
    """The `otpauth://` URI an authenticator app reads (usually from a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: datetime, after: int | None) -> int | None:
    """The time step whose code `code` is, within the drift and later than `after`; None when there is none."""
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    for step in range(current - DRIFT, current + DRIFT + 1):
        # every candidate is compared (constant time), so the answer's timing says nothing about which matched
        if credentials.same(totp.generate_otp(step), code) and (after is None or step > after) and found is None:
            found = step
    return found


def new_recovery_codes() -> list[str]:
    """A fresh set of recovery codes, as shown to the user."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        codes.append("-".join(raw[i : i + RECOVERY_GROUP] for i in range(0, RECOVERY_LENGTH, RECOVERY_GROUP)))
    return codes


def recovery_digest(code: str) -> str:
    """What is stored of a recovery code, and what one typed in is looked up by: the SHA-256 of its symbols
    (case, dashes and spaces as typed do not matter)."""
    return credentials.digest("".join(code.lower().replace("-", "").split()))
