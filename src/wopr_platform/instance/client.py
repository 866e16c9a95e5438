"""The adapter for WOPR instances themselves: their unauthenticated `GET /health` on port 7437."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from wopr_platform.docker.types import INSTANCE_PORT


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

    async def probe(self, address: str) -> ProbeResult:
        """GET http://<address>:7437/health; healthy means 200 with `{"status":"ok"}`."""
        host = f"[{address}]" if ":" in address else address
        try:
            response = await self._http.get(f"http://{host}:{INSTANCE_PORT}/health")
        except httpx.HTTPError as err:
            return ProbeResult(False, f"{type(err).__name__}: {err}"[:200])
        if response.status_code != 200:
            return ProbeResult(False, f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            return ProbeResult(False, "health answer is not JSON")
        if not isinstance(body, dict) or body.get("status") != "ok":
            return ProbeResult(False, "health answer does not say ok")
        return ProbeResult(True, "ok")
