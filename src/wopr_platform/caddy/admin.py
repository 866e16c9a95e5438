"""The Caddy adapter: the only module that talks to Caddy's admin API (over httpx).

It reads and writes the platform's own server blocks and nothing else of Caddy's config, and speaks the
project's errors: `ProxyUnavailable` when the admin API cannot be reached, `ProxyRejected` when Caddy refuses.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from wopr_platform.core.errors import ProxyRejected, ProxyUnavailable

ADMIN_TIMEOUT_SECONDS = 10.0
# what Caddy 2.6 answers (always with status 500) when a PATCH target or its parents do not exist yet
_MISSING = ("does not exist", "invalid traversal path")


class CaddyAdmin:
    """Caddy's admin API at `url`."""

    def __init__(self, url: str, *, timeout: float = ADMIN_TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout, trust_env=False)

    async def close(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            return await self._client.request(method, path, json=body)
        except httpx.TimeoutException as err:
            raise ProxyUnavailable(
                "Caddy's admin API did not answer in time", details={"adminUrl": self.url, "reason": type(err).__name__}
            ) from err
        except httpx.HTTPError as err:
            raise ProxyUnavailable(
                f"Caddy's admin API cannot be reached at {self.url}",
                details={"adminUrl": self.url, "reason": type(err).__name__},
            ) from err

    @staticmethod
    def _error(response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:500] or f"status {response.status_code}"
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return str(body["error"])[:500]
        return f"status {response.status_code}"

    async def get_object(self, object_id: str) -> dict[str, Any] | None:
        """The config object carrying `"@id": object_id`, or None when Caddy has none (e.g. after a restart)."""
        response = await self._request("GET", f"/id/{quote(object_id, safe='')}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ProxyRejected(f"Caddy failed to read its config: {self._error(response)}")
        found = response.json()
        return found if isinstance(found, dict) else None

    async def put_server(self, name: str, server: dict[str, Any]) -> None:
        """Create or replace the HTTP server block `name` (one config load in Caddy)."""
        path = f"/config/apps/http/servers/{quote(name, safe='')}"
        response = await self._request("PATCH", path, server)
        if response.status_code == 200:
            return
        message = self._error(response)
        if not any(marker in message for marker in _MISSING):
            raise ProxyRejected(f"Caddy refused the server block {name}: {message}", details={"server": name})
        response = await self._request("PUT", path, server)  # a fresh Caddy: PUT creates the path
        if response.status_code != 200:
            message = self._error(response)
            raise ProxyRejected(f"Caddy refused the server block {name}: {message}", details={"server": name})
