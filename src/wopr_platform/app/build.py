"""The composition root: builds every adapter, service and background loop from the settings, once per process.

This is the one place that knows how the parts fit together; each part is handed what it needs here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from wopr_platform.accounts.policy import AccountSettings
from wopr_platform.accounts.service import AccountService
from wopr_platform.accounts.users import UserAdmin
from wopr_platform.api.deps import Services
from wopr_platform.app.gateway import GatewayApp, GatewayListener
from wopr_platform.app.loops import Loop
from wopr_platform.app.metrics import install_samplers
from wopr_platform.audit.service import AuditService
from wopr_platform.audit.writer import AuditWriter
from wopr_platform.backups.policies import BackupPolicies, BackupRounds
from wopr_platform.backups.service import Backups
from wopr_platform.billing.caps import SpendingCaps
from wopr_platform.billing.runtime import RuntimeBilling
from wopr_platform.billing.service import BillingService
from wopr_platform.billing.standing import Suspensions
from wopr_platform.billing.storage import StorageCharges
from wopr_platform.billing.webhooks import StripeWebhooks
from wopr_platform.caddy.admin import CaddyAdmin
from wopr_platform.core.errors import FirewallUnavailable
from wopr_platform.core.faults import CrashPoints
from wopr_platform.core.metrics import PlatformMetrics
from wopr_platform.core.settings import Settings, SettingsError
from wopr_platform.crypto.keys import secret_box, stream_keys
from wopr_platform.db.broadcast import FLEET_CHANNEL, Broadcast
from wopr_platform.db.engine import CommitCounter, create_engine, create_sessionmaker
from wopr_platform.db.leadership import Leadership, lock_key
from wopr_platform.db.migrate import upgrade
from wopr_platform.db.models import Bot
from wopr_platform.db.unit import Database
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.docker.swarm import SwarmEngine
from wopr_platform.firewall.iptables import HostFirewall
from wopr_platform.fleet.isolation import HostIsolation
from wopr_platform.fleet.lifecycle.containers import BotContainers
from wopr_platform.fleet.lifecycle.journal import Journal
from wopr_platform.fleet.lifecycle.locks import BotLocks
from wopr_platform.fleet.lifecycle.replace import Replacer
from wopr_platform.fleet.lifecycle.service import FleetService
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.fleet.observation.health import HealthMonitor, ProbeConfig
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.fleet.observation.stats import StatsCollector
from wopr_platform.fleet.observation.watcher import EngineWatcher
from wopr_platform.fleet.quotas.service import Quotas
from wopr_platform.fleet.reconciliation.reconciler import Reconciler
from wopr_platform.fleet.reconciliation.recovery import Recovery
from wopr_platform.fleet.secrets.sealed_env import SecretEnv
from wopr_platform.gateway.admin import GatewayAdmin
from wopr_platform.gateway.breaker import Breakers
from wopr_platform.gateway.calls import CallSweeper, GatewayCalls, RemovedBots
from wopr_platform.gateway.charges import CallRecorder, ChargesLoop
from wopr_platform.gateway.keys import PROVIDED_VARIABLES, BotGatewayEnv
from wopr_platform.gateway.leases import CreditLeases
from wopr_platform.instance.client import InstanceClient
from wopr_platform.mail.smtp import Mailer, SmtpConfig
from wopr_platform.objectstore.local import LocalStore
from wopr_platform.providers.client import Providers
from wopr_platform.proxy.sync import ProxySync
from wopr_platform.registry.client import RegistryClient
from wopr_platform.registry.credentials import CredentialStore
from wopr_platform.templates.loader import packaged_directory
from wopr_platform.templates.secrets import SecretStore
from wopr_platform.templates.service import TemplateService
from wopr_platform.updates.clock import Clock
from wopr_platform.updates.rollouts import RolloutRules, RolloutScheduler
from wopr_platform.updates.service import UpdateService
from wopr_platform.updates.updater import Updater
from wopr_platform.updates.watcher import ImageWatcher

if TYPE_CHECKING:  # imported where used: the Stripe and S3 clients weigh ~20 MB a platform without them need not
    from wopr_platform.objectstore.s3 import S3Store
    from wopr_platform.payments.stripe_api import StripeApi

log = logging.getLogger(__name__)


def check_settings(settings: Settings) -> None:
    """What the settings name but cannot check by themselves (files they point at); SettingsError with one line."""
    try:
        CredentialStore.from_file(settings.registry_credentials_file)
    except ValueError as err:
        raise SettingsError(f"invalid setting FLEET_REGISTRY_CREDENTIALS: {err}") from None
    if settings.billing_min_purchase_cents > settings.billing_max_purchase_cents:
        raise SettingsError("invalid setting BILLING_MIN_PURCHASE_CENTS: it exceeds BILLING_MAX_PURCHASE_CENTS")
    if settings.backup_store == "s3" and settings.backup_s3_bucket is None:
        raise SettingsError("invalid setting BACKUP_STORE: s3 needs BACKUP_S3_BUCKET")


@dataclass(slots=True)
class Platform:
    """Everything one process runs: the services routes call, and the loops and clients behind them."""

    services: Services
    # every replica keeps its own view of the engine and of the routing table; only the leader changes the fleet
    loops: tuple[Loop, ...]
    leader_loops: tuple[Loop, ...]
    leadership: Leadership
    watcher: EngineWatcher
    reconciler: Reconciler
    registry: RegistryClient
    image_watcher: ImageWatcher
    rollouts: RolloutScheduler
    database: AsyncEngine
    units: Database
    billing: RuntimeBilling | None = None
    clients: tuple[Closable, ...] = ()

    async def close_clients(self) -> None:
        """Close the connections to the outside systems (the database stays open for the last audit records)."""
        for client in self.clients:
            await client.close()

    async def close_database(self) -> None:
        await self.units.dispose()
        await self.database.dispose()


def backup_store(settings: Settings) -> LocalStore | S3Store:
    """Where backup archives are kept: a local directory (by default in the data dir) or an S3 bucket."""
    if settings.backup_store == "s3":
        from wopr_platform.objectstore.s3 import S3Store

        assert settings.backup_s3_bucket is not None  # checked by check_settings
        return S3Store(
            bucket=settings.backup_s3_bucket,
            endpoint_url=settings.backup_s3_endpoint,
            region=settings.backup_s3_region,
            access_key=_secret(settings.backup_s3_access_key),
            secret_key=_secret(settings.backup_s3_secret_key),
            prefix=settings.backup_s3_prefix,
        )
    return LocalStore(settings.backup_dir or settings.data_dir / "backups")


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def mailer(settings: Settings) -> Mailer | None:
    """The outgoing mail server, or None (logged) when SMTP_HOST is not set: what needs mail then answers 503."""
    if settings.smtp_host is None:
        log.warning("outgoing mail is off (no SMTP_HOST): password reset and invitations answer 503")
        return None
    return Mailer(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password is not None else None,
            sender=settings.smtp_from,
            tls=settings.smtp_tls,
            timeout=settings.smtp_timeout,
        )
    )


def stripe_api(settings: Settings) -> StripeApi | None:
    """Stripe, when billing is on and its key is set (None, logged, otherwise: buying credits answers 503)."""
    if not settings.billing_enabled:
        return None
    if settings.stripe_secret_key is None:
        log.warning("billing is on without STRIPE_SECRET_KEY: credits can be granted, not bought")
        return None
    if settings.stripe_webhook_secret is None:
        log.warning("no STRIPE_WEBHOOK_SECRET: Stripe's webhooks are refused, so purchases are not credited")
    from wopr_platform.payments.stripe_api import StripeApi

    return StripeApi(
        secret_key=settings.stripe_secret_key.get_secret_value(),
        webhook_secret=(
            settings.stripe_webhook_secret.get_secret_value() if settings.stripe_webhook_secret is not None else None
        ),
        api_base=settings.stripe_api_base,
    )


class Closable(Protocol):
    async def close(self) -> None: ...


async def host_isolation(settings: Settings, docker: DockerEngine) -> HostIsolation | None:
    """The host firewall that keeps bots off the host, put in step once (None when BOT_HOST_ISOLATION=false).

    Every replica keeps it (it is per host, and replicas on one host write the same rules). In production a
    firewall that cannot be installed stops the start-up; elsewhere it is logged and /health/ready reports it.
    """
    if not settings.bot_host_isolation:
        log.warning("bots are not kept off the host by the platform (BOT_HOST_ISOLATION=false)")
        return None
    isolation = HostIsolation(
        firewall=HostFirewall(settings.platform_id),
        engine=docker,
        ports=settings.offered_host_ports,
        interval=settings.bot_host_check_interval,
        strict=settings.env == "production",
    )
    await isolation.check(ask_engine=False)  # the loop's first round, right after, asks the engine
    if isolation.reason is not None and settings.env == "production":
        message = (
            "refusing to start in production: bots could reach the host (set BOT_HOST_ISOLATION=false only where "
            f"the host's own firewall keeps them off): {isolation.reason}"
        )
        log.critical(message)
        raise FirewallUnavailable(message)
    return isolation


def engine_of(settings: Settings) -> DockerEngine:
    """The engine adapter FLEET_ENGINE names: plain Docker, or Swarm services (the same operations)."""
    if settings.fleet_engine == "swarm":
        return SwarmEngine(
            settings.docker_host,
            timeout=settings.docker_timeout,
            platform_id=settings.platform_id,
            subnets=settings.tenant_subnet_pool,
            constraints=tuple(settings.swarm_constraints),
            volume_driver=settings.swarm_volume_driver,
            volume_options=settings.swarm_volume_options,
        )
    return DockerEngine(
        settings.docker_host,
        timeout=settings.docker_timeout,
        platform_id=settings.platform_id,
        subnets=settings.tenant_subnet_pool,
    )


async def build(
    settings: Settings, *, clock: Clock, events: EventBus, audit: AuditWriter, metrics: PlatformMetrics
) -> Platform:
    """Migrate the database, then build the platform; nothing here touches the engine yet."""
    replica = uuid.uuid4().hex  # this process, as its database connections name it
    db = create_engine(settings.database_url, replica=replica)
    await upgrade(db)
    database = Database(create_sessionmaker(db))
    audit.start(database)
    docker = engine_of(settings)
    instances = InstanceClient(timeout=settings.health_timeout)
    observed = ObservedState()
    health = HealthMonitor(
        observed,
        instances,
        events=events,
        defaults=ProbeConfig(
            endpoint="/health",
            interval=settings.health_interval,
            timeout=settings.health_timeout,
            retries=settings.health_retries,
            start_period=settings.health_start_period,
        ),
        max_backoff=settings.health_max_backoff,
    )
    stats = StatsCollector(docker, observed, interval=settings.stats_interval, rate=settings.stats_rate)
    crash = CrashPoints(settings.crash_at if settings.env == "test" else None)
    locks = BotLocks()
    journal = Journal(database)
    credentials = CredentialStore.from_file(settings.registry_credentials_file)
    registry = RegistryClient(
        credentials=credentials,
        insecure_hosts=settings.registry_insecure,
        timeout=settings.registry_timeout,
        metrics=metrics,
    )
    box = await asyncio.to_thread(secret_box, settings)
    secret_env = SecretEnv(box)
    isolation = await host_isolation(settings, docker)
    if settings.gateway_enabled and box is None:
        raise RuntimeError("GATEWAY_ENABLED needs PLATFORM_SECRET: bots' gateway keys are derived from it")
    bot_gateway_env = (
        BotGatewayEnv(box, settings.gateway_bot_url, settings.gateway_bot_host)
        if settings.gateway_enabled and box is not None
        else None
    )
    containers = BotContainers(
        engine=docker,
        observed=observed,
        health=health,
        settings=settings,
        crash=crash,
        secrets=secret_env,
        registry_auth=credentials.engine_auth,
        on_network=isolation.cover if isolation is not None else None,
        platform_env=bot_gateway_env,
    )
    quotas = Quotas(db=database, settings=settings)
    replacer = Replacer(
        quotas=quotas,
        db=database,
        containers=containers,
        instances=instances,
        health=health,
        journal=journal,
        crash=crash,
    )
    recovery = Recovery(
        db=database, journal=journal, containers=containers, engine=docker, locks=locks, events=events, quotas=quotas
    )
    reconciler = Reconciler(
        db=database,
        containers=containers,
        observed=observed,
        locks=locks,
        events=events,
        recovery=recovery,
        interval=settings.reconcile_interval,
        orphan_grace=settings.orphan_grace,
        metrics=metrics,
    )
    watcher = EngineWatcher(
        docker, observed, health, events, resync_interval=settings.resync_interval, on_change=reconciler.kick
    )
    stripe = stripe_api(settings)
    caps = SpendingCaps(db=database, clock=clock.now)
    billing = BillingService(db=database, settings=settings, stripe=stripe, clock=clock.now, caps=caps, quotas=quotas)
    webhooks = StripeWebhooks(
        db=database, stripe=stripe, currency=settings.billing_currency, clock=clock.now, crash=crash
    )
    # changes to bots, told by the database to every replica (PostgreSQL): each keeps its lists of bots until one
    fleet_changes = Broadcast(settings.database_url, FLEET_CHANNEL, own=replica)
    fleet = FleetService(
        db=database,
        containers=containers,
        replacer=replacer,
        observed=observed,
        health=health,
        stats=stats,
        events=events,
        journal=journal,
        locks=locks,
        crash=crash,
        commits=CommitCounter(db, tables={Bot.__tablename__}),  # the lists hold bots' rows only
        settings=settings,
        secrets=secret_env,
        quotas=quotas,
        admission=billing if settings.billing_enabled else None,
        changes=fleet_changes,
    )
    await fleet.load()
    suspensions = Suspensions(db=database, fleet=fleet, events=events, settings=settings, clock=clock.now)
    store = backup_store(settings)
    backups = Backups(
        db=database,
        fleet=fleet,
        store=store,
        keys=await asyncio.to_thread(stream_keys, settings),
        settings=settings,
        events=events,
        clock=clock.now,
    )
    backup_policies = BackupPolicies(db=database, fleet=fleet, settings=settings, clock=clock.now)
    backup_rounds = BackupRounds(
        db=database, backups=backups, policies=backup_policies, clock=clock.now, interval=settings.backup_interval
    )
    runtime = RuntimeBilling(
        db=database,
        fleet=fleet,
        events=events,
        prices=settings.billing_runtime_prices,
        webhooks=webhooks,
        caps=caps,
        suspensions=suspensions,
        clock=clock.now,
        interval=settings.billing_interval,
        crash=crash,
        storage=StorageCharges(
            db=database, backups=backups, price_per_gib_day=settings.billing_backup_price, clock=clock.now
        ),
    )
    templates = TemplateService(
        directory=settings.templates_dir or packaged_directory(),
        secrets=SecretStore(environ=os.environ, file=settings.template_secrets_file),
        fleet=fleet,
        db=database,
        provided=PROVIDED_VARIABLES if bot_gateway_env is not None else frozenset(),
    )
    await templates.load()  # a bad template file is logged and skipped, never fatal
    updater = Updater(
        db=database,
        fleet=fleet,
        events=events,
        clock=clock,
        crash=crash,
        health_timeout=settings.update_health_timeout,
        backups=backups if settings.backup_before_update else None,
        metrics=metrics,
    )
    window = timedelta(seconds=settings.update_window)
    scheduler = RolloutScheduler(
        db=database,
        updater=updater,
        events=events,
        clock=clock,
        rules=RolloutRules(
            waves=settings.rollout_waves,
            max_failure_rate=settings.rollout_max_failure_rate,
            parallel=settings.rollout_parallel,
            nightly_at=settings.update_nightly_at,
            window=window,
        ),
        ready=reconciler.recovered,
        metrics=metrics,
    )
    images = ImageWatcher(
        db=database,
        registry=registry,
        clock=clock,
        intervals={
            "canary": settings.update_interval_canary,
            "staging": settings.update_interval_staging,
            "stable": settings.update_interval_stable,
        },
        jitter=settings.update_jitter,
        on_new_digest=scheduler.kick,
        metrics=metrics,
    )
    updates = UpdateService(
        db=database,
        watcher=images,
        updater=updater,
        clock=clock,
        nightly_at=settings.update_nightly_at,
        window=window,
    )
    leadership = Leadership(settings.database_url, settings.platform_id)
    # changes to accounts reach every replica's cache of sessions and keys (PostgreSQL LISTEN/NOTIFY)
    account_changes = Broadcast(settings.database_url, f"wopr_accounts_{lock_key(settings.platform_id) & 0xFFFFFFFF:x}")
    # tenant routing: the routing table and the DNS that Caddy asks (every replica), Caddy's config (put back
    # by the leader); a missing Caddy is reported in /health/ready and retried, never a reason not to start
    caddy = CaddyAdmin(settings.caddy_admin_url) if settings.proxy_enabled else None
    proxy = None
    if caddy is not None:
        proxy = ProxySync(
            settings=settings,
            db=database,
            commits=CommitCounter(db),
            observed=observed,
            health_of=health.status,
            caddy=caddy,
            may_write=lambda: leadership.is_leader,
            suspended_tenants=suspensions.suspended_tenants if settings.billing_enabled else None,
            metrics=metrics,
        )
    accounts = AccountService(
        db=database,
        settings=AccountSettings(
            signup=settings.auth_signup,
            session_idle=timedelta(seconds=settings.session_idle_timeout),
            session_max_age=timedelta(seconds=settings.session_max_age),
            password_reset_ttl=timedelta(seconds=settings.password_reset_ttl),
            invitation_ttl=timedelta(seconds=settings.invitation_ttl),
            platform_url=settings.platform_url.rstrip("/"),
        ),
        mailer=mailer(settings),
        broadcast=account_changes,
        box=box,
    )
    gateway_admin: GatewayAdmin | None = None
    gateway_loops: tuple[Loop, ...] = ()
    gateway_leader_loops: tuple[Loop, ...] = ()
    if settings.gateway_enabled and box is not None:
        breakers = Breakers(failures=settings.gateway_breaker_failures, seconds=settings.gateway_breaker_seconds)
        # changes to gateway keys, caps, providers and models reach every replica's cache of callers and routes
        gateway_changes = Broadcast(
            settings.database_url, f"wopr_gateway_{lock_key(settings.platform_id) & 0xFFFFFFFF:x}"
        )
        leases = (
            CreditLeases(db=database, caps=caps, clock=clock.now, most=settings.gateway_lease, buy_url=settings.buy_url)
            if settings.billing_enabled
            else None
        )
        recorder = CallRecorder(db=database, leases=leases, clock=clock.now)
        calls = GatewayCalls(
            db=database,
            box=box,
            settings=settings,
            clock=clock.now,
            breakers=breakers,
            leases=leases,
            recorder=recorder,
            broadcast=gateway_changes,
            metrics=metrics,
        )
        gateway_admin = GatewayAdmin(
            db=database,
            box=box,
            settings=settings,
            clock=clock.now,
            breakers=breakers,
            kick=reconciler.kick,
            changed=gateway_changes.signal,
        )
        providers = Providers(
            timeout=settings.gateway_upstream_timeout, max_connections=settings.gateway_max_connections
        )
        gateway_app = GatewayApp(calls=calls, admin=gateway_admin, providers=providers, settings=settings)
        listener = GatewayListener(gateway_app, settings)
        gateway_loops = (
            gateway_changes,
            listener,
            ChargesLoop(recorder, leases, settings.gateway_charge_interval, drained=listener.stopped),
            RemovedBots(events, gateway_changes.signal),
        )
        gateway_leader_loops = (CallSweeper(calls),)
    services = Services(
        fleet=fleet,
        quotas=quotas,
        backups=backups,
        backup_policies=backup_policies,
        templates=templates,
        updates=updates,
        audit=AuditService(db=database, writer=audit),
        accounts=accounts,
        users=UserAdmin(db=database, broadcast=account_changes),
        billing=billing,
        webhooks=webhooks,
        reconciler=reconciler,
        events=events,
        proxy=proxy,
        database=database,
        docker=docker,
        observed=observed,
        leadership=leadership,
        isolation=isolation,
        gateway=gateway_admin,
        metrics=metrics,
    )
    install_samplers(metrics, observed=observed, health=health, billing=billing if settings.billing_enabled else None)
    loops: tuple[Loop, ...] = (leadership, account_changes, fleet_changes, watcher, health, stats, *gateway_loops)
    if proxy is not None:
        loops += (proxy,)
    if isolation is not None:
        loops += (isolation,)
    # the accounts service first: mails it is still sending may need the database and the mail server
    clients: tuple[Closable, ...] = (
        accounts,
        *((stripe,) if stripe is not None else ()),
        instances,
        *((caddy,) if caddy is not None else ()),
        *((store,) if not isinstance(store, LocalStore) else ()),
        registry,
        docker,
    )
    return Platform(
        services=services,
        loops=loops,
        leader_loops=(
            reconciler,
            images,
            scheduler,
            backup_rounds,
            *((runtime,) if settings.billing_enabled else ()),
            *gateway_leader_loops,
        ),
        leadership=leadership,
        watcher=watcher,
        reconciler=reconciler,
        registry=registry,
        image_watcher=images,
        rollouts=scheduler,
        database=db,
        units=database,
        billing=runtime if settings.billing_enabled else None,
        clients=clients,
    )
