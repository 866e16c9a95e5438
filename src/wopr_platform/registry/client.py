"""The registry adapter: the only module that talks to container registries (OCI distribution v2 over httpx)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from wopr_platform.core.errors import (
    ManifestUnknown,
    RegistryAuthFailed,
    RegistryError,
    RegistryRateLimited,
    RegistryUnavailable,
)
from wopr_platform.core.metrics import PlatformMetrics
from wopr_platform.core.reference import DOCKER_HUB, ImageReference
from wopr_platform.registry.credentials import CredentialStore, RegistryCredentials, normalise_registry

# Without these a registry answers with a schema1 manifest whose digest never matches Docker's RepoDigests.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
DOCKER_HUB_ENDPOINT = "https://registry-1.docker.io"
DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, when a token answer has no `expires_in`
TOKEN_EXPIRY_MARGIN = 10.0  # renew a bearer token this long before the registry says it expires
DEFAULT_RATE_LIMIT_BLOCK = 60.0  # a 429 without Retry-After blocks its registry this long
QUOTA_SPENT_BLOCK = 300.0  # `RateLimit-Remaining: 0` without Retry-After blocks its registry this long
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}\Z")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_UNQUOTED_RE = re.compile(r"[^,\s]*")
_SECONDS_RE = re.compile(r"^\d+(?:\.\d+)?\Z")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a `WWW-Authenticate` header: a lower-case scheme and its parameters."""

    scheme: str
    params: dict[str, str]


def _read_value(header: str, pos: int) -> tuple[str, int]:
    if pos < len(header) and header[pos] == '"':
        chars: list[str] = []
        pos += 1
        while pos < len(header) and header[pos] != '"':
            if header[pos] == "\\" and pos + 1 < len(header):
                pos += 1
            chars.append(header[pos])
            pos += 1
        return "".join(chars), pos + 1
    match = _UNQUOTED_RE.match(header, pos)
    assert match is not None  # the pattern matches the empty string
    return match.group(), match.end()


def _skip_spaces(header: str, pos: int) -> int:
    while pos < len(header) and header[pos] in " \t":
        pos += 1
    return pos


def parse_challenges(header: str) -> list[Challenge]:
    """Parse `Bearer realm="...",service="...", Basic realm="..."` into challenges (quoted commas allowed)."""
    challenges: list[Challenge] = []
    current: Challenge | None = None
    pos = 0
    while pos < len(header):
        while pos < len(header) and header[pos] in " \t,":
            pos += 1
        match = _TOKEN_RE.match(header, pos)
        if match is None:
            pos += 1  # not a token: skip the stray character
            continue
        after = _skip_spaces(header, match.end())
        if after < len(header) and header[after] == "=":
            value, pos = _read_value(header, _skip_spaces(header, after + 1))
            if current is not None:
                current.params[match.group().lower()] = value
        else:
            current = Challenge(match.group().lower(), {})
            challenges.append(current)
            pos = match.end()
    return challenges


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` (delay in seconds or an HTTP-date); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _SECONDS_RE.match(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _quota_spent(value: str | None) -> bool:
    """True for Docker Hub's `RateLimit-Remaining: 0;w=21600` (nothing left in the window)."""
    if value is None:
        return False
    count = value.split(";", 1)[0].strip()
    return count.isdigit() and int(count) == 0


def _host(registry: str) -> str:
    """The host of `registry` without its port (`[::1]:5000` → `::1`)."""
    return registry[1:].split("]", 1)[0] if registry.startswith("[") else registry.split(":", 1)[0]


def _is_loopback(registry: str) -> bool:
    host = _host(registry)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


# --- the client -------------------------------------------------------------------------------------------


@dataclass
class RegistryStats:
    """Requests made: manifest HEADs and GETs (`get_requests` counts the GETs alone) and token requests."""

    manifest_requests: int = 0
    get_requests: int = 0
    token_requests: int = 0


@dataclass
class _Token:
    value: str
    expires_at: float


@dataclass
class _RegistryState:
    blocked_until: float = 0.0
    basic_auth: bool = False  # the registry asked for Basic auth: send the credentials up front


class RegistryClient:
    """Resolves image references to manifest digests, with token auth, rate-limit backoff and request counts."""

    def __init__(
        self,
        *,
        credentials: CredentialStore,
        insecure_hosts: Sequence[str] = (),
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: PlatformMetrics | None = None,
    ) -> None:
        self.metrics = metrics or PlatformMetrics()
        self._credentials = credentials
        self._insecure = {normalise_registry(host) for host in insecure_hosts}
        self._timeout = timeout
        self._clock = clock
        self._client = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            follow_redirects=True,
            headers={"User-Agent": "wopr-platform"},
        )
        self._states: dict[str, _RegistryState] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._inflight: dict[str, asyncio.Task[str]] = {}
        self.stats = RegistryStats()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def endpoint(self, registry: str) -> str:
        """Base URL of `registry`'s v2 API: Docker Hub's real host, plain HTTP for loopback and insecure hosts."""
        if registry == DOCKER_HUB:
            return DOCKER_HUB_ENDPOINT
        plain = (
            _is_loopback(registry) or registry.lower() in self._insecure or _host(registry).lower() in self._insecure
        )
        return f"{'http' if plain else 'https'}://{registry}"

    async def digest(self, reference: ImageReference) -> str:
        """The `sha256:...` digest of the manifest the tag (or digest) points to; concurrent asks share one lookup."""
        key = str(reference)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._lookup(reference))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._lookup_done(key, done))
        return await asyncio.shield(task)

    def _lookup_done(self, key: str, task: asyncio.Task[str]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an abandoned lookup's error is not reported as unhandled

    async def _lookup(self, reference: ImageReference) -> str:
        self._check_block(reference)
        target = reference.digest or reference.tag
        url = f"{self.endpoint(reference.registry)}/v2/{reference.repository}/manifests/{target}"
        response = await self._manifest("HEAD", url, reference)
        header: str | None = response.headers.get("docker-content-digest")
        if header is not None:
            if not _DIGEST_RE.match(header.strip()):
                raise RegistryError(
                    f"registry {reference.registry} answered an unreadable digest for {reference}",
                    details=self._details(reference, status=response.status_code),
                )
            return header.strip()
        response = await self._manifest("GET", url, reference)
        return "sha256:" + hashlib.sha256(response.content).hexdigest()

    # -- manifests and auth

    async def _manifest(self, method: str, url: str, reference: ImageReference) -> httpx.Response:
        scope = f"repository:{reference.repository}:pull"
        sent = self._known_authorization(reference.registry, scope)
        response = await self._manifest_request(method, url, reference, sent)
        if response.status_code == 401:
            self._tokens.pop((reference.registry, scope), None)
            authorization = await self._authorize(reference, scope, response, sent)
            response = await self._manifest_request(method, url, reference, authorization)
        self._raise_for_status(reference, response)
        return response

    async def _manifest_request(
        self, method: str, url: str, reference: ImageReference, authorization: str | None
    ) -> httpx.Response:
        headers = {"Accept": MANIFEST_ACCEPT}
        if authorization is not None:
            headers["Authorization"] = authorization
        self.stats.manifest_requests += 1
        self.metrics.registry_requests.labels(method.lower()).inc()
        if method == "GET":
            self.stats.get_requests += 1
        return await self._send(method, url, reference, headers=headers)

    def _known_authorization(self, registry: str, scope: str) -> str | None:
        token = self._tokens.get((registry, scope))
        if token is not None:
            if token.expires_at > self._clock():
                return f"Bearer {token.value}"
            del self._tokens[(registry, scope)]
        credentials = self._credentials.for_registry(registry)
        if credentials is not None and self._state(registry).basic_auth:
            return _basic(credentials)
        return None

    async def _authorize(
        self, reference: ImageReference, scope: str, response: httpx.Response, sent: str | None
    ) -> str:
        registry = reference.registry
        challenges = parse_challenges(", ".join(response.headers.get_list("www-authenticate")))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is not None:
            return f"Bearer {await self._fetch_token(reference, bearer, scope)}"
        credentials = self._credentials.for_registry(registry)
        if any(c.scheme == "basic" for c in challenges):
            if credentials is None:
                raise RegistryAuthFailed(
                    f"registry {registry} needs credentials for {reference.repository}; none are configured",
                    details=self._details(reference, status=401),
                )
            self._state(registry).basic_auth = True
            authorization = _basic(credentials)
            if authorization != sent:
                return authorization
            raise RegistryAuthFailed(
                f"registry {registry} refused the configured credentials for {reference.repository}",
                details=self._details(reference, status=401),
            )
        raise RegistryAuthFailed(
            f"registry {registry} refused access to {reference.repository} without a usable auth challenge",
            details=self._details(reference, status=401),
        )

    async def _fetch_token(self, reference: ImageReference, challenge: Challenge, scope: str) -> str:
        registry = reference.registry
        realm = challenge.params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(
                f"registry {registry} sent a bearer challenge without a usable realm",
                details=self._details(reference, status=401),
            )
        params = {"scope": scope}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        credentials = self._credentials.for_registry(registry)
        auth = httpx.BasicAuth(credentials.username, credentials.password) if credentials is not None else None
        self.stats.token_requests += 1
        self.metrics.registry_requests.labels("token").inc()
        response = await self._send("GET", realm, reference, params=params, auth=auth)
        if response.status_code in (401, 403):
            who = "the configured credentials" if credentials is not None else "anonymous access"
            raise RegistryAuthFailed(
                f"registry {registry}'s token service refused {who} to {reference.repository}",
                details=self._details(reference, status=response.status_code),
            )
        self._raise_for_status(reference, response)
        try:
            body: Any = response.json()
        except ValueError as err:
            raise RegistryError(
                f"registry {registry}'s token service answered something other than JSON",
                details=self._details(reference, status=response.status_code),
            ) from err
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(
                f"registry {registry}'s token service answered without a token",
                details=self._details(reference, status=response.status_code),
            )
        lifetime = body.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        self._tokens[(registry, scope)] = _Token(token, self._clock() + float(lifetime) - TOKEN_EXPIRY_MARGIN)
        return token

    # -- transport, status and rate limits

    async def _send(
        self,
        method: str,
        url: str,
        reference: ImageReference,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        auth: httpx.BasicAuth | None = None,
    ) -> httpx.Response:
        registry = reference.registry
        try:
            response = await self._client.request(method, url, headers=headers, params=params, auth=auth)
        except httpx.TimeoutException as err:
            raise RegistryUnavailable(
                f"registry {registry} did not answer within {self._timeout:g} s", details=self._details(reference)
            ) from err
        except httpx.TransportError as err:
            raise RegistryUnavailable(
                f"registry {registry} is unreachable: {_one_line(err)}", details=self._details(reference)
            ) from err
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            raise RegistryError(
                f"request to registry {registry} failed: {_one_line(err)}", details=self._details(reference)
            ) from err
        if _quota_spent(response.headers.get("ratelimit-remaining")):
            wait = parse_retry_after(response.headers.get("retry-after"))
            self._block(registry, QUOTA_SPENT_BLOCK if wait is None else wait)
        return response

    def _raise_for_status(self, reference: ImageReference, response: httpx.Response) -> None:
        status = response.status_code
        if status < 300:
            return
        registry = reference.registry
        details = self._details(reference, status=status)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            self._block(registry, DEFAULT_RATE_LIMIT_BLOCK if retry_after is None else retry_after)
            raise RegistryRateLimited(
                f"registry {registry} is rate limiting requests", retry_after=retry_after, details=details
            )
        if status in (401, 403):
            raise RegistryAuthFailed(f"registry {registry} refused access to {reference.repository}", details=details)
        if status == 404:
            raise ManifestUnknown(f"{reference} is not in registry {registry}", details=details)
        if status >= 500:
            raise RegistryUnavailable(f"registry {registry} failed with HTTP {status}", details=details)
        raise RegistryError(f"registry {registry} answered HTTP {status}", details=details)

    def _state(self, registry: str) -> _RegistryState:
        return self._states.setdefault(registry, _RegistryState())

    def _block(self, registry: str, seconds: float) -> None:
        self.metrics.registry_rate_limited.labels(registry).inc()
        self.metrics.registry_wait.labels(registry).inc(max(seconds, 0.0))
        state = self._state(registry)
        state.blocked_until = max(state.blocked_until, self._clock() + seconds)

    def _check_block(self, reference: ImageReference) -> None:
        remaining = self._state(reference.registry).blocked_until - self._clock()
        if remaining > 0:
            raise RegistryRateLimited(
                f"registry {reference.registry} is rate limited for another {remaining:.0f} s",
                retry_after=remaining,
                details=self._details(reference),
            )

    @staticmethod
    def _details(reference: ImageReference, *, status: int | None = None) -> dict[str, Any]:
        details: dict[str, Any] = {"image": str(reference), "registry": reference.registry}
        if status is not None:
            details["status"] = status
        return details


def _basic(credentials: RegistryCredentials) -> str:
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")
