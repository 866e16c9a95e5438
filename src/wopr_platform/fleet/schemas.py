"""The fleet API's request and response shapes (camelCase on the wire, as the original service's clients expect)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic.alias_generators import to_camel

from wopr_platform.core import limits, subdomains
from wopr_platform.core.cron import InvalidCron, validate_cron
from wopr_platform.core.reference import ImageReference, InvalidReference
from wopr_platform.crypto.secretbox import MARK as SEALED_MARK

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}\Z")
VOLUME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}\Z")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}\Z")
MAX_ENV_ENTRIES = 200
MAX_ENV_VALUE = 32_768
RESERVED_ENV = frozenset({"WOPR_HOME"})

RestartPolicy = Literal["no", "always", "on-failure", "unless-stopped"]
ReleaseChannel = Literal["canary", "staging", "stable", "pinned"]


def _trim(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError("name must be 1-63 letters, digits, '_' or '-', starting with a letter or digit")
    return value


def _check_volume(value: str) -> str:
    if "/" in value or "\\" in value or ".." in value or not VOLUME_RE.match(value):
        raise ValueError(
            "volumeName must be 1-63 letters, digits, '_', '.' or '-', start with a letter or digit, "
            "and contain no path or '..'"
        )
    return value


def sealed_mark_refused(what: str) -> str:
    """Why a value that looks sealed is refused: it would be stored and opened as if the platform had sealed it."""
    return f"{what} starts with {SEALED_MARK!r}, the platform's mark of a sealed secret; no value may"


def _check_env(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_ENV_ENTRIES:
        raise ValueError(f"env has more than {MAX_ENV_ENTRIES} entries")
    for key, item in value.items():
        if not ENV_KEY_RE.match(key):
            raise ValueError(f"env key {key[:64]!r} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)")
        if key in RESERVED_ENV:
            raise ValueError(f"env key {key} is set by the platform")
        if "\x00" in item:
            raise ValueError(f"env value of {key} contains a NUL byte")
        if item.startswith(SEALED_MARK):
            raise ValueError(sealed_mark_refused(f"env value of {key}"))
        if len(item) > MAX_ENV_VALUE:
            raise ValueError(f"env value of {key} is longer than {MAX_ENV_VALUE} characters")
    return value


def _check_secret_keys(value: list[str]) -> list[str]:
    for key in value:
        if not ENV_KEY_RE.match(key):
            raise ValueError(f"secretEnv key {key[:64]!r} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)")
    return sorted(set(value))


def _check_policy(value: str) -> str:
    if value in ("on-push", "nightly", "manual"):
        return value
    if value.startswith("cron:"):
        try:
            validate_cron(value[len("cron:") :])
        except InvalidCron as err:
            raise ValueError(f"invalid cron expression: {err}") from err
        return value
    raise ValueError("updatePolicy must be on-push, nightly, manual or cron:<expression>")


def _check_image(value: str) -> str:
    """A reference in Docker's grammar and within its lengths (the allowlist is checked by the fleet service)."""
    try:
        ImageReference.parse(value)
    except InvalidReference as err:
        raise ValueError(f"invalid image reference: {err}") from None
    return value


BotName = Annotated[str, BeforeValidator(_trim), Field(max_length=63), AfterValidator(_check_name)]
VolumeName = Annotated[str, Field(max_length=63), AfterValidator(_check_volume)]
EnvMap = Annotated[dict[str, str], AfterValidator(_check_env)]
# the env keys whose values are secret: sealed at rest, `***` in every answer (checked against env when stored)
SecretKeys = Annotated[list[str], Field(max_length=MAX_ENV_ENTRIES), AfterValidator(_check_secret_keys)]
UpdatePolicy = Annotated[str, Field(max_length=200), AfterValidator(_check_policy)]
Image = Annotated[str, AfterValidator(_check_image)]
Description = Annotated[str, Field(max_length=2000)]
# one lowercase RFC 1123 label, not reserved; unique across every tenant (checked when stored)
Subdomain = Annotated[str, Field(max_length=63), AfterValidator(subdomains.check)]


SECRET_ENV_DESCRIPTION = "the env keys whose values are secret (sealed at rest, shown as ***)"  # noqa: S105 (a description)


@dataclass(frozen=True, slots=True)
class BotOrigin:
    """Where a new bot comes from: a template (name and version); for a seed also the claim on the template's one
    seeded bot per tenant, taking the place of `stale_seed` (a seed that never finished making its bot)."""

    template: str
    version: int
    seed: bool = False
    stale_seed: str | None = None


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True, extra="forbid")


class HealthCheck(_Wire):
    """How the platform probes the instance; unset fields take the platform's defaults."""

    endpoint: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_.~-]{0,200}$")] = "/health"
    interval_seconds: Annotated[int, Field(ge=1, le=3600)] | None = None
    timeout_seconds: Annotated[int, Field(ge=1, le=60)] | None = None
    retries: Annotated[int, Field(ge=1, le=100)] | None = None
    start_period_seconds: Annotated[int, Field(ge=0, le=3600)] | None = None

    def stored(self) -> dict[str, Any]:
        """The form kept in the profile: camelCase, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True)

    # no return annotation on purpose: with one, the answer's documented schema would be that annotation's
    @model_serializer(mode="wrap")
    def _shown_as_set(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """Shown as set: a field the profile leaves to the platform's default is left out, not sent as null."""
        return {key: value for key, value in handler(self).items() if value is not None}


class Resources(_Wire):
    """A bot's own resource limits; unset fields take the platform's defaults (`FLEET_DEFAULT_*`), and no field
    may exceed its bound (`FLEET_MAX_*`). In a PATCH, given fields change, null ones return to the default."""

    memory_mb: Annotated[int, Field(ge=limits.MIN_MEMORY_MB, le=limits.CEILING_MEMORY_MB)] | None = None
    cpus: Annotated[float, Field(ge=limits.MIN_CPUS, le=limits.CEILING_CPUS)] | None = None
    pids: Annotated[int, Field(ge=limits.MIN_PIDS, le=limits.CEILING_PIDS)] | None = None

    def stored(self) -> dict[str, Any] | None:
        """The overrides as kept in the profile (camelCase keys, unset ones left out); None when there are none."""
        return self.model_dump(by_alias=True, exclude_none=True) or None


class Limits(_Wire):
    """The limits a bot's container runs with: its own `resources` over the platform's defaults."""

    memory_mb: int
    cpus: float
    pids: int


class BotCreate(_Wire):
    """POST /fleet/bots."""

    name: BotName
    image: Image
    description: Description = ""
    env: EnvMap = Field(default_factory=dict)
    secret_env: SecretKeys = Field(default_factory=list)
    restart_policy: RestartPolicy = "unless-stopped"
    volume_name: VolumeName | None = None
    release_channel: ReleaseChannel = "stable"
    update_policy: UpdatePolicy = "manual"
    health_check: HealthCheck | None = None
    subdomain: Subdomain | None = None
    resources: Resources | None = None


class BotPatch(_Wire):
    """PATCH /fleet/bots/{id}: only the fields given change."""

    name: BotName | None = None
    image: Image | None = None
    description: Description | None = None
    env: EnvMap | None = None
    secret_env: SecretKeys | None = None
    restart_policy: RestartPolicy | None = None
    volume_name: VolumeName | None = None
    release_channel: ReleaseChannel | None = None
    update_policy: UpdatePolicy | None = None
    health_check: HealthCheck | None = None
    subdomain: Subdomain | None = None
    resources: Resources | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the request actually set, by attribute name (null counts as not set)."""
        changes = {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}
        if self.health_check is not None:
            changes["health_check"] = self.health_check.stored()
        if self.resources is not None:  # keys given as null stay: they drop that override (fleet.resources.merge)
            changes["resources"] = self.resources.model_dump(by_alias=True, exclude_unset=True)
        return changes


class Stats(_Wire):
    cpu_percent: float
    memory_usage_mb: float
    memory_limit_mb: float
    memory_percent: float


class BotTemplate(_Wire):
    """The profile template a bot was created from."""

    name: str
    version: int


class BotProfile(_Wire):
    """A bot's desired state as stored; `env` shows the values of its secret keys as `***`."""

    id: str
    name: str
    description: str
    image: str
    env: dict[str, str]
    secret_env: list[str] = Field(description=SECRET_ENV_DESCRIPTION)
    restart_policy: str
    volume_name: str
    image_digest: str | None = Field(None, description="the registry digest the container runs, pinned")
    release_channel: str
    update_policy: str
    health_check: HealthCheck | None
    template: BotTemplate | None = None
    subdomain: str
    resources: Limits
    desired_state: Literal["running", "stopped"]
    container_id: str | None
    created_at: datetime
    updated_at: datetime


class BotStatus(_Wire):
    """A bot as it is now: desired state joined with what the engine last reported."""

    id: str
    tenant_id: str
    name: str
    description: str
    image: str
    container_id: str | None
    state: str = Field(description="the engine's container state; `stopped` when the bot has no container")
    observed_state: str = Field(
        description="the engine's container state; `missing` when the bot has no container, `unknown` when "
        "no container is known and the engine cannot be read (unreachable, or not read yet since start)"
    )
    health: Literal["healthy", "unhealthy", "starting", "none"] | None = Field(
        description="the last probe's verdict (`none` while the container is not running); null without a container"
    )
    uptime: datetime | None = Field(
        description="when the running container started (as `startedAt`); null when not running"
    )
    uptime_seconds: int | None = Field(description="seconds since the running container started; null when not running")
    started_at: datetime | None
    created_at: datetime
    updated_at: datetime
    desired_state: Literal["running", "stopped"]
    restart_count: int
    crash_looping: bool
    stale: bool
    stats: Stats | None


class PublicUrls(_Wire):
    """Where tenants reach a bot through the proxy."""

    host: str
    path: str


class BotDetail(BotStatus):
    """GET /fleet/bots/{id}: the status plus the rest of the profile; `urls` is null when routing is off."""

    env: dict[str, str]
    secret_env: list[str] = Field(description=SECRET_ENV_DESCRIPTION)
    restart_policy: str
    volume_name: str
    image_digest: str | None = Field(None, description="the registry digest the container runs, pinned")
    release_channel: str
    update_policy: str
    health_check: HealthCheck | None
    template: BotTemplate | None = None
    subdomain: str
    resources: Limits
    urls: PublicUrls | None = None


BotListState = Literal["created", "running", "paused", "restarting", "removing", "exited", "dead", "stopped"]
BotListHealth = Literal["healthy", "unhealthy", "starting", "none"]


class BotList(_Wire):
    bots: list[BotStatus]
    # with a page or a filter asked for: the cursor of the next page (null on the last), the tenant's bots by state
    next_after: str | None = None
    counts: dict[BotListState, int] | None = None


class Ok(_Wire):
    ok: bool = True


class DriftItem(_Wire):
    """One way a bot's container differs from its profile now."""

    bot_id: str
    kind: str = Field(
        description="missing, stopped, running, changed, duplicate or adopt (repaired); old_volume (a volume the bot "
        "had before its volumeName changed, kept with its data until DELETE ?removeVolumes=true)"
    )
    detail: dict[str, Any]


class Orphan(_Wire):
    """A container with this platform's labels that belongs to no bot, removed once its grace has passed."""

    container_id: str
    name: str
    bot_id: str | None
    first_seen_at: datetime
    remove_after_seconds: float


class RepairView(_Wire):
    """What the reconciler did about one drift."""

    bot_id: str
    kind: str
    action: str
    outcome: str
    error: str | None
    at: datetime


class DriftReport(_Wire):
    """GET /fleet/drift: what differs now, the orphans waiting out their grace, and the latest repairs."""

    drift: list[DriftItem]
    orphans: list[Orphan]
    repairs: list[RepairView]
    last_run_at: datetime | None
    last_run_ms: float | None
    stale: str | None = Field(description="why the engine's state is not known now (null when it is)")


# --- quotas -----------------------------------------------------------------------------------------------

MAX_QUOTA_BOTS = 1_000_000
MAX_QUOTA_MEMORY_MB = 1_000_000_000
MAX_QUOTA_CPUS = 1_000_000.0


class QuotaOverrides(_Wire):
    """PUT /tenants/{tenantId}/quota: a tenant's own limits; null (or left out) is the platform's default
    (`FLEET_TENANT_MAX_*`), 0 is no limit."""

    max_bots: Annotated[int, Field(ge=0, le=MAX_QUOTA_BOTS)] | None = None
    max_memory_mb: Annotated[int, Field(ge=0, le=MAX_QUOTA_MEMORY_MB)] | None = None
    max_cpus: Annotated[float, Field(ge=0, le=MAX_QUOTA_CPUS)] | None = None


class QuotaLimits(_Wire):
    """The limits in force: the tenant's overrides, else the platform's defaults; 0 is no limit."""

    max_bots: int
    max_memory_mb: int
    max_cpus: float


class QuotaUsage(_Wire):
    """What the tenant's bots hold now: how many, and the sums of their effective memory and CPU limits."""

    bots: int
    memory_mb: int
    cpus: float


class TenantQuota(_Wire):
    """A tenant's quota: the limits in force, its own overrides (null: the default) and its usage."""

    tenant_id: str
    limits: QuotaLimits
    overrides: QuotaOverrides
    usage: QuotaUsage
