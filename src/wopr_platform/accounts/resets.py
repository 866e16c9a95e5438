"""Password reset: a single-use link, mailed, that sets a new password and ends every session of the account.

The token is random and stored only as its SHA-256; the answer to a request, and its timing, are the same whether
or not the email has an account (the lookup and the mail happen in the background).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine

from wopr_platform.accounts import credentials, mails
from wopr_platform.accounts.policy import (
    AccountSettings,
    Changed,
    Clock,
    ResetThrottled,
    now,
    require_mailer,
    throttle,
)
from wopr_platform.accounts.repository import AccountRepository
from wopr_platform.accounts.schemas import Accepted
from wopr_platform.core.buckets import TokenBuckets, address_key
from wopr_platform.core.errors import ValidationFailed
from wopr_platform.db import models
from wopr_platform.db.unit import Database
from wopr_platform.mail.smtp import Mailer

log = logging.getLogger(__name__)

RESET_PER_EMAIL = 3  # password-reset mails asked for one address ...
RESET_PER_ADDRESS = 10  # ... and from one client address ...
RESET_WINDOW = 900.0  # ... per this many seconds
SHUTDOWN_WAIT = 15.0  # seconds mails still being sent get at shutdown


class PasswordResets:
    """Asking for a reset link and using it."""

    def __init__(
        self,
        *,
        db: Database,
        settings: AccountSettings,
        mailer: Mailer | None,
        changed: Changed,
        clock: Clock = now,
    ) -> None:
        self._db = db
        self._settings = settings
        self._mailer = mailer  # None: mail is off
        self._changed = changed
        self._clock = clock
        self._emails = TokenBuckets(RESET_PER_EMAIL, RESET_WINDOW)
        self._addresses = TokenBuckets(RESET_PER_ADDRESS, RESET_WINDOW)
        self._background: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Let mails still being sent finish (at most SHUTDOWN_WAIT seconds), at shutdown."""
        if self._background:
            await asyncio.wait(self._background, timeout=SHUTDOWN_WAIT)

    def _later(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def request(self, email: str, client: str | None) -> Accepted:
        """Mail a single-use link that sets a new password, if an account has `email`.

        The answer, and its timing, are the same either way: the lookup, the token and the mail happen after the
        answer, in the background. Requests are throttled per email and per client address."""
        mailer = require_mailer(self._mailer)
        email = email.lower()
        throttle(self._emails, ("email:" + credentials.digest(email),), ResetThrottled, "reset requests")
        throttle(self._addresses, ("addr:" + address_key(client),), ResetThrottled, "reset requests")
        self._later(self._send_reset(mailer, email))
        return Accepted(message="if an account has this email, a link to set a new password is on its way")

    async def _send_reset(self, mailer: Mailer, email: str) -> None:
        try:
            token = credentials.new_token()
            now = self._clock()
            async with self._db.unit() as session:
                repo = AccountRepository(session)
                user = await repo.user_by_email(email)
                if user is None:
                    return
                repo.add(
                    models.PasswordReset(
                        id=str(uuid.uuid4()),
                        token_hash=credentials.digest(token),
                        user_id=user.id,
                        created_at=now,
                        expires_at=now + self._settings.password_reset_ttl,
                    )
                )
            subject, text = mails.password_reset(self._settings.platform_url, token, self._settings.password_reset_ttl)
            await mailer.send(email, subject, text)
            log.info("password reset mailed", extra={"user": user.id})
        except Exception:  # in the background: logged, never raised into the event loop
            log.exception("password reset not mailed")

    async def confirm(self, token: str, new_password: str) -> None:
        """Set the password of the token's account and end every session of it; the token works once."""
        new_hash = await credentials.hash_password(new_password)
        now = self._clock()
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            user_id = await repo.use_reset(credentials.digest(token), now)
            user = await repo.user(user_id) if user_id is not None else None
            if user is None:
                raise ValidationFailed(
                    "this link is unknown, used or expired: ask for a new one", details={"code": "invalid_token"}
                )
            user.password_hash = new_hash
            await repo.end_every_session(user, now)
            await repo.void_resets_of(user.id, now)
        await self._changed()
        log.info("password reset", extra={"user": user.id})
