"""Invitations: a tenant's admin invites an email with a role; the mailed single-use token joins the tenant, accepted
signed in or used to sign up. The token is stored only as its SHA-256."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.exc import IntegrityError

from wopr_platform.accounts import credentials, mails
from wopr_platform.accounts.policy import AccountSettings, Changed, Clock, now, require_mailer
from wopr_platform.accounts.repository import AccountRepository
from wopr_platform.accounts.schemas import InvitationIn, InvitationList, InvitationOut, Membership
from wopr_platform.core.errors import Conflict, MailUnavailable, NotFound, ValidationFailed
from wopr_platform.db import models
from wopr_platform.db.unit import Database
from wopr_platform.mail.smtp import Mailer

log = logging.getLogger(__name__)


def invalid_invitation() -> ValidationFailed:
    return ValidationFailed(
        "this invitation is unknown, used, revoked, expired or for another email",
        details={"code": "invalid_invitation"},
    )


def _out(row: models.Invitation) -> InvitationOut:
    return InvitationOut(
        id=row.id,
        email=row.email,
        role=row.role,
        invited_by=row.invited_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


class Invitations:
    """Inviting, listing and revoking a tenant's invitations, and accepting one."""

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

    async def invite(self, tenant_id: str, inviter: str, body: InvitationIn) -> InvitationOut:
        """Mail a single-use invitation to join the tenant with a role; once it is mailed, an earlier pending one to
        the same email is revoked. When the mail is not accepted by the server the new invitation is revoked instead
        (the earlier one stands), and the answer is 503."""
        mailer = require_mailer(self._mailer)
        email = body.email.lower()
        token = credentials.new_token()
        now = self._clock()
        row = models.Invitation(
            id=str(uuid.uuid4()),
            token_hash=credentials.digest(token),
            tenant_id=tenant_id,
            email=email,
            role=body.role,
            invited_by=inviter,
            created_at=now,
            expires_at=now + self._settings.invitation_ttl,
        )
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            user = await repo.user_by_email(email)
            if user is not None and await repo.membership(tenant_id, user.id) is not None:
                raise Conflict("already a member", details={"code": "member_exists"})
            tenant = await repo.tenant(tenant_id)
            repo.add(row)
        ttl = self._settings.invitation_ttl
        name = tenant.name if tenant is not None else tenant_id
        subject, text = mails.invitation(self._settings.platform_url, token, name, body.role, ttl)
        try:
            await mailer.send(email, subject, text)
        except MailUnavailable:
            async with self._db.unit() as session:
                await AccountRepository(session).revoke_invitation(row.id, self._clock())
            raise
        # only once the new one is mailed: an invitation that could not be sent leaves the earlier one standing
        async with self._db.unit() as session:
            await AccountRepository(session).revoke_invitations_to(tenant_id, email, before=row, at=self._clock())
        log.info("invitation mailed", extra={"tenant": tenant_id, "invitation": row.id})
        return _out(row)

    async def pending(self, tenant_id: str) -> InvitationList:
        async with self._db.read() as session:
            rows = await AccountRepository(session).pending_invitations(tenant_id, self._clock())
        return InvitationList(invitations=[_out(row) for row in rows])

    async def revoke(self, tenant_id: str, invitation_id: str) -> None:
        now = self._clock()
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            row = await repo.invitation(tenant_id, invitation_id)
            if row is None or row.accepted_at is not None or row.revoked_at is not None or row.expires_at <= now:
                raise NotFound("invitation not found", details={"code": "not_found"})
            await repo.revoke_invitation(row.id, now)

    async def accept(self, user_id: str, token: str) -> Membership:
        """Join the inviting tenant with the invitation's role (the signed-in user's email must be the invited one)."""
        now = self._clock()
        async with self._db.unit() as session:
            repo = AccountRepository(session)
            user = await repo.user(user_id)
            invitation = await repo.pending_invitation(credentials.digest(token), now)
            if user is None or invitation is None or not credentials.same(invitation.email, user.email):
                raise invalid_invitation()
            if await repo.membership(invitation.tenant_id, user_id) is not None:
                raise Conflict("already a member", details={"code": "member_exists"})
            if not await repo.spend_invitation(invitation.id, user_id, now):
                raise invalid_invitation()
            repo.add(
                models.Membership(tenant_id=invitation.tenant_id, user_id=user_id, role=invitation.role, created_at=now)
            )
            try:
                await repo.flush()
            except IntegrityError:
                raise Conflict("already a member", details={"code": "member_exists"}) from None
        await self._changed()
        log.info("invitation accepted", extra={"tenant": invitation.tenant_id, "user": user_id})
        return Membership(tenant_id=invitation.tenant_id, role=invitation.role)
