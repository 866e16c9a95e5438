"""All SQL about users, sessions, second factors, tenants, memberships and API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.db.models import (
    ApiKey,
    Invitation,
    Membership,
    PasswordReset,
    RecoveryCode,
    Session,
    Tenant,
    User,
)


class AccountRepository:
    """Reads and writes of one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # users

    async def user_by_email(self, email: str) -> User | None:
        return (await self._session.scalars(select(User).where(User.email == email))).first()

    async def user(self, user_id: str, *, lock: bool = False) -> User | None:
        """The user; with `lock`, their row is held until the end of the unit (changes to how they sign in)."""
        return await self._session.get(User, user_id, with_for_update=lock)

    async def any_user(self) -> bool:
        """Whether there is a user at all (one row read, however many there are)."""
        return (await self._session.scalar(select(User.id).limit(1))) is not None

    def add(
        self, row: User | Session | Tenant | Membership | ApiKey | PasswordReset | Invitation | RecoveryCode
    ) -> None:
        self._session.add(row)

    async def flush(self) -> None:
        await self._session.flush()

    # sessions

    async def session_with_user(self, token_hash: str) -> tuple[Session, User, list[Membership]] | None:
        """The session of a token, its user and the user's memberships, in one query."""
        rows = (
            await self._session.execute(
                select(Session, User, Membership)
                .join(User, User.id == Session.user_id)
                .outerjoin(Membership, Membership.user_id == User.id)
                .where(Session.token_hash == token_hash, Session.revoked_at.is_(None))
            )
        ).all()
        if not rows:
            return None
        session, user = rows[0][0], rows[0][1]
        return session, user, [row[2] for row in rows if row[2] is not None]

    async def touch_session(self, session_id: str, at: datetime) -> None:
        await self._session.execute(update(Session).where(Session.id == session_id).values(last_seen_at=at))

    async def revoke_session(self, session_id: str, at: datetime) -> None:
        await self._session.execute(
            update(Session).where(Session.id == session_id, Session.revoked_at.is_(None)).values(revoked_at=at)
        )

    async def revoke_sessions_of(self, user_id: str, at: datetime) -> None:
        await self._session.execute(
            update(Session).where(Session.user_id == user_id, Session.revoked_at.is_(None)).values(revoked_at=at)
        )

    async def end_every_session(self, user: User, at: datetime) -> None:
        """After a change of credentials: every session of the user is revoked, and none made before `at` counts
        (a cached one included)."""
        user.sessions_valid_after = at
        await self.revoke_sessions_of(user.id, at)

    # second factor

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        """Record `step` as the user's last used time step, in one statement: False when it, or a later one, was
        used already (a replayed code, or the same code sent twice at once)."""
        used = await self._session.scalar(
            update(User)
            .where(User.id == user_id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
            .values(totp_last_step=step)
            .returning(User.id)
        )
        return used is not None

    async def set_totp_secret(self, user_id: str, sealed: str) -> None:
        await self._session.execute(update(User).where(User.id == user_id).values(totp_secret=sealed))

    async def spend_recovery_code(self, user_id: str, code_hash: str, at: datetime) -> bool:
        """Use an unused recovery code of the user, in one statement (a second use finds nothing)."""
        spent = await self._session.scalar(
            update(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.code_hash == code_hash, RecoveryCode.used_at.is_(None))
            .values(used_at=at)
            .returning(RecoveryCode.id)
        )
        return spent is not None

    async def remove_recovery_codes(self, user_id: str) -> None:
        await self._session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))

    # tenants and members

    async def tenant(self, tenant_id: str) -> Tenant | None:
        return await self._session.get(Tenant, tenant_id)

    async def tenants_of(self, user_id: str) -> Sequence[tuple[Tenant, Membership]]:
        rows = await self._session.execute(
            select(Tenant, Membership)
            .join(Membership, Membership.tenant_id == Tenant.id)
            .where(Membership.user_id == user_id)
            .order_by(Tenant.id)
        )
        return [(row[0], row[1]) for row in rows.all()]

    async def all_tenants(self, limit: int) -> Sequence[Tenant]:
        return (await self._session.scalars(select(Tenant).order_by(Tenant.id).limit(limit))).all()

    async def membership(self, tenant_id: str, user_id: str) -> Membership | None:
        return await self._session.get(Membership, (tenant_id, user_id))

    async def members(self, tenant_id: str) -> Sequence[tuple[Membership, User]]:
        rows = await self._session.execute(
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == tenant_id)
            .order_by(Membership.created_at, User.email)
        )
        return [(row[0], row[1]) for row in rows.all()]

    async def remove_member(self, tenant_id: str, user_id: str) -> None:
        await self._session.execute(
            delete(Membership).where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
        )

    # API keys

    async def key_by_hash(self, secret_hash: str) -> ApiKey | None:
        return (await self._session.scalars(select(ApiKey).where(ApiKey.secret_hash == secret_hash))).first()

    async def keys(self, tenant_id: str) -> Sequence[ApiKey]:
        return (
            await self._session.scalars(
                select(ApiKey)
                .where(ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))
                .order_by(ApiKey.created_at)
            )
        ).all()

    async def key(self, tenant_id: str, key_id: str) -> ApiKey | None:
        key = await self._session.get(ApiKey, key_id)
        return key if key is not None and key.tenant_id == tenant_id else None

    async def touch_key(self, key_id: str, at: datetime) -> None:
        await self._session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=at))

    async def revoke_keys_by(self, tenant_id: str, user_id: str, at: datetime) -> None:
        await self._session.execute(
            update(ApiKey)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.created_by == user_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    # password resets

    async def use_reset(self, token_hash: str, at: datetime) -> str | None:
        """Spend a reset token that is unused and unexpired, in one statement (a second use finds nothing): its
        user's id, or None."""
        return await self._session.scalar(
            update(PasswordReset)
            .where(
                PasswordReset.token_hash == token_hash, PasswordReset.used_at.is_(None), PasswordReset.expires_at > at
            )
            .values(used_at=at)
            .returning(PasswordReset.user_id)
        )

    async def void_resets_of(self, user_id: str, at: datetime) -> None:
        await self._session.execute(
            update(PasswordReset)
            .where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None))
            .values(used_at=at)
        )

    # invitations

    @staticmethod
    def _pending(at: datetime) -> tuple[Any, ...]:
        return (Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None), Invitation.expires_at > at)

    async def pending_invitation(self, token_hash: str, at: datetime) -> Invitation | None:
        return (
            await self._session.scalars(
                select(Invitation).where(Invitation.token_hash == token_hash, *self._pending(at))
            )
        ).first()

    async def pending_invitations(self, tenant_id: str, at: datetime) -> Sequence[Invitation]:
        return (
            await self._session.scalars(
                select(Invitation)
                .where(Invitation.tenant_id == tenant_id, *self._pending(at))
                .order_by(Invitation.created_at)
            )
        ).all()

    async def invitation(self, tenant_id: str, invitation_id: str) -> Invitation | None:
        found = await self._session.get(Invitation, invitation_id)
        return found if found is not None and found.tenant_id == tenant_id else None

    async def spend_invitation(self, invitation_id: str, user_id: str, at: datetime) -> bool:
        """Accept a pending invitation in one statement: False when it was accepted, revoked or expired meanwhile."""
        spent = await self._session.scalar(
            update(Invitation)
            .where(Invitation.id == invitation_id, *self._pending(at))
            .values(accepted_at=at, accepted_by=user_id)
            .returning(Invitation.id)
        )
        return spent is not None

    async def revoke_invitations_to(self, tenant_id: str, email: str, *, before: Invitation, at: datetime) -> None:
        """Revoke the pending invitations to `email` made before `before` (by time, then id): of invitations made
        concurrently, the latest stays."""
        await self._session.execute(
            update(Invitation)
            .where(
                Invitation.tenant_id == tenant_id,
                Invitation.email == email,
                or_(
                    Invitation.created_at < before.created_at,
                    and_(Invitation.created_at == before.created_at, Invitation.id < before.id),
                ),
                *self._pending(at),
            )
            .values(revoked_at=at)
        )

    async def revoke_invitation(self, invitation_id: str, at: datetime) -> None:
        await self._session.execute(update(Invitation).where(Invitation.id == invitation_id).values(revoked_at=at))
