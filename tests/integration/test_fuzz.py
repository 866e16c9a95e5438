"""Property-based fuzzing of the served OpenAPI document (schemathesis): no 5xx, no answer outside its schema,
every error in the one error shape, no invalid input accepted.

A real platform is started on the test database; schemathesis reads its /openapi.json and sends generated requests,
valid and invalid, to every operation over HTTP. It runs in a worker thread (it is synchronous) while the platform
serves from the test's event loop. Bounded: WOPR_FUZZ_EXAMPLES cases per operation and mode (default 25), the same
cases on every run unless WOPR_FUZZ_RANDOM=1 (then new ones each run; a failure prints its reproduction).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import TOKEN, PlatformFactory
from tests.ports import free_port

EXAMPLES = int(os.environ.get("WOPR_FUZZ_EXAMPLES", "25"))
RANDOM = os.environ.get("WOPR_FUZZ_RANDOM") == "1"
# every answer matches its documented schema, status and media type; input outside the schema is refused
CHECKS = [response_schema_conformance, status_code_conformance, content_type_conformance, negative_data_rejection]
# 5xx answers that are the platform working as designed here: tenant routing, mail and payments are off in this
# platform
EXPECTED_UNAVAILABLE = {(503, "proxy_disabled"), (503, "mail_unavailable"), (503, "payments_unavailable")}
# an endless event stream: nothing to fuzz but a query parameter, and every case would wait for the timeout
SKIPPED = {"GET /fleet/events"}
# throttled per account and address: a replayed case can meet 429 where the first met 401, which Hypothesis calls
# unreliable; their bad input is proved by test_accounts.py and test_bad_input.py instead
SKIPPED |= {"POST /auth/login", "POST /auth/password-reset"}
# operations fuzzed a second time on a bot that exists (others would only stop, start or delete it)
ON_A_REAL_BOT = {
    "GET /fleet/bots/{bot_id}",
    "PATCH /fleet/bots/{bot_id}",
    "GET /fleet/bots/{bot_id}/logs",
    "GET /fleet/bots/{bot_id}/image-status",
    "GET /fleet/bots/{bot_id}/updates",
}


def _check_answer(response: schemathesis.Response) -> None:
    """No 5xx but the expected ones; every error in the one error shape, no stack trace; the security headers."""
    headers = {name.lower(): values for name, values in response.headers.items()}
    text = response.content.decode(errors="replace")
    if response.status_code >= 400:
        assert headers.get("content-type", [""])[0].startswith("application/json"), f"not JSON: {text}"
        body = json.loads(text)
        assert isinstance(body, dict) and set(body) == {"error", "details"}, f"not the error shape: {text}"
        assert "Traceback" not in text and "site-packages" not in text, text
        if response.status_code >= 500:
            code = body["details"].get("code")
            assert (response.status_code, code) in EXPECTED_UNAVAILABLE, f"server error {response.status_code}: {text}"
    assert headers.get("x-content-type-options") == ["nosniff"], headers
    assert "server" not in headers, headers


def _fuzz(base_url: str, bot_id: str) -> tuple[list[str], int]:
    """Run every operation's cases; the failures (with a curl line to reproduce each) and the number of calls."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=30)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in SKIPPED:
            continue
        runs: list[tuple[GenerationMode, dict[str, Any] | None]] = [
            (GenerationMode.POSITIVE, None),
            (GenerationMode.NEGATIVE, None),
        ]
        if operation.label in ON_A_REAL_BOT:
            runs += [(GenerationMode.POSITIVE, {"bot_id": bot_id}), (GenerationMode.NEGATIVE, {"bot_id": bot_id})]
        for mode, path_parameters in runs:

            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=not RANDOM,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                report_multiple_bugs=False,
            )
            def run(case: schemathesis.Case) -> None:
                nonlocal calls
                calls += 1
                response = case.call(base_url=base_url, session=session, timeout=30)
                try:
                    _check_answer(response)
                except AssertionError as err:
                    raise AssertionError(f"{err}\n\nReproduce with:\n    {case.as_curl_command()}") from None
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                pass  # nothing in this operation can be made invalid (e.g. no parameters at all)
            except (Exception, BaseExceptionGroup) as err:  # schemathesis reports failures as a group
                where = f"{operation.label} ({mode.value}{', real bot' if path_parameters else ''})"
                failures.append(f"{where}: {err}")
    return failures, calls


@pytest.mark.slow
async def test_fuzzing_the_api_finds_no_server_error_and_no_schema_violation(make_platform: PlatformFactory) -> None:
    platform = await make_platform(
        FLEET_RATE_LIMIT=0, GATEWAY_ENABLED=True, GATEWAY_PORT=free_port()
    )  # thousands of calls in seconds: not what limits are for
    bot = await platform.create_bot()
    began = time.monotonic()
    failures, calls = await asyncio.to_thread(_fuzz, platform.url, bot["id"])
    took = time.monotonic() - began
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)
    assert calls > 100, calls
    print(f"fuzzing: {calls} calls in {took:.1f} s")
