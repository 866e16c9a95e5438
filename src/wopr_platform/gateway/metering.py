"""What a call used, read from the provider's own answer, and what it costs.

A whole answer carries a `usage` object. A stream carries it in its events: OpenAI-style streams in a last chunk
(the gateway asks for it with `stream_options.include_usage`), Anthropic streams in `message_start` (input) and
`message_delta` (output so far). The meter reads the stream's bytes as they pass, parsing only the lines that can
hold usage, and also counts the content deltas: a stream cut off before its usage arrived (the caller went away)
is charged for the input the request was estimated at and one token per delta produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

Endpoint = Literal["chat", "messages", "embeddings"]
MICROS_PER_MILLION_TOKENS = 1_000_000


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Price:
    """Micro-dollars per million input and output tokens."""

    input: int
    output: int

    def cost(self, usage: Usage, margin_percent: int) -> int:
        """Micro-dollars, with the margin, rounded up (a call never costs less than it used)."""
        raw = usage.input_tokens * self.input + usage.output_tokens * self.output
        return -(-raw * (100 + margin_percent) // (100 * MICROS_PER_MILLION_TOKENS))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def usage_of(data: Any) -> Usage | None:
    """The usage object of an answer (or stream event) in either wire format."""
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:  # Anthropic: cached input counts as input
        read = _int(usage.get("input_tokens"))
        read += _int(usage.get("cache_creation_input_tokens")) + _int(usage.get("cache_read_input_tokens"))
        return Usage(read, _int(usage.get("output_tokens")))
    return Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))


def answer_usage(body: bytes) -> Usage | None:
    try:
        return usage_of(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None


def estimate_input(body: bytes) -> int:
    """An upper estimate of a request's input tokens from its size (a token is rarely under three bytes)."""
    return len(body) // 3 + 16


class StreamMeter:
    """Reads a streamed answer's server-sent events as they pass: its usage, its deltas, whether it ended."""

    def __init__(self) -> None:
        self._pending = b""
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.deltas = 0
        self.ended = False

    def feed(self, chunk: bytes) -> None:
        data = self._pending + chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                self._data(line[5:].strip())

    def _data(self, payload: bytes) -> None:
        if payload == b"[DONE]":
            self.ended = True
            return
        if b'"usage"' in payload:
            try:
                event = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return
            if isinstance(event, dict):
                self._usage(event)
        if b'"delta"' in payload and (b'"content"' in payload or b'"text_delta"' in payload):
            self.deltas += 1
        elif b'"message_stop"' in payload:
            self.ended = True

    def _usage(self, event: dict[str, Any]) -> None:
        if event.get("type") == "message_start":  # Anthropic: the input, and the output's first count
            found = usage_of(event.get("message"))
            if found is not None:
                self.input_tokens, self.output_tokens = found.input_tokens, found.output_tokens
            return
        found = usage_of(event)
        if found is None:
            return
        if event.get("type") == "message_delta":  # Anthropic: the output so far (input only when restated)
            self.output_tokens = found.output_tokens
            if found.input_tokens:
                self.input_tokens = found.input_tokens
            return
        self.input_tokens, self.output_tokens = found.input_tokens, found.output_tokens

    def usage(self, estimated_input: int) -> Usage:
        """The provider's count where it gave one; else the estimate of the input and one token per delta (also
        when a stream cut off counted fewer than the deltas that did pass)."""
        output = self.output_tokens
        if output is None or (not self.ended and output < self.deltas):
            output = self.deltas
        return Usage(self.input_tokens if self.input_tokens is not None else estimated_input, output)
