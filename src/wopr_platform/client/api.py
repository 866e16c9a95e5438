"""The one owner of httpx in the command line: calls the platform's API and turns its failures into client errors.

The API answers every error as `{"error": ..., "details": {...}}`; anything else with an error status (a proxy's
page) is reported by its status. A server that cannot be reached is `Unreachable`, never an httpx exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from wopr_platform import __version__
from wopr_platform.client.errors import ApiError, UnexpectedAnswer, Unreachable

TENANT_HEADER = "X-Tenant-Id"
CSRF_HEADER = "X-CSRF-Token"
TIMEOUT = 60.0  # seconds for a read or a small change
LONG_TIMEOUT = 900.0  # creating, starting, updating, backing up or restoring a bot: an image pull, a health gate

Model = TypeVar("Model", bound=pydantic.BaseModel)


@dataclass(frozen=True, slots=True)
class Reply:
    """One successful answer: its status and its body as sent (what `--output json` prints)."""

    status: int
    text: str

    def parsed(self, model: type[Model]) -> Model:
        """The body read as `model`; an answer of another shape is not the platform's API."""
        try:
            return model.model_validate_json(self.text)
        except pydantic.ValidationError as err:
            raise UnexpectedAnswer(f"unexpected answer from the server: {err.errors()[0]['msg']}") from None


def segment(value: str) -> str:
    """An id or a name as one path segment: `/` and `..` in it cannot reach another route."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def _error_of(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        details = body.get("details")
        return ApiError(response.status_code, body["error"], details if isinstance(details, dict) else {})
    return ApiError(response.status_code, f"HTTP {response.status_code} {response.reason_phrase}", {})


class Api:
    """A connection to one platform, calling with a bearer key (or none, to sign in) for one tenant."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        tenant: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": f"wopr/{__version__}", "Accept": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if tenant is not None:
            headers[TENANT_HEADER] = tenant
        self.url = url
        self._client = httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT, transport=transport)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = TIMEOUT,
    ) -> Reply:
        """Call the API; an error status raises ApiError, a server out of reach raises Unreachable."""
        try:
            response = self._client.request(method, path, json=json, params=params, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            raise Unreachable(f"{self.url} did not answer within {timeout:g} s") from None
        except httpx.TransportError as err:
            raise Unreachable(f"cannot reach {self.url}: {str(err) or type(err).__name__}") from None
        if response.is_error:
            raise _error_of(response)
        return Reply(status=response.status_code, text=response.text)

    def get(self, path: str, params: dict[str, str] | None = None) -> Reply:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None, *, timeout: float = TIMEOUT) -> Reply:
        return self.request("POST", path, json=json, timeout=timeout)

    def delete(self, path: str, params: dict[str, str] | None = None) -> Reply:
        return self.request("DELETE", path, params=params)
