"""Accounts: sign-up and sign-in (with an optional second factor), sessions, tenants with their members and roles,
and API keys.

Every secret is random and stored only as its SHA-256 (session tokens, API keys, recovery codes), or hashed with
argon2 in a worker thread (passwords); a TOTP secret, which must be read back to check codes, is sealed with the
platform's key. Answers never tell whether an email has an account: sign-up answers the same either way, and
sign-in checks a dummy hash for an unknown email, so both cost the same time.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError

from wopr_platform.accounts import credentials
from wopr_platform.accounts.invitations import Invitations, invalid_invitation
from wopr_platform.accounts.policy import AccountSettings, Clock, NewSession, TooManyAttempts, throttle
from wopr_platform.accounts.policy import now as utc_now
from wopr_platform.accounts.repository import AccountRepository
from wopr_platform.accounts.resets import PasswordResets
from wopr_platform.accounts.schemas import (
    Accepted,
    KeyCaller,
    KeyCreated,
    KeyIn,
    KeyList,
    KeyOut,
    MemberIn,
    MemberList,
    MemberOut,
    Membership,
    SessionCaller,
    SessionOut,
    SignupIn,
    TenantIn,
    TenantList,
    TenantOut,
    UserOut,
)
from wopr_platform.accounts.second_factor import SecondFactor
from wopr_platform.core.access import Role, Scope
from wopr_platform.core.buckets import TokenBuckets, address_key
from wopr_platform.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from wopr_platform.core.networks import Networks
from wopr_platform.crypto.secretbox import SecretBox
from wopr_platform.db import models
from wopr_platform.db.broadcast import Broadcast
from wopr_platform.db.unit import Database
from wopr_platform.mail.smtp import Mailer

log = logging.getLogger(__name__)

TOUCH_EVERY = timedelta(seconds=60)
CACHE_SECONDS = 30.0  # a cached session or key is looked up again at least this often
MAX_CACHED = 10_000  # last-seen and last-used times are written at most this often
LOGIN_ATTEMPTS = 10  # per account and per client address ...
LOGIN_WINDOW = 300.0  # ... per this many seconds
MAX_TENANTS_LISTED = 1000


@dataclass(slots=True)
class _CachedSession:
    caller: SessionCaller
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    valid_after: datetime
    fetched: float  # monotonic


@dataclass(slots=True)
class _CachedKey:
    caller: KeyCaller
    expires_at: datetime | None
    last_used_at: datetime | None
    fetched: float


def _user_out(user: models.User, memberships: list[models.Membership]) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        platform_admin=user.platform_admin,
        created_at=user.created_at,
        totp=user.totp_enabled_at is not None,
        tenants=[Membership(tenant_id=m.tenant_id, role=m.role) for m in memberships],
    )


def _key_out(key: models.ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=key.scopes,
        created_by=key.created_by,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        allowed_addresses=key.allowed_addresses,
    )


class AccountService:
    """Users, sessions, tenants, members and keys."""

    def __init__(
        self,
        *,
        db: Database,
        settings: AccountSettings,
        broadcast: Broadcast | None = None,
        mailer: Mailer | None = None,
        box: SecretBox | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._attempts = TokenBuckets(LOGIN_ATTEMPTS, LOGIN_WINDOW)
        # Sessions and keys that answered recently, by the hash of their token: identifying a caller is then a
        # dictionary lookup. Any change to accounts (a revocation, a role, a sign-out) on any replica empties
        # every replica's cache through `broadcast`; while a replica cannot hear the others, it does not cache.
        self._broadcast = broadcast
        self._sessions: dict[str, _CachedSession] = {}
        self._keys: dict[str, _CachedKey] = {}
        if broadcast is not None:
            broadcast.subscribe(self.forget)
        self.resets = PasswordResets(db=db, settings=settings, mailer=mailer, changed=self._changed, clock=clock)
        self.invitations = Invitations(db=db, settings=settings, mailer=mailer, changed=self._changed, clock=clock)
        self.second_factor = SecondFactor(
            db=db,
            box=box,
            changed=self._changed,
            reentered=self._reentered,
            new_session=self._new_session,
            clock=clock,
        )

    def forget(self) -> None:
        """Drop every cached session and key (done on every change to accounts, on every replica)."""
        self._sessions.clear()
        self._keys.clear()

    def _cache_usable(self) -> bool:
        return self._broadcast is not None and self._broadcast.reliable

    async def _changed(self) -> None:
        """After a committed change that could end or narrow someone's access: every replica forgets."""
        self.forget()
        if self._broadcast is not None:
            await self._broadcast.signal()

    async def close(self) -> None:
        """At shutdown: let reset mails still being sent finish."""
        await self.resets.close()

    # --- sign-up, sign-in, sessions --------------------------------------------------------------------------

    async def has_users(self) -> bool:
        """Whether anyone has signed up yet (the first to sign up becomes the platform's admin)."""
        async with self._db.read() as session:
            return await AccountRepository(session).any_user()

    async def signup(self, body: SignupIn) -> Accepted:
        """Make a user and their own tenant (they own it); with an invitation, a user who joins the inviting tenant
        instead. The first user of the platform is its admin.

        The answer is the same whether or not the email already had an account (and the password is hashed
        either way), so sign-up does not tell who has one."""
        email = body.email.lower()
        password_hash = await credentials.hash_password(body.password)
        accepted = Accepted(message="if the email was new, the account exists now: sign in with it")
        if body.invitation is not None and (body.tenant_id is not None or body.tenant_name is not None):
            raise ValidationFailed(
                "an invited user joins the inviting tenant: send no tenantId or tenantName with an invitation",
                details={"code": "invitation_with_tenant", "field": "invitation"},
            )
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            first = not await repo.any_user()
            now = self._clock()
            invitation = None
            if body.invitation is not None:
                if self._settings.signup == "off" and not first:
                    raise Forbidden("sign-up is closed on this platform", details={"code": "signup_closed"})
                invitation = await repo.pending_invitation(credentials.digest(body.invitation), now)
                if invitation is None or not credentials.same(invitation.email, email):
                    raise invalid_invitation()
            elif self._settings.signup != "open" and not first:
                raise Forbidden("sign-up is closed on this platform", details={"code": "signup_closed"})
            if await repo.user_by_email(email) is not None:
                return accepted  # an invitation stays pending: the user accepts it signed in
            user = models.User(
                id=str(uuid.uuid4()),
                email=email,
                password_hash=password_hash,
                platform_admin=first,
                created_at=now,
                sessions_valid_after=now,
            )
            repo.add(user)
            if invitation is not None:
                if not await repo.spend_invitation(invitation.id, user.id, now):
                    raise invalid_invitation()
                tenant_id, role = invitation.tenant_id, invitation.role
            else:
                tenant_id, role = body.tenant_id or "t-" + secrets.token_hex(5), "owner"
                if await repo.tenant(tenant_id) is not None:
                    raise Conflict("that tenant id is taken", details={"code": "tenant_exists", "field": "tenantId"})
                repo.add(models.Tenant(id=tenant_id, name=body.tenant_name or email, created_at=now))
            repo.add(models.Membership(tenant_id=tenant_id, user_id=user.id, role=role, created_at=now))
            try:
                await repo.flush()
            except IntegrityError:  # the same email or tenant id, made by a concurrent sign-up
                raise Conflict("that tenant id is taken", details={"code": "tenant_exists"}) from None
        log.info("user signed up", extra={"user": user.id, "platform_admin": first, "invited": invitation is not None})
        return accepted

    async def login(
        self,
        email: str,
        password: str,
        client: str | None,
        *,
        code: str | None = None,
        recovery_code: str | None = None,
    ) -> NewSession:
        """A new session for a right email and password, and, when the account has the second factor on, a code or a
        recovery code; a 401 that says nothing more otherwise.

        Only a right password learns that a second factor is asked for (`totp_required`). Every attempt, the one
        that sends the code too, counts against the per-account and per-address throttle."""
        email = email.lower()
        buckets = ("account:" + credentials.digest(email), "addr:" + address_key(client))
        throttle(self._attempts, buckets, TooManyAttempts, "sign-in attempts")
        async with self._db.read() as session:
            user = await AccountRepository(session).user_by_email(email)
            stored = user.password_hash if user is not None else None
        if not await credentials.verify_password(stored, password) or user is None:
            raise Unauthorized("wrong email or password", details={"code": "invalid_credentials"})
        if user.totp_enabled_at is not None:
            await self.second_factor.check(user, code, recovery_code)
        return await self._new_session(user.id)

    async def _new_session(self, user_id: str) -> NewSession:
        """A fresh session (a new token every time: a session id known before sign-in is never promoted)."""
        token = credentials.new_token()
        now = self._clock()
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            user = await repo.user(user_id)
            if user is None:
                raise Unauthorized("wrong email or password", details={"code": "invalid_credentials"})
            row = models.Session(
                id=str(uuid.uuid4()),
                token_hash=credentials.digest(token),
                user_id=user_id,
                csrf_token=credentials.new_token(),
                created_at=now,
                last_seen_at=now,
                expires_at=now + self._settings.session_max_age,
            )
            repo.add(row)
            memberships = [m for _, m in await repo.tenants_of(user_id)]
            answer = SessionOut(user=_user_out(user, memberships), csrf_token=row.csrf_token, expires_at=row.expires_at)
        return NewSession(token=token, answer=answer)

    async def identify_session(self, token: str) -> SessionCaller | None:
        """The user of a session cookie, or None when it is unknown, revoked, idle too long or too old."""
        now = self._clock()
        token_hash = credentials.digest(token)
        cached = self._sessions.get(token_hash) if self._cache_usable() else None
        if cached is None or time.monotonic() - cached.fetched > CACHE_SECONDS:
            async with self._db.read() as session:
                found = await AccountRepository(session).session_with_user(token_hash)
            if found is None:
                self._sessions.pop(token_hash, None)
                return None
            row, user, memberships = found
            cached = _CachedSession(
                caller=SessionCaller(
                    user_id=user.id,
                    email=user.email,
                    platform_admin=user.platform_admin,
                    session_id=row.id,
                    csrf_token=row.csrf_token,
                    roles={m.tenant_id: m.role for m in memberships},  # type: ignore[misc]
                ),
                created_at=row.created_at,
                last_seen_at=row.last_seen_at,
                expires_at=row.expires_at,
                valid_after=user.sessions_valid_after,
                fetched=time.monotonic(),
            )
            if self._cache_usable():
                if len(self._sessions) >= MAX_CACHED:
                    self._sessions.clear()
                self._sessions[token_hash] = cached
        if (
            cached.expires_at <= now
            or cached.last_seen_at + self._settings.session_idle <= now
            or cached.created_at < cached.valid_after
        ):
            return None
        if now - cached.last_seen_at >= TOUCH_EVERY:
            cached.last_seen_at = now
            async with self._db.unit() as session:
                await AccountRepository(session).touch_session(cached.caller.session_id, now)
        return cached.caller

    async def logout(self, session_id: str) -> None:
        async with self._db.unit() as session:
            await AccountRepository(session).revoke_session(session_id, self._clock())
        await self._changed()

    async def logout_everywhere(self, user_id: str) -> None:
        """Revoke every session of the user (this one included)."""
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            await repo.revoke_sessions_of(user_id, self._clock())
        await self._changed()

    async def change_password(self, user_id: str, current: str, new: str) -> NewSession:
        """Check the current password, store the new one, end every session, and start a new one."""
        async with self._db.read() as session:
            user = await AccountRepository(session).user(user_id)
            stored = user.password_hash if user is not None else None
        if not await credentials.verify_password(stored, current):
            raise Unauthorized("the current password is wrong", details={"code": "invalid_credentials"})
        new_hash = await credentials.hash_password(new)
        now = self._clock()
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            user = await repo.user(user_id)
            if user is None:
                raise Unauthorized("wrong email or password", details={"code": "invalid_credentials"})
            user.password_hash = new_hash
            await repo.end_every_session(user, now)
        await self._changed()
        return await self._new_session(user_id)

    # --- second factor ------------------------------------------------------------------------------------------

    async def _reentered(self, user_id: str, password: str) -> models.User:
        """The user, when `password` is theirs; attempts count against the account's sign-in throttle, so a
        borrowed session cannot guess the password faster than sign-in can."""
        async with self._db.read() as session:
            user = await AccountRepository(session).user(user_id)
        if user is None:
            raise NotFound("user not found", details={"code": "not_found"})
        throttle(self._attempts, ("account:" + credentials.digest(user.email),), TooManyAttempts, "password attempts")
        if not await credentials.verify_password(user.password_hash, password):
            raise Unauthorized("the password is wrong", details={"code": "invalid_credentials"})
        return user

    async def me(self, user_id: str) -> UserOut:
        async with self._db.read() as session:
            repo = AccountRepository(session)
            user = await repo.user(user_id)
            if user is None:
                raise NotFound("user not found", details={"code": "not_found"})
            return _user_out(user, [m for _, m in await repo.tenants_of(user_id)])

    # --- tenants and members ------------------------------------------------------------------------------

    async def create_tenant(self, user_id: str, body: TenantIn) -> TenantOut:
        """A new tenant; its creator owns it."""
        now = self._clock()
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            if await repo.tenant(body.id) is not None:
                raise Conflict("that tenant id is taken", details={"code": "tenant_exists", "field": "id"})
            tenant = models.Tenant(id=body.id, name=body.name, created_at=now)
            repo.add(tenant)
            repo.add(models.Membership(tenant_id=body.id, user_id=user_id, role="owner", created_at=now))
            try:
                await repo.flush()
            except IntegrityError:
                raise Conflict("that tenant id is taken", details={"code": "tenant_exists", "field": "id"}) from None
        await self._changed()
        return TenantOut(id=tenant.id, name=tenant.name, created_at=now, role="owner")

    async def tenants(self, user_id: str | None, *, everyone: bool) -> TenantList:
        """The user's tenants with their role; every tenant for a platform admin (`everyone`)."""
        async with self._db.read() as session:
            repo = AccountRepository(session)
            mine = {t.id: m.role for t, m in await repo.tenants_of(user_id)} if user_id else {}
            if everyone:
                rows = await repo.all_tenants(MAX_TENANTS_LISTED)
            else:
                rows = [t for t, _ in await repo.tenants_of(user_id)] if user_id else []
        return TenantList(
            tenants=[TenantOut(id=t.id, name=t.name, created_at=t.created_at, role=mine.get(t.id)) for t in rows]
        )

    async def members(self, tenant_id: str) -> MemberList:
        async with self._db.read() as session:
            rows = await AccountRepository(session).members(tenant_id)
        return MemberList(
            members=[MemberOut(user_id=u.id, email=u.email, role=m.role, created_at=m.created_at) for m, u in rows]
        )

    async def add_member(self, tenant_id: str, body: MemberIn) -> MemberOut:
        """Add a user who has an account (by email) with a role below owner."""
        now = self._clock()
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            user = await repo.user_by_email(body.email.lower())
            if user is None:
                raise NotFound("no account has that email", details={"code": "user_not_found"})
            if await repo.membership(tenant_id, user.id) is not None:
                raise Conflict("already a member", details={"code": "member_exists"})
            repo.add(models.Membership(tenant_id=tenant_id, user_id=user.id, role=body.role, created_at=now))
            try:
                await repo.flush()
            except IntegrityError:
                raise Conflict("already a member", details={"code": "member_exists"}) from None
        await self._changed()
        return MemberOut(user_id=user.id, email=user.email, role=body.role, created_at=now)

    async def set_role(self, tenant_id: str, user_id: str, role: Role) -> MemberOut:
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            membership = await repo.membership(tenant_id, user_id)
            user = await repo.user(user_id)
            if membership is None or user is None:
                raise NotFound("member not found", details={"code": "not_found"})
            if membership.role == "owner":
                raise Conflict(
                    "the owner's role changes only by transferring ownership", details={"code": "owner_role"}
                )
            membership.role = role
            if role == "viewer":  # keys made with more than a viewer may hold go with it
                await repo.revoke_keys_by(tenant_id, user_id, self._clock())
            answer = MemberOut(user_id=user.id, email=user.email, role=role, created_at=membership.created_at)
        await self._changed()
        return answer

    async def remove_member(self, tenant_id: str, user_id: str) -> None:
        """Remove a member (not the owner); the keys they made for the tenant are revoked with it."""
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            membership = await repo.membership(tenant_id, user_id)
            if membership is None:
                raise NotFound("member not found", details={"code": "not_found"})
            if membership.role == "owner":
                raise Conflict("transfer the ownership before removing the owner", details={"code": "owner_role"})
            await repo.remove_member(tenant_id, user_id)
            await repo.revoke_keys_by(tenant_id, user_id, self._clock())
        await self._changed()

    async def transfer_ownership(self, tenant_id: str, to_user: str) -> MemberList:
        """Make a member the owner; the previous owner becomes an admin."""
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            target = await repo.membership(tenant_id, to_user)
            if target is None:
                raise NotFound("member not found", details={"code": "not_found"})
            for membership, _ in await repo.members(tenant_id):
                if membership.role == "owner":
                    membership.role = "admin"
            target.role = "owner"
        await self._changed()
        return await self.members(tenant_id)

    # --- API keys ----------------------------------------------------------------------------------------------

    async def create_key(self, tenant_id: str, creator: str, held: frozenset[Scope], body: KeyIn) -> KeyCreated:
        """A key with at most the scopes its creator holds; the secret is in this answer only."""
        wanted = frozenset(body.scopes)
        if not wanted <= held:
            missing = sorted(wanted - held)
            raise Forbidden(
                "a key cannot hold a scope its creator does not", details={"code": "scope_not_held", "scopes": missing}
            )
        now = self._clock()
        if body.expires_at is not None and body.expires_at.astimezone(UTC) <= now:
            raise Conflict("expiresAt is in the past", details={"code": "expired", "field": "expiresAt"})
        secret, prefix = credentials.new_api_key()
        key = models.ApiKey(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            created_by=creator,
            name=body.name,
            prefix=prefix,
            secret_hash=credentials.digest(secret),
            scopes=sorted(wanted),
            allowed_addresses=body.allowed_addresses,
            created_at=now,
            expires_at=body.expires_at,
            last_used_at=None,
        )
        async with self._db.unit() as session:
            AccountRepository(session).add(key)
        return KeyCreated(**_key_out(key).model_dump(), secret=secret)

    async def keys(self, tenant_id: str) -> KeyList:
        async with self._db.read() as session:
            rows = await AccountRepository(session).keys(tenant_id)
        return KeyList(keys=[_key_out(key) for key in rows])

    async def revoke_key(self, tenant_id: str, key_id: str) -> None:
        async with self._db.unit() as session:
            key = await AccountRepository(session).key(tenant_id, key_id)
            if key is None or key.revoked_at is not None:
                raise NotFound("key not found", details={"code": "not_found"})
            key.revoked_at = self._clock()
        await self._changed()

    async def identify_key(self, secret: str) -> KeyCaller | None:
        """The key of a secret, or None when it is unknown, revoked or expired (one indexed lookup, or none while
        it is cached)."""
        if not secret.startswith(credentials.KEY_PREFIX):
            return None
        now = self._clock()
        secret_hash = credentials.digest(secret)
        cached = self._keys.get(secret_hash) if self._cache_usable() else None
        if cached is None or time.monotonic() - cached.fetched > CACHE_SECONDS:
            async with self._db.read() as session:
                key = await AccountRepository(session).key_by_hash(secret_hash)
            if key is None or key.revoked_at is not None:
                self._keys.pop(secret_hash, None)
                return None
            cached = _CachedKey(
                caller=KeyCaller(
                    key_id=key.id,
                    tenant_id=key.tenant_id,
                    scopes=frozenset(key.scopes),  # type: ignore[arg-type]
                    allowed=Networks.parse(key.allowed_addresses or []),
                    created_by=key.created_by,
                ),
                expires_at=key.expires_at,
                last_used_at=key.last_used_at,
                fetched=time.monotonic(),
            )
            if self._cache_usable():
                if len(self._keys) >= MAX_CACHED:
                    self._keys.clear()
                self._keys[secret_hash] = cached
        if cached.expires_at is not None and cached.expires_at <= now:
            return None
        if cached.last_used_at is None or now - cached.last_used_at >= TOUCH_EVERY:
            cached.last_used_at = now
            async with self._db.unit() as session:
                await AccountRepository(session).touch_key(cached.caller.key_id, now)
        return cached.caller
