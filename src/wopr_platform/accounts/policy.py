"""What every part of accounts shares: its settings, the clock, throttles, and the mail server it may not have."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from wopr_platform.accounts.schemas import SessionOut
from wopr_platform.core.buckets import TokenBuckets
from wopr_platform.core.errors import MailUnavailable, PlatformError
from wopr_platform.mail.smtp import Mailer

SignupMode = Literal["open", "invite", "off"]
Clock = Callable[[], datetime]
Changed = Callable[[], Awaitable[None]]  # after a change that could end or narrow access: every replica forgets


@dataclass(frozen=True, slots=True)
class AccountSettings:
    signup: SignupMode = "open"
    session_idle: timedelta = timedelta(hours=8)
    session_max_age: timedelta = timedelta(days=7)
    password_reset_ttl: timedelta = timedelta(hours=1)
    invitation_ttl: timedelta = timedelta(days=7)
    platform_url: str = "http://localhost:3100"  # links in mails point here


class TooManyAttempts(PlatformError):
    status = 429
    code = "login_throttled"


class ResetThrottled(TooManyAttempts):
    code = "reset_throttled"


def now() -> datetime:
    return datetime.now(UTC)


def throttle(buckets: TokenBuckets, keys: tuple[str, ...], error: type[TooManyAttempts], what: str) -> None:
    """Take one from each bucket, or refuse with how long to wait."""
    for bucket in keys:
        wait = buckets.take(bucket)
        if wait > 0:
            raise error(f"too many {what}; try again later", details={"retryAfter": int(wait) + 1})


def require_mailer(mailer: Mailer | None) -> Mailer:
    if mailer is None:
        raise MailUnavailable("this platform sends no mail (no SMTP_HOST is configured)")
    return mailer


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just made: the token for the cookie (never stored) and the answer."""

    token: str
    answer: SessionOut
