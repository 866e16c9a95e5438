"""What the gateway's management routes take and answer. Prices are micro-dollars per million tokens; costs are
micro-dollars (1 USD = 1,000,000)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,119}$")]
ApiKey = Annotated[str, StringConstraints(min_length=8, max_length=500, pattern=r"^[\x21-\x7e]+$")]
BaseUrl = Annotated[str, StringConstraints(max_length=300, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")]
MAX_PRICE = 10**12  # micro-dollars per million tokens
MAX_CAP = 10**15  # micro-dollars: a billion dollars a day


class _In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True, extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ProviderIn(_In):
    """An upstream provider: `openai` for any OpenAI-compatible API (its base URL ends in /v1, e.g.
    https://openrouter.ai/api/v1), `anthropic` for Anthropic's (https://api.anthropic.com)."""

    kind: Literal["openai", "anthropic"]
    base_url: BaseUrl
    api_key: ApiKey
    enabled: bool = True


class ProviderOut(_Out):
    name: str
    kind: str
    base_url: str
    enabled: bool
    state: Literal["closed", "open", "half-open"] = Field(description="the circuit breaker: open = cut off")
    updated_at: datetime


class ProviderList(_Out):
    providers: list[ProviderOut]


class ModelIn(_In):
    model: ModelName
    provider: ProviderName
    upstream_model: ModelName | None = Field(None, description="its name at the provider (default: `model`)")
    input_price: Annotated[int, Field(ge=0, le=MAX_PRICE)]
    output_price: Annotated[int, Field(ge=0, le=MAX_PRICE)]


class ModelOut(_Out):
    model: str
    provider: str
    upstream_model: str
    input_price: int = Field(description="micro-dollars per million input tokens, before the margin")
    output_price: int = Field(description="micro-dollars per million output tokens, before the margin")
    margin_percent: int


class ModelList(_Out):
    models: list[ModelOut]


class KeyIn(_In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]


class KeyOut(_Out):
    id: str
    name: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself: shown this once, kept nowhere")


class KeyList(_Out):
    keys: list[KeyOut]


class OwnKeyIn(_In):
    api_key: ApiKey


class OwnKeyList(_Out):
    providers: list[str] = Field(description="the providers the tenant's own keys are for (the keys are never shown)")


class UsageRow(_Out):
    day: str
    model: str
    bot_id: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    cost: int


class GatewayUsage(_Out):
    tenant_id: str
    since: str
    until: str
    usage: list[UsageRow]
    total_cost: int


class KeyRotated(_Out):
    bot_id: str
    epoch: int = Field(description="the bot's key generation: its earlier keys no longer work")


class BotLimitsIn(_In):
    """A bot's own cap on what its gateway calls cost per UTC day, in micro-dollars; null (or left out): no cap."""

    daily_cap: Annotated[int, Field(gt=0, le=MAX_CAP)] | None = None


class BotLimits(_Out):
    bot_id: str
    daily_cap: int | None
    spent_today: int = Field(description="what the bot's calls cost today (UTC), while it had a cap")
    reserved: int = Field(description="what its calls in flight have reserved against the cap")
