"""The served OpenAPI document describes the whole fleet API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Platform
from wopr_platform.fleet.schemas import BotDetail, BotList

ROUTES = [
    ("get", "/health"),
    ("get", "/health/ready"),
    ("get", "/fleet/bots"),
    ("post", "/fleet/bots"),
    ("get", "/fleet/bots/{bot_id}"),
    ("patch", "/fleet/bots/{bot_id}"),
    ("delete", "/fleet/bots/{bot_id}"),
    ("post", "/fleet/bots/{bot_id}/start"),
    ("post", "/fleet/bots/{bot_id}/stop"),
    ("post", "/fleet/bots/{bot_id}/restart"),
    ("get", "/fleet/bots/{bot_id}/logs"),
    ("post", "/fleet/bots/{bot_id}/update"),
    ("get", "/fleet/bots/{bot_id}/image-status"),
    ("get", "/fleet/bots/{bot_id}/updates"),
    ("get", "/fleet/rollouts"),
    ("get", "/fleet/rollouts/{rollout_id}"),
]


@pytest.fixture
async def document(platform: Platform) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as anonymous:
        response = await anonymous.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict)
    return body


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _schema(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    found: Any = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return dict(found)


async def test_document_is_openapi_3_with_title_and_version(document: dict[str, Any]) -> None:
    """The document is OpenAPI 3.x and names the service."""
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "wopr-platform"
    assert document["info"]["version"]


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m.upper()} {p}" for m, p in ROUTES])
async def test_every_route_is_documented(document: dict[str, Any], method: str, path: str) -> None:
    """Each route of the API contract appears with its method."""
    assert method in document["paths"].get(path, {}), sorted(document["paths"])


async def test_every_reference_resolves(document: dict[str, Any]) -> None:
    """No `$ref` points at a schema the document does not define."""
    refs = set(_refs(document))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in document["components"]["schemas"], ref


async def test_request_bodies_use_the_wire_names(document: dict[str, Any]) -> None:
    """Create and patch bodies are documented in camelCase, as clients send them."""
    for method in ("post", "patch"):
        path = "/fleet/bots" if method == "post" else "/fleet/bots/{bot_id}"
        operation = document["paths"][path][method]
        body = _schema(document, operation["requestBody"]["content"]["application/json"]["schema"])
        properties = set(body["properties"])
        assert {"name", "image", "env", "restartPolicy", "volumeName", "releaseChannel", "updatePolicy"} <= properties
        assert not {"restart_policy", "volume_name"} & properties
    create = _schema(
        document, document["paths"]["/fleet/bots"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    )
    assert set(create["required"]) == {"name", "image"}


async def test_logs_and_delete_document_their_query_parameters(document: dict[str, Any]) -> None:
    """`tail` on logs and `removeVolumes` on delete are listed as query parameters."""
    logs = document["paths"]["/fleet/bots/{bot_id}/logs"]["get"]["parameters"]
    delete = document["paths"]["/fleet/bots/{bot_id}"]["delete"]["parameters"]
    assert {"tail"} <= {p["name"] for p in logs if p["in"] == "query"}
    assert {"removeVolumes"} <= {p["name"] for p in delete if p["in"] == "query"}


async def test_update_answers_are_documented_in_camel_case(document: dict[str, Any]) -> None:
    """UpdateResult and image status carry the field names of the API contract."""

    def answer(path: str, method: str) -> set[str]:
        content = document["paths"][path][method]["responses"]["200"]["content"]["application/json"]
        return set(_schema(document, content["schema"])["properties"])

    assert {
        "botId",
        "success",
        "previousImage",
        "newImage",
        "previousDigest",
        "newDigest",
        "rolledBack",
        "error",
    } <= answer("/fleet/bots/{bot_id}/update", "post")
    assert {
        "botId",
        "currentDigest",
        "availableDigest",
        "updateAvailable",
        "releaseChannel",
        "updatePolicy",
        "lastCheckedAt",
    } <= answer("/fleet/bots/{bot_id}/image-status", "get")


async def test_delete_is_documented_as_204_without_a_body(document: dict[str, Any]) -> None:
    """DELETE /fleet/bots/{id} answers 204 and nothing else on success, as the original service did."""
    responses = document["paths"]["/fleet/bots/{bot_id}"]["delete"]["responses"]
    assert "204" in responses and "200" not in responses, responses
    assert "content" not in responses["204"], responses["204"]


async def test_uptime_is_documented_as_a_time_and_uptime_seconds_as_a_count(document: dict[str, Any]) -> None:
    """BotStatus keeps the original's `uptime` (when the container started) and adds `uptimeSeconds`."""
    properties = document["components"]["schemas"]["BotStatus"]["properties"]
    assert {"type": "string", "format": "date-time"} in properties["uptime"]["anyOf"], properties["uptime"]
    assert {"type": "integer"} in properties["uptimeSeconds"]["anyOf"], properties["uptimeSeconds"]


async def test_status_documents_observed_state_and_a_nullable_health(document: dict[str, Any]) -> None:
    """`state` and `health` keep the original's values (`stopped`, null without a container); `observedState` is
    the platform's own view of the container."""
    status = document["components"]["schemas"]["BotStatus"]
    assert {"state", "observedState", "health"} <= set(status["required"])
    assert {"type": "null"} in status["properties"]["health"]["anyOf"], status["properties"]["health"]


async def test_the_bot_list_answer_is_its_declared_model(platform: Platform) -> None:
    """The list is rendered straight to JSON (not through its model, for speed): it must still be a BotList, with
    each entry the same status the bot's own answer shows."""
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], state="running")
    listed = BotList.model_validate((await platform.client.get("/fleet/bots")).json(), strict=False)
    detail = BotDetail.model_validate((await platform.client.get(f"/fleet/bots/{bot['id']}")).json(), strict=False)
    [entry] = [b for b in listed.bots if b.id == bot["id"]]
    changing = {"uptime_seconds", "stats", "health"}  # may move between the two requests
    assert entry.model_dump(exclude=changing) == detail.model_dump(include=set(type(entry).model_fields) - changing)
