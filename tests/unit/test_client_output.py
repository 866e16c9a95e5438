"""How `wopr` prints: errors as one line with their details, the API's JSON exactly, tables and readable values."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from rich.console import Console, RenderableType

from tests.conftest import STUB_IMAGE
from wopr_platform.client import models, output, views
from wopr_platform.client.api import Reply
from wopr_platform.client.errors import ApiError, ExitCode, NotLoggedIn, UnexpectedAnswer, Unreachable

BOT = {
    "id": "0b9d2a4c-6f0e-4a43-9a8e-2f6f1d7c5e11",
    "name": "support[bold]bot",
    "description": "",
    "image": STUB_IMAGE,
    "containerId": "abc",
    "state": "running",
    "observedState": "running",
    "health": "healthy",
    "uptime": "2026-12-01T10:00:00Z",
    "uptimeSeconds": 3725,
    "startedAt": "2026-12-01T10:00:00Z",
    "createdAt": "2026-12-01T09:59:00Z",
    "updatedAt": "2026-12-01T10:00:00Z",
    "desiredState": "running",
    "restartCount": 0,
    "crashLooping": False,
    "stale": False,
    "stats": None,
}


def _text(renderable: RenderableType) -> str:
    file = io.StringIO()
    Console(file=file, width=200, color_system=None).print(renderable, markup=False)
    return file.getvalue()


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, ExitCode.REFUSED),
        (401, ExitCode.NOT_LOGGED_IN),
        (403, ExitCode.REFUSED),
        (404, ExitCode.NOT_FOUND),
        (409, ExitCode.REFUSED),
        (429, ExitCode.REFUSED),
        (502, ExitCode.REFUSED),
        (503, ExitCode.REFUSED),
    ],
)
def test_api_errors_exit_with_the_documented_code(status: int, code: ExitCode) -> None:
    assert ApiError(status, "no", {}).exit_code == code


def test_no_login_and_no_server_have_codes_of_their_own() -> None:
    assert NotLoggedIn("x").exit_code == 3
    assert Unreachable("x").exit_code == 5


def test_a_not_found_is_one_line_with_its_code_and_details() -> None:
    err = ApiError(404, "bot not found", {"code": "not_found", "botId": "123"})
    assert output.error_lines(err) == ["wopr: bot not found (not_found; botId=123)"]


def test_listed_problems_follow_on_their_own_lines_without_repeating_the_message() -> None:
    problems = [
        {"field": "name", "message": "too long", "type": "value_error"},
        {"field": "image", "message": "invalid image reference", "type": "value_error"},
    ]
    err = ApiError(400, "name: too long", {"code": "validation_failed", "errors": problems})
    assert output.error_lines(err) == [
        "wopr: name: too long (validation_failed)",
        "  image: invalid image reference",
    ]


def test_lists_and_objects_in_details_are_shown_inline() -> None:
    err = ApiError(400, "missing values", {"code": "missing_variables", "missing": ["A", "B"], "quota": {"limit": 5}})
    assert output.error_lines(err) == ['wopr: missing values (missing_variables; missing=A, B; quota={"limit":5})']


def test_errors_without_an_api_answer_are_their_message() -> None:
    assert output.error_lines(Unreachable("cannot reach http://x")) == ["wopr: cannot reach http://x"]
    assert output.error_lines(ApiError(502, "HTTP 502 Bad Gateway", {})) == ["wopr: HTTP 502 Bad Gateway"]


def test_report_writes_to_stderr_only(capsys: pytest.CaptureFixture[str]) -> None:
    output.report(ApiError(404, "bot [red]not[/red] found", {"code": "not_found"}))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "wopr: bot [red]not[/red] found (not_found)\n"  # markup is text, never read


def test_json_output_is_the_answer_exactly_as_sent(capsys: pytest.CaptureFixture[str]) -> None:
    body = '{"bots":[ {"id":"x"} ],"extra":1}'
    output.emit(Reply(status=200, text=body), output.Format.JSON, lambda: "never rendered")
    assert capsys.readouterr().out == body + "\n"


def test_table_output_renders_the_human_view(capsys: pytest.CaptureFixture[str]) -> None:
    output.emit(Reply(status=200, text="{}"), output.Format.TABLE, lambda: "Started bot [b]x[/b]")
    assert capsys.readouterr().out == "Started bot [b]x[/b]\n"


def test_the_bots_table_shows_names_as_text_and_uptime_readably() -> None:
    listing = models.BotList.model_validate({"bots": [BOT]})
    text = _text(views.bots(listing))
    header, row = text.splitlines()[:2]
    assert header.split() == ["ID", "NAME", "STATE", "HEALTH", "UPTIME", "IMAGE"]
    assert row.split() == [BOT["id"], "support[bold]bot", "running", "healthy", "1h", "2m", BOT["image"]]
    assert _text(views.bots(models.BotList(bots=[]))).strip() == "no bots"


def test_a_bot_not_in_its_desired_state_says_so() -> None:
    wanted = models.Bot.model_validate(BOT | {"state": "exited", "crashLooping": True, "uptimeSeconds": None})
    assert "exited (wants running), crash-looping" in _text(views.bots(models.BotList(bots=[wanted])))


def test_the_bot_detail_lists_its_profile() -> None:
    detail = models.BotDetail.model_validate(
        BOT
        | {
            "env": {"B": "2", "A": "***"},
            "secretEnv": ["A"],
            "restartPolicy": "unless-stopped",
            "volumeName": "data",
            "releaseChannel": "stable",
            "updatePolicy": "manual",
            "healthCheck": None,
            "subdomain": "supportbot",
            "resources": {"memoryMb": 512, "cpus": 0.5, "pids": 256},
            "urls": None,
            "template": {"name": "stable-discord", "version": 2},
        }
    )
    lines = [line.split(None, 1) for line in _text(views.bot(detail)).splitlines() if line.strip()]
    shown = {pair[0]: pair[1].strip() if len(pair) > 1 else "" for pair in lines}
    assert shown["id"] == BOT["id"]
    assert shown["limits"] == "512 MB, 0.5 CPUs, 256 pids"
    assert shown["env"] == "A=***"
    assert "B=2" in _text(views.bot(detail))
    assert "stable-discord v2" in _text(views.bot(detail))


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0, "0s"), (42, "42s"), (60, "1m"), (3725, "1h 2m"), (90_061, "1d 1h"), (86_400, "1d")],
)
def test_durations_show_their_two_largest_units(seconds: int | None, shown: str) -> None:
    assert views.duration(seconds) == shown


@pytest.mark.parametrize(
    ("micros", "shown"),
    [(0, "0.00"), (5_000_000, "5.00"), (1_250_000, "1.25"), (1_234, "0.001234"), (-12_500, "-0.0125")],
)
def test_money_keeps_cents_and_shows_smaller_fractions_only_when_present(micros: int, shown: str) -> None:
    assert views.money(micros) == shown
    assert views.money(micros, "usd") == f"{shown} USD"


@pytest.mark.parametrize(
    ("count", "shown"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**2, "5.0 MiB"), (3 * 1024**5, "3072.0 TiB")],
)
def test_sizes_use_binary_units(count: int, shown: str) -> None:
    assert views.size(count) == shown


def test_times_are_shown_in_utc_to_the_minute() -> None:
    assert views.when(datetime(2026, 12, 1, 10, 5, 59, tzinfo=UTC)) == "2026-12-01 10:05 UTC"
    assert views.when(None) == "-"


def test_the_balance_summary_names_the_tenant_and_the_minimum() -> None:
    balance = models.Balance.model_validate(
        {
            "tenantId": "acme",
            "balance": 5_000_000,
            "currency": "usd",
            "minimum": 1_000_000,
            "buyUrl": "x",
            "standing": {"state": "active"},
        }
    )
    assert views.balance(balance) == (
        "acme: 5.00 USD (a bot needs 1.00 USD to be created or started; standing: active)"
    )


def test_a_failed_update_says_why_and_whether_it_was_rolled_back() -> None:
    result = models.UpdateResult.model_validate(
        {
            "botId": "b1",
            "success": False,
            "outcome": "rolled_back",
            "previousImage": "i:1",
            "newImage": "i:2",
            "previousDigest": None,
            "newDigest": None,
            "rolledBack": True,
            "updateId": "u1",
            "error": "unhealthy",
        }
    )
    assert views.update(result) == "Update of bot b1 rolled_back, rolled back: unhealthy"


def test_an_answer_of_another_shape_is_an_unexpected_answer() -> None:
    with pytest.raises(UnexpectedAnswer, match="unexpected answer"):
        Reply(status=200, text=json.dumps({"bots": [{"id": 1}]})).parsed(models.BotList)
