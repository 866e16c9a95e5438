"""Password reset against a real running platform, a real SMTP server and a real database: the mailed single-use
token, what is stored of it, expiry, sessions ended, no account enumeration, throttling, and mail switched off."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from tests.conftest import Platform, PlatformFactory
from tests.fixtures.smtp import MailServer
from tests.integration.accounts_support import PASSWORD, email, new_user, sign_in, sign_up
from wopr_platform.accounts.credentials import digest
from wopr_platform.db import models

pytestmark = pytest.mark.slow
NEW_PASSWORD = "a brand new password for reset"


@pytest.fixture
async def mailing(make_platform: PlatformFactory, smtp: MailServer) -> Platform:
    platform = await make_platform(FLEET_RATE_LIMIT=0, PLATFORM_URL="https://app.wopr.test", **smtp.settings())
    await sign_up(platform, "root")
    return platform


def anonymous(platform: Platform) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=platform.url, trust_env=False, timeout=60)


async def test_a_mailed_token_sets_the_password_once_and_ends_every_session(
    mailing: Platform, smtp: MailServer
) -> None:
    user = await new_user(mailing, "forgetful")
    other_browser = await sign_in(mailing, user.email)
    async with anonymous(mailing) as client:
        asked = await client.post("/auth/password-reset", json={"email": user.email.upper()})
        assert asked.status_code == 202, asked.text
        [mail] = await smtp.wait_for(user.email)
        assert mail.message["From"] == "platform@wopr.test"
        assert f"https://app.wopr.test/ui/reset-password?token={mail.token()}" in mail.text
        token = mail.token()
        # only the SHA-256 of the token is stored
        async with mailing.app.state.services.database.read() as session:
            stored = (await session.scalars(select(models.PasswordReset))).all()
        assert [row.token_hash for row in stored] == [digest(token)] and token not in str(stored[0].__dict__)

        done = await client.post("/auth/password-reset/confirm", json={"token": token, "newPassword": NEW_PASSWORD})
        assert done.status_code == 204, done.text
        again = await client.post("/auth/password-reset/confirm", json={"token": token, "newPassword": PASSWORD})
        assert again.status_code == 400 and again.json()["details"]["code"] == "invalid_token"
        old = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
        assert old.status_code == 401
    for browser in (user, other_browser):  # every session made before the reset has ended
        ended = await browser.client.get("/auth/me")
        assert ended.status_code == 401 and ended.json()["details"]["code"] == "session_expired"
    fresh = await sign_in(mailing, user.email, NEW_PASSWORD)
    assert (await fresh.client.get("/auth/me")).status_code == 200
    for each in (user, other_browser, fresh):
        await each.close()


async def test_the_answer_is_the_same_for_an_unknown_email_and_no_mail_goes_out(
    mailing: Platform, smtp: MailServer
) -> None:
    known = await sign_up(mailing, "known")
    unknown = email("unknown")
    async with anonymous(mailing) as client:
        for_unknown = await client.post("/auth/password-reset", json={"email": unknown})
        for_known = await client.post("/auth/password-reset", json={"email": known})
    assert for_unknown.status_code == for_known.status_code == 202
    assert for_unknown.json() == for_known.json()
    await smtp.wait_for(known)
    await asyncio.sleep(0.5)  # the unknown address's background lookup had as long, and sent nothing
    assert smtp.to(unknown) == []
    async with mailing.app.state.services.database.read() as session:
        assert len((await session.scalars(select(models.PasswordReset))).all()) == 1


async def test_an_expired_token_is_refused_and_a_used_one_voids_the_others(mailing: Platform, smtp: MailServer) -> None:
    address = await sign_up(mailing, "twice")
    async with anonymous(mailing) as client:
        for _ in range(3):
            assert (await client.post("/auth/password-reset", json={"email": address})).status_code == 202
        first, second, third = [m.token() for m in await smtp.wait_for(address, count=3)]
        async with mailing.app.state.services.database.unit() as session:
            await session.execute(
                update(models.PasswordReset)
                .where(models.PasswordReset.token_hash == digest(first))
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        expired = await client.post("/auth/password-reset/confirm", json={"token": first, "newPassword": NEW_PASSWORD})
        assert expired.status_code == 400 and expired.json()["details"]["code"] == "invalid_token"
        used = await client.post("/auth/password-reset/confirm", json={"token": second, "newPassword": NEW_PASSWORD})
        assert used.status_code == 204
        voided = await client.post("/auth/password-reset/confirm", json={"token": third, "newPassword": PASSWORD})
        assert voided.status_code == 400 and voided.json()["details"]["code"] == "invalid_token"
        bad = await client.post("/auth/password-reset/confirm", json={"token": "nope", "newPassword": PASSWORD})
        assert bad.status_code == 400 and bad.json()["details"]["code"] == "invalid_token"
    await (await sign_in(mailing, address, NEW_PASSWORD)).close()


async def test_reset_requests_are_throttled_per_email_and_per_address(mailing: Platform, smtp: MailServer) -> None:
    target = await sign_up(mailing, "target")
    async with anonymous(mailing) as client:
        answers = [(await client.post("/auth/password-reset", json={"email": target})).status_code for _ in range(4)]
        assert answers == [202, 202, 202, 429]
        throttled = await client.post("/auth/password-reset", json={"email": target})
        assert throttled.json()["details"]["code"] == "reset_throttled"
        assert throttled.json()["details"]["retryAfter"] >= 1
        # other emails from the same address: up to the address's allowance (10, three spent above)
        others = [
            (await client.post("/auth/password-reset", json={"email": email(f"o{i}")})).status_code for i in range(8)
        ]
        assert others == [202] * 7 + [429]
    assert len(await smtp.wait_for(target, count=3)) == 3


async def test_without_smtp_the_reset_answers_503_for_every_email(make_platform: PlatformFactory) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=0)
    known = await sign_up(platform, "known")
    async with anonymous(platform) as client:
        for address in (known, email("unknown")):
            answer = await client.post("/auth/password-reset", json={"email": address})
            assert answer.status_code == 503 and answer.json()["details"]["code"] == "mail_unavailable"
