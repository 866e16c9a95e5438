"""One place that turns every failure into `{"error", "details"}` with the right status; never a stack trace."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Send

from wopr_platform.core.errors import PlatformError

log = logging.getLogger(__name__)
# the original service's message for a body that is not JSON; its clients may match on it
INVALID_JSON = "Invalid JSON body"


def error_body(message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": message, "details": details or {}}


async def send_error(
    send: Send, status: int, message: str, details: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer `{"error", "details"}` straight from an ASGI middleware (before the app has seen the request)."""
    body = json.dumps(error_body(message, details)).encode()
    start_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation_response(err: RequestValidationError) -> JSONResponse:
    problems = []
    for item in err.errors():
        kind = str(item.get("type", ""))
        if kind == "json_invalid":
            return JSONResponse(error_body(INVALID_JSON, {"code": "malformed_json"}), status_code=400)
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        problems.append({"field": _field(tuple(item.get("loc", ()))), "message": message, "type": kind})
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    return JSONResponse(
        error_body(
            f"{first['field']}: {first['message']}",
            {"code": "validation_failed", "errors": problems},
        ),
        status_code=400,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""

    @app.exception_handler(PlatformError)
    async def _platform(_request: Request, err: PlatformError) -> JSONResponse:
        if err.status >= 500:
            log.warning("request failed", extra={"code": err.details.get("code"), "reason": err.message})
        return JSONResponse(error_body(err.message, err.details), status_code=err.status, headers=dict(err.headers))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        return _validation_response(err)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, err: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        # a JSON body that is not UTF-8 fails before the JSON decoder, as the framework's generic 400
        message = INVALID_JSON if isinstance(err.__cause__, UnicodeDecodeError) else str(err.detail)
        return JSONResponse(error_body(message, {"code": code}), status_code=err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.error(
            "unhandled error",
            exc_info=(type(err), err, err.__traceback__),
            extra={"path": request.url.path, "method": request.method},
        )
        return JSONResponse(error_body("internal error", {"code": "internal_error"}), status_code=500)
