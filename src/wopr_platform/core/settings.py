"""Settings read from the environment, with the original service's names and defaults."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from wopr_platform.core import addresses as proxy_addresses
from wopr_platform.core import limits
from wopr_platform.core.addresses import HostPort
from wopr_platform.core.cron import InvalidCron, validate_cron
from wopr_platform.core.limits import Limits
from wopr_platform.core.naming import VOLUME_PLACEHOLDER
from wopr_platform.core.networks import Networks, SubnetPool
from wopr_platform.core.plans import Plan, parse_plans
from wopr_platform.core.prices import RuntimePrices
from wopr_platform.core.reference import ImageReference, InvalidReference

_CONSTRAINT = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}\s*(?:==|!=)\s*[A-Za-z0-9_.:/-]{1,128}\Z")


def _comma_list(value: object) -> object:
    """An environment value `a, b,,c` as `["a", "b", "c"]`; anything else as it is."""
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


LogLevel = Literal["debug", "info", "warning", "error"]
DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
DEFAULT_RUNTIME_PRICES = "small:512:7000,standard:1024:14000,large:4096:56000"
MIN_SECRET_BYTES = 16  # of PLATFORM_SECRET and each PLATFORM_SECRET_PREVIOUS entry


class Settings(BaseSettings):
    """Every knob of the platform; built once by the composition root and passed down."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    port: int = Field(3100, ge=1, le=65535, validation_alias="PORT")
    host: str = Field("0.0.0.0", min_length=1, validation_alias="HOST")
    env: Literal["development", "production", "test"] = Field(
        "development", validation_alias=AliasChoices("ENV", "NODE_ENV")
    )
    log_level: LogLevel = Field("info", validation_alias="LOG_LEVEL")
    # json: one object per line; console: plain lines for a person; auto: console on a terminal outside production
    log_format: Literal["auto", "json", "console"] = Field("auto", validation_alias="LOG_FORMAT")
    fleet_api_token: SecretStr | None = Field(None, validation_alias="FLEET_API_TOKEN")
    data_dir: Path = Field(Path("./data"), validation_alias="WOPR_DATA_DIR")
    database_url_setting: str | None = Field(None, validation_alias="DATABASE_URL")
    platform_id: str = Field(
        "default", pattern=r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$", validation_alias="WOPR_PLATFORM_ID"
    )
    docker_host: str = Field("unix:///var/run/docker.sock", validation_alias="DOCKER_HOST")
    docker_timeout: float = Field(60.0, gt=0, le=600, validation_alias="DOCKER_TIMEOUT")
    # the engine bots run on (see docker/swarm.py): plain Docker containers, or services of an existing swarm
    # (DOCKER_HOST then names a manager), placed on the nodes the constraints allow (`node.labels.wopr==bots`)
    fleet_engine: Literal["docker", "swarm"] = Field("docker", validation_alias="FLEET_ENGINE")
    swarm_constraints: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="FLEET_SWARM_CONSTRAINTS"
    )
    # the volume driver of bots' data on Swarm, and its options (a JSON object; `{volume}` in a value stands for
    # the volume's name): a shared driver lets a bot's data follow it to another node (see docs/swarm.md)
    swarm_volume_driver: str = Field(
        "local", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$", validation_alias="FLEET_SWARM_VOLUME_DRIVER"
    )
    swarm_volume_options: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias="FLEET_SWARM_VOLUME_OPTIONS"
    )
    image_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["ghcr.io/wopr-network/"], validation_alias="FLEET_IMAGE_ALLOWLIST"
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, validation_alias="FLEET_MAX_BODY_BYTES")
    stop_timeout: int = Field(10, ge=0, le=300, validation_alias="FLEET_STOP_TIMEOUT")
    health_interval: float = Field(10.0, gt=0, le=3600, validation_alias="FLEET_HEALTH_INTERVAL")
    health_timeout: float = Field(2.0, gt=0, le=60, validation_alias="FLEET_HEALTH_TIMEOUT")
    health_retries: int = Field(3, ge=1, le=100, validation_alias="FLEET_HEALTH_RETRIES")
    health_start_period: float = Field(30.0, ge=0, le=3600, validation_alias="FLEET_HEALTH_START_PERIOD")
    # a bot healthy for long is probed up to this many times less often (1: always at FLEET_HEALTH_INTERVAL)
    health_max_backoff: int = Field(6, ge=1, le=60, validation_alias="FLEET_HEALTH_MAX_BACKOFF")
    reconcile_interval: float = Field(10.0, gt=0, le=3600, validation_alias="FLEET_RECONCILE_INTERVAL")
    orphan_grace: float = Field(300.0, ge=0, le=86400, validation_alias="FLEET_ORPHAN_GRACE")
    crash_at: str | None = Field(None, validation_alias="WOPR_CRASH_AT")
    stats_interval: float = Field(10.0, gt=0, le=3600, validation_alias="FLEET_STATS_INTERVAL")
    # at most this many stats samples a second in all: a large fleet is sampled less often than the interval
    stats_rate: float = Field(20.0, gt=0, le=1000, validation_alias="FLEET_STATS_RATE")
    resync_interval: float = Field(30.0, gt=0, le=3600, validation_alias="FLEET_RESYNC_INTERVAL")
    # resource limits of each bot container (see fleet/limits.py): the bounds of a bot's own `resources`,
    # then the defaults of a bot without them (each within its bound; checked in that order)
    max_memory_mb: int = Field(
        8192, ge=limits.MIN_MEMORY_MB, le=limits.CEILING_MEMORY_MB, validation_alias="FLEET_MAX_MEMORY_MB"
    )
    max_cpus: float = Field(4.0, ge=limits.MIN_CPUS, le=limits.CEILING_CPUS, validation_alias="FLEET_MAX_CPUS")
    max_pids: int = Field(4096, ge=limits.MIN_PIDS, le=limits.CEILING_PIDS, validation_alias="FLEET_MAX_PIDS")
    default_memory_mb: int = Field(
        512, ge=limits.MIN_MEMORY_MB, le=limits.CEILING_MEMORY_MB, validation_alias="FLEET_DEFAULT_MEMORY_MB"
    )
    default_cpus: float = Field(1.0, ge=limits.MIN_CPUS, le=limits.CEILING_CPUS, validation_alias="FLEET_DEFAULT_CPUS")
    default_pids: int = Field(256, ge=limits.MIN_PIDS, le=limits.CEILING_PIDS, validation_alias="FLEET_DEFAULT_PIDS")
    # quotas of each tenant (see fleet/quotas): at most this many bots, and these sums of their effective memory and
    # CPU limits; 0 means no limit; the platform's operator may set other values per tenant
    tenant_max_bots: int = Field(50, ge=0, le=1_000_000, validation_alias="FLEET_TENANT_MAX_BOTS")
    tenant_max_memory_mb: int = Field(32768, ge=0, le=1_000_000_000, validation_alias="FLEET_TENANT_MAX_MEMORY_MB")
    tenant_max_cpus: float = Field(32.0, ge=0, le=1_000_000, validation_alias="FLEET_TENANT_MAX_CPUS")
    # profile templates (None: the packaged standard templates) and the file of values for their ${VAR}s
    templates_dir: Path | None = Field(None, validation_alias="FLEET_TEMPLATES_DIR")
    template_secrets_file: Path | None = Field(None, validation_alias="FLEET_TEMPLATE_SECRETS")
    # image updates: how often each release channel's images are checked (seconds, with jitter), when the
    # `nightly` policy applies (UTC), how long a scheduled time stays open, and the health gate of an update
    update_interval_canary: float = Field(300.0, gt=0, le=604800, validation_alias="FLEET_UPDATE_INTERVAL_CANARY")
    update_interval_staging: float = Field(900.0, gt=0, le=604800, validation_alias="FLEET_UPDATE_INTERVAL_STAGING")
    update_interval_stable: float = Field(1800.0, gt=0, le=604800, validation_alias="FLEET_UPDATE_INTERVAL_STABLE")
    update_jitter: float = Field(0.1, ge=0, le=0.5, validation_alias="FLEET_UPDATE_JITTER")
    update_nightly_at: str = Field(
        "03:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", validation_alias="FLEET_UPDATE_NIGHTLY_AT"
    )
    update_window: float = Field(3600.0, ge=60, le=86400, validation_alias="FLEET_UPDATE_WINDOW")
    update_health_timeout: float = Field(120.0, gt=0, le=3600, validation_alias="FLEET_UPDATE_HEALTH_TIMEOUT")
    # fleet rollouts: cumulative wave sizes (a count of bots or a percentage), the failure rate of a wave
    # above which the rollout halts, and how many bots of a wave update at once
    rollout_waves: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["1", "25%", "100%"], validation_alias="FLEET_ROLLOUT_WAVES"
    )
    rollout_max_failure_rate: float = Field(0.2, ge=0, le=1, validation_alias="FLEET_ROLLOUT_MAX_FAILURE_RATE")
    rollout_parallel: int = Field(4, ge=1, le=64, validation_alias="FLEET_ROLLOUT_PARALLEL")
    # registries: a Docker-style credentials file (`{"auths": {host: {"auth"|"username"/"password"}}}`), hosts
    # spoken to over plain HTTP (loopback always is), and the timeout of one registry request
    registry_credentials_file: Path | None = Field(None, validation_alias="FLEET_REGISTRY_CREDENTIALS")
    registry_insecure: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="FLEET_REGISTRY_INSECURE"
    )
    registry_timeout: float = Field(10.0, gt=0, le=300, validation_alias="FLEET_REGISTRY_TIMEOUT")
    # tenant routing (see proxy/): whether the platform keeps Caddy in step, Caddy's admin API, the base domain and
    # listen addresses of the server block it owns, TLS automation (left to Caddy, or off), where the platform
    # answers Caddy's route lookups, how long Caddy keeps an answer, how often Caddy's config is checked, and the
    # first of three loopback addresses on which Caddy answers for unreachable bots (default: from the platform id)
    proxy_enabled: bool = Field(True, validation_alias="PROXY_ENABLED")
    caddy_admin_url: str = Field("http://127.0.0.1:2019", validation_alias="CADDY_ADMIN_URL")
    proxy_domain: str = Field("wopr.network", validation_alias="PROXY_DOMAIN")
    proxy_listen: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [":443"], validation_alias="PROXY_LISTEN"
    )
    proxy_tls: Literal["auto", "off"] = Field("auto", validation_alias="PROXY_TLS")
    proxy_dns_listen: str = Field("127.0.0.1:2053", validation_alias="PROXY_DNS_LISTEN")
    proxy_dns_refresh: float = Field(1.0, ge=0.05, le=300, validation_alias="PROXY_DNS_REFRESH")
    proxy_check_interval: float = Field(2.0, gt=0, le=3600, validation_alias="PROXY_CHECK_INTERVAL")
    proxy_status_ip: str | None = Field(None, validation_alias="PROXY_STATUS_IP")
    # API protection (see api/ratelimit.py, api/headers.py): requests per window for each bearer token (and for each
    # client address that presents no valid token; 0 turns the limit off), and whether the API is reached over HTTPS
    # (answers then carry Strict-Transport-Security)
    rate_limit: int = Field(600, ge=0, le=1_000_000, validation_alias="FLEET_RATE_LIMIT")
    rate_window: float = Field(60.0, gt=0, le=86400, validation_alias="FLEET_RATE_WINDOW")
    https: bool = Field(False, validation_alias="PLATFORM_HTTPS")
    # the HTTP front door (see app/frontdoor.py): how long a request's headers and its body may take to arrive,
    # how long an idle keep-alive connection stays open, connections accepted in total and from one client address,
    # requests served by one connection, and the proxies whose forwarded headers are believed (none by default)
    http_header_timeout: float = Field(10.0, gt=0, le=600, validation_alias="HTTP_HEADER_TIMEOUT")
    http_body_timeout: float = Field(30.0, gt=0, le=3600, validation_alias="HTTP_BODY_TIMEOUT")
    http_keepalive_timeout: int = Field(5, ge=1, le=600, validation_alias="HTTP_KEEPALIVE_TIMEOUT")
    http_max_connections: int = Field(2048, ge=1, le=1_000_000, validation_alias="HTTP_MAX_CONNECTIONS")
    http_max_connections_per_client: int = Field(
        128, ge=1, le=1_000_000, validation_alias="HTTP_MAX_CONNECTIONS_PER_CLIENT"
    )
    http_max_requests_per_connection: int = Field(
        1000, ge=1, le=1_000_000, validation_alias="HTTP_MAX_REQUESTS_PER_CONNECTION"
    )
    # accounts (see accounts/): who may sign up (`open`; `invite`: the first user, the platform admin, and people
    # invited by a tenant admin; `off`), and how long a session lasts idle and at most
    auth_signup: Literal["open", "invite", "off"] = Field("open", validation_alias="AUTH_SIGNUP")
    session_idle_timeout: int = Field(8 * 3600, ge=60, le=30 * 86400, validation_alias="SESSION_IDLE_TIMEOUT")
    session_max_age: int = Field(7 * 86400, ge=300, le=365 * 86400, validation_alias="SESSION_MAX_AGE")
    # password reset and invitation tokens: how long one stays valid (seconds)
    password_reset_ttl: int = Field(3600, ge=60, le=86400, validation_alias="PASSWORD_RESET_TTL")
    invitation_ttl: int = Field(7 * 86400, ge=300, le=90 * 86400, validation_alias="INVITATION_TTL")
    # outgoing mail (see mail/): the SMTP server (none: mail is off, and what needs it answers 503), how to secure
    # the connection (`starttls`, `tls` from the first byte, or `off`), the sender, and the address of the web app
    # that links in mails point at
    smtp_host: str | None = Field(None, validation_alias="SMTP_HOST")
    smtp_port: int | None = Field(None, ge=1, le=65535, validation_alias="SMTP_PORT")
    smtp_username: str | None = Field(None, validation_alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(None, validation_alias="SMTP_PASSWORD")
    smtp_from: str = Field("wopr-platform@localhost", min_length=3, max_length=254, validation_alias="SMTP_FROM")
    smtp_tls: Literal["starttls", "tls", "off"] = Field("starttls", validation_alias="SMTP_TLS")
    smtp_timeout: float = Field(10.0, gt=0, le=300, validation_alias="SMTP_TIMEOUT")
    platform_url: str = Field(
        "http://localhost:3100", pattern=r"^https?://[^\s/]+(/[^\s]*)?$", validation_alias="PLATFORM_URL"
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias="TRUSTED_PROXIES")
    # secrets at rest (see crypto/keys.py): the key material that seals secret env values in the database, and
    # earlier key material still accepted for reading (comma-separated) while values move to the current key
    platform_secret: SecretStr | None = Field(None, validation_alias="PLATFORM_SECRET")
    platform_secret_previous: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, validation_alias="PLATFORM_SECRET_PREVIOUS"
    )
    # bots and the host (see fleet/isolation.py): whether the platform keeps a host firewall chain that drops what
    # bots send to the host's own addresses, the host ports it still lets bots reach (none by default; never the
    # API's), and how often the chain is checked and put back
    bot_host_isolation: bool = Field(True, validation_alias="BOT_HOST_ISOLATION")
    bot_host_ports: Annotated[list[HostPort], NoDecode] = Field(default_factory=list, validation_alias="BOT_HOST_PORTS")
    bot_host_check_interval: float = Field(5.0, gt=0, le=3600, validation_alias="BOT_HOST_CHECK_INTERVAL")
    # tenant networks (see core/networks.py): the private ranges their subnets are cut from, and the prefix length of
    # each subnet (the prefix first: the ranges are checked against it)
    tenant_subnet_prefix: int = Field(27, ge=24, le=29, validation_alias="FLEET_TENANT_SUBNET_PREFIX")
    tenant_subnets: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["10.200.0.0/14"], validation_alias="FLEET_TENANT_SUBNETS"
    )

    # billing (see billing/): off by default (no Stripe keys needed); amounts in micro-dollars (1 USD = 1,000,000)
    billing_enabled: bool = Field(False, validation_alias="BILLING_ENABLED")
    stripe_secret_key: SecretStr | None = Field(None, validation_alias="STRIPE_SECRET_KEY")
    stripe_webhook_secret: SecretStr | None = Field(None, validation_alias="STRIPE_WEBHOOK_SECRET")
    stripe_api_base: str | None = Field(None, pattern=r"^https?://[^\s/]+/?$", validation_alias="STRIPE_API_BASE")
    # where Stripe serves its hosted Checkout pages: the console sends a buyer there and nowhere else, and its
    # pages' form policy allows that one site besides their own
    stripe_checkout_origin: str = Field(
        "https://checkout.stripe.com",
        pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        validation_alias="STRIPE_CHECKOUT_ORIGIN",
    )
    billing_currency: str = Field("usd", pattern=r"^[a-z]{3}$", validation_alias="BILLING_CURRENCY")
    # creating or starting a bot needs at least this balance (else 402), and a purchase is within these (cents)
    billing_min_balance: int = Field(1_000_000, ge=0, le=10**12, validation_alias="BILLING_MIN_BALANCE")
    billing_min_purchase_cents: int = Field(500, ge=50, le=10**8, validation_alias="BILLING_MIN_PURCHASE_CENTS")
    billing_max_purchase_cents: int = Field(100_000, ge=50, le=10**8, validation_alias="BILLING_MAX_PURCHASE_CENTS")
    # what a running bot costs an hour, by the tier its effective memory limit falls in
    billing_runtime_prices: Annotated[RuntimePrices, NoDecode] = Field(
        default_factory=lambda: RuntimePrices.parse(DEFAULT_RUNTIME_PRICES), validation_alias="BILLING_RUNTIME_PRICES"
    )
    # how often the leader charges the hours that ended and applies webhook events a failure left in the inbox
    billing_interval: float = Field(60.0, gt=0, le=3600, validation_alias="BILLING_INTERVAL")
    # a tenant out of credits (balance at or below 0) this long is suspended: its bots stopped, data kept; after
    # the retention a still-suspended tenant's bots are removed with their data, warned this long before (seconds)
    billing_grace: int = Field(86_400, ge=0, le=365 * 86_400, validation_alias="BILLING_GRACE")
    billing_retention: int = Field(30 * 86_400, ge=3600, le=3650 * 86_400, validation_alias="BILLING_RETENTION")
    billing_removal_warning: int = Field(3 * 86_400, ge=0, le=365 * 86_400, validation_alias="BILLING_REMOVAL_WARNING")
    # plans (see core/plans.py): what each lets a tenant run, and the plan of a tenant the operator gave none
    billing_plans_text: str = Field("", max_length=10_000, validation_alias="BILLING_PLANS")
    billing_default_plan: str | None = Field(None, validation_alias="BILLING_DEFAULT_PLAN")
    # where the 402 answer sends a tenant to buy credits (default: the web app's billing page)
    billing_buy_url: str | None = Field(None, pattern=r"^https?://[^\s]+$", validation_alias="BILLING_BUY_URL")

    # the AI gateway (see gateway/): off by default. Its own listener, the one host port bots may reach (added to
    # BOT_HOST_PORTS); bots find it as http://GATEWAY_BOT_HOST:GATEWAY_PORT, a name their containers resolve to the
    # host. What a call costs is the model's price times (100 + GATEWAY_MARGIN_PERCENT) / 100.
    gateway_enabled: bool = Field(False, validation_alias="GATEWAY_ENABLED")
    gateway_host: str = Field("0.0.0.0", validation_alias="GATEWAY_HOST")
    gateway_port: int = Field(3101, ge=1, le=65535, validation_alias="GATEWAY_PORT")
    gateway_bot_host: str = Field(
        "wopr-gateway", pattern=r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$", validation_alias="GATEWAY_BOT_HOST"
    )
    gateway_margin_percent: int = Field(20, ge=0, le=1000, validation_alias="GATEWAY_MARGIN_PERCENT")
    # each key's calls per minute (0: no limit), and what an answer's length is assumed to be when a call names none
    gateway_rate_limit: int = Field(600, ge=0, le=1_000_000, validation_alias="GATEWAY_RATE_LIMIT")
    gateway_default_max_tokens: int = Field(4096, ge=1, le=1_000_000, validation_alias="GATEWAY_DEFAULT_MAX_TOKENS")
    # a provider failing this many calls in a row is cut off for GATEWAY_BREAKER_SECONDS (then one call tries it)
    gateway_breaker_failures: int = Field(5, ge=1, le=1000, validation_alias="GATEWAY_BREAKER_FAILURES")
    gateway_breaker_seconds: float = Field(30.0, gt=0, le=3600, validation_alias="GATEWAY_BREAKER_SECONDS")
    # how long a provider may take to answer (seconds), and the most calls in flight to providers at once
    gateway_upstream_timeout: float = Field(600.0, gt=0, le=3600, validation_alias="GATEWAY_UPSTREAM_TIMEOUT")
    gateway_max_connections: int = Field(1000, ge=1, le=100_000, validation_alias="GATEWAY_MAX_CONNECTIONS")
    gateway_max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024, validation_alias="GATEWAY_MAX_BODY"
    )
    # the most of a tenant's credits (micro-dollars) one replica holds at a time for its calls to reserve from in
    # memory, and how often (seconds) the charges of ended calls are posted to the ledger in one transaction
    gateway_lease: int = Field(1_000_000, ge=1, le=10**12, validation_alias="GATEWAY_LEASE")
    gateway_charge_interval: float = Field(1.0, gt=0, le=60, validation_alias="GATEWAY_CHARGE_INTERVAL")

    # backups of bots' data volumes (see backups/): kept in a local directory (BACKUP_DIR, default
    # <WOPR_DATA_DIR>/backups) or in an S3-compatible bucket; sealed with a key derived from PLATFORM_SECRET
    backup_store: Literal["local", "s3"] = Field("local", validation_alias="BACKUP_STORE")
    backup_dir: Path | None = Field(None, validation_alias="BACKUP_DIR")
    backup_s3_bucket: str | None = Field(None, min_length=3, max_length=63, validation_alias="BACKUP_S3_BUCKET")
    backup_s3_endpoint: str | None = Field(None, pattern=r"^https?://[^\s]+$", validation_alias="BACKUP_S3_ENDPOINT")
    backup_s3_region: str = Field("us-east-1", validation_alias="BACKUP_S3_REGION")
    backup_s3_prefix: str = Field("", max_length=200, validation_alias="BACKUP_S3_PREFIX")
    backup_s3_access_key: SecretStr | None = Field(None, validation_alias="BACKUP_S3_ACCESS_KEY")
    backup_s3_secret_key: SecretStr | None = Field(None, validation_alias="BACKUP_S3_SECRET_KEY")
    # what a restored volume may hold at most (bytes, entries): a bigger archive is refused as it is read
    backup_max_volume_bytes: int = Field(
        16 * 1024**3, ge=1024 * 1024, le=10**13, validation_alias="BACKUP_MAX_VOLUME_BYTES"
    )
    backup_max_entries: int = Field(1_000_000, ge=10, le=10**8, validation_alias="BACKUP_MAX_ENTRIES")
    # where a snapshot's tar stream is spooled while it is packed (so the bot's pause lasts only the engine's
    # read): an unnamed file, up to the volume's size; default the system's temporary directory
    backup_spool_dir: Path | None = Field(None, validation_alias="BACKUP_SPOOL_DIR")
    # every tenant's defaults (a tenant's or a bot's policy overrides them): when its bots are backed up (a cron
    # expression in UTC; empty: never by schedule), how many backups of a bot are kept and for how many days
    # (0: no limit), and the storage a tenant's backups may take (bytes; 0: no limit)
    backup_schedule: str | None = Field(None, max_length=200, validation_alias="BACKUP_SCHEDULE")
    backup_keep_last: int = Field(7, ge=0, le=10_000, validation_alias="BACKUP_KEEP_LAST")
    backup_max_age_days: int = Field(30, ge=0, le=36_500, validation_alias="BACKUP_MAX_AGE_DAYS")
    backup_tenant_quota_bytes: int = Field(20 * 1024**3, ge=0, le=10**15, validation_alias="BACKUP_TENANT_QUOTA_BYTES")
    # how often the leader looks for backups that are due or past their retention (seconds); whether an image
    # update copies the data first (so a rollback brings back the data as it was, not as the new version left it)
    backup_interval: float = Field(60.0, gt=0, le=86_400, validation_alias="BACKUP_INTERVAL")
    backup_before_update: bool = Field(True, validation_alias="BACKUP_BEFORE_UPDATE")
    # with billing on: what a GiB of a tenant's backups costs a day (micro-dollars), charged with the runtime hours
    billing_backup_price: int = Field(3_000, ge=0, le=10**9, validation_alias="BILLING_BACKUP_PRICE")

    @field_validator("backup_schedule", mode="before")
    @classmethod
    def _backup_schedule_is_cron(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                validate_cron(value)
            except InvalidCron as err:
                raise ValueError(str(err)) from None
        return value

    @field_validator("default_memory_mb", "default_cpus", "default_pids")
    @classmethod
    def _within_bound(cls, value: float, info: ValidationInfo) -> float:
        bound_field = str(info.field_name).replace("default_", "max_")
        bound = info.data.get(bound_field)
        if bound is not None and value > bound:
            raise ValueError(f"must not exceed FLEET_{bound_field.upper()} ({bound})")
        return value

    @field_validator("tenant_max_bots", "tenant_max_memory_mb", "tenant_max_cpus", mode="before")
    @classmethod
    def _empty_quota_is_unlimited(cls, value: object) -> object:
        return 0 if isinstance(value, str) and not value.strip() else value

    @field_validator("platform_secret", mode="before")
    @classmethod
    def _secret_long_enough(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            if len(value.encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes (e.g. openssl rand -hex 32)")
        return value

    @field_validator("platform_secret_previous", mode="before")
    @classmethod
    def _split_previous(cls, value: object) -> object:
        if isinstance(value, str):
            items = [item.strip() for item in value.split(",") if item.strip()]
            short = [item for item in items if len(item.encode()) < MIN_SECRET_BYTES]
            if short:
                raise ValueError(f"every entry must be at least {MIN_SECRET_BYTES} bytes")
            return items
        return value

    @field_validator("bot_host_ports", mode="before")
    @classmethod
    def _split_host_ports(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            ports = [item if isinstance(item, HostPort) else HostPort.parse(str(item)) for item in value]
            api_port = info.data.get("port")
            if any(port.number == api_port and port.protocol == "tcp" for port in ports):
                raise ValueError(f"must not offer the API's own port ({api_port}) to bots")
            return sorted(set(ports))
        return value

    @field_validator("gateway_port")
    @classmethod
    def _not_the_api_port(cls, value: int, info: ValidationInfo) -> int:
        if value == info.data.get("port"):
            raise ValueError(f"must not be the API's own port ({value}): bots may reach the gateway, never the API")
        return value

    @field_validator("smtp_host", "smtp_username", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("smtp_tls", mode="before")
    @classmethod
    def _lower_smtp_tls(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("templates_dir", "template_secrets_file", "registry_credentials_file", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            return "warning" if value == "warn" else value
        return value

    @field_validator("env", "log_format", mode="before")
    @classmethod
    def _lower_env(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("swarm_constraints", mode="before")
    @classmethod
    def _split_constraints(cls, value: object) -> object:
        value = _comma_list(value)
        if isinstance(value, list):
            for entry in value:
                if not _CONSTRAINT.match(str(entry)):
                    raise ValueError(f"{entry!r}: a constraint is <attribute>==<value> or <attribute>!=<value>")
        return value

    @field_validator("swarm_volume_options", mode="before")
    @classmethod
    def _options_are_json(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError('a JSON object of strings, e.g. {"type": "nfs", "device": ":/w/{volume}"}') from None
        return value

    @field_validator("swarm_volume_options")
    @classmethod
    def _one_place_per_volume(cls, value: dict[str, str]) -> dict[str, str]:
        # a device without the volume's name would give every bot of every tenant the same files
        if "device" in value and VOLUME_PLACEHOLDER not in value["device"]:
            raise ValueError(f"the device must hold {VOLUME_PLACEHOLDER} (each bot's data in a place of its own)")
        for key, option in value.items():
            if not key or "\0" in key + option:
                raise ValueError(f"{key!r}: an option needs a name and no NUL")
        return value

    @field_validator("image_allowlist", mode="before")
    @classmethod
    def _split_allowlist(cls, value: object) -> object:
        value = _comma_list(value)
        if isinstance(value, list):
            for entry in value:
                try:
                    ImageReference.check_allowlist_entry(str(entry))
                except InvalidReference as err:
                    raise ValueError(f"{entry!r}: {err}") from err
        return value

    @field_validator("registry_insecure", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _check_trusted_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            Networks.parse(str(entry) for entry in value)
        return value

    @field_validator("tenant_subnets", mode="before")
    @classmethod
    def _check_tenant_subnets(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        prefix = info.data.get("tenant_subnet_prefix")
        if isinstance(value, list) and isinstance(prefix, int):
            return [str(network) for network in SubnetPool.parse((str(entry) for entry in value), prefix).ranges]
        return value

    @field_validator("rollout_waves", mode="before")
    @classmethod
    def _check_waves(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            if not value:
                raise ValueError("at least one wave")
            for entry in value:
                text = str(entry)
                number = text[:-1] if text.endswith("%") else text
                if not number.isdigit() or int(number) < 1 or (text.endswith("%") and int(number) > 100):
                    raise ValueError(f"{text!r}: a wave is a count of bots (1, 5) or a percentage (25%)")
        return value

    @field_validator("proxy_listen", mode="before")
    @classmethod
    def _split_listen(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return proxy_addresses.check_listen(value) if isinstance(value, list) else value

    @field_validator("proxy_domain")
    @classmethod
    def _check_proxy_domain(cls, value: str) -> str:
        return proxy_addresses.check_domain(value)

    @field_validator("caddy_admin_url")
    @classmethod
    def _check_caddy_url(cls, value: str) -> str:
        return proxy_addresses.check_admin_url(value)

    @field_validator("proxy_dns_listen")
    @classmethod
    def _check_dns_listen(cls, value: str) -> str:
        return proxy_addresses.check_dns_listen(value)

    @field_validator("proxy_tls", mode="before")
    @classmethod
    def _lower_tls(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("proxy_status_ip", mode="before")
    @classmethod
    def _check_status_ip(cls, value: object) -> object:
        if isinstance(value, str):
            return proxy_addresses.check_status_ip(value) if value.strip() else None
        return value

    @field_validator("billing_runtime_prices", mode="before")
    @classmethod
    def _parse_prices(cls, value: object) -> object:
        return RuntimePrices.parse(value) if isinstance(value, str) else value

    @field_validator("billing_plans_text")
    @classmethod
    def _check_plans(cls, value: str, info: ValidationInfo) -> str:
        prices = info.data.get("billing_runtime_prices")
        if isinstance(prices, RuntimePrices):
            parse_plans(value, frozenset(t.name for t in prices.tiers))
        return value

    @field_validator("billing_default_plan")
    @classmethod
    def _check_default_plan(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not value.strip():
            return None
        prices, text = info.data.get("billing_runtime_prices"), info.data.get("billing_plans_text")
        if value is None or not isinstance(prices, RuntimePrices) or not isinstance(text, str):
            return value
        if value not in parse_plans(text, frozenset(t.name for t in prices.tiers)):
            raise ValueError(f"names no plan of BILLING_PLANS: {value}")
        return value

    @field_validator("database_url_setting")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value:
            try:
                driver = make_url(value).drivername
            except ArgumentError:
                raise ValueError("not a database URL") from None
            if driver not in DATABASE_DRIVERS:
                raise ValueError(f"the driver must be one of {', '.join(DATABASE_DRIVERS)}, not {driver}")
        return value

    @property
    def default_limits(self) -> Limits:
        """The resource limits of a bot that sets none of its own."""
        return Limits(memory_mb=self.default_memory_mb, cpus=self.default_cpus, pids=self.default_pids)

    @property
    def trusted_networks(self) -> Networks:
        """The addresses whose X-Forwarded-For / X-Forwarded-Proto are believed."""
        return Networks.parse(self.trusted_proxies)

    @property
    def tenant_subnet_pool(self) -> SubnetPool:
        """The subnets tenant networks are given, one each."""
        return SubnetPool.parse(self.tenant_subnets, self.tenant_subnet_prefix)

    @property
    def max_limits(self) -> Limits:
        """The most a bot's own `resources` may ask for."""
        return Limits(memory_mb=self.max_memory_mb, cpus=self.max_cpus, pids=self.max_pids)

    @property
    def billing_plans(self) -> dict[str, Plan]:
        """The plans by name (checked when the settings are read)."""
        return parse_plans(self.billing_plans_text, frozenset(t.name for t in self.billing_runtime_prices.tiers))

    @property
    def offered_host_ports(self) -> list[HostPort]:
        """The host ports bots may reach: BOT_HOST_PORTS, and the gateway's when it is on."""
        ports = set(self.bot_host_ports)
        if self.gateway_enabled:
            ports.add(HostPort(self.gateway_port, "tcp"))
        return sorted(ports)

    @property
    def gateway_bot_url(self) -> str:
        """The gateway as a bot's container reaches it (its base URL, without `/v1`)."""
        return f"http://{self.gateway_bot_host}:{self.gateway_port}"

    @property
    def buy_url(self) -> str:
        """Where a tenant without credits is sent to buy them."""
        return self.billing_buy_url or f"{self.platform_url.rstrip('/')}/ui/billing"

    def checkout_return_url(self, outcome: str) -> str:
        """Where a buyer comes back to from Stripe's hosted Checkout: the buy page, told how it went."""
        base = self.buy_url
        return f"{base}{'&' if '?' in base else '?'}checkout={outcome}"

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL: the configured one, or a SQLite file in the data dir."""
        if self.database_url_setting:
            return self.database_url_setting
        return f"sqlite+aiosqlite:///{(self.data_dir / 'wopr-platform.db').resolve()}"


class SettingsError(Exception):
    """A setting could not be parsed; the message is one line naming the variable."""


def _env_name(field: str) -> str:
    """The environment variable a field is read from (its first alias)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices):
        alias = alias.choices[0]
    return alias if isinstance(alias, str) else field.upper()


def load_settings() -> Settings:
    """Read the environment; a bad value raises SettingsError with one readable line."""
    try:
        return Settings()
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        name = _env_name(field)
        if name == "ENV" and "ENV" not in os.environ and "NODE_ENV" in os.environ:
            name = "NODE_ENV"  # the value came from the seed's name for it
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"invalid setting {name}: {message}") from None
