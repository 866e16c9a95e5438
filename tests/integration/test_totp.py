"""The second factor against a real running platform and database: setting it up and confirming it, sign-in with a
TOTP code or a recovery code (each accepted once), the throttle, recovery codes made again, turning it off, the
sessions that end, what is stored, and input that is refused cleanly."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import text

from tests.conftest import Platform, PlatformFactory
from tests.integration.accounts_support import PASSWORD, User, new_user, sign_in, sign_up
from wopr_platform.accounts.credentials import digest

pytestmark = pytest.mark.slow


@pytest.fixture
async def accounts(make_platform: PlatformFactory) -> Platform:
    """A platform without API rate limits whose platform admin exists, so the users a test makes are ordinary."""
    platform = await make_platform(FLEET_RATE_LIMIT=0)
    await sign_up(platform, "root")
    return platform


async def _rows(platform: Platform, sql: str, **params: object) -> list[tuple[object, ...]]:
    async with platform.app.state.services.database.read() as session:
        return [tuple(row) for row in (await session.execute(text(sql), params)).all()]


def _at(secret: str, steps_ahead: int = 0) -> str:
    """The code of the current time step, or of one a little later (within the accepted drift)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


async def _login(platform: Platform, address: str, **fields: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as anonymous:
        return await anonymous.post("/auth/login", json={"email": address, "password": PASSWORD, **fields})


async def _enable(user: User) -> tuple[str, list[str]]:
    """Set up and confirm the second factor: its secret and recovery codes (the user's client gets the new session)."""
    secret, codes, _ = await _enable_with(user)
    return secret, codes


async def _enable_with(user: User) -> tuple[str, list[str], str]:
    """As `_enable`, and the code that confirmed it (the time step may have moved on since)."""
    begun = await user.client.post("/auth/totp", json={"password": PASSWORD})
    assert begun.status_code == 200, begun.text
    secret = begun.json()["secret"]
    code = _at(secret)
    confirmed = await user.client.post("/auth/totp/confirm", json={"code": code})
    assert confirmed.status_code == 200, confirmed.text
    user.client.headers["X-CSRF-Token"] = confirmed.json()["csrfToken"]
    return secret, confirmed.json()["recoveryCodes"], code


def _refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["details"]["code"] == code, response.text


async def test_setting_up_shows_the_secret_once_and_a_code_turns_it_on(accounts: Platform) -> None:
    user = await new_user(accounts, "enrol")
    assert (await user.client.get("/auth/me")).json()["totp"] is False
    _refused(await user.client.post("/auth/totp/confirm", json={"code": "123456"}), 409, "totp_not_pending")
    _refused(await user.client.post("/auth/totp", json={"password": "not the password"}), 401, "invalid_credentials")

    begun = await user.client.post("/auth/totp", json={"password": PASSWORD})
    assert begun.status_code == 200, begun.text
    secret, uri = begun.json()["secret"], begun.json()["uri"]
    parsed = pyotp.parse_uri(uri)
    assert uri.startswith("otpauth://totp/") and "issuer=WOPR" in uri
    assert parsed.secret == secret and parsed.name == user.email
    # pending: sign-in does not ask for a code yet, and a wrong code does not turn it on
    assert (await _login(accounts, user.email)).status_code == 200
    wrong = str((int(_at(secret)) + 1) % 1_000_000).zfill(6)
    _refused(await user.client.post("/auth/totp/confirm", json={"code": wrong}), 400, "invalid_code")

    confirmed = await user.client.post("/auth/totp/confirm", json={"code": _at(secret)})
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["user"]["totp"] is True and set(body) == {"user", "csrfToken", "expiresAt", "recoveryCodes"}
    codes = body["recoveryCodes"]
    assert len(codes) == 10 == len(set(codes))
    user.client.headers["X-CSRF-Token"] = body["csrfToken"]
    assert (await user.client.get("/auth/me")).json()["totp"] is True
    _refused(await user.client.post("/auth/totp", json={"password": PASSWORD}), 409, "totp_enabled")
    _refused(await user.client.post("/auth/totp/confirm", json={"code": _at(secret)}), 409, "totp_enabled")

    # stored: the secret sealed (never in the clear), the recovery codes as their SHA-256 only
    [(stored,)] = await _rows(accounts, "SELECT totp_secret FROM users WHERE id = :id", id=user.id)
    assert isinstance(stored, str) and stored.startswith("wopr:enc:") and secret not in stored
    hashes = {
        row[0] for row in await _rows(accounts, "SELECT code_hash FROM recovery_codes WHERE user_id = :id", id=user.id)
    }
    assert hashes == {digest(code.replace("-", "")) for code in codes}
    await user.close()


async def test_turning_it_on_ends_every_other_session(accounts: Platform) -> None:
    address = await sign_up(accounts, "others")
    here, elsewhere = await sign_in(accounts, address), await sign_in(accounts, address)
    assert (await elsewhere.client.get("/auth/me")).status_code == 200  # cached on this replica now
    await _enable(here)
    assert (await elsewhere.client.get("/auth/me")).status_code == 401
    assert (await here.client.get("/auth/me")).status_code == 200  # this browser got a new session
    assert (await here.client.post("/tenants", json={"id": "t-after-totp", "name": "after"})).status_code == 201
    for user in (here, elsewhere):
        await user.close()


async def test_sign_in_asks_for_a_code_only_after_the_right_password_and_accepts_each_code_once(
    accounts: Platform,
) -> None:
    user = await new_user(accounts, "login")
    secret, _, confirming = await _enable_with(user)

    wrong_password = await _login(accounts, user.email, password="not the password")
    _refused(wrong_password, 401, "invalid_credentials")
    assert wrong_password.json() == {"error": "wrong email or password", "details": {"code": "invalid_credentials"}}
    required = await _login(accounts, user.email)
    _refused(required, 401, "totp_required")
    assert "set-cookie" not in required.headers
    # a code with a wrong password tells nothing more than the wrong password
    _refused(
        await _login(accounts, user.email, password="not the password", code=_at(secret, 1)), 401, "invalid_credentials"
    )

    # the code that turned it on does not sign in again; the next step's code does, once
    _refused(await _login(accounts, user.email, code=confirming), 401, "invalid_credentials")
    later = _at(secret, 1)
    signed_in = await _login(accounts, user.email, code=later)
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["totp"] is True and "set-cookie" in signed_in.headers
    replayed = await _login(accounts, user.email, code=later)
    _refused(replayed, 401, "invalid_credentials")
    assert "set-cookie" not in replayed.headers
    await user.close()


async def test_a_wrong_code_is_refused_and_counts_against_the_sign_in_throttle(accounts: Platform) -> None:
    user = await new_user(accounts, "throttle")
    secret, _ = await _enable(user)
    right = _at(secret, 1)
    wrong = str((int(right) + 500_000) % 1_000_000).zfill(6)
    wrong = wrong if wrong not in {_at(secret, step) for step in (-1, 0, 1, 2)} else "000000"
    statuses = [(await _login(accounts, user.email, code=wrong)).status_code for _ in range(12)]
    refused = statuses.index(429)
    assert 0 < refused <= 10 and statuses[:refused] == [401] * refused and set(statuses[refused:]) == {429}, statuses
    # the right code is refused too while the account is throttled
    _refused(await _login(accounts, user.email, code=right), 429, "login_throttled")
    await user.close()


async def test_a_recovery_code_signs_in_once(accounts: Platform) -> None:
    user = await new_user(accounts, "recovery")
    _, codes = await _enable(user)
    first = await _login(accounts, user.email, recoveryCode=codes[0])
    assert first.status_code == 200, first.text
    _refused(await _login(accounts, user.email, recoveryCode=codes[0]), 401, "invalid_credentials")
    # typed as people type: upper case, without the dashes
    second = await _login(accounts, user.email, recoveryCode=codes[1].upper().replace("-", ""))
    assert second.status_code == 200, second.text
    _refused(await _login(accounts, user.email, recoveryCode="aaaa-bbbb-cccc-dddd"), 401, "invalid_credentials")
    used = await _rows(
        accounts, "SELECT count(*) FROM recovery_codes WHERE user_id = :id AND used_at IS NOT NULL", id=user.id
    )
    assert used == [(2,)]
    # another user's code is no use here
    other = await new_user(accounts, "recovery-other")
    _, others = await _enable(other)
    _refused(await _login(accounts, user.email, recoveryCode=others[0]), 401, "invalid_credentials")
    for who in (user, other):
        await who.close()


async def test_new_recovery_codes_void_the_old_ones(accounts: Platform) -> None:
    user = await new_user(accounts, "regenerate")
    _, old = await _enable(user)
    _refused(
        await user.client.post("/auth/recovery-codes", json={"password": "not the password"}),
        401,
        "invalid_credentials",
    )
    made = await user.client.post("/auth/recovery-codes", json={"password": PASSWORD})
    assert made.status_code == 200, made.text
    new = made.json()["recoveryCodes"]
    assert len(new) == 10 and not set(new) & set(old)
    _refused(await _login(accounts, user.email, recoveryCode=old[2]), 401, "invalid_credentials")
    assert (await _login(accounts, user.email, recoveryCode=new[2])).status_code == 200
    await user.close()


async def test_turning_it_off_needs_the_password(accounts: Platform) -> None:
    user = await new_user(accounts, "disable")
    _refused(await user.client.request("DELETE", "/auth/totp", json={"password": PASSWORD}), 409, "totp_off")
    _refused(await user.client.post("/auth/recovery-codes", json={"password": PASSWORD}), 409, "totp_off")
    _, codes = await _enable(user)
    wrong = await user.client.request("DELETE", "/auth/totp", json={"password": "not the password"})
    _refused(wrong, 401, "invalid_credentials")
    # without the CSRF token, the cookie alone does not turn it off
    async with httpx.AsyncClient(base_url=accounts.url, trust_env=False, cookies=user.client.cookies) as no_csrf:
        assert (await no_csrf.request("DELETE", "/auth/totp", json={"password": PASSWORD})).status_code == 403

    off = await user.client.request("DELETE", "/auth/totp", json={"password": PASSWORD})
    assert off.status_code == 204, off.text
    assert (await user.client.get("/auth/me")).json()["totp"] is False
    assert (await _login(accounts, user.email)).status_code == 200
    assert await _rows(accounts, "SELECT count(*) FROM recovery_codes WHERE user_id = :id", id=user.id) == [(0,)]
    assert await _rows(accounts, "SELECT totp_secret FROM users WHERE id = :id", id=user.id) == [(None,)]
    # a recovery code of the set that was on signs nobody in; setting it up again works
    assert (await _login(accounts, user.email, recoveryCode=codes[0])).status_code == 200  # no second factor asked
    await _enable(user)
    _refused(await _login(accounts, user.email, recoveryCode=codes[0]), 401, "invalid_credentials")
    await user.close()


async def test_a_key_or_the_operator_token_cannot_set_up_a_second_factor(accounts: Platform) -> None:
    for method, path in (("POST", "/auth/totp"), ("POST", "/auth/totp/confirm"), ("DELETE", "/auth/totp")):
        response = await accounts.client.request(method, path, json={"password": PASSWORD})
        assert response.status_code == 403, (method, path, response.text)


GARBAGE: list[dict[str, Any]] = [
    {"code": "12345"},
    {"code": "1234567"},
    {"code": "12345a"},
    {"code": 123456},
    {"code": "\uff11\uff12\uff13\uff14\uff15\uff16"},  # digits, but not ASCII ones
    {"code": ["123456"]},
    {"code": None, "recoveryCode": "x" * 41},
    {"recoveryCode": "aaaa\nbbbb"},
    {"recoveryCode": ""},
    {"code": "123456", "recoveryCode": "aaaa-bbbb-cccc-dddd"},
]


async def test_garbage_is_a_clear_400(accounts: Platform) -> None:
    user = await new_user(accounts, "garbage")
    await _enable(user)
    for fields in GARBAGE:
        response = await _login(accounts, user.email, **fields)
        assert response.status_code == 400 and set(response.json()) == {"error", "details"}, (fields, response.text)
        if "code" in fields and "recoveryCode" not in fields:  # a bad code alone
            confirm = await user.client.post("/auth/totp/confirm", json={"code": fields["code"]})
            assert confirm.status_code == 400 and set(confirm.json()) == {"error", "details"}, (fields, confirm.text)
    for body in ({"password": ""}, {"password": 12}, {"password": "x" * 300}, {}, {"password": PASSWORD, "code": 1}):
        for method, path in (("POST", "/auth/totp"), ("DELETE", "/auth/totp"), ("POST", "/auth/recovery-codes")):
            answer = await user.client.request(method, path, json=body)
            assert answer.status_code == 400 and set(answer.json()) == {"error", "details"}, (path, answer.text)
    await user.close()


async def test_a_new_platform_secret_takes_the_totp_secret_over_and_a_lost_key_leaves_the_recovery_codes(
    make_platform: PlatformFactory,
) -> None:
    key_one, key_two = "first-platform-secret-" + uuid.uuid4().hex, "second-platform-secret-" + uuid.uuid4().hex
    platform_id = "t-" + uuid.uuid4().hex[:10]
    first = await make_platform(FLEET_RATE_LIMIT=0, PLATFORM_SECRET=key_one, WOPR_PLATFORM_ID=platform_id)
    user = await new_user(first, "rotation")
    secret, codes = await _enable(user)
    await user.close()
    query = "SELECT totp_secret FROM users WHERE id = :id"
    [(sealed_one,)] = await _rows(first, query, id=user.id)
    await first.stop()

    # the old key still opens it, and a sign-in with a code seals it again with the new one
    second = await make_platform(
        FLEET_RATE_LIMIT=0, PLATFORM_SECRET=key_two, PLATFORM_SECRET_PREVIOUS=key_one, WOPR_PLATFORM_ID=platform_id
    )
    assert (await _login(second, user.email, code=_at(secret, 1))).status_code == 200
    [(sealed_two,)] = await _rows(second, query, id=user.id)
    assert isinstance(sealed_one, str) and isinstance(sealed_two, str)
    assert sealed_two.split(":")[3] != sealed_one.split(":")[3] and secret not in sealed_two
    await second.stop()

    # without the key that sealed it, a code is a clear 503; a recovery code still signs in
    third = await make_platform(FLEET_RATE_LIMIT=0, PLATFORM_SECRET=key_one, WOPR_PLATFORM_ID=platform_id)
    _refused(await _login(third, user.email, code=_at(secret)), 503, "secrets_unreadable")
    assert (await _login(third, user.email, recoveryCode=codes[0])).status_code == 200
