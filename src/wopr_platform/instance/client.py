"""The adapter for WOPR instances themselves: their unauthenticated `GET /health` on port 7437."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from wopr_platform.core.instance import INSTANCE_PORT

MAX_CONNECTIONS = 96  # open at once, to all instances together (more than the health monitor's workers)
MAX_IDLE_CONNECTIONS = 8  # kept alive between probes: few, since httpx's pool does work per connection per request
# an idle connection is closed after this: short, since a stopped bot's address may go to another container
IDLE_SECONDS = 5.0
DETAIL_CHARS = 120


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str


class InstanceClient:
    """Probes instances over HTTP from the platform's side, so images need no curl or node inside.

    One pool of keep-alive connections serves every probe: a bot probed again soon (while it starts, or
    after a failure) reuses its connection instead of opening another.
    """

    def __init__(self, timeout: float) -> None:
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_IDLE_CONNECTIONS,
                keepalive_expiry=IDLE_SECONDS,
            ),
            trust_env=False,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def probe(self, address: str, path: str = "/health", seconds: float | None = None) -> ProbeResult:
        """GET http://<address>:7437<path> within `seconds`.

        Healthy means a 2xx answer whose JSON body, if it has a `status`, says ok (the WOPR contract is
        `{"status":"ok"}`).
        """
        host = f"[{address}]" if ":" in address else address
        try:
            response = await self._http.get(
                f"http://{host}:{INSTANCE_PORT}{path}",
                timeout=httpx.Timeout(seconds) if seconds else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as err:
            return ProbeResult(False, f"{type(err).__name__}: {err}"[:DETAIL_CHARS])
        if not 200 <= response.status_code < 300:
            return ProbeResult(False, f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            return ProbeResult(True, "ok")
        if isinstance(body, dict) and str(body.get("status", "ok")).lower() not in ("ok", "healthy", "pass"):
            return ProbeResult(False, f"status {str(body.get('status'))[:40]}")
        return ProbeResult(True, "ok")
