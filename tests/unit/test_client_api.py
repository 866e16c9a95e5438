"""The command line's API connection, on httpx.MockTransport: what it sends, and how failures become its errors."""

from __future__ import annotations

import httpx
import pytest

from wopr_platform import __version__
from wopr_platform.client.api import Api, segment
from wopr_platform.client.errors import ApiError, ExitCode, UnexpectedAnswer, Unreachable
from wopr_platform.client.models import BotList

URL = "http://platform.test:3100"


def _api(handler: httpx.MockTransport, key: str | None = "wopr_k", tenant: str | None = None) -> Api:
    return Api(URL, key, tenant, transport=handler)


def test_calls_carry_the_key_the_tenant_and_the_client_version() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text='{"bots": []}')

    with _api(httpx.MockTransport(handle), tenant="acme") as api:
        reply = api.get("/fleet/bots")
    assert reply.status == 200 and reply.text == '{"bots": []}'
    assert reply.parsed(BotList) == BotList(bots=[])
    request = seen[0]
    assert request.headers["authorization"] == "Bearer wopr_k"
    assert request.headers["x-tenant-id"] == "acme"
    assert request.headers["user-agent"] == f"wopr/{__version__}"


def test_without_a_key_or_tenant_no_such_header_is_sent() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    with _api(httpx.MockTransport(handle), key=None) as api:
        api.post("/auth/login", {"email": "a@b.test"})
    assert "authorization" not in seen[0].headers and "x-tenant-id" not in seen[0].headers


def test_an_api_error_keeps_its_status_message_and_details() -> None:
    body = {"error": "bot not found", "details": {"code": "not_found", "botId": "x"}}
    with (
        _api(httpx.MockTransport(lambda _r: httpx.Response(404, json=body))) as api,
        pytest.raises(ApiError) as raised,
    ):
        api.get("/fleet/bots/x")
    assert (raised.value.status, raised.value.message, raised.value.code) == (404, "bot not found", "not_found")
    assert raised.value.details == body["details"]
    assert raised.value.exit_code == ExitCode.NOT_FOUND


def test_an_error_page_that_is_not_the_apis_is_named_by_its_status() -> None:
    page = httpx.Response(502, text="<html>bad gateway</html>", headers={"content-type": "text/html"})
    with _api(httpx.MockTransport(lambda _r: page)) as api, pytest.raises(ApiError) as raised:
        api.get("/fleet/bots")
    assert raised.value.message == "HTTP 502 Bad Gateway"
    assert raised.value.details == {}
    assert raised.value.exit_code == ExitCode.REFUSED


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), f"cannot reach {URL}: [Errno 111] Connection refused"),
        (httpx.ReadTimeout("timed out"), f"{URL} did not answer within 60 s"),
        (httpx.RemoteProtocolError(""), f"cannot reach {URL}: RemoteProtocolError"),
    ],
)
def test_a_server_out_of_reach_is_unreachable(failure: Exception, said: str) -> None:
    def handle(_request: httpx.Request) -> httpx.Response:
        raise failure

    with _api(httpx.MockTransport(handle)) as api, pytest.raises(Unreachable) as raised:
        api.get("/fleet/bots")
    assert raised.value.message == said
    assert raised.value.exit_code == ExitCode.UNREACHABLE


def test_a_success_of_another_shape_is_an_unexpected_answer() -> None:
    with _api(httpx.MockTransport(lambda _r: httpx.Response(200, text="<html>login</html>"))) as api:
        reply = api.get("/fleet/bots")
    with pytest.raises(UnexpectedAnswer):
        reply.parsed(BotList)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("0b9d2a4c-6f0e", "0b9d2a4c-6f0e"), ("../../keys/1", "..%2F..%2Fkeys%2F1"), ("..", "%2E%2E"), (".", "%2E")],
)
def test_an_id_is_one_path_segment(value: str, quoted: str) -> None:
    assert segment(value) == quoted


def test_an_id_cannot_reach_another_route() -> None:
    paths: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(200, text="{}")

    with _api(httpx.MockTransport(handle)) as api:
        for value in ("../../keys/1", ".."):
            api.get(f"/fleet/bots/{segment(value)}")
    assert paths == ["/fleet/bots/..%2F..%2Fkeys%2F1", "/fleet/bots/%2E%2E"]
