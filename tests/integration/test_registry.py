"""The registry adapter against a real registry (docker-registry 2.8) and the real Docker engine."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest

from tests.fakes.rate_limited_registry import FakeRateLimitedRegistry
from tests.figures import figure
from tests.fixtures.registry import Registry
from tests.fixtures.token_registry import TokenRegistry, TokenRequest
from wopr_platform.core.errors import (
    ManifestUnknown,
    RegistryAuthFailed,
    RegistryRateLimited,
    RegistryUnavailable,
)
from wopr_platform.core.reference import ImageReference
from wopr_platform.registry.client import TOKEN_EXPIRY_MARGIN, RegistryClient, RegistryStats
from wopr_platform.registry.credentials import CredentialStore


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def client() -> AsyncIterator[RegistryClient]:
    """An adapter without credentials."""
    adapter = RegistryClient(credentials=CredentialStore())
    try:
        yield adapter
    finally:
        await adapter.close()


async def test_digest_is_the_one_docker_records_after_a_push(
    registry: Registry, client: RegistryClient, docker: aiodocker.Docker
) -> None:
    repo = unique("app")
    pushed = await registry.push(repo, "v1", message="first")
    recorded = (await docker.images.inspect(f"{registry.host}/{repo}:v1"))["RepoDigests"]
    assert recorded == [f"{registry.host}/{repo}@{pushed}"]

    assert await client.digest(ImageReference.parse(f"{registry.host}/{repo}:v1")) == pushed
    assert client.stats == RegistryStats(manifest_requests=1, get_requests=0, token_requests=0)


async def test_nested_repository_new_push_and_lookup_by_digest(registry: Registry, client: RegistryClient) -> None:
    repo = unique("team/sub/app")
    first = await registry.push(repo, "stable", message="one")
    reference = ImageReference.parse(f"{registry.host}/{repo}:stable")
    assert reference.repository == repo
    assert await client.digest(reference) == first

    second = await registry.push(repo, "stable", message="two")
    assert second != first
    assert await client.digest(reference) == second
    # the old manifest stays addressable by its digest
    assert await client.digest(ImageReference.parse(f"{registry.host}/{repo}@{first}")) == first
    assert client.stats.manifest_requests == 3
    assert client.stats.get_requests == 0


async def test_unknown_tag_and_unknown_repository(registry: Registry, client: RegistryClient) -> None:
    repo = unique("app")
    await registry.push(repo, "v1", message="known")
    for text in (f"{registry.host}/{repo}:missing", f"{registry.host}/{unique('nowhere')}:v1"):
        with pytest.raises(ManifestUnknown) as caught:
            await client.digest(ImageReference.parse(text))
        assert caught.value.details["image"] == text
        assert caught.value.details["code"] == "manifest_unknown"
        assert caught.value.status == 502


async def test_registry_down_then_back(registry: Registry, client: RegistryClient) -> None:
    repo = unique("app")
    pushed = await registry.push(repo, "v1", message="durable")
    reference = ImageReference.parse(f"{registry.host}/{repo}:v1")
    assert await client.digest(reference) == pushed  # leaves a pooled connection to the old process

    await registry.stop()
    try:
        with pytest.raises(RegistryUnavailable) as caught:
            await client.digest(reference)
        assert "\n" not in caught.value.message
        assert caught.value.details["registry"] == registry.host
        assert caught.value.__cause__ is not None
    finally:
        await registry.start()
    assert await client.digest(reference) == pushed


async def test_registry_with_htpasswd_needs_credentials(auth_registry: Registry, tmp_path: Path) -> None:
    repo = unique("private/app")
    pushed = await auth_registry.push(repo, "v1", message="secret")
    reference = ImageReference.parse(f"{auth_registry.host}/{repo}:v1")

    anonymous = RegistryClient(credentials=CredentialStore())
    try:
        with pytest.raises(RegistryAuthFailed) as caught:
            await anonymous.digest(reference)
        assert caught.value.details["image"] == str(reference)
        assert anonymous.stats.manifest_requests == 1
    finally:
        await anonymous.close()

    config = tmp_path / "config.json"
    config.write_text(json.dumps(auth_registry.docker_config()))
    credentialed = RegistryClient(credentials=CredentialStore.from_file(config))
    try:
        assert await credentialed.digest(reference) == pushed
        assert credentialed.stats.manifest_requests == 2  # the 401 that named Basic, then the answer
        assert await credentialed.digest(reference) == pushed
        assert credentialed.stats.manifest_requests == 3  # credentials now sent up front
    finally:
        await credentialed.close()

    assert auth_registry.credentials is not None
    wrong = {
        "auths": {f"http://{auth_registry.host}": {"username": auth_registry.credentials.username, "password": "x"}}
    }
    config.write_text(json.dumps(wrong))
    refused = RegistryClient(credentials=CredentialStore.from_file(config))
    try:
        with pytest.raises(RegistryAuthFailed):
            await refused.digest(reference)
    finally:
        await refused.close()


async def test_engine_auth_lets_the_engine_pull_a_private_image(
    auth_registry: Registry, tmp_path: Path, docker: aiodocker.Docker
) -> None:
    repo = unique("private/pull")
    pushed = await auth_registry.push(repo, "v1", message="pull me")
    image = f"{auth_registry.host}/{repo}:v1"
    await auth_registry.delete_local(image)
    with pytest.raises(aiodocker.DockerError):
        await docker.images.inspect(image)
    with pytest.raises(aiodocker.DockerError):
        await docker.images.pull(image)  # the registry refuses an anonymous pull

    config = tmp_path / "config.json"
    config.write_text(json.dumps(auth_registry.docker_config()))
    auth = CredentialStore.from_file(config).engine_auth(auth_registry.host)
    assert auth is not None
    await docker.images.pull(image, auth=auth)
    assert f"{auth_registry.host}/{repo}@{pushed}" in (await docker.images.inspect(image))["RepoDigests"]
    await auth_registry.delete_local(image)


async def test_rate_limit_blocks_the_registry_without_further_requests(
    registry: Registry, client: RegistryClient
) -> None:
    repo = unique("app")
    pushed = await registry.push(repo, "v1", message="elsewhere")
    async with FakeRateLimitedRegistry(retry_after="30") as fake:
        reference = ImageReference.parse(f"{fake.host}/app:v1")
        with pytest.raises(RegistryRateLimited) as first:
            await client.digest(reference)
        assert first.value.retry_after == 30.0
        assert first.value.details["retryAfter"] == 30.0
        assert fake.requests == ["HEAD /v2/app/manifests/v1"]

        for text in (str(reference), f"{fake.host}/other:v2"):
            with pytest.raises(RegistryRateLimited) as blocked:
                await client.digest(ImageReference.parse(text))
            assert blocked.value.retry_after is not None
            assert 29.0 < blocked.value.retry_after <= 30.0
        assert fake.requests == ["HEAD /v2/app/manifests/v1"]
        assert client.stats.manifest_requests == 1
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in client.metrics.registry.collect()
            for s in family.samples
        }
        assert figure(samples, "wopr_registry_rate_limited_total", registry=fake.host) == 1
        assert figure(samples, "wopr_registry_rate_limit_wait_seconds_total", registry=fake.host) == 30.0
        assert figure(samples, "wopr_registry_requests_total", kind="head") == 1

        # the block is per registry: another registry still answers
        assert await client.digest(ImageReference.parse(f"{registry.host}/{repo}:v1")) == pushed


# --- distribution's token auth (the GHCR / Docker Hub scheme) against a real registry and token server -----


async def test_token_auth_anonymous_lookup_of_a_public_repo_is_dockers_repo_digest(
    token_registry: TokenRegistry, client: RegistryClient, docker: aiodocker.Docker
) -> None:
    tokens = token_registry.token_server
    repo = unique("public/app")
    pushed = await token_registry.push(repo, "v1", message="through tokens")
    assert token_registry.credentials is not None
    # the engine did the token dance itself with the X-Registry-Auth credentials
    assert any(
        request.account == token_registry.credentials.username and "push" in dict(request.access).get(repo, ())
        for request in tokens.served(repo)
    )
    recorded = (await docker.images.inspect(f"{token_registry.host}/{repo}:v1"))["RepoDigests"]
    assert recorded == [f"{token_registry.host}/{repo}@{pushed}"]

    before = len(tokens.requests)
    assert await client.digest(ImageReference.parse(f"{token_registry.host}/{repo}:v1")) == pushed
    assert client.stats == RegistryStats(manifest_requests=2, get_requests=0, token_requests=1)  # 401, token, 200
    assert tokens.requests[before:] == [
        TokenRequest(
            account=None,
            service=tokens.service,
            scopes=(f"repository:{repo}:pull",),
            access=((repo, ("pull",)),),
            status=200,
        )
    ]


async def test_token_auth_token_is_reused_within_its_lifetime(
    token_registry: TokenRegistry, client: RegistryClient
) -> None:
    tokens = token_registry.token_server
    repo = unique("app")
    pushed = await token_registry.push(repo, "v1", message="reuse")
    reference = ImageReference.parse(f"{token_registry.host}/{repo}:v1")
    pushes = tokens.count(repo)

    assert await client.digest(reference) == pushed
    assert await client.digest(reference) == pushed
    assert tokens.count(repo) - pushes == 1
    assert client.stats == RegistryStats(manifest_requests=3, get_requests=0, token_requests=1)  # the second: 1 HEAD


async def test_token_auth_expired_token_is_renewed(token_registry: TokenRegistry, client: RegistryClient) -> None:
    tokens = token_registry.token_server
    repo = unique("app")
    pushed = await token_registry.push(repo, "v1", message="short-lived")
    reference = ImageReference.parse(f"{token_registry.host}/{repo}:v1")
    pushes = tokens.count(repo)

    with tokens.lifetime(int(TOKEN_EXPIRY_MARGIN) + 1):  # the client renews 1 s after the token is issued
        assert await client.digest(reference) == pushed
        assert await client.digest(reference) == pushed  # still within its lifetime
        assert tokens.count(repo) - pushes == 1
        await asyncio.sleep(1.1)
        assert await client.digest(reference) == pushed
    assert tokens.count(repo) - pushes == 2
    # 401 + 200, a reused-token 200, then for the expired one: a HEAD without it (401), a new token, 200
    assert client.stats == RegistryStats(manifest_requests=5, get_requests=0, token_requests=2)


async def test_token_auth_token_the_registry_no_longer_trusts_is_renewed_once(
    token_registry: TokenRegistry, client: RegistryClient
) -> None:
    tokens = token_registry.token_server
    repo = unique("app")
    pushed = await token_registry.push(repo, "v1", message="rotated")
    reference = ImageReference.parse(f"{token_registry.host}/{repo}:v1")
    pushes = tokens.count(repo)
    assert await client.digest(reference) == pushed

    await token_registry.rotate_signing_key()  # the cached token is still within its lifetime, but now untrusted
    assert await client.digest(reference) == pushed
    assert tokens.count(repo) - pushes == 2
    assert client.stats == RegistryStats(manifest_requests=4, get_requests=0, token_requests=2)


async def test_token_auth_private_repo_needs_credentials(token_registry: TokenRegistry, tmp_path: Path) -> None:
    tokens = token_registry.token_server
    assert token_registry.credentials is not None
    repo = unique("private/app")
    pushed = await token_registry.push(repo, "v1", message="secret")
    reference = ImageReference.parse(f"{token_registry.host}/{repo}:v1")

    anonymous = RegistryClient(credentials=CredentialStore())
    try:
        before = len(tokens.requests)
        with pytest.raises(RegistryAuthFailed) as caught:
            await anonymous.digest(reference)
        assert caught.value.details["image"] == str(reference)
        assert caught.value.details["status"] == 401  # the registry refused the token, which grants nothing
        assert anonymous.stats == RegistryStats(manifest_requests=2, get_requests=0, token_requests=1)
        assert [(r.account, r.access) for r in tokens.requests[before:]] == [(None, ((repo, ()),))]
    finally:
        await anonymous.close()

    config = tmp_path / "config.json"
    config.write_text(json.dumps(token_registry.docker_config()))
    credentialed = RegistryClient(credentials=CredentialStore.from_file(config))
    try:
        before = len(tokens.requests)
        assert await credentialed.digest(reference) == pushed
        assert credentialed.stats == RegistryStats(manifest_requests=2, get_requests=0, token_requests=1)
        assert [(r.account, r.access) for r in tokens.requests[before:]] == [
            (token_registry.credentials.username, ((repo, ("pull",)),))
        ]
    finally:
        await credentialed.close()

    wrong = {"auths": {token_registry.host: {"username": token_registry.credentials.username, "password": "x"}}}
    config.write_text(json.dumps(wrong))
    refused = RegistryClient(credentials=CredentialStore.from_file(config))
    try:
        before = len(tokens.requests)
        with pytest.raises(RegistryAuthFailed) as caught:
            await refused.digest(reference)
        assert "token service refused" in caught.value.message
        assert [r.status for r in tokens.requests[before:]] == [401]
    finally:
        await refused.close()
