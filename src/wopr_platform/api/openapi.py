"""The served OpenAPI document, told the truth about errors: every one is `{"error", "details"}`, bad input a 400."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every error answer: a message for people and details with a stable `code` for programs.",
    "required": ["error", "details"],
    "additionalProperties": False,
    "properties": {
        "error": {"type": "string", "minLength": 1},
        "details": {
            "type": "object",
            "properties": {"code": {"type": "string"}},
            "additionalProperties": True,
        },
    },
}
ERROR_RESPONSE: dict[str, Any] = {
    "description": "An error (400 bad input, 401, 403, 404, 409, 413, 429 with Retry-After, 502, 503) in the one shape",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
# FastAPI documents its own 422 answer for bad input; this API answers such input with a 400 in the error shape
FRAMEWORK_SCHEMAS = ("HTTPValidationError", "ValidationError")


def document_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Replace the framework's 422 with the API's error answer (`default`) on every operation, in place."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["responses"].pop("422", None)
            operation["responses"]["default"] = ERROR_RESPONSE
    for name in FRAMEWORK_SCHEMAS:
        schemas.pop(name, None)
    return document
