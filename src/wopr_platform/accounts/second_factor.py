"""The optional second factor: a TOTP code from an authenticator app, or a single-use recovery code.

The TOTP secret must be read back to check a code, so it is sealed with the platform's key (bound to its user);
recovery codes are stored only as digests. Each code signs in once: the last time step used is kept with a
conditional update, and a recovery code is spent by one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from wopr_platform.accounts import totp
from wopr_platform.accounts.policy import Changed, Clock, NewSession, now
from wopr_platform.accounts.repository import AccountRepository
from wopr_platform.accounts.schemas import RecoveryCodes, TotpSetup
from wopr_platform.core.errors import (
    Conflict,
    NotFound,
    PlatformError,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from wopr_platform.crypto.secretbox import SecretBox, SecretUnreadable
from wopr_platform.db import models
from wopr_platform.db.unit import Database

log = logging.getLogger(__name__)


class SecondFactorUnavailable(ServiceUnavailable):
    """A TOTP secret cannot be stored: production without PLATFORM_SECRET."""

    code = "platform_secret_missing"


class SecondFactorUnreadable(PlatformError):
    """A stored TOTP secret opens with no configured key (PLATFORM_SECRET changed without PLATFORM_SECRET_PREVIOUS,
    or the row was altered): only a recovery code signs in."""

    status = 503
    code = "secrets_unreadable"


class SecondFactor:
    """Setting the second factor up, turning it off, recovery codes, and the check at sign-in."""

    def __init__(
        self,
        *,
        db: Database,
        box: SecretBox | None,
        changed: Changed,
        reentered: Callable[[str, str], Awaitable[models.User]],
        new_session: Callable[[str], Awaitable[NewSession]],
        clock: Clock = now,
    ) -> None:
        self._db = db
        self._box = box  # seals TOTP secrets; None: no second factor can be set up (recovery codes still work)
        self._changed = changed
        self._reentered = reentered  # the user, when the password given again is theirs (throttled)
        self._new_session = new_session
        self._clock = clock

    async def check(self, user: models.User, code: str | None, recovery_code: str | None) -> None:
        """Accept a TOTP code not used before, or spend an unused recovery code; else a 401."""
        if code is None and recovery_code is None:
            raise Unauthorized(
                "this account signs in with a second factor: send the authenticator's code (or a recovery code)",
                details={"code": "totp_required"},
            )
        now = self._clock()
        accepted = False
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            if code is not None:
                secret = self._open(user)
                step = totp.matching_step(secret, code, now, user.totp_last_step)
                accepted = step is not None and await repo.use_totp_step(user.id, step)
                if accepted and self._box is not None and self._box.needs_rotation(user.totp_secret or ""):
                    await repo.set_totp_secret(user.id, self._seal(user.id, secret))  # onto the current key
            elif recovery_code is not None:
                accepted = await repo.spend_recovery_code(user.id, totp.recovery_digest(recovery_code), now)
        if not accepted:
            raise Unauthorized("the code is wrong or was used already", details={"code": "invalid_credentials"})
        if recovery_code is not None:
            log.info("recovery code used", extra={"user": user.id})

    def _seal(self, user_id: str, secret: str) -> str:
        if self._box is None:
            raise SecondFactorUnavailable("a second factor cannot be set up: PLATFORM_SECRET is not configured")
        # bound to the user: a sealed secret copied to another user's row (or a bot's env) does not open
        return self._box.seal(secret, bot_id="user:" + user_id, key="totp")

    def _open(self, user: models.User) -> str:
        stored = user.totp_secret or ""
        if self._box is None:
            raise SecondFactorUnreadable("the TOTP secret cannot be opened: PLATFORM_SECRET is not configured")
        try:
            return self._box.open(stored, bot_id="user:" + user.id, key="totp")
        except SecretUnreadable:
            raise SecondFactorUnreadable(
                "the TOTP secret opens with no configured key: sign in with a recovery code"
            ) from None

    async def begin(self, user_id: str, password: str) -> TotpSetup:
        """A new TOTP secret for the user's authenticator app, stored sealed and pending until a code confirms it
        (a pending one from before is replaced)."""
        email = (await self._reentered(user_id, password)).email
        secret = totp.new_secret()
        sealed = self._seal(user_id, secret)
        async with self._db.unit() as session:
            user = await AccountRepository(session).user(user_id, lock=True)
            if user is None:
                raise NotFound("user not found", details={"code": "not_found"})
            if user.totp_enabled_at is not None:
                raise Conflict("the second factor is on already: turn it off first", details={"code": "totp_enabled"})
            user.totp_secret = sealed
            user.totp_last_step = None
        return TotpSetup(secret=secret, uri=totp.provisioning_uri(secret, email))

    async def confirm(self, user_id: str, code: str) -> tuple[NewSession, RecoveryCodes]:
        """Turn the second factor on with a code of the pending secret: recovery codes are made (returned this once),
        every session of the user ends, and a new one starts."""
        now = self._clock()
        codes = totp.new_recovery_codes()
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            user = await repo.user(user_id, lock=True)
            if user is None:
                raise NotFound("user not found", details={"code": "not_found"})
            if user.totp_enabled_at is not None:
                raise Conflict("the second factor is on already", details={"code": "totp_enabled"})
            if user.totp_secret is None:
                raise Conflict(
                    "no second factor is being set up: POST /auth/totp first", details={"code": "totp_not_pending"}
                )
            step = totp.matching_step(self._open(user), code, now, None)
            if step is None:
                raise ValidationFailed(
                    "the code is wrong (is the device's clock right?)",
                    details={"code": "invalid_code", "field": "code"},
                )
            user.totp_enabled_at = now
            user.totp_last_step = step  # the code that turned it on does not sign in
            await repo.end_every_session(user, now)
            await repo.remove_recovery_codes(user_id)
            self._new_recovery_codes(repo, user_id, codes, now)
        await self._changed()
        log.info("second factor turned on", extra={"user": user_id})
        return await self._new_session(user_id), RecoveryCodes(recovery_codes=codes)

    async def disable(self, user_id: str, password: str) -> None:
        """Turn the second factor off (the secret and the recovery codes are deleted)."""
        await self._reentered(user_id, password)
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            user = await repo.user(user_id, lock=True)
            if user is None or (user.totp_enabled_at is None and user.totp_secret is None):
                raise Conflict("the second factor is off", details={"code": "totp_off"})
            user.totp_secret = None
            user.totp_enabled_at = None
            user.totp_last_step = None
            await repo.remove_recovery_codes(user_id)
        log.info("second factor turned off", extra={"user": user_id})

    async def regenerate_recovery_codes(self, user_id: str, password: str) -> RecoveryCodes:
        """A new set of recovery codes (returned this once); every earlier one is void."""
        await self._reentered(user_id, password)
        codes = totp.new_recovery_codes()
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            user = await repo.user(user_id, lock=True)
            if user is None or user.totp_enabled_at is None:
                raise Conflict("the second factor is off", details={"code": "totp_off"})
            await repo.remove_recovery_codes(user_id)
            self._new_recovery_codes(repo, user_id, codes, self._clock())
        log.info("recovery codes made again", extra={"user": user_id})
        return RecoveryCodes(recovery_codes=codes)

    @staticmethod
    def _new_recovery_codes(repo: AccountRepository, user_id: str, codes: list[str], now: datetime) -> None:
        for code in codes:
            repo.add(
                models.RecoveryCode(
                    id=str(uuid.uuid4()), user_id=user_id, code_hash=totp.recovery_digest(code), created_at=now
                )
            )
