"""The registry adapter's auth, endpoints, fallbacks, rate limits and credentials, on httpx.MockTransport."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from wopr_platform.core.errors import (
    ManifestUnknown,
    RegistryAuthFailed,
    RegistryError,
    RegistryRateLimited,
    RegistryUnavailable,
)
from wopr_platform.core.reference import ImageReference
from wopr_platform.registry.client import (
    MANIFEST_MEDIA_TYPES,
    Challenge,
    CredentialStore,
    RegistryClient,
    RegistryCredentials,
    RegistryStats,
    parse_challenges,
    parse_retry_after,
)

DIGEST = "sha256:" + "a" * 64
TOKEN_REALM = "https://auth.example.test/token"
Handler = Callable[[httpx.Request], httpx.Response] | Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def make_client(
    handler: Handler,
    *,
    credentials: dict[str, RegistryCredentials] | None = None,
    clock: FakeClock | None = None,
    insecure_hosts: tuple[str, ...] = (),
) -> RegistryClient:
    return RegistryClient(
        credentials=CredentialStore(credentials),
        insecure_hosts=insecure_hosts,
        transport=httpx.MockTransport(handler),
        clock=clock or FakeClock(),
    )


def ref(text: str) -> ImageReference:
    return ImageReference.parse(text)


# --- challenge and header parsing -------------------------------------------------------------------------


def test_parses_docker_hub_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/busybox:pull",
            },
        )
    ]


def test_parses_quoted_commas_escapes_spaces_and_several_challenges() -> None:
    header = (
        'Basic realm="a, b", BEARER Realm = "https://t/x?q=1" , scope="repository:a:pull,push",'
        'error="say \\"no\\"", Service=unquoted.example'
    )
    assert parse_challenges(header) == [
        Challenge("basic", {"realm": "a, b"}),
        Challenge(
            "bearer",
            {
                "realm": "https://t/x?q=1",
                "scope": "repository:a:pull,push",
                "error": 'say "no"',
                "service": "unquoted.example",
            },
        ),
    ]


@pytest.mark.parametrize("header", ["", ",,, ", "=x", 'realm="x"', '"unterminated', "Bearer realm="])
def test_garbage_challenges_do_not_raise(header: str) -> None:
    for challenge in parse_challenges(header):
        assert challenge.scheme


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:45 GMT", now=now) == 45.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after(None) is None


# --- endpoints and the manifest request -------------------------------------------------------------------


def fake_registry_with_digest(seen: list[httpx.Request]) -> Handler:
    """Fakes a registry without auth that answers every manifest HEAD with a Docker-Content-Digest."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})

    return answer


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("busybox", "https://registry-1.docker.io/v2/library/busybox/manifests/latest"),
        ("docker.io/wopr/app:1", "https://registry-1.docker.io/v2/wopr/app/manifests/1"),
        ("index.docker.io/library/redis:7", "https://registry-1.docker.io/v2/library/redis/manifests/7"),
        ("ghcr.io/wopr-network/wopr:stable", "https://ghcr.io/v2/wopr-network/wopr/manifests/stable"),
        ("localhost:5000/a/b/c:t", "http://localhost:5000/v2/a/b/c/manifests/t"),
        ("127.0.0.2:5000/app:t", "http://127.0.0.2:5000/v2/app/manifests/t"),
        ("registry.lan:5000/app:t", "http://registry.lan:5000/v2/app/manifests/t"),
        ("other.lan/app:t", "https://other.lan/v2/app/manifests/t"),
        (f"ghcr.io/x/y@{DIGEST}", f"https://ghcr.io/v2/x/y/manifests/{DIGEST}"),
    ],
)
async def test_endpoint_scheme_and_manifest_url(text: str, url: str) -> None:
    seen: list[httpx.Request] = []
    client = make_client(fake_registry_with_digest(seen), insecure_hosts=("registry.lan",))
    assert await client.digest(ref(text)) == DIGEST
    assert [(r.method, str(r.url)) for r in seen] == [("HEAD", url)]
    assert [t.strip() for t in seen[0].headers["accept"].split(",")] == list(MANIFEST_MEDIA_TYPES)
    await client.close()


async def test_ipv6_loopback_is_plain_http() -> None:
    # ImageReference does not parse bracketed IPv6 hosts yet, so the endpoint is checked on its own
    client = make_client(fake_registry_with_digest([]))
    assert client.endpoint("[::1]:5000") == "http://[::1]:5000"
    assert client.endpoint("[2001:db8::1]:5000") == "https://[2001:db8::1]:5000"


async def test_insecure_host_with_port_and_scheme() -> None:
    seen: list[httpx.Request] = []
    client = make_client(fake_registry_with_digest(seen), insecure_hosts=("http://reg.lan:5000",))
    await client.digest(ref("reg.lan:5000/app:t"))
    await client.digest(ref("reg.lan:6000/app:t"))
    assert [r.url.scheme for r in seen] == ["http", "https"]


async def test_head_without_digest_falls_back_to_get_and_hashes_the_body() -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPES[3]}).encode()
    seen: list[str] = []

    def fake_registry_without_digest_header(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        assert request.headers["accept"].count("+json") == 4
        return httpx.Response(200, content=b"" if request.method == "HEAD" else body)

    client = make_client(fake_registry_without_digest_header)
    assert await client.digest(ref("ghcr.io/a/b:1")) == "sha256:" + hashlib.sha256(body).hexdigest()
    assert seen == ["HEAD", "GET"]
    assert client.stats == RegistryStats(manifest_requests=2, get_requests=1, token_requests=0)


async def test_unreadable_digest_header_is_a_registry_error() -> None:
    def fake_registry_with_bad_digest(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Docker-Content-Digest": "md5:abc"})

    with pytest.raises(RegistryError) as caught:
        await make_client(fake_registry_with_bad_digest).digest(ref("ghcr.io/a/b:1"))
    assert caught.value.code == "registry_error"


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (404, ManifestUnknown, "manifest_unknown"),
        (403, RegistryAuthFailed, "registry_auth_failed"),
        (500, RegistryUnavailable, "registry_unavailable"),
        (503, RegistryUnavailable, "registry_unavailable"),
        (400, RegistryError, "registry_error"),
    ],
)
async def test_status_codes_map_to_errors(status: int, error: type[RegistryError], code: str) -> None:
    def fake_registry_answering(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"errors": [{"code": "X", "message": "line one\nline two"}]})

    with pytest.raises(error) as caught:
        await make_client(fake_registry_answering).digest(ref("ghcr.io/a/b:1"))
    assert type(caught.value) is error
    assert caught.value.status == 502
    assert caught.value.details == {"code": code, "image": "ghcr.io/a/b:1", "registry": "ghcr.io", "status": status}
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("[Errno 111] Connection refused\nmore"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("x"),
    ],
)
async def test_transport_failures_are_registry_unavailable(failure: httpx.TransportError) -> None:
    def unreachable_registry(request: httpx.Request) -> httpx.Response:
        raise failure

    with pytest.raises(RegistryUnavailable) as caught:
        await make_client(unreachable_registry).digest(ref("ghcr.io/a/b:1"))
    assert caught.value.__cause__ is failure
    assert "\n" not in caught.value.message
    assert caught.value.details["image"] == "ghcr.io/a/b:1"


# --- bearer tokens ----------------------------------------------------------------------------------------


class FakeTokenRegistry:
    """Fakes a registry with a token service (GHCR/Docker Hub style): HEADs need `Bearer <issued token>`."""

    def __init__(self, *, expires_in: int | None = 300, token_key: str = "token", users: dict[str, str] | None = None):
        self.expires_in = expires_in
        self.token_key = token_key
        self.users = users  # None: anonymous tokens allowed; else only these username → password
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if str(request.url).startswith(TOKEN_REALM):
            return self._token(request)
        authorization = request.headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ")
        if token in self.issued and token not in self.revoked:
            return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})
        challenge = f'Bearer realm="{TOKEN_REALM}",service="registry.example.test",scope="repository:x:pull,push"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    def _token(self, request: httpx.Request) -> httpx.Response:
        if self.users is not None:
            allowed = {basic(user, password) for user, password in self.users.items()}
            if request.headers.get("authorization") not in allowed:
                return httpx.Response(401, json={"details": "incorrect username or password"})
        token = f"t{len(self.issued) + 1}"
        self.issued.append(token)
        body: dict[str, object] = {self.token_key: token}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return httpx.Response(200, json=body)

    def kinds(self) -> list[str]:
        return ["token" if str(r.url).startswith(TOKEN_REALM) else r.method for r in self.requests]


async def test_bearer_token_is_fetched_with_service_and_scope_then_cached_until_expiry() -> None:
    fake, clock = FakeTokenRegistry(expires_in=300), FakeClock()
    client = make_client(fake, clock=clock)
    reference = ref("registry.example.test/team/app:1")

    assert await client.digest(reference) == DIGEST
    assert fake.kinds() == ["HEAD", "token", "HEAD"]
    token_request = fake.requests[1]
    assert token_request.url.params["service"] == "registry.example.test"
    assert token_request.url.params["scope"] == "repository:team/app:pull"
    assert "authorization" not in token_request.headers  # anonymous
    assert fake.requests[2].headers["authorization"] == "Bearer t1"
    assert client.stats == RegistryStats(manifest_requests=2, get_requests=0, token_requests=1)

    clock.now += 280  # within expires_in minus the margin: the cached token is sent up front
    assert await client.digest(reference) == DIGEST
    assert fake.kinds()[3:] == ["HEAD"]
    assert fake.requests[3].headers["authorization"] == "Bearer t1"

    clock.now += 15  # 295 s: inside the renewal margin, so a fresh token
    assert await client.digest(reference) == DIGEST
    assert fake.kinds()[4:] == ["HEAD", "token", "HEAD"]
    assert fake.requests[-1].headers["authorization"] == "Bearer t2"
    assert client.stats.token_requests == 2


async def test_token_is_cached_per_repository_scope() -> None:
    fake = FakeTokenRegistry()
    client = make_client(fake)
    await client.digest(ref("registry.example.test/a:1"))
    await client.digest(ref("registry.example.test/a:2"))
    await client.digest(ref("registry.example.test/b:1"))
    assert client.stats.token_requests == 2
    assert [r.url.params["scope"] for r in fake.requests if str(r.url).startswith(TOKEN_REALM)] == [
        "repository:a:pull",
        "repository:b:pull",
    ]


async def test_token_lifetime_defaults_to_sixty_seconds_and_access_token_is_accepted() -> None:
    fake, clock = FakeTokenRegistry(expires_in=None, token_key="access_token"), FakeClock()
    client = make_client(fake, clock=clock)
    reference = ref("registry.example.test/app:1")
    await client.digest(reference)
    clock.now += 49
    await client.digest(reference)
    assert client.stats.token_requests == 1
    clock.now += 2
    await client.digest(reference)
    assert client.stats.token_requests == 2


async def test_a_token_the_registry_stopped_accepting_is_renewed_once() -> None:
    fake = FakeTokenRegistry()
    client = make_client(fake)
    reference = ref("registry.example.test/app:1")
    await client.digest(reference)
    fake.revoked.add("t1")
    assert await client.digest(reference) == DIGEST
    assert fake.kinds()[3:] == ["HEAD", "token", "HEAD"]


async def test_credentialed_token_request_uses_only_that_registrys_credentials() -> None:
    fake = FakeTokenRegistry(users={"alice": "s3cret"})
    credentials = {
        "registry.example.test": RegistryCredentials("alice", "s3cret"),
        "ghcr.io": RegistryCredentials("bob", "other"),
    }
    client = make_client(fake, credentials=credentials)
    assert await client.digest(ref("registry.example.test/app:1")) == DIGEST
    token_request = fake.requests[1]
    assert token_request.headers["authorization"] == basic("alice", "s3cret")
    assert "authorization" not in fake.requests[0].headers


@pytest.mark.parametrize("credentials", [None, {"registry.example.test": RegistryCredentials("alice", "wrong")}])
async def test_token_service_refusal_is_auth_failed(credentials: dict[str, RegistryCredentials] | None) -> None:
    fake = FakeTokenRegistry(users={"alice": "s3cret"})
    client = make_client(fake, credentials=credentials)
    with pytest.raises(RegistryAuthFailed) as caught:
        await client.digest(ref("registry.example.test/app:1"))
    assert caught.value.details["status"] == 401
    assert fake.kinds() == ["HEAD", "token"]


async def test_a_token_that_does_not_grant_access_fails_after_one_retry() -> None:
    def fake_registry_refusing_every_token(request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(TOKEN_REALM):
            return httpx.Response(200, json={"token": "useless"})
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{TOKEN_REALM}"'})

    client = make_client(fake_registry_refusing_every_token)
    with pytest.raises(RegistryAuthFailed):
        await client.digest(ref("registry.example.test/app:1"))
    assert client.stats == RegistryStats(manifest_requests=2, get_requests=0, token_requests=1)


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(200, text="<html>"), httpx.Response(200, json={"nothing": 1}), httpx.Response(200, json=[1])],
)
async def test_token_answer_without_token_is_a_registry_error(answer: httpx.Response) -> None:
    def fake_token_service_answering(request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(TOKEN_REALM):
            return answer
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{TOKEN_REALM}"'})

    with pytest.raises(RegistryError) as caught:
        await make_client(fake_token_service_answering).digest(ref("registry.example.test/app:1"))
    assert type(caught.value) is RegistryError


# --- basic auth -------------------------------------------------------------------------------------------


def fake_basic_registry(seen: list[httpx.Request]) -> Handler:
    """Fakes a registry behind htpasswd: only `alice:s3cret` gets an answer."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("authorization") == basic("alice", "s3cret"):
            return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="registry"'})

    return answer


async def test_basic_challenge_is_answered_with_configured_credentials_then_sent_up_front() -> None:
    seen: list[httpx.Request] = []
    client = make_client(
        fake_basic_registry(seen), credentials={"reg.example:5000": RegistryCredentials("alice", "s3cret")}
    )
    reference = ref("reg.example:5000/app:1")
    assert await client.digest(reference) == DIGEST
    assert await client.digest(reference) == DIGEST
    assert [r.headers.get("authorization") for r in seen] == [None, basic("alice", "s3cret"), basic("alice", "s3cret")]
    assert client.stats.manifest_requests == 3
    assert client.stats.token_requests == 0


async def test_basic_challenge_without_credentials_or_with_wrong_ones_fails() -> None:
    seen: list[httpx.Request] = []
    client = make_client(fake_basic_registry(seen))
    with pytest.raises(RegistryAuthFailed) as caught:
        await client.digest(ref("reg.example:5000/app:1"))
    assert "none are configured" in caught.value.message
    assert len(seen) == 1

    seen.clear()
    wrong = make_client(fake_basic_registry(seen), credentials={"reg.example:5000": RegistryCredentials("alice", "no")})
    for _ in range(2):
        with pytest.raises(RegistryAuthFailed):
            await wrong.digest(ref("reg.example:5000/app:1"))
    assert len(seen) == 3  # challenge + refused answer, then credentials up front and refused at once


async def test_a_401_without_challenge_is_auth_failed() -> None:
    def fake_registry_with_bare_401(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401)

    with pytest.raises(RegistryAuthFailed):
        await make_client(fake_registry_with_bare_401).digest(ref("ghcr.io/a/b:1"))


# --- rate limits ------------------------------------------------------------------------------------------


async def test_429_without_retry_after_blocks_the_registry_for_the_default_time() -> None:
    seen: list[str] = []

    def fake_rate_limited_registry(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "ghcr.io":
            return httpx.Response(429)
        return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})

    clock = FakeClock()
    client = make_client(fake_rate_limited_registry, clock=clock)
    with pytest.raises(RegistryRateLimited) as caught:
        await client.digest(ref("ghcr.io/a/b:1"))
    assert caught.value.retry_after is None
    assert caught.value.details["retryAfter"] is None

    clock.now += 59
    with pytest.raises(RegistryRateLimited) as blocked:
        await client.digest(ref("ghcr.io/other/repo:2"))
    assert blocked.value.retry_after == pytest.approx(1.0)
    assert await client.digest(ref("quay.io/a/b:1")) == DIGEST  # other registries are not blocked
    assert seen == ["ghcr.io", "quay.io"]

    clock.now += 2
    with pytest.raises(RegistryRateLimited):
        await client.digest(ref("ghcr.io/a/b:1"))
    assert seen == ["ghcr.io", "quay.io", "ghcr.io"]


async def test_429_with_http_date_retry_after() -> None:
    when = format_datetime(datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30), usegmt=True)

    def fake_registry_answering_429_with_date(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": when})

    with pytest.raises(RegistryRateLimited) as caught:
        await make_client(fake_registry_answering_429_with_date).digest(ref("ghcr.io/a/b:1"))
    assert caught.value.retry_after is not None
    assert 25 < caught.value.retry_after <= 30


@pytest.mark.parametrize(("retry_after", "blocked_for"), [(None, 300.0), ("120", 120.0)])
async def test_spent_docker_hub_quota_blocks_after_the_answer(retry_after: str | None, blocked_for: float) -> None:
    seen: list[httpx.Request] = []

    def fake_docker_hub_with_quota_spent(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        headers = {
            "Docker-Content-Digest": DIGEST,
            "RateLimit-Limit": "100;w=21600",
            "RateLimit-Remaining": "0;w=21600",
        }
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        return httpx.Response(200, headers=headers)

    clock = FakeClock()
    client = make_client(fake_docker_hub_with_quota_spent, clock=clock)
    assert await client.digest(ref("busybox")) == DIGEST
    with pytest.raises(RegistryRateLimited) as blocked:
        await client.digest(ref("alpine"))
    assert blocked.value.retry_after == pytest.approx(blocked_for)
    assert len(seen) == 1
    clock.now += blocked_for + 1
    assert await client.digest(ref("alpine")) == DIGEST


async def test_remaining_quota_does_not_block() -> None:
    def fake_docker_hub_with_quota_left(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST, "RateLimit-Remaining": "76;w=21600"})

    client = make_client(fake_docker_hub_with_quota_left)
    for _ in range(3):
        await client.digest(ref("busybox"))
    assert client.stats.manifest_requests == 3


# --- many callers -----------------------------------------------------------------------------------------


async def test_concurrent_lookups_of_one_reference_share_one_request() -> None:
    async def slow_fake_registry(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return httpx.Response(200, headers={"Docker-Content-Digest": "sha256:" + request.url.path[-1] * 64})

    client = make_client(slow_fake_registry)
    references = [ref(f"ghcr.io/wopr/app:{i}") for i in range(5)]
    results = await asyncio.gather(*(client.digest(references[n % 5]) for n in range(1000)))
    assert client.stats.manifest_requests == 5
    assert results[7] == "sha256:" + "2" * 64
    await client.digest(references[0])  # a later call asks again: no stale cache
    assert client.stats.manifest_requests == 6


# --- credentials file -------------------------------------------------------------------------------------


def encoded(pair: str) -> str:
    return base64.b64encode(pair.encode()).decode()


def test_credentials_file_in_docker_config_format(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": encoded("hubuser:hub:pass")},
                    "ghcr.io": {"username": "gh", "password": "ghp_x"},
                    "https://127.0.0.1:5000": {"auth": encoded("local:pw")},
                    "http://Registry.LAN:5000/v1/": {"username": "lan", "password": ""},
                    "quay.io": {},
                },
                "credsStore": "desktop",
            }
        )
    )
    store = CredentialStore.from_file(path)
    assert store.for_registry("docker.io") == RegistryCredentials("hubuser", "hub:pass")
    assert store.for_registry("ghcr.io") == RegistryCredentials("gh", "ghp_x")
    assert store.for_registry("127.0.0.1:5000") == RegistryCredentials("local", "pw")
    assert store.for_registry("registry.lan:5000") == RegistryCredentials("lan", "")
    assert store.for_registry("quay.io") is None
    assert store.for_registry("127.0.0.1:5001") is None
    assert store.engine_auth("docker.io") == {
        "username": "hubuser",
        "password": "hub:pass",
        "serveraddress": "https://index.docker.io/v1/",
    }
    assert store.engine_auth("ghcr.io") == {"username": "gh", "password": "ghp_x", "serveraddress": "ghcr.io"}
    assert store.engine_auth("quay.io") is None
    assert "ghp_x" not in repr(store.for_registry("ghcr.io"))


@pytest.mark.parametrize("key", ["index.docker.io", "registry-1.docker.io", "docker.io", "https://index.docker.io/v1/"])
def test_docker_hub_keys_map_to_docker_io(key: str) -> None:
    store = CredentialStore.from_config({"auths": {key: {"auth": encoded("u:p")}}})
    assert store.for_registry("docker.io") == RegistryCredentials("u", "p")
    assert store.for_registry(ref("busybox").registry) == RegistryCredentials("u", "p")


def test_no_credentials_file_is_an_empty_store() -> None:
    store = CredentialStore.from_file(None)
    assert store.for_registry("docker.io") is None
    assert store.engine_auth("ghcr.io") is None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not JSON"),
        ("[]", '"auths"'),
        ('{"auths": []}', '"auths"'),
        ('{"auths": {"ghcr.io": "x"}}', "must be an object"),
        ('{"auths": {"ghcr.io": {"auth": "***"}}}', "not base64"),
        ('{"auths": {"ghcr.io": {"auth": "' + encoded("nocolon") + '"}}}', "user:password"),
        ('{"auths": {"ghcr.io": {"auth": 5}}}', "base64 string"),
        ('{"auths": {"ghcr.io": {"username": "u"}}}', "both 'username' and 'password'"),
        ('{"auths": {"ghcr.io": {"identitytoken": "tok"}}}', "tokens are not supported"),
        ('{"auths": {"": {"auth": "' + encoded("u:p") + '"}}}', "not a registry host"),
    ],
)
def test_malformed_credentials_file_is_one_clear_line(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ValueError) as caught:
        CredentialStore.from_file(path)
    message = str(caught.value)
    assert fragment in message
    assert str(path) in message
    assert "\n" not in message


def test_missing_credentials_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read it"):
        CredentialStore.from_file(tmp_path / "absent.json")
