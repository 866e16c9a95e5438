"""Invitations against a real running platform, a real SMTP server and a real database: the mailed single-use token,
what is stored of it, who may invite, list and revoke, expiry and revocation, sign-up with an invitation under each
AUTH_SIGNUP mode, mail that cannot go out, concurrent accepts, and input that is not an invitation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from tests.conftest import Platform, PlatformFactory
from tests.fixtures.smtp import MailServer
from tests.integration.accounts_support import PASSWORD, User, email, new_user, sign_in, sign_up
from tests.ports import free_port
from wopr_platform.accounts.credentials import digest
from wopr_platform.db import models

pytestmark = pytest.mark.slow
ANSWER_FIELDS = {"id", "email", "role", "invitedBy", "createdAt", "expiresAt"}


@pytest.fixture
async def inviting(make_platform: PlatformFactory, smtp: MailServer) -> Platform:
    """A platform that mails through `smtp`, whose first user (the platform admin) exists already, so the users a
    test makes are ordinary ones."""
    platform = await make_platform(FLEET_RATE_LIMIT=0, PLATFORM_URL="https://app.wopr.test", **smtp.settings())
    await sign_up(platform, "root")
    return platform


def _tenant(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}"


def anonymous(platform: Platform) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=platform.url, trust_env=False, timeout=60)


async def _owner(platform: Platform, label: str = "owner") -> tuple[User, str]:
    """A user who owns a fresh tenant, acting for it."""
    tenant = _tenant(label)
    return await new_user(platform, label, tenant), tenant


async def _invite(admin: User, smtp: MailServer, address: str, role: str = "member") -> tuple[dict[str, Any], str]:
    """Invite `address` and read the token from the mail it gets (the invitation's answer and the token)."""
    before = len(smtp.to(address))
    answer = await admin.client.post("/invitations", json={"email": address, "role": role})
    assert answer.status_code == 201, answer.text
    mails = await smtp.wait_for(address, count=before + 1)
    return dict(answer.json()), mails[-1].token()


async def _accept(user: User, token: str) -> httpx.Response:
    return await user.client.post("/invitations/accept", json={"token": token})


async def _pending(admin: User) -> list[dict[str, Any]]:
    listed = await admin.client.get("/invitations")
    assert listed.status_code == 200, listed.text
    return list(listed.json()["invitations"])


async def _members(admin: User) -> dict[str, str]:
    listed = await admin.client.get("/members")
    assert listed.status_code == 200, listed.text
    return {m["email"]: m["role"] for m in listed.json()["members"]}


async def _expire(platform: Platform, invitation_id: str) -> None:
    async with platform.app.state.services.database.unit() as session:
        await session.execute(
            update(models.Invitation)
            .where(models.Invitation.id == invitation_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def _stored(platform: Platform) -> list[models.Invitation]:
    async with platform.app.state.services.database.read() as session:
        return list((await session.scalars(select(models.Invitation))).all())


def _refused(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error", "details"} and body["details"]["code"] == code, body


# --- the mailed token, accepted once --------------------------------------------------------------------------


async def test_an_invited_user_accepts_once_and_is_a_member_with_the_invited_role(
    inviting: Platform, smtp: MailServer
) -> None:
    owner, tenant = await _owner(inviting)
    bo = await new_user(inviting, "bo")  # has an account (and a tenant of their own) already
    other = await new_user(inviting, "other")

    answer = await owner.client.post("/invitations", json={"email": bo.email.upper(), "role": "viewer"})
    assert answer.status_code == 201, answer.text
    invitation = answer.json()
    assert set(invitation) == ANSWER_FIELDS
    assert invitation["email"] == bo.email and invitation["role"] == "viewer"
    assert invitation["invitedBy"] == f"user:{owner.id}"
    created, expires = (datetime.fromisoformat(invitation[k]) for k in ("createdAt", "expiresAt"))
    assert expires - created == timedelta(days=7)  # INVITATION_TTL's default

    [mail] = await smtp.wait_for(bo.email)
    token = mail.token()
    assert mail.message["From"] == "platform@wopr.test"
    # the tenant by its name (a sign-up names it after its owner's email)
    assert mail.message["Subject"] == f"You are invited to {owner.email} on WOPR"
    assert f"tenant {owner.email} on WOPR as viewer" in mail.text and "within 7 days" in mail.text
    assert f"https://app.wopr.test/ui/invitations/accept?token={token}" in mail.text
    assert token not in answer.text
    [stored] = await _stored(inviting)  # only the SHA-256 of the token is stored
    assert stored.token_hash == digest(token) and token not in str(stored.__dict__)

    # another signed-in user (another email) cannot use it, and it stays pending
    _refused(await _accept(other, token), 400, "invalid_invitation")
    assert [i["id"] for i in await _pending(owner)] == [invitation["id"]]

    # the cookie alone is not enough: a page on another site could send it
    forged = await bo.client.post("/invitations/accept", json={"token": token}, headers={"X-CSRF-Token": "forged"})
    _refused(forged, 403, "csrf_failed")

    accepted = await _accept(bo, token)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"tenantId": tenant, "role": "viewer"}
    assert (await _members(owner))[bo.email] == "viewer"
    me = (await bo.client.get("/auth/me")).json()  # the same session sees the new tenant at once
    assert {m["tenantId"]: m["role"] for m in me["tenants"]}[tenant] == "viewer"
    as_viewer = {"X-Tenant-Id": tenant}
    assert (await bo.client.get("/members", headers=as_viewer)).status_code == 200
    _refused(
        await bo.client.post("/invitations", json={"email": email("x"), "role": "viewer"}, headers=as_viewer),
        403,
        "scope_required",
    )

    # it works once, and is no longer pending
    _refused(await _accept(bo, token), 400, "invalid_invitation")
    _refused(await _accept(other, token), 400, "invalid_invitation")
    assert await _pending(owner) == []
    [spent] = await _stored(inviting)
    assert spent.accepted_by == bo.id and spent.accepted_at is not None
    async with anonymous(inviting) as client:  # nor without signing in
        assert (await client.post("/invitations/accept", json={"token": token})).status_code == 401
    for user in (owner, bo, other):
        await user.close()


async def test_expired_and_revoked_invitations_are_refused(inviting: Platform, smtp: MailServer) -> None:
    owner, _ = await _owner(inviting)
    late, gone = await new_user(inviting, "late"), await new_user(inviting, "gone")

    expiring, expiring_token = await _invite(owner, smtp, late.email)
    await _expire(inviting, expiring["id"])
    _refused(await _accept(late, expiring_token), 400, "invalid_invitation")
    assert await _pending(owner) == []
    _refused(await owner.client.delete(f"/invitations/{expiring['id']}"), 404, "not_found")

    revoked, revoked_token = await _invite(owner, smtp, gone.email, "admin")
    assert (await owner.client.delete(f"/invitations/{revoked['id']}")).status_code == 204
    _refused(await _accept(gone, revoked_token), 400, "invalid_invitation")
    assert await _pending(owner) == []
    _refused(await owner.client.delete(f"/invitations/{revoked['id']}"), 404, "not_found")
    assert set(await _members(owner)) == {owner.email}

    # the tenant's audit log names each invitation as what was made and what was revoked
    wanted = {
        ("POST /invitations", expiring["id"], 201),
        ("POST /invitations", revoked["id"], 201),
        ("DELETE /invitations/{invitation_id}", revoked["id"], 204),
    }
    for _ in range(100):
        audit = await owner.client.get("/audit")
        assert audit.status_code == 200, audit.text
        events = audit.json()["events"]
        seen = {(e["action"], e["targetId"], e["status"]) for e in events if e["targetKind"] == "invitation"}
        if wanted <= seen:
            break
        await asyncio.sleep(0.1)
    assert wanted <= seen, events
    assert expiring_token not in audit.text and revoked_token not in audit.text
    for user in (owner, late, gone):
        await user.close()


async def test_the_ttl_setting_sets_when_an_invitation_expires(
    make_platform: PlatformFactory, smtp: MailServer
) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=0, INVITATION_TTL=600, **smtp.settings())
    await sign_up(platform, "root")
    owner, _ = await _owner(platform)
    invitation, _token = await _invite(owner, smtp, email("soon"))
    created, expires = (datetime.fromisoformat(invitation[k]) for k in ("createdAt", "expiresAt"))
    assert expires - created == timedelta(minutes=10)
    assert "within 10 minutes" in smtp.to(invitation["email"])[0].text
    await owner.close()


async def test_inviting_again_revokes_the_earlier_invitation_and_the_list_shows_pending_ones_without_tokens(
    inviting: Platform, smtp: MailServer
) -> None:
    owner, tenant = await _owner(inviting)
    cy = await new_user(inviting, "cy")
    first, first_token = await _invite(owner, smtp, cy.email, "member")
    second, second_token = await _invite(owner, smtp, cy.email, "admin")
    assert first_token != second_token and first["id"] != second["id"]
    newcomer, _ = await _invite(owner, smtp, email("newcomer"), "viewer")
    expired, _ = await _invite(owner, smtp, email("expired"))
    await _expire(inviting, expired["id"])
    revoked, _ = await _invite(owner, smtp, email("revoked"))
    assert (await owner.client.delete(f"/invitations/{revoked['id']}")).status_code == 204

    listed = await owner.client.get("/invitations")
    assert [i["id"] for i in listed.json()["invitations"]] == [second["id"], newcomer["id"]]
    assert all(set(i) == ANSWER_FIELDS for i in listed.json()["invitations"])
    assert first_token not in listed.text and second_token not in listed.text

    _refused(await _accept(cy, first_token), 400, "invalid_invitation")
    accepted = await _accept(cy, second_token)
    assert accepted.status_code == 200 and accepted.json() == {"tenantId": tenant, "role": "admin"}
    assert [i["id"] for i in await _pending(owner)] == [newcomer["id"]]
    # the new admin sees and manages the same invitations
    cy.client.headers["X-Tenant-Id"] = tenant
    assert [i["id"] for i in await _pending(cy)] == [newcomer["id"]]
    for user in (owner, cy):
        await user.close()


async def test_concurrent_invitations_to_one_email_leave_one_pending(inviting: Platform, smtp: MailServer) -> None:
    owner, _ = await _owner(inviting)
    address = email("popular")
    answers = await asyncio.gather(
        *(owner.client.post("/invitations", json={"email": address, "role": "viewer"}) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    await smtp.wait_for(address, count=4)
    assert len(await _pending(owner)) == 1
    await owner.close()


async def test_a_member_cannot_be_invited_and_no_one_invites_an_owner(inviting: Platform, smtp: MailServer) -> None:
    owner, tenant = await _owner(inviting)
    dee = await new_user(inviting, "dee")
    assert (await owner.client.post("/members", json={"email": dee.email, "role": "member"})).status_code == 201
    for address in (dee.email, dee.email.upper(), owner.email):
        _refused(
            await owner.client.post("/invitations", json={"email": address, "role": "admin"}), 409, "member_exists"
        )

    admin = await new_user(inviting, "admin")
    assert (await owner.client.post("/members", json={"email": admin.email, "role": "admin"})).status_code == 201
    admin.client.headers["X-Tenant-Id"] = tenant
    target = email("would-be-owner")
    # the owner is made by creating a tenant or transferring it: not by the owner, an admin or the operator
    for caller, headers in ((owner, {}), (admin, {}), (inviting, {"X-Tenant-Id": tenant})):
        answer = await caller.client.post("/invitations", json={"email": target, "role": "owner"}, headers=headers)
        _refused(answer, 400, "validation_failed")
        assert answer.json()["details"]["errors"][0]["field"] == "role"
    assert smtp.to(dee.email) == smtp.to(owner.email) == smtp.to(target) == []
    assert await _stored(inviting) == []
    for user in (owner, dee, admin):
        await user.close()


# --- who may invite, list and revoke -------------------------------------------------------------------------


async def test_only_the_tenants_admins_invite_list_and_revoke(inviting: Platform, smtp: MailServer) -> None:
    owner, tenant = await _owner(inviting)
    pending, _ = await _invite(owner, smtp, email("pending"))
    callers: dict[str, User] = {}
    for role in ("admin", "member", "viewer"):
        user = await new_user(inviting, role)
        assert (await owner.client.post("/members", json={"email": user.email, "role": role})).status_code == 201
        user.client.headers["X-Tenant-Id"] = tenant
        callers[role] = user
    stranger, stranger_tenant = await _owner(inviting, "stranger")

    for role in ("member", "viewer"):
        client = callers[role].client
        _refused(await client.post("/invitations", json={"email": email("x"), "role": "viewer"}), 403, "scope_required")
        _refused(await client.get("/invitations"), 403, "scope_required")
        _refused(await client.delete(f"/invitations/{pending['id']}"), 403, "scope_required")

    # another tenant's admin: this tenant does not exist for them, and their own has no such invitation
    here = {"X-Tenant-Id": tenant}
    _refused(await stranger.client.get("/invitations", headers=here), 404, "tenant_not_found")
    _refused(await stranger.client.delete(f"/invitations/{pending['id']}", headers=here), 404, "tenant_not_found")
    _refused(
        await stranger.client.post("/invitations", json={"email": email("y"), "role": "viewer"}, headers=here),
        404,
        "tenant_not_found",
    )
    assert stranger.client.headers.get("X-Tenant-Id") == stranger_tenant
    assert await _pending(stranger) == []
    _refused(await stranger.client.delete(f"/invitations/{pending['id']}"), 404, "not_found")

    # the invitation came through all of it untouched, and an admin of the tenant may revoke it
    assert [i["id"] for i in await _pending(callers["admin"])] == [pending["id"]]
    assert (await callers["admin"].client.delete(f"/invitations/{pending['id']}")).status_code == 204
    assert await _pending(owner) == []
    for user in (owner, stranger, *callers.values()):
        await user.close()


async def test_the_operator_invites_for_the_tenant_it_names(inviting: Platform, smtp: MailServer) -> None:
    owner, tenant = await _owner(inviting)
    eve = await new_user(inviting, "eve")
    answer = await inviting.client.post(
        "/invitations", json={"email": eve.email, "role": "member"}, headers={"X-Tenant-Id": tenant}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["invitedBy"] == "operator"
    [mail] = await smtp.wait_for(eve.email)
    assert (await _accept(eve, mail.token())).json() == {"tenantId": tenant, "role": "member"}
    assert (await _members(owner))[eve.email] == "member"
    for user in (owner, eve):
        await user.close()


# --- sign-up with an invitation ----------------------------------------------------------------------------


async def test_under_invite_only_sign_up_an_invitation_is_the_way_in(
    make_platform: PlatformFactory, smtp: MailServer
) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=0, AUTH_SIGNUP="invite", **smtp.settings())
    root = await new_user(platform, "root")  # the first user may always sign up: the platform admin
    tenant = _tenant("team")
    made = await root.client.post("/tenants", json={"id": tenant, "name": "The Team"})
    assert made.status_code == 201, made.text
    root.client.headers["X-Tenant-Id"] = tenant
    newcomer, stranger = email("newcomer"), email("stranger")
    invitation, token = await _invite(root, smtp, newcomer, "member")
    assert "The Team" in smtp.to(newcomer)[0].message["Subject"]

    async with anonymous(platform) as client:
        _refused(
            await client.post("/auth/signup", json={"email": stranger, "password": PASSWORD}), 403, "signup_closed"
        )
        # the token is for the invited email only, and joins the inviting tenant: no tenant of one's own
        _refused(
            await client.post("/auth/signup", json={"email": stranger, "password": PASSWORD, "invitation": token}),
            400,
            "invalid_invitation",
        )
        _refused(
            await client.post(
                "/auth/signup",
                json={"email": newcomer, "password": PASSWORD, "invitation": token, "tenantId": _tenant("own")},
            ),
            400,
            "invitation_with_tenant",
        )
        _refused(
            await client.post("/auth/signup", json={"email": newcomer, "password": PASSWORD, "invitation": "nope"}),
            400,
            "invalid_invitation",
        )
        assert [i["id"] for i in await _pending(root)] == [invitation["id"]]

        joined = await client.post(
            "/auth/signup", json={"email": newcomer.upper(), "password": PASSWORD, "invitation": token}
        )
        assert joined.status_code == 202, joined.text
        # spent: neither a second sign-up nor a signed-in accept can use it again
        again = await client.post(
            "/auth/signup", json={"email": newcomer, "password": "another long password", "invitation": token}
        )
        _refused(again, 400, "invalid_invitation")
    user = await sign_in(platform, newcomer)
    assert user.tenants == {tenant: "member"}
    _refused(await _accept(user, token), 400, "invalid_invitation")
    assert (await _members(root))[newcomer] == "member"
    assert await _pending(root) == []
    [spent] = await _stored(platform)
    assert spent.accepted_by == user.id
    async with platform.app.state.services.database.read() as session:
        users = (await session.scalars(select(models.User).where(models.User.email == stranger))).all()
    assert users == []

    # someone who has an account already: sign-up answers as always, and the invitation waits to be accepted
    other = _tenant("other")
    assert (await root.client.post("/tenants", json={"id": other, "name": "Other"})).status_code == 201
    root.client.headers["X-Tenant-Id"] = other
    known, known_token = await _invite(root, smtp, newcomer, "viewer")
    async with anonymous(platform) as client:
        answer = await client.post(
            "/auth/signup", json={"email": newcomer, "password": "another long password", "invitation": known_token}
        )
    assert answer.status_code == 202
    assert [i["id"] for i in await _pending(root)] == [known["id"]]
    assert (await _accept(user, known_token)).json() == {"tenantId": other, "role": "viewer"}
    for each in (root, user):
        await each.close()


async def test_with_sign_up_off_an_invitation_is_accepted_only_by_someone_who_has_an_account(
    make_platform: PlatformFactory, smtp: MailServer
) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=0, AUTH_SIGNUP="off", **smtp.settings())
    root = await new_user(platform, "root")  # the first user may always sign up
    newcomer = email("newcomer")
    async with anonymous(platform) as client:
        _refused(
            await client.post("/auth/signup", json={"email": newcomer, "password": PASSWORD}), 403, "signup_closed"
        )
    # the operator invites the platform admin into `default`, and someone without an account into it too
    operator = {"X-Tenant-Id": "default"}
    for address in (root.email, newcomer):
        answer = await platform.client.post("/invitations", json={"email": address, "role": "admin"}, headers=operator)
        assert answer.status_code == 201, answer.text
    [to_newcomer] = await smtp.wait_for(newcomer)
    async with anonymous(platform) as client:
        closed = await client.post(
            "/auth/signup", json={"email": newcomer, "password": PASSWORD, "invitation": to_newcomer.token()}
        )
    _refused(closed, 403, "signup_closed")
    [to_root] = await smtp.wait_for(root.email)
    accepted = await _accept(root, to_root.token())
    assert accepted.status_code == 200 and accepted.json() == {"tenantId": "default", "role": "admin"}
    listed = await platform.client.get("/invitations", headers=operator)
    assert [i["email"] for i in listed.json()["invitations"]] == [newcomer]
    await root.close()


# --- mail that cannot go out ---------------------------------------------------------------------------------


class _Switchable:
    """An SMTP server a test can stop and start again on the same port."""

    def __init__(self) -> None:
        self.mail = MailServer(host="127.0.0.1", port=free_port())
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.mail, hostname=self.mail.host, port=self.mail.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def switchable() -> Iterator[_Switchable]:
    server = _Switchable()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_when_the_mail_server_is_down_the_answer_is_503_and_no_invitation_is_left_pending(
    make_platform: PlatformFactory, switchable: _Switchable
) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=0, SMTP_TIMEOUT=5, **switchable.mail.settings())
    await sign_up(platform, "root")
    owner, _ = await _owner(platform)
    fay = await new_user(platform, "fay")
    earlier, earlier_token = await _invite(owner, switchable.mail, fay.email, "viewer")

    switchable.stop()
    for address in (email("nobody"), fay.email):  # a new email, and again to one already invited
        answer = await owner.client.post("/invitations", json={"email": address, "role": "member"})
        _refused(answer, 503, "mail_unavailable")
    # nothing was mailed, so nothing new is pending; the invitation mailed before still stands
    assert [i["id"] for i in await _pending(owner)] == [earlier["id"]]
    stored = await _stored(platform)
    assert len(stored) == 3 and all(r.revoked_at is not None for r in stored if r.id != earlier["id"])

    switchable.start()
    accepted = await _accept(fay, earlier_token)
    assert accepted.status_code == 200 and accepted.json()["role"] == "viewer"
    for user in (owner, fay):
        await user.close()


async def test_a_mail_server_nobody_listens_on_is_503_and_leaves_nothing_pending(
    make_platform: PlatformFactory,
) -> None:
    platform = await make_platform(
        FLEET_RATE_LIMIT=0, SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(), SMTP_TLS="off", SMTP_TIMEOUT=5
    )
    await sign_up(platform, "root")
    owner, _ = await _owner(platform)
    _refused(
        await owner.client.post("/invitations", json={"email": email("x"), "role": "member"}), 503, "mail_unavailable"
    )
    assert await _pending(owner) == []
    assert all(r.revoked_at is not None for r in await _stored(platform))
    await owner.close()


async def test_without_smtp_inviting_is_503_and_stores_nothing(make_platform: PlatformFactory) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=0)
    await sign_up(platform, "root")
    owner, _ = await _owner(platform)
    _refused(
        await owner.client.post("/invitations", json={"email": email("x"), "role": "member"}), 503, "mail_unavailable"
    )
    assert await _pending(owner) == [] and await _stored(platform) == []
    await owner.close()


# --- concurrency and bad input ------------------------------------------------------------------------------


async def test_concurrent_accepts_of_one_token_make_one_membership(inviting: Platform, smtp: MailServer) -> None:
    owner, tenant = await _owner(inviting)
    gil = await new_user(inviting, "gil")
    _, token = await _invite(owner, smtp, gil.email, "member")
    answers = await asyncio.gather(*(_accept(gil, token) for _ in range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) == 1, [a.text for a in answers]
    for answer in answers:
        if answer.status_code != 200:
            assert answer.status_code in (400, 409), answer.text
            assert answer.json()["details"]["code"] in ("invalid_invitation", "member_exists")
    assert await _members(owner) == {owner.email: "owner", gil.email: "member"}
    async with inviting.app.state.services.database.read() as session:
        rows = (
            await session.scalars(
                select(models.Membership).where(
                    models.Membership.tenant_id == tenant, models.Membership.user_id == gil.id
                )
            )
        ).all()
    assert len(rows) == 1
    for user in (owner, gil):
        await user.close()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"token": ""},
        {"token": None},
        {"token": 12345},
        {"token": ["a"]},
        {"token": "a" * 101},
        {"token": "../../etc/passwd"},
        {"token": "tök"},
        {"token": "a b"},
        {"token": "abc\u0000"},
        {"token": "abc", "extra": True},
        [],
        "token",
    ],
)
async def test_a_malformed_accept_is_a_400(inviting: Platform, body: Any) -> None:
    user = await new_user(inviting, "garbage")
    answer = await user.client.post("/invitations/accept", json=body)
    _refused(answer, 400, "validation_failed")
    await user.close()


async def test_garbage_tokens_ids_and_bodies_are_clean_4xx(inviting: Platform) -> None:
    owner, _ = await _owner(inviting)
    # well-formed tokens no invitation has
    for token in ("nope", "A" * 100, "-_-", digest("x")):
        _refused(await _accept(owner, token), 400, "invalid_invitation")
    for raw in (b"{", b"\xff\xfe", b"null", b'{"token": "a"'):
        answer = await owner.client.post(
            "/invitations/accept", content=raw, headers={"content-type": "application/json"}
        )
        assert 400 <= answer.status_code < 500 and set(answer.json()) == {"error", "details"}, answer.text
    for invitation_id in (str(uuid.uuid4()), "nope", "1", "%00", "..%2F..", "a" * 300, str(uuid.uuid4()).upper()):
        answer = await owner.client.delete(f"/invitations/{invitation_id}")
        assert answer.status_code == 404 and set(answer.json()) == {"error", "details"}, answer.text
    for body in (
        {"email": "not-an-email", "role": "member"},
        {"email": email("x"), "role": "superuser"},
        {"email": email("x")},
        {"role": "member"},
        {"email": email("x"), "role": "member", "tenantId": "other"},
        {"email": ["a@b.test"], "role": "member"},
        {"email": "a\r\nBcc: b@evil.test", "role": "member"},
    ):
        _refused(await owner.client.post("/invitations", json=body), 400, "validation_failed")
    assert await _stored(inviting) == []
    await owner.close()
