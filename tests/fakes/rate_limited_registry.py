"""A fake registry that answers 429 Too Many Requests: a real registry cannot be made to rate-limit on demand."""

from __future__ import annotations

import asyncio
from types import TracebackType

_BODY = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}'


class FakeRateLimitedRegistry:
    """Fakes a registry whose every answer is 429 with `Retry-After` (none when `retry_after` is None).

    It records each request line (`"HEAD /v2/app/manifests/v1"`) in `requests`; use it as an async context manager.
    """

    def __init__(self, *, retry_after: str | None = "30") -> None:
        self.retry_after = retry_after
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeRateLimitedRegistry:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one answer per request until the client hangs up
                request_line = (await reader.readline()).decode("latin-1").strip()
                if not request_line:
                    return
                while (await reader.readline()).strip():
                    pass  # headers; the requests we fake have no body
                method, target, _ = request_line.split(" ", 2)
                self.requests.append(f"{method} {target}")
                head = [
                    "HTTP/1.1 429 Too Many Requests",
                    "Content-Type: application/json",
                    f"Content-Length: {len(_BODY)}",
                    "Docker-Distribution-Api-Version: registry/2.0",
                ]
                if self.retry_after is not None:
                    head.append(f"Retry-After: {self.retry_after}")
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
                if method != "HEAD":
                    writer.write(_BODY)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
