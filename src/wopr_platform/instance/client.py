"""The adapter for WOPR instances themselves: their unauthenticated `GET /health` on port 7437."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from wopr_platform.core.instance import INSTANCE_PORT


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str


class InstanceClient:
    """Probes instances over HTTP from the platform's side, so images need no curl or node inside."""

    def __init__(self, timeout: float) -> None:
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=0),
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
            return ProbeResult(False, f"{type(err).__name__}: {err}"[:200])
        if not 200 <= response.status_code < 300:
            return ProbeResult(False, f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            return ProbeResult(True, "ok")
        if isinstance(body, dict) and str(body.get("status", "ok")).lower() not in ("ok", "healthy", "pass"):
            return ProbeResult(False, f"status {str(body.get('status'))[:40]}")
        return ProbeResult(True, "ok")
