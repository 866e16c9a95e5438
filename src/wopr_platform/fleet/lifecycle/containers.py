"""A bot's container as the engine holds it: build one from a profile, set one aside, bring one back.

Used by the bot operations (`fleet.lifecycle.service`, `.replace`), by crash recovery and by the reconciler;
callers hold the bot's lock.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from wopr_platform.core import naming
from wopr_platform.core.errors import EngineConflict, EngineNotFound, ValidationFailed
from wopr_platform.core.faults import CrashPoints
from wopr_platform.core.reference import ImageReference, InvalidReference, pinned
from wopr_platform.core.settings import Settings
from wopr_platform.db.models import Bot
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.docker.types import ContainerInfo, ContainerSpec, VolumeInfo
from wopr_platform.fleet import resources
from wopr_platform.fleet.observation.health import HealthMonitor
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.fleet.secrets.sealed_env import SecretEnv, SecretsUnreadable

RegistryAuth = Callable[[str], dict[str, str] | None]
# told the bridge interface of a tenant network before any container joins it (fleet.isolation covers it)
NetworkHook = Callable[[str], Awaitable[None]]


class PlatformEnv(Protocol):
    """What the platform itself gives every bot's container (the AI gateway's address and the bot's key): env
    added to the profile's, and host names the container resolves to the host. Called each time a spec is built,
    so it must be quick and need no I/O."""

    extra_hosts: tuple[str, ...]

    def env(self, bot: Any, profile_env: Mapping[str, str]) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The container-relevant part of a profile, to build from and to roll back to.

    `env` is the stored form: secret values stay sealed until a container spec is built from it.

    `resources` holds the bot's own limit overrides as stored (the defaults are applied when a spec is built).
    """

    image: str
    env: dict[str, str]
    volume_name: str
    restart_policy: str
    resources: dict[str, Any]
    volume_generation: int = 0

    @classmethod
    def of(cls, bot: Any) -> Snapshot:
        """The bot's container as it should be: its image pinned to the deployed digest when there is one."""
        return cls(
            pinned(bot.image, bot.image_digest),
            dict(bot.env),
            bot.volume_name,
            bot.restart_policy,
            dict(bot.resources or {}),
            int(bot.volume_generation or 0),
        )

    def wire(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "env": self.env,
            "volumeName": self.volume_name,
            "restartPolicy": self.restart_policy,
            "resources": self.resources,
            "volumeGeneration": self.volume_generation,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Snapshot:
        return cls(
            str(data["image"]),
            dict(data["env"]),
            str(data["volumeName"]),
            str(data["restartPolicy"]),
            dict(data.get("resources") or {}),  # journal rows written before resources existed have none
            int(data.get("volumeGeneration") or 0),
        )


@dataclass(frozen=True, slots=True)
class Swap:
    """A replacement container and the parked one it may have to give way to again."""

    new_id: str
    old: ContainerInfo | None
    was_running: bool


EXPECTED_CACHE_SIZE = 10_000
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")


class BotContainers:
    """Engine-side steps of the bot lifecycle, each undone on failure of a later one."""

    def __init__(
        self,
        *,
        engine: DockerEngine,
        observed: ObservedState,
        health: HealthMonitor,
        settings: Settings,
        crash: CrashPoints,
        secrets: SecretEnv,
        registry_auth: RegistryAuth | None = None,
        on_network: NetworkHook | None = None,
        platform_env: PlatformEnv | None = None,
    ) -> None:
        self._engine = engine
        self._platform_env = platform_env
        self._on_network = on_network
        self._secrets = secrets
        self._registry_auth = registry_auth
        self._observed = observed
        self._health = health
        self._settings = settings
        self._crash = crash
        self._expected: dict[tuple[str, Any], tuple[frozenset[str], str, frozenset[str], str]] = {}

    def auth_for(self, image: str) -> dict[str, str] | None:
        """Registry credentials for pulling `image`, if any are configured for its registry."""
        if self._registry_auth is None:
            return None
        try:
            return self._registry_auth(ImageReference.parse(image).registry)
        except InvalidReference:
            return None

    async def pull(self, image: str) -> None:
        """Pull `image` now (with its registry's credentials), even if a copy is present."""
        await self._engine.pull(image, self.auth_for(image))

    async def resolve_digest(self, image: str) -> str | None:
        """Make `image` present and return the registry digest it came with (None for a locally built image)."""
        reference = ImageReference.parse(image)
        await self._engine.ensure_image(image, self.auth_for(image))
        if reference.digest is not None:
            return reference.digest
        for text in await self._engine.repo_digests(image):
            try:
                recorded = ImageReference.parse(text)
            except InvalidReference:
                continue
            if recorded.name == reference.name and recorded.digest is not None:
                return recorded.digest
        return None

    async def ensure_image(self, image: str) -> None:
        """Pull the image unless the engine has it."""
        await self._engine.ensure_image(image, self.auth_for(image))

    async def remove_image(self, image: str) -> bool:
        """Drop a local image no container uses any more (best effort)."""
        return await self._engine.remove_image(image)

    def volume(self, bot: Any, volume_name: str | None = None, generation: int | None = None) -> str:
        """The engine's name of a bot's volume: its current one, or the given name and generation."""
        if volume_name is None:
            volume_name, generation = bot.volume_name, int(bot.volume_generation or 0)
        return naming.volume_name(self._settings.platform_id, bot.tenant_id, volume_name, generation or 0)

    def network(self, bot: Any) -> str:
        """The bridge network of the bot's tenant: the only one its container joins."""
        return naming.network_name(self._settings.platform_id, bot.tenant_id)

    def spec(self, bot: Any, snap: Snapshot, name: str | None = None) -> ContainerSpec:
        volume = self.volume(bot, snap.volume_name, snap.volume_generation)
        network = self.network(bot)
        limits = resources.effective(snap.resources, self._settings.default_limits)
        env = self._secrets.open(bot.id, snap.env)  # the only place secret values are in the clear
        extra_hosts: tuple[str, ...] = ()
        if self._platform_env is not None:
            env = {**env, **self._platform_env.env(bot, env)}
            extra_hosts = self._platform_env.extra_hosts
        spec_hash = naming.spec_hash(snap.image, env, volume, snap.restart_policy, network=network, limits=limits)
        return ContainerSpec(
            name=name or naming.container_name(bot.id),
            image=snap.image,
            env={**env, "WOPR_HOME": "/data"},
            labels=naming.labels(self._settings.platform_id, bot.tenant_id, bot.id, spec_hash, network),
            volume=volume,
            restart_policy=snap.restart_policy,
            stop_timeout=self._settings.stop_timeout,
            network=network,
            limits=limits,
            extra_hosts=extra_hosts,
        )

    def matches(self, bot: Any, info: ContainerInfo) -> bool:
        """Does the container still carry what the profile asks for (image, env, volume, restart policy, limits,
        hardening, network) and sit on its tenant's network alone?

        A restart policy is changed in place (the engine updates it without a new container), so the container
        keeps the spec hash it was made with: a hash made under another restart policy matches when everything
        else is the same, and the policy itself is checked on the container once it has been inspected.
        """
        key = (bot.id, bot.updated_at)
        expected = self._expected.get(key)
        if expected is None:
            try:
                spec = self.spec(bot, Snapshot.of(bot))
            except SecretsUnreadable:
                return True  # what it should be cannot be known (nor built): leave the container as it is
            expected = (
                frozenset(self._hashes_under_any_policy(spec)),
                spec.image,
                frozenset(f"{k}={v}" for k, v in spec.env.items()),
                spec.network,
            )
            if len(self._expected) > EXPECTED_CACHE_SIZE:
                self._expected.clear()
            self._expected[key] = expected
        spec_hashes, image, wanted_env, network = expected
        if info.labels.get(naming.LABEL_SPEC_HASH) not in spec_hashes or info.image != image:
            return False
        if info.restart_policy is not None and info.restart_policy != bot.restart_policy:
            return False
        if info.networks is not None and info.networks != (network,):
            return False  # joined to another network (another tenant's?) behind our back
        return not info.detailed or wanted_env <= set(info.env)

    @staticmethod
    def _hashes_under_any_policy(spec: ContainerSpec) -> list[str]:
        """The spec hash of the bot's container as made under each restart policy (all else as in `spec`)."""
        env = {key: value for key, value in spec.env.items() if key != "WOPR_HOME"}  # as `spec` hashed it
        return [
            naming.spec_hash(spec.image, env, spec.volume, policy, network=spec.network, limits=spec.limits)
            for policy in RESTART_POLICIES
        ]

    async def check_limits(self, overrides: Mapping[str, Any] | None) -> None:
        """Refuse (400) a bot's own limits above the platform's bounds or the engine host's CPUs."""
        if not overrides:
            return
        resources.check(overrides, self._settings.max_limits)
        cpus = overrides.get("cpus")
        if cpus is not None:
            available = await self._engine.cpu_count()
            if cpus > available:
                raise ValidationFailed(
                    f"resources.cpus must be at most {available}: the engine host has {available} CPUs",
                    details={"field": "resources.cpus", "value": cpus, "maximum": available},
                )

    async def ensure_network(self, bot: Any) -> str:
        """Make sure the bot's tenant network exists (idempotent) and the network hook has seen its bridge;
        returns its name."""
        network = self.network(bot)
        bridge = await self._engine.ensure_network(
            network, naming.network_labels(self._settings.platform_id, bot.tenant_id)
        )
        if self._on_network is not None:
            await self._on_network(bridge)
        return network

    async def tenant_networks(self) -> dict[str, str | None]:
        """This platform's tenant networks by name, with their tenant."""
        return await self._engine.list_networks()

    async def remove_network(self, name: str, unused: Callable[[], Awaitable[bool]]) -> bool:
        """Remove a tenant network if `unused()` confirms it and no running container uses it; True when gone."""
        return await self._engine.remove_network(name, unused)

    async def build(
        self,
        bot: Bot,
        snap: Snapshot,
        *,
        start: bool,
        crash_prefix: str,
        on_new_volume: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """Create (and start) a container for `snap`; undo every step of it if a later one fails."""
        spec = self.spec(bot, snap)
        await self._engine.ensure_image(spec.image, self.auth_for(spec.image))
        await self.ensure_network(bot)
        volume_is_new = not await self._engine.volume_exists(spec.volume)
        if volume_is_new and on_new_volume is not None:
            await on_new_volume()
        labels = naming.volume_labels(self._settings.platform_id, bot.tenant_id, bot.id)
        await self._engine.ensure_volume(spec.volume, labels)
        container_id: str | None = None
        try:
            try:
                container_id = await self._engine.create(spec)
            except EngineNotFound:
                # the tenant network was swept as unused just now (see fleet.reconciler): make it again, once
                await self.ensure_network(bot)
                container_id = await self._engine.create(spec)
            self._crash.reached(f"{crash_prefix}.after_container_created")
            if start:
                await self._engine.start(container_id)
                self._crash.reached(f"{crash_prefix}.after_container_started")
        except BaseException:
            if container_id is not None:
                await self._engine.remove(container_id)
            if volume_is_new:
                await self._engine.remove_volume(spec.volume)
            raise
        await self.refresh(container_id)
        return container_id

    async def replace(
        self,
        bot: Bot,
        after: Snapshot,
        *,
        on_parked: Callable[[ContainerInfo, bool], Awaitable[None]],
        crash_prefix: str = "patch",
        while_parked: Callable[[], Awaitable[None]] | None = None,
    ) -> Swap:
        """Swap in a container built from `after`; the old one is parked, not removed, until the caller commits."""
        await self._engine.ensure_image(after.image, self.auth_for(after.image))
        old = await self.existing(bot)
        was_running = old is not None and old.state in ("running", "restarting")
        start = was_running or (old is None and bot.desired_state == "running")
        if old is not None:
            await on_parked(old, was_running)
            await self._engine.stop(old.id, self._settings.stop_timeout)
            await self._engine.rename(old.id, naming.parked_container_name(bot.id, old.id))
            self._crash.reached(f"{crash_prefix}.after_parking")
        try:
            if while_parked is not None:  # the old container is stopped: its volume holds still
                await while_parked()
            new_id = await self.build(bot, after, start=start, crash_prefix=crash_prefix)
        except BaseException:
            if old is not None:
                await self.unpark(bot, old.id, was_running)
            raise
        return Swap(new_id=new_id, old=old, was_running=was_running)

    async def restore(self, bot: Bot, swap: Swap) -> None:
        """Undo `replace` after the profile could not be stored."""
        await self.remove(swap.new_id)
        if swap.old is not None:
            await self.unpark(bot, swap.old.id, swap.was_running)

    async def unpark(self, bot: Bot, container_id: str, start: bool) -> None:
        """Give a parked container its name back (and start it if it ran)."""
        try:
            await self._engine.rename(container_id, naming.container_name(bot.id))
        except EngineNotFound:
            self._observed.forget(container_id)
            return
        if start:
            await self._engine.start(container_id)
        await self.refresh(container_id)

    async def require_engine(self) -> None:
        """Fail fast with EngineUnavailable (503) when the engine is known to be away and still does not answer."""
        if self._observed.stale_reason is not None:
            await self._engine.ping()

    async def logs(self, container_id: str, tail: int) -> str:
        return await self._engine.logs(container_id, tail)

    async def set_restart_policy(self, container_id: str, policy: str) -> None:
        """Change the policy in place, and what is known of the container with it (the reconciler compares it)."""
        try:
            await self._engine.update_restart_policy(container_id, policy)
        except EngineNotFound:
            return
        await self.refresh(container_id)

    async def existing(self, bot: Bot) -> ContainerInfo | None:
        """The bot's container as the engine sees it now, or None if it is gone."""
        if not bot.container_id:
            return None
        try:
            info = await self._engine.inspect(bot.container_id)
        except EngineNotFound:
            self._observed.forget(bot.container_id)
            return None
        self._observed.apply(info)
        return info

    async def start(self, container_id: str) -> None:
        await self._engine.start(container_id)
        await self.refresh(container_id)

    async def stop(self, container_id: str) -> None:
        await self._engine.stop(container_id, self._settings.stop_timeout)
        await self.refresh(container_id)

    async def restart(self, container_id: str) -> None:
        await self._engine.restart(container_id, self._settings.stop_timeout)
        await self.refresh(container_id)

    async def remove(self, container_id: str) -> None:
        await self._engine.remove(container_id)
        self._observed.forget(container_id)

    async def remove_volume(self, bot: Bot, volume_name: str | None = None) -> None:
        await self._engine.remove_volume(self.volume(bot, volume_name))

    async def make_volume(self, bot: Any, name: str) -> None:
        """Create a volume of the bot's (labelled with its id, as every volume the platform makes for a bot)."""
        await self._engine.ensure_volume(name, naming.volume_labels(self._settings.platform_id, bot.tenant_id, bot.id))

    async def volume_exists(self, name: str) -> bool:
        return await self._engine.volume_exists(name)

    def volume_files(
        self, name: str, image: str, *, hold: AbstractAsyncContextManager[None] | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The volume's files as a tar stream (entries under the engine's VOLUME_ROOT), read through `image`;
        `hold` spans the engine's read alone (see DockerEngine.volume_files)."""
        return self._engine.volume_files(name, image, hold=hold)

    async def write_volume_files(self, name: str, image: str, tar: AsyncIterable[bytes]) -> None:
        await self._engine.write_volume_files(name, image, tar)

    async def pause(self, container_id: str) -> None:
        await self._engine.pause(container_id)

    async def unpause(self, container_id: str) -> None:
        await self._engine.unpause(container_id)

    async def bot_volumes(self, bot_id: str | None = None) -> list[VolumeInfo]:
        """The volumes the platform made for bots (or for one bot), found by their bot id label (one engine call):
        a bot's current volume and the ones it had before its `volumeName` changed."""
        return await self._engine.bot_volumes(bot_id)

    async def remove_earlier_volume(self, name: str) -> bool:
        """Remove a volume a bot no longer uses; one a container still mounts is kept (False)."""
        try:
            await self._engine.remove_volume(name)
        except EngineConflict:
            return False
        return True

    async def labelled(self, bot_id: str) -> list[ContainerInfo]:
        """Every container the engine holds with this bot's label (asks the engine, not memory)."""
        return await self._engine.list_managed(bot_id)

    async def current(self, container_id: str) -> ContainerInfo | None:
        """The container as the engine describes it now (None if it is gone); memory is updated too."""
        try:
            info = await self._engine.inspect(container_id)
        except EngineNotFound:
            self._observed.forget(container_id)
            return None
        self._observed.apply(info)
        return info

    async def refresh(self, container_id: str) -> None:
        try:
            self._observed.apply(await self._engine.inspect(container_id))
        except EngineNotFound:
            self._observed.forget(container_id)
        self._health.kick()
