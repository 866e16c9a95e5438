"""The parts of the API's answers that `wopr` shows, read from their camelCase JSON (other fields are ignored).

The command line imports nothing of the server, so these are its own reading of the wire, kept to what it needs.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Answer(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


# --- bots -------------------------------------------------------------------------------------------------------


class BotStats(_Answer):
    cpu_percent: float
    memory_usage_mb: float
    memory_limit_mb: float


class Bot(_Answer):
    """A bot as `GET /fleet/bots` lists it: desired state joined with what the engine last reported."""

    id: str
    name: str
    description: str = ""
    image: str
    state: str
    health: str | None
    desired_state: str
    uptime_seconds: int | None
    restart_count: int = 0
    crash_looping: bool = False
    stale: bool = False
    stats: BotStats | None = None


class BotList(_Answer):
    bots: list[Bot]


class Origin(_Answer):
    name: str
    version: int


class Limits(_Answer):
    memory_mb: int
    cpus: float
    pids: int


class Urls(_Answer):
    host: str
    path: str


class BotDetail(Bot):
    """One bot: its status and the rest of its profile."""

    env: dict[str, str] = Field(default_factory=dict)
    restart_policy: str
    volume_name: str
    image_digest: str | None = None
    release_channel: str
    update_policy: str
    subdomain: str
    template: Origin | None = None
    resources: Limits | None = None
    urls: Urls | None = None


class BotProfile(_Answer):
    """A bot's stored profile, as a create or a restore answers it."""

    id: str
    name: str
    image: str
    desired_state: str


class UpdateResult(_Answer):
    bot_id: str
    success: bool
    outcome: str
    previous_image: str
    new_image: str
    new_digest: str | None = None
    rolled_back: bool
    error: str | None = None


# --- templates and rollouts -------------------------------------------------------------------------------------


class Plugin(_Answer):
    plugin: str


class Template(_Answer):
    name: str
    version: int
    description: str = ""
    release: str
    image: str
    variables: list[str] = Field(default_factory=list)
    channel: Plugin | None = None
    provider: Plugin | None = None
    file: str = ""


class LoadError(_Answer):
    file: str
    field: str | None = None
    reason: str


class TemplateList(_Answer):
    templates: list[Template]
    errors: list[LoadError] = Field(default_factory=list)


class Wave(_Answer):
    index: int
    bot_ids: list[str] = Field(default_factory=list)
    state: str
    updated: int = 0
    failed: int = 0
    rolled_back: int = 0
    skipped: int = 0


class Rollout(_Answer):
    id: str
    image: str
    to_digest: str
    state: str
    trigger: str
    reason: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    waves: list[Wave] = Field(default_factory=list)


class RolloutList(_Answer):
    rollouts: list[Rollout]


# --- backups ----------------------------------------------------------------------------------------------------


class Backup(_Answer):
    id: str
    bot_id: str
    bot_name: str
    kind: str
    state: str
    archive_bytes: int
    pause_ms: int | None = None
    error: str | None = None
    created_at: datetime


class BackupList(_Answer):
    backups: list[Backup]
    next_before: datetime | None = None


# --- accounts and keys ------------------------------------------------------------------------------------------


class Key(_Answer):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


class KeyCreated(Key):
    secret: str


class KeyList(_Answer):
    keys: list[Key]


class Membership(_Answer):
    tenant_id: str
    role: str


class User(_Answer):
    email: str
    tenants: list[Membership] = Field(default_factory=list)


class Session(_Answer):
    """What a sign-in answers: the user, and the token state-changing calls made with the cookie send back."""

    user: User
    csrf_token: str


# --- billing ----------------------------------------------------------------------------------------------------


class Standing(_Answer):
    state: str


class Balance(_Answer):
    tenant_id: str
    balance: int
    currency: str
    minimum: int
    standing: Standing | None = None


class HostedCheckout(_Answer):
    session_id: str
    url: str | None
    status: str
    amount_cents: int
    credits: int
    currency: str


class Transaction(_Answer):
    id: str
    kind: str
    amount: int
    memo: str = ""
    created_at: datetime


class TransactionPage(_Answer):
    transactions: list[Transaction]
    next: str | None = None
