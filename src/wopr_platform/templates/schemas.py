"""Profile template files (YAML, camelCase keys) and the template API's request and response shapes."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from wopr_platform.crypto.secretbox import MARK as SEALED_MARK
from wopr_platform.fleet.schemas import (
    ENV_KEY_RE,
    MAX_ENV_ENTRIES,
    MAX_ENV_VALUE,
    NAME_RE,
    RESERVED_ENV,
    BotName,
    Description,
    EnvMap,
    HealthCheck,
    Image,
    ReleaseChannel,
    Resources,
    RestartPolicy,
    SecretKeys,
    Subdomain,
    UpdatePolicy,
    VolumeName,
    sealed_mark_refused,
)
from wopr_platform.templates import placeholders

# the env the WOPR runtime reads to know its plugins; set by the platform from the template's plugins
PLUGINS_ENV = "WOPR_PLUGINS"
CHANNEL_PLUGIN_ENV = "WOPR_CHANNEL_PLUGIN"
PROVIDER_PLUGIN_ENV = "WOPR_PROVIDER_PLUGIN"
PLUGIN_ENV = frozenset({PLUGINS_ENV, CHANNEL_PLUGIN_ENV, PROVIDER_PLUGIN_ENV})
# npm package names, optionally scoped: @scope/name
PLUGIN_RE = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*\Z")
MAX_VARIABLES = 200
DATA_MOUNT = "/data"


def _check_template_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError("name must be 1-63 letters, digits, '_' or '-', starting with a letter or digit")
    return value


def _check_env_key(value: str) -> str:
    if not ENV_KEY_RE.match(value):
        raise ValueError(f"{value[:64]!r} is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
    if value in RESERVED_ENV or value in PLUGIN_ENV:
        raise ValueError(f"{value} is set by the platform")
    return value


def _check_template_value(value: str) -> str:
    if "\x00" in value:
        raise ValueError("value contains a NUL byte")
    if value.startswith(SEALED_MARK):
        raise ValueError(sealed_mark_refused("value"))
    if len(value) > MAX_ENV_VALUE:
        raise ValueError(f"value is longer than {MAX_ENV_VALUE} characters")
    placeholders.check(value)
    return value


def _check_plugin(value: str) -> str:
    if len(value) > 214 or not PLUGIN_RE.match(value):
        raise ValueError("plugin must be an npm package name such as @wopr-network/wopr-plugin-channel-discord")
    return value


def _check_variable_name(value: str) -> str:
    if not placeholders.VARIABLE_RE.match(value):
        raise ValueError(f"{value[:64]!r} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)")
    return value


def _check_variable_value(value: str) -> str:
    if "\x00" in value:
        raise ValueError("value contains a NUL byte")
    if value.startswith(SEALED_MARK):
        raise ValueError(sealed_mark_refused("value"))
    if len(value) > MAX_ENV_VALUE:
        raise ValueError(f"value is longer than {MAX_ENV_VALUE} characters")
    return value


TemplateName = Annotated[str, Field(max_length=63), AfterValidator(_check_template_name)]
EnvKey = Annotated[str, AfterValidator(_check_env_key)]
TemplateValue = Annotated[str, AfterValidator(_check_template_value)]
TemplateEnv = Annotated[dict[EnvKey, TemplateValue], Field(max_length=MAX_ENV_ENTRIES)]
PluginName = Annotated[str, AfterValidator(_check_plugin)]
VariableName = Annotated[str, AfterValidator(_check_variable_name)]
Variables = Annotated[
    dict[VariableName, Annotated[str, AfterValidator(_check_variable_value)]], Field(max_length=MAX_VARIABLES)
]


# --- template files ---------------------------------------------------------------------------------------


class _File(BaseModel):
    """A part of a template file: camelCase keys only, exact types, nothing unknown."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, strict=True, extra="forbid")


class Plugin(_File):
    """A WOPR plugin package and its config; config keys are the env var names the plugin reads."""

    plugin: PluginName
    config: TemplateEnv = Field(default_factory=dict)


class Volume(_File):
    """The bot's data volume: the platform mounts exactly one, at /data (WOPR_HOME)."""

    name: VolumeName
    mount_path: Literal["/data"]


class Template(_File):
    """One profile template file."""

    name: TemplateName
    version: Annotated[int, Field(ge=1, le=1_000_000)]
    description: Description = ""
    channel: Plugin
    provider: Plugin
    release: ReleaseChannel
    image: Image
    restart_policy: RestartPolicy = "unless-stopped"
    update_policy: UpdatePolicy = "manual"
    health_check: HealthCheck | None = None
    volumes: Annotated[list[Volume], Field(max_length=1)] = Field(default_factory=list)
    env: TemplateEnv = Field(default_factory=dict)

    def sections(self) -> list[tuple[str, dict[str, str]]]:
        """The env-producing parts of the template, by field path, in the order they are merged."""
        return [("channel.config", self.channel.config), ("provider.config", self.provider.config), ("env", self.env)]

    def problems(self) -> list[tuple[str, str]]:
        """Checks across fields, as (field, reason): one env key set in two places, too many env entries."""
        seen: dict[str, str] = {}
        found: list[tuple[str, str]] = []
        for section, values in self.sections():
            for key in values:
                if key in seen:
                    found.append((f"{section}.{key}", f"{key} is already set in {seen[key]}"))
                else:
                    seen[key] = section
        if len(seen) + len(PLUGIN_ENV) > MAX_ENV_ENTRIES:
            found.append(("env", f"the template sets more than {MAX_ENV_ENTRIES} env entries"))
        return found

    def required_variables(self) -> list[str]:
        """The `${VAR}` names the template needs, sorted."""
        return sorted(placeholders.names_in(v for _, values in self.sections() for v in values.values()))

    def view(self, file: str) -> dict[str, Any]:
        """The template as the API shows it: as written (placeholders, never values) plus what it needs."""
        return {
            **self.model_dump(by_alias=True, mode="json", exclude_none=True),
            "variables": self.required_variables(),
            "file": file,
        }


# --- API --------------------------------------------------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True, extra="forbid")


class TemplateBotCreate(_Wire):
    """POST /fleet/bots with `template`: every other field overrides the template's."""

    template: TemplateName
    name: BotName | None = None
    image: Image | None = None
    description: Description | None = None
    env: EnvMap = Field(default_factory=dict)
    secret_env: SecretKeys = Field(default_factory=list)
    variables: Variables = Field(default_factory=dict)
    restart_policy: RestartPolicy | None = None
    volume_name: VolumeName | None = None
    release_channel: ReleaseChannel | None = None
    update_policy: UpdatePolicy | None = None
    health_check: HealthCheck | None = None
    subdomain: Subdomain | None = None
    resources: Resources | None = None


class SeedRequest(_Wire):
    """POST /fleet/seed: values for the templates' variables, an image for every bot, a subset of templates."""

    variables: Variables = Field(default_factory=dict)
    image: Image | None = None
    templates: Annotated[list[TemplateName], Field(max_length=200)] | None = None


class LoadErrorView(_Wire):
    file: str
    field: str | None
    reason: str


class TemplateView(Template):
    """A template as GET /fleet/templates shows it."""

    variables: list[str]
    file: str


class TemplateList(_Wire):
    templates: list[TemplateView]
    errors: list[LoadErrorView]


class ReloadResult(_Wire):
    loaded: list[str]
    errors: list[LoadErrorView]


class SeedFailure(_Wire):
    template: str
    reason: str
    code: str
    missing: list[str] | None = None


class SeedResult(_Wire):
    created: list[str]
    skipped: list[str]
    failed: list[SeedFailure]
