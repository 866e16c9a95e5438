"""The fake AI provider speaks both wire formats as the official SDKs expect them, checked here with plain HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fixtures.fake_provider import FakeProvider

PROMPT = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say three words"}]


@pytest.fixture
async def client(fake_provider: FakeProvider) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake_provider.base_url, timeout=10, trust_env=False) as client:
        yield client


def sse(text: str) -> list[tuple[str | None, str]]:
    """The (event name, data) of each server-sent event."""
    events = []
    for block in text.split("\n\n"):
        if block:
            fields = dict(line.split(": ", 1) for line in block.split("\n"))
            events.append((fields.get("event"), fields["data"]))
    return events


async def test_a_chat_completion_counts_the_words_of_its_messages(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": PROMPT})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"].startswith("chatcmpl-fake-") and answer["object"] == "chat.completion"
    assert answer["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "tok " * 5}, "finish_reason": "stop"}
    ]
    assert answer["usage"] == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}

    body = {"model": "gpt-4o-mini", "messages": PROMPT, "max_completion_tokens": 2}
    assert (await client.post("/v1/chat/completions", json=body)).json()["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize("include_usage", [False, True])
async def test_a_streamed_chat_completion_ends_with_usage_when_asked_and_done(
    client: httpx.AsyncClient, fake_provider: FakeProvider, include_usage: bool
) -> None:
    body: dict[str, Any] = {"model": "m", "messages": PROMPT, "stream": True, "max_tokens": 3}
    body["stream_options"] = {"include_usage": include_usage}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [data for _, data in sse(response.text)]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(data) for data in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "tok " * 3
    assert chunks[4]["choices"][0]["finish_reason"] == "stop"
    usage = [c for c in chunks if "usage" in c]
    if include_usage:
        assert usage == [chunks[-1]] and chunks[-1]["choices"] == []
        assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    else:
        assert usage == [] and len(chunks) == 5
    assert fake_provider.streams_finished == 1 and fake_provider.streams_cancelled == 0


async def test_a_message_counts_the_system_prompt_and_text_blocks(client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "one two"}, {"type": "image"}]}]
    body = {"model": "claude-3-5-haiku-latest", "system": "be brief", "messages": messages, "max_tokens": 4}
    answer = (await client.post("/v1/messages", json=body)).json()
    assert answer["id"].startswith("msg_fake_") and answer["type"] == "message" and answer["role"] == "assistant"
    assert answer["content"] == [{"type": "text", "text": "tok " * 4}]
    assert answer["stop_reason"] == "end_turn" and answer["stop_sequence"] is None
    assert answer["usage"] == {"input_tokens": 4, "output_tokens": 4}


async def test_a_streamed_message_sends_anthropics_events(client: httpx.AsyncClient) -> None:
    body = {"model": "claude", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 100}
    response = await client.post("/v1/messages", json={**body, "stream": True})
    events = [(name, json.loads(data)) for name, data in sse(response.text)]
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in events)
    assert events[0][1]["message"]["usage"] == {"input_tokens": 2, "output_tokens": 1}
    assert events[2][1] == {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "tok "}}
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 5},
    }


async def test_embeddings_and_models(client: httpx.AsyncClient, fake_provider: FakeProvider) -> None:
    body = {"model": "text-embedding-3-small", "input": ["a b", "c"]}
    answer = (await client.post("/v1/embeddings", json=body)).json()
    assert answer["object"] == "list" and answer["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert [item["index"] for item in answer["data"]] == [0, 1]
    vector = answer["data"][0]["embedding"]
    assert len(vector) == 8 and all(isinstance(x, float) for x in vector)
    # the official SDK asks for base64 unless told otherwise
    encoded = (await client.post("/v1/embeddings", json={**body, "encoding_format": "base64"})).json()
    decoded = struct.unpack("<8f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert decoded == pytest.approx(vector, abs=1e-6)

    fake_provider.models = ["a", "b"]
    models = (await client.get("/v1/models")).json()
    assert [(m["id"], m["object"], m["owned_by"]) for m in models["data"]] == [
        ("a", "model", "fake"),
        ("b", "model", "fake"),
    ]
    assert [(r.method, r.path) for r in fake_provider.requests] == [
        ("POST", "/v1/embeddings"),
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/models"),
    ]
    assert fake_provider.requests[0].body == body and "host" in fake_provider.requests[0].headers


async def test_the_next_calls_fail_in_the_providers_own_format(
    client: httpx.AsyncClient, fake_provider: FakeProvider
) -> None:
    fake_provider.fail_next(2, status=503)
    chat = await client.post("/v1/chat/completions", json={"model": "m", "messages": PROMPT})
    assert chat.status_code == 503 and chat.json()["error"]["type"] == "server_error"
    message = await client.post("/v1/messages", json={"model": "m", "messages": PROMPT, "max_tokens": 1})
    assert message.status_code == 503
    assert message.json() == {"type": "error", "error": {"type": "api_error", "message": "injected failure (503)"}}
    assert (await client.post("/v1/embeddings", json={"model": "m", "input": "x"})).status_code == 200


async def test_a_wrong_key_is_refused(client: httpx.AsyncClient, fake_provider: FakeProvider) -> None:
    fake_provider.expected_key = "sk-right"
    body = {"model": "m", "messages": PROMPT, "max_tokens": 1}
    wrong = await client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    right = await client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-right"})
    assert right.status_code == 200
    missing = await client.post("/v1/messages", json=body, headers={"Authorization": "Bearer sk-right"})
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert (await client.post("/v1/messages", json=body, headers={"x-api-key": "sk-right"})).status_code == 200


async def test_a_stream_the_client_leaves_counts_as_cancelled(
    client: httpx.AsyncClient, fake_provider: FakeProvider
) -> None:
    fake_provider.chunk_delay = 0.2
    body = {"model": "m", "messages": PROMPT, "stream": True}
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        async for _ in response.aiter_bytes():
            break
    deadline = time.monotonic() + 5
    while fake_provider.streams_cancelled == 0:
        assert time.monotonic() < deadline, "the fake never saw the client leave"
        await asyncio.sleep(0.02)
    assert fake_provider.streams_finished == 0
