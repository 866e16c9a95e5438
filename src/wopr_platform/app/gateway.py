"""The AI gateway's own HTTP listener: provider-compatible endpoints for bots and tenants' keys.

- `POST /v1/chat/completions`, `POST /v1/embeddings`: the OpenAI wire format, to a model of an OpenAI-style
  provider; `POST /v1/messages`: Anthropic's, to a model of an Anthropic provider. Streamed or not.
- `GET /v1/models`: the models the gateway offers, as OpenAI lists them.

It is a plain ASGI app (no framework on the path of every token): the request body is read whole (bounded), the
call admitted and reserved (`gateway.calls`), the provider's answer passed on chunk by chunk as it arrives while
`StreamMeter` reads its usage, and the call finished (charged) before its last event reaches the caller. A caller
that goes away mid-stream ends the call at once; it is charged for what was produced. Errors are the platform's
`{"error", "details"}`. The listener runs in every replica (a loop like the others, `GatewayListener`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from wopr_platform.api.errors import send_error
from wopr_platform.core.errors import (
    NotFound,
    PayloadTooLarge,
    PlatformError,
    ProviderError,
    ValidationFailed,
)
from wopr_platform.core.settings import Settings
from wopr_platform.gateway.admin import GatewayAdmin
from wopr_platform.gateway.calls import Call, GatewayCalls, Route
from wopr_platform.gateway.metering import Endpoint, StreamMeter, Usage, answer_usage, estimate_input
from wopr_platform.providers.client import ProviderFailed, Providers, Reply

log = logging.getLogger(__name__)

# path -> (endpoint, the provider wire format it needs, the path under the provider's base URL)
ENDPOINTS: dict[str, tuple[Endpoint, str, str]] = {
    "/v1/chat/completions": ("chat", "openai", "/chat/completions"),
    "/v1/embeddings": ("embeddings", "openai", "/embeddings"),
    "/v1/messages": ("messages", "anthropic", "/v1/messages"),
}
_JSON = (b"content-type", b"application/json")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _key(scope: Scope) -> str | None:
    """The caller's key: `Authorization: Bearer` (OpenAI's SDKs) or `x-api-key` (Anthropic's)."""
    authorization = _header(scope, b"authorization")
    if authorization is not None and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return _header(scope, b"x-api-key")


def _max_output(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class _Started:
    """Whether the answer's head was sent (after that, an error can only end the stream)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.yes = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.yes = True
        await self._send(message)


class GatewayApp:
    def __init__(self, *, calls: GatewayCalls, admin: GatewayAdmin, providers: Providers, settings: Settings) -> None:
        self._calls = calls
        self._admin = admin
        self._providers = providers
        self._max_body = settings.gateway_max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = _Started(send)
        try:
            await self._route(scope, receive, started)
        except _Gone:
            return
        except PlatformError as err:
            if not started.yes:
                headers = [(k.lower().encode(), v.encode()) for k, v in err.headers]
                await send_error(started, err.status, err.message, err.details, headers)
        except Exception:
            log.exception("gateway call failed", extra={"path": scope.get("path")})
            if not started.yes:
                await send_error(started, 500, "internal error", {"code": "internal_error"})

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/v1/models" and method == "GET":
            await self._models(scope, send)
            return
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            raise NotFound("the gateway has no such endpoint", details={"path": path[:200]})
        if method != "POST":
            raise ValidationFailed("this endpoint takes POST", details={"method": method})
        await self._proxy(scope, receive, send, *endpoint)

    async def _models(self, scope: Scope, send: Send) -> None:
        await self._calls.authenticate(_key(scope))
        names = await self._admin.model_names()
        body = orjson.dumps(
            {
                "object": "list",
                "data": [{"id": name, "object": "model", "created": 0, "owned_by": "wopr"} for name in names],
            }
        )
        await send({"type": "http.response.start", "status": 200, "headers": [_JSON]})
        await send({"type": "http.response.body", "body": body})

    async def _body(self, receive: Receive) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise PayloadTooLarge(
                    f"the request body is over {self._max_body} bytes", details={"limit": self._max_body}
                )
            parts.append(chunk)
            if not message.get("more_body"):
                return b"".join(parts)

    async def _proxy(
        self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint, wire: str, upstream_path: str
    ) -> None:
        raw = await self._body(receive)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ValidationFailed("the body is not JSON", details={"code": "malformed_json"}) from None
        if not isinstance(body, dict):
            raise ValidationFailed("the body must be a JSON object", details={"field": "body"})
        caller, route = await self._calls.authenticate_and_route(_key(scope), body.get("model"))
        if route.upstream.kind != wire:
            raise ValidationFailed(
                f"model {route.model} is served in the {route.upstream.kind} format, not by {scope['path']}",
                details={"field": "model", "format": route.upstream.kind},
            )
        stream = body.get("stream") is True and endpoint != "embeddings"
        forwarded = {**body, "model": route.upstream_model}
        if stream and wire == "openai":  # the usage arrives in the stream's last chunk only when asked for
            forwarded["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        input_estimate = estimate_input(raw)
        estimate = self._calls.estimate(route, input_estimate, 0 if endpoint == "embeddings" else _max_output(body))
        call = await self._calls.begin(caller, route, endpoint, estimate)
        reply = await self._send_upstream(call, route, upstream_path, forwarded)
        headers = [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        headers.append((b"x-wopr-call-id", call.id.encode()))
        if not stream:
            await self._whole(call, reply, send, headers, input_estimate)
        else:
            await self._stream(call, reply, receive, send, headers, input_estimate)

    async def _send_upstream(self, call: Call, route: Route, path: str, body: dict[str, Any]) -> Reply:
        breakers = self._calls.breakers
        try:
            reply = await self._providers.send(route.upstream, path, body)
        except ProviderFailed as err:
            (breakers.failed if err.provider_fault else breakers.released)(route.upstream.name)
            await self._calls.finish(call, None)
            raise _provider_error(route, err) from None
        except BaseException:
            breakers.released(route.upstream.name)
            await self._calls.finish(call, None)
            raise
        breakers.succeeded(route.upstream.name)
        return reply

    async def _whole(
        self, call: Call, reply: Reply, send: Send, headers: list[tuple[bytes, bytes]], input_estimate: int
    ) -> None:
        try:
            content = await reply.read()
        except ProviderFailed as err:
            await self._calls.finish(call, None)
            raise _provider_error(call.route, err) from None
        finally:
            await reply.close()
        usage = answer_usage(content) or Usage(input_estimate, 0)
        await self._calls.finish(call, usage)  # durable (and charged) before the caller has the answer
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _stream(
        self,
        call: Call,
        reply: Reply,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        input_estimate: int,
    ) -> None:
        meter = StreamMeter()
        finished = False
        relay = asyncio.current_task()
        assert relay is not None
        gone = asyncio.Event()
        watcher = asyncio.create_task(_cancel_on_disconnect(receive, relay, gone))
        try:
            headers.append((b"cache-control", b"no-cache"))
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            async for chunk in reply.chunks():
                meter.feed(chunk)
                if meter.ended and not finished:
                    finished = True  # charged before the end of the stream reaches the caller
                    await self._calls.finish(call, meter.usage(input_estimate))
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except ProviderFailed:
            log.warning("provider broke off a stream", extra={"call": call.id, "provider": call.route.upstream.name})
        except asyncio.CancelledError:
            if not gone.is_set():
                raise
            relay.uncancel()  # the caller went away: the call ends here, normally
        finally:
            watcher.cancel()
            # the awaits below run to their end even after a cancellation (it was delivered once, above)
            await reply.close()
            if not finished:  # cut off: charged for what was produced so far
                await self._calls.finish(call, meter.usage(input_estimate))

    async def close(self) -> None:
        await self._providers.close()


def _provider_error(route: Route, err: ProviderFailed) -> PlatformError:
    details: dict[str, Any] = {"provider": route.upstream.name, "providerStatus": err.status}
    if err.status is not None and 400 <= err.status < 500 and err.status != 429:
        refused = ProviderError(f"provider {route.upstream.name} refused the call ({err.status})", details=details)
        refused.status = err.status if err.status not in (401, 403) else 502  # its key is the platform's business
        with contextlib.suppress(orjson.JSONDecodeError):
            details["providerError"] = orjson.loads(err.body)
        return refused
    return ProviderError(f"provider {route.upstream.name} failed the call: {err}", details=details)


class _Gone(Exception):
    """The caller went away before its answer was complete."""


async def _cancel_on_disconnect(receive: Receive, relay: asyncio.Task[Any], gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            relay.cancel()
            return


class GatewayListener:
    """Serves the gateway on its own port while the platform runs (every replica). The platform's own server
    handles the process's signals; this one stops when the platform does."""

    name = "gateway"

    def __init__(self, app: GatewayApp, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self.listening = asyncio.Event()
        self.stopped = asyncio.Event()  # its calls have ended (their charges may be posted one last time)

    async def run(self, stop: asyncio.Event) -> None:
        self.stopped.clear()
        config = uvicorn.Config(
            self._app,
            host=self._settings.gateway_host,
            port=self._settings.gateway_port,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        server = _QuietServer(config)
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if serving.done():
                    serving.result()
                    raise OSError(f"the gateway could not listen on port {self._settings.gateway_port}")
                await asyncio.sleep(0.02)
            self.listening.set()
            log.info("gateway listening", extra={"port": self._settings.gateway_port})
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
        finally:
            self.listening.clear()
            server.should_exit = True
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(serving), timeout=10)
            await self._app.close()
            self.stopped.set()


class _QuietServer(uvicorn.Server):
    """No signal handlers (the platform's own server has them) and no sys.exit on a failed start."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[Any] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit:
            raise OSError(f"the gateway could not listen on {self.config.host}:{self.config.port}") from None
