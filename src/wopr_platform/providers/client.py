"""Calls to AI providers through their official SDKs, with the answer's bytes passed on as they arrive.

The gateway forwards a bot's request body and streams the provider's answer back unchanged, so each call asks the
SDK for the raw HTTP response (its `X-Stainless-Raw-Response: stream` option) instead of parsed objects. The SDKs'
own retries are off: a call that reached a provider may have been billed there, and retrying it is the caller's
choice. A client per (provider, key) is kept, all sharing one connection pool per wire format, over the SDKs'
aiohttp transport (their `aiohttp` extra).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx2

if TYPE_CHECKING:  # imported when the gateway starts (see Providers): seconds of start-up a platform without it saves
    import anthropic
    import openai

Kind = Literal["openai", "anthropic"]
KINDS: tuple[Kind, ...] = ("openai", "anthropic")
_RAW_STREAM = {"X-Stainless-Raw-Response": "stream"}
_MAX_CLIENTS = 1000
# what the providers' answers may carry on to the caller (hop-by-hop and length headers are the server's own)
PASSED_HEADERS = (
    "content-type",
    "x-request-id",
    "request-id",
    "openai-processing-ms",
    "anthropic-ratelimit-requests-remaining",
)


@dataclass(frozen=True, slots=True)
class Upstream:
    """A provider as the gateway calls it: its wire format, base URL (OpenAI-style ones end in `/v1`; Anthropic's
    is the host alone, as its SDK takes it) and key."""

    name: str
    kind: Kind
    base_url: str
    api_key: str


class ProviderFailed(Exception):
    """The provider could not be reached, timed out, or answered an error (`status`; None: no answer)."""

    def __init__(self, message: str, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body[:2000]

    @property
    def provider_fault(self) -> bool:
        """The provider's own failure (no answer, 5xx, 429), as opposed to a request it refused (other 4xx)."""
        return self.status is None or self.status >= 500 or self.status == 429


class Reply:
    """A provider's answer whose body has not been read yet."""

    def __init__(self, response: httpx2.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = {name: response.headers[name] for name in PASSED_HEADERS if name in response.headers}

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (raises ProviderFailed when the provider breaks off)."""
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx2.HTTPError as err:
            raise ProviderFailed(f"the provider broke off its answer: {type(err).__name__}") from None

    async def read(self) -> bytes:
        try:
            return await self._response.aread()
        except httpx2.HTTPError as err:
            raise ProviderFailed(f"the provider broke off its answer: {type(err).__name__}") from None

    async def close(self) -> None:
        await self._response.aclose()


class Providers:
    """Sends calls to providers; `close` ends every connection."""

    def __init__(self, *, timeout: float, max_connections: int) -> None:
        # here, not at the top: only a platform with the gateway imports the SDKs
        import anthropic
        import openai

        self._openai = openai
        self._anthropic = anthropic
        self._refused = (openai.APIStatusError, anthropic.APIStatusError)
        self._unreached = (openai.APIConnectionError, anthropic.APIConnectionError)
        limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=min(max_connections, 200))
        self._timeout = httpx2.Timeout(timeout, connect=min(timeout, 10.0))
        # the SDKs' own aiohttp transport: much less work per streamed chunk than their default one
        self._openai_http = openai.DefaultAioHttpClient(limits=limits, timeout=self._timeout)
        self._anthropic_http = anthropic.DefaultAioHttpClient(limits=limits, timeout=self._timeout)
        self._clients: OrderedDict[Upstream, openai.AsyncOpenAI | anthropic.AsyncAnthropic] = OrderedDict()

    def _client(self, upstream: Upstream) -> openai.AsyncOpenAI | anthropic.AsyncAnthropic:
        client = self._clients.get(upstream)
        if client is None:
            if len(self._clients) >= _MAX_CLIENTS:
                self._clients.popitem(last=False)  # the shared pool stays open: nothing to close
            if upstream.kind == "openai":
                client = self._openai.AsyncOpenAI(
                    api_key=upstream.api_key,
                    base_url=upstream.base_url,
                    max_retries=0,
                    timeout=self._timeout,
                    http_client=self._openai_http,
                )
            else:
                client = self._anthropic.AsyncAnthropic(
                    api_key=upstream.api_key,
                    base_url=upstream.base_url,
                    max_retries=0,
                    timeout=self._timeout,
                    http_client=self._anthropic_http,
                )
            self._clients[upstream] = client
        else:
            self._clients.move_to_end(upstream)
        return client

    async def send(self, upstream: Upstream, path: str, body: Mapping[str, Any]) -> Reply:
        """POST `body` to `path` (under the provider's base URL: `/chat/completions`, `/embeddings` for OpenAI-style,
        `/v1/messages` for Anthropic); the answer unread. ProviderFailed for no answer or an error status."""
        client = self._client(upstream)
        try:
            response = await client.post(
                path, cast_to=httpx2.Response, body=dict(body), options={"headers": _RAW_STREAM}
            )
        except self._refused as err:
            raise ProviderFailed(
                f"the provider answered {err.status_code}", err.status_code, err.response.content
            ) from None
        except self._unreached as err:
            raise ProviderFailed(f"the provider could not be reached: {type(err).__name__}") from None
        return Reply(response)

    async def close(self) -> None:
        self._clients.clear()
        await self._openai_http.aclose()
        await self._anthropic_http.aclose()
