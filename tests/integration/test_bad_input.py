"""Every bad input gets a 4xx `{"error", "details"}` answer and changes nothing, in the database or in Docker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiodocker
import httpx
import pytest

from tests.conftest import RUN_ID, STUB_IMAGE, Platform, PlatformFactory

LEAK_MARKERS = ("Traceback", "/work/", "site-packages")
PER_BOT_ROUTES = [
    ("GET", ""),
    ("PATCH", ""),
    ("DELETE", ""),
    ("POST", "/start"),
    ("POST", "/stop"),
    ("POST", "/restart"),
    ("GET", "/logs"),
    ("POST", "/update"),
    ("GET", "/image-status"),
    ("GET", "/updates"),
]


async def _no_leaks(response: httpx.Response) -> None:
    """httpx response hook: no answer, good or bad, may show a stack trace or a server path."""
    body = (await response.aread()).decode(errors="replace")
    for marker in LEAK_MARKERS:
        assert marker not in body, f"{response.request.method} {response.request.url} leaked {marker!r}: {body}"


def _guard(platform: Platform) -> Platform:
    platform.client.event_hooks["response"].append(_no_leaks)
    return platform


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def assert_error_shape(response: httpx.Response) -> dict[str, Any]:
    """The one error shape: exactly `error` (a non-empty string) and `details` (an object)."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error", "details"}, body
    assert isinstance(body["error"], str) and body["error"], body
    assert isinstance(body["details"], dict), body
    return body


@dataclass
class Fleet:
    """A guarded platform with one bot already in it, and a way to prove that a request changed nothing."""

    platform: Platform
    docker: aiodocker.Docker
    bot: dict[str, Any]

    @property
    def client(self) -> httpx.AsyncClient:
        return self.platform.client

    async def world(self) -> tuple[Any, ...]:
        """Every bot's stored profile, and the platform's containers and volumes as the engine lists them."""
        listed = (await self.client.get("/fleet/bots")).json()["bots"]
        profiles = []
        for status in listed:
            detail = (await self.client.get(f"/fleet/bots/{status['id']}")).json()
            for volatile in ("state", "observedState", "health", "uptime", "uptimeSeconds", "startedAt", "stats"):
                detail.pop(volatile)
            profiles.append(detail)
        label = f"wopr.platform={self.platform.settings.platform_id}"
        containers = await self.docker.containers.list(all=True, filters={"label": [label]})
        volumes = (await self.docker.volumes.list(filters={"label": [label]})).get("Volumes") or []
        return profiles, sorted(c.id for c in containers), sorted(v["Name"] for v in volumes)

    async def refused(self, status: int, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """Send a bad request: it must get `status` in the error shape and leave the world as it was."""
        before = await self.world()
        response = await self.client.request(method, url, **kwargs)
        assert response.status_code == status, response.text
        body = assert_error_shape(response)
        assert await self.world() == before
        return body


async def _fleet(platform: Platform, docker: aiodocker.Docker) -> Fleet:
    _guard(platform)
    bot = await platform.create_bot(name=_unique("first"), volumeName=_unique("vol"))
    fleet = Fleet(platform, docker, bot)
    profiles, containers, volumes = await fleet.world()
    assert len(profiles) == 1 and len(containers) == 1 and len(volumes) == 1
    return fleet


@pytest.fixture
async def fleet(platform: Platform, docker: aiodocker.Docker) -> AsyncIterator[Fleet]:
    yield await _fleet(platform, docker)


def _create(**fields: Any) -> dict[str, Any]:
    return {"name": _unique("bot"), "image": STUB_IMAGE, **fields}


# --- bodies that are not a bot ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"name": "x",', "application/json"),
        (b"{'name': 'x'}", "application/json"),
        (b"", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b'{"name": "x"}', "text/plain"),
    ],
    ids=["truncated", "single-quotes", "empty", "not-utf8", "not-json-content-type"],
)
async def test_malformed_json_is_400(fleet: Fleet, content: bytes, content_type: str) -> None:
    """A body that is not a JSON document is a 400, not a 500."""
    await fleet.refused(400, "POST", "/fleet/bots", content=content, headers={"content-type": content_type})


@pytest.mark.parametrize(
    "content",
    [b'{"name": "x",', b"{'name': 'x'}", b"not json", b"\xff\xfe\x00"],
    ids=["truncated", "single-quotes", "text", "not-utf8"],
)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_body_that_is_not_json_is_invalid_json_body(fleet: Fleet, method: str, content: bytes) -> None:
    """The message is the original service's `Invalid JSON body` (its clients may match on it)."""
    url = "/fleet/bots" if method == "POST" else f"/fleet/bots/{fleet.bot['id']}"
    body = await fleet.refused(400, method, url, content=content, headers={"content-type": "application/json"})
    assert body["error"] == "Invalid JSON body", body
    if content != b"\xff\xfe\x00":  # (not UTF-8 fails before the JSON decoder, with the framework's code)
        assert body["details"]["code"] == "malformed_json", body


@pytest.mark.parametrize("body", [[], [_create(name="bot-in-a-list")], "a bot", 5, None, True], ids=repr)
async def test_json_that_is_not_an_object_is_400(fleet: Fleet, body: Any) -> None:
    """Valid JSON of the wrong kind (array, string, number, null) is a 400."""
    await fleet.refused(400, "POST", "/fleet/bots", json=body)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": 5},
        {"name": ["a"]},
        {"image": 5},
        {"description": 5},
        {"env": "x"},
        {"env": ["A=1"]},
        {"env": {"A": 1}},
        {"env": {"A": None}},
        {"env": {"A": True}},
        {"restartPolicy": 1},
        {"volumeName": 5},
        {"releaseChannel": None},
    ],
    ids=repr,
)
async def test_wrong_field_types_are_400(fleet: Fleet, fields: dict[str, Any]) -> None:
    """No field is coerced from another JSON type."""
    body = await fleet.refused(400, "POST", "/fleet/bots", json=_create(**fields))
    assert body["details"]["code"] == "validation_failed"


@pytest.mark.parametrize("fields", [{"foo": 1}, {"containerId": "x"}, {"id": str(RUN_ID)}], ids=repr)
async def test_unknown_fields_are_400(fleet: Fleet, fields: dict[str, Any]) -> None:
    """Fields the API does not know, including server-owned ones, are refused rather than ignored."""
    await fleet.refused(400, "POST", "/fleet/bots", json=_create(**fields))


async def test_missing_required_fields_are_400(fleet: Fleet) -> None:
    """name and image are required."""
    await fleet.refused(400, "POST", "/fleet/bots", json={"image": STUB_IMAGE})
    await fleet.refused(400, "POST", "/fleet/bots", json={"name": _unique("bot")})


# --- field values -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", "  ", "../etc", "a" * 64, "-x", "_x", ".x", "a b", "a/b", "a.b", "bøt", "名前", "a\x00b", "a\tb"],
    ids=repr,
)
async def test_invalid_names_are_400(fleet: Fleet, name: str) -> None:
    """Names must match ^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$ after trimming."""
    body = await fleet.refused(400, "POST", "/fleet/bots", json=_create(name=name))
    assert body["details"]["errors"][0]["field"] == "name"


async def test_names_are_trimmed(fleet: Fleet) -> None:
    """Surrounding spaces are dropped from a name; the trimmed name is then taken."""
    name = _unique("ok-name")
    created = await fleet.client.post("/fleet/bots", json=_create(name=f"  {name} "))
    assert created.status_code == 201, created.text
    assert created.json()["name"] == name
    assert (await fleet.platform.bot(created.json()["id"]))["name"] == name
    body = await fleet.refused(409, "POST", "/fleet/bots", json=_create(name=name))
    assert body["details"]["field"] == "name"


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "docker.io/library/busybox:latest",
        "ghcr.io/wopr-network.evil/x",
        "ghcr.io/wopr-networkx/wopr",
        "evil.io/ghcr.io/wopr-network/wopr",
        "localhost/wopr-stubby",
        "localhost:5000/wopr-stub",
    ],
)
async def test_images_outside_the_allowlist_are_400(
    make_platform: PlatformFactory, docker: aiodocker.Docker, image: str
) -> None:
    """Only images under an allowlist entry (at a '/' boundary) may be used."""
    platform = await make_platform(FLEET_IMAGE_ALLOWLIST="localhost/wopr-stub,ghcr.io/wopr-network/")
    fleet = await _fleet(platform, docker)
    body = await fleet.refused(400, "POST", "/fleet/bots", json=_create(image=image))
    assert body["details"]["field"] == "image"
    assert "allowlist" in body["error"]


@pytest.mark.parametrize(
    "image",
    [
        "",
        "UPPER/x",
        "a b",
        "localhost/wopr-stub:",
        "localhost/wopr-stub:bad tag",
        "localhost/wopr-stub:lätest",
        "localhost/wopr-stub@sha256:abc",
        "localhost//wopr-stub",
        "localhost/wopr-stub\n",
        "x" * 600,
    ],
    ids=repr,
)
async def test_invalid_image_references_are_400(fleet: Fleet, image: str) -> None:
    """A reference Docker could not parse is refused before Docker sees it."""
    body = await fleet.refused(400, "POST", "/fleet/bots", json=_create(image=image))
    assert body["details"].get("field") == "image" or body["details"]["errors"][0]["field"] == "image"


# allowed by the test allowlist (under localhost/wopr-stub) but past Docker's limits, which the engine refuses
LONG_NAME = "localhost/wopr-stub/" + "a" * 240  # a repository name of 260 characters (Docker allows 255)
LONG_TAG = STUB_IMAGE.split(":")[0] + ":" + "t" * 129  # Docker allows tags of 128


@pytest.mark.parametrize("image", [LONG_NAME, LONG_NAME + ":latest", LONG_TAG], ids=["name", "name-tag", "tag"])
@pytest.mark.parametrize("route", ["create", "patch", "template", "seed"])
async def test_references_past_dockers_limits_are_400_on_every_route(fleet: Fleet, route: str, image: str) -> None:
    """A reference the engine would refuse (repository name over 255 characters, tag over 128) is a 400 on every
    route that takes an image, not the engine's 502; nothing is created or changed."""
    bot_url = f"/fleet/bots/{fleet.bot['id']}"
    variables = {"OPENCODE_API_KEY": "k"}
    method, url, body = {
        "create": ("POST", "/fleet/bots", _create(image=image)),
        "patch": ("PATCH", bot_url, {"image": image}),
        "template": ("POST", "/fleet/bots", {"template": "whatsapp-opencode", "image": image, "variables": variables}),
        "seed": ("POST", "/fleet/seed", {"image": image, "variables": variables}),
    }[route]
    body = await fleet.refused(400, method, url, json=body)
    assert body["details"]["code"] == "validation_failed"
    assert "image" in body["error"]
    assert (await fleet.platform.bot(fleet.bot["id"]))["image"] == STUB_IMAGE


@pytest.mark.parametrize(
    "volume", ["../x", "a/b", "..", ".hidden", "x" * 64, "a\\b", "", "-x", "a..b", "vol\n", "vøl"], ids=repr
)
async def test_volume_names_that_could_escape_are_400(fleet: Fleet, volume: str) -> None:
    """volumeName holds no path, no '..', nothing Docker would read as anything but a plain name."""
    body = await fleet.refused(400, "POST", "/fleet/bots", json=_create(volumeName=volume))
    assert body["details"]["errors"][0]["field"] == "volumeName"


@pytest.mark.parametrize(
    "env",
    [
        {"1A": "x"},
        {"A-B": "x"},
        {"": "x"},
        {"A B": "x"},
        {"A=B": "x"},
        {"A\n": "x"},
        {"Ä": "x"},
        {"WOPR_HOME": "/tmp"},
        {"A": "x\x00y"},
        {"A": "x" * 32_769},
        {f"K{i}": "v" for i in range(201)},
    ],
    ids=["digit-first", "dash", "empty", "space", "equals", "newline", "unicode", "reserved", "nul", "huge", "201"],
)
async def test_invalid_env_is_400(fleet: Fleet, env: dict[str, str]) -> None:
    """Env keys are shell variable names not set by the platform; values hold no NUL and stay small."""
    body = await fleet.refused(400, "POST", "/fleet/bots", json=_create(env=env))
    assert body["details"]["errors"][0]["field"] == "env"


@pytest.mark.parametrize(
    "fields",
    [
        {"restartPolicy": "sometimes"},
        {"restartPolicy": "Always"},
        {"releaseChannel": "beta"},
        {"updatePolicy": "weekly"},
        {"updatePolicy": "cron:99 * * * *"},
        {"updatePolicy": "cron:* * *"},
        {"updatePolicy": "cron:"},
        {"updatePolicy": "cron:" + "* " * 200},
    ],
    ids=repr,
)
async def test_invalid_enum_values_are_400(fleet: Fleet, fields: dict[str, Any]) -> None:
    """restartPolicy, releaseChannel and updatePolicy accept only their listed values."""
    await fleet.refused(400, "POST", "/fleet/bots", json=_create(**fields))


async def test_description_over_the_limit_is_400(fleet: Fleet) -> None:
    """description is capped at 2000 characters."""
    await fleet.refused(400, "POST", "/fleet/bots", json=_create(description="d" * 2001))


# --- body size --------------------------------------------------------------------------------------------


async def test_body_over_the_limit_is_413(fleet: Fleet) -> None:
    """A declared Content-Length over 1 MiB is refused with 413 before the body is read."""
    padding = "x" * (1_048_576 + 1)
    body = await fleet.refused(413, "POST", "/fleet/bots", json=_create(description=padding))
    assert body["details"]["code"] == "payload_too_large"


async def test_chunked_body_over_the_limit_is_413(fleet: Fleet) -> None:
    """A chunked body without Content-Length is counted as it streams and refused with 413."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "big", "image": "' + STUB_IMAGE.encode() + b'", "description": "'
        for _ in range(17):
            yield b"x" * 65_536
        yield b'"}'

    body = await fleet.refused(
        413, "POST", "/fleet/bots", content=chunks(), headers={"content-type": "application/json"}
    )
    assert body["details"]["code"] == "payload_too_large"


async def test_chunked_body_under_the_limit_is_accepted(fleet: Fleet) -> None:
    """The streamed-size check does not refuse a chunked body that fits."""
    name = _unique("chunked")

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "' + name.encode() + b'", '
        yield b'"image": "' + STUB_IMAGE.encode() + b'"}'

    response = await fleet.client.post("/fleet/bots", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


# --- ids and routes ---------------------------------------------------------------------------------------


def _route_kwargs(method: str) -> dict[str, Any]:
    return {"json": {"description": "changed"}} if method == "PATCH" else {}


@pytest.mark.parametrize(("method", "suffix"), PER_BOT_ROUTES)
@pytest.mark.parametrize(
    "bot_id",
    ["nope", "1", "00000000-0000-0000-0000-00000000000g", RUN_ID.hex, "x" * 65, "%2e%2e"],
    ids=["word", "number", "non-hex", "no-dashes", "long", "dots"],
)
async def test_malformed_ids_are_404_on_every_route(fleet: Fleet, method: str, suffix: str, bot_id: str) -> None:
    """An id that is not a UUID cannot name a bot: 404, never 400 or 500."""
    body = await fleet.refused(404, method, f"/fleet/bots/{bot_id}{suffix}", **_route_kwargs(method))
    assert body["details"]["code"] == "not_found"


@pytest.mark.parametrize(("method", "suffix"), PER_BOT_ROUTES)
async def test_unknown_ids_are_404_on_every_route(fleet: Fleet, method: str, suffix: str) -> None:
    """A well-formed UUID that names no bot is a 404 on every per-bot route."""
    await fleet.refused(404, method, f"/fleet/bots/{uuid.uuid4()}{suffix}", **_route_kwargs(method))


async def test_unknown_route_and_wrong_method_use_the_error_shape(fleet: Fleet) -> None:
    """Framework-level 404 and 405 answers carry the same error shape."""
    await fleet.refused(404, "GET", "/fleet/nothing-here")
    await fleet.refused(405, "PUT", f"/fleet/bots/{fleet.bot['id']}", json={})


async def test_an_upper_case_id_names_the_same_bot(fleet: Fleet) -> None:
    """UUIDs compare case-insensitively, so the upper-case spelling is the same bot (control for the 404s)."""
    bot = await fleet.platform.bot(fleet.bot["id"].upper())
    assert bot["id"] == fleet.bot["id"]


# --- PATCH ------------------------------------------------------------------------------------------------


async def test_patch_with_no_fields_is_400(fleet: Fleet) -> None:
    """PATCH {} changes nothing, so it is refused."""
    await fleet.refused(400, "PATCH", f"/fleet/bots/{fleet.bot['id']}", json={})


async def test_patch_with_only_nulls_is_400(fleet: Fleet) -> None:
    """Nulls mean 'not given', so a PATCH of only nulls has no fields."""
    body = {"name": None, "env": None, "image": None, "description": None}
    await fleet.refused(400, "PATCH", f"/fleet/bots/{fleet.bot['id']}", json=body)


@pytest.mark.parametrize(
    "body",
    [
        {"env": {"1A": "x"}},
        {"name": "../etc"},
        {"image": "busybox"},
        {"image": "UPPER/x"},
        {"volumeName": "../x"},
        {"restartPolicy": "sometimes"},
        {"updatePolicy": "cron:* * *"},
        {"description": "ok", "env": {"WOPR_HOME": "/x"}},
        {"unknown": 1},
        {"containerId": "abc"},
        [],
    ],
    ids=repr,
)
async def test_patch_with_an_invalid_field_changes_nothing(fleet: Fleet, body: Any) -> None:
    """A PATCH with any bad field is refused as a whole: profile and container are untouched."""
    await fleet.refused(400, "PATCH", f"/fleet/bots/{fleet.bot['id']}", json=body)
    after = await fleet.platform.bot(fleet.bot["id"])
    assert after["containerId"] == fleet.bot["containerId"]
    assert after["description"] == fleet.bot["description"]
    assert after["env"] == fleet.bot["env"]


async def test_patch_renaming_to_an_existing_name_is_409(fleet: Fleet) -> None:
    """Two bots of a tenant never share a name; the refused PATCH changes neither bot."""
    other = await fleet.platform.create_bot()
    body = await fleet.refused(
        409, "PATCH", f"/fleet/bots/{other['id']}", json={"name": fleet.bot["name"], "description": "x"}
    )
    assert body["details"]["field"] == "name"
    assert (await fleet.platform.bot(other["id"]))["name"] == other["name"]


async def test_patch_to_a_volume_another_bot_uses_is_409(fleet: Fleet) -> None:
    """Two bots never share a data volume; the refused PATCH keeps the container it had."""
    other = await fleet.platform.create_bot()
    body = await fleet.refused(409, "PATCH", f"/fleet/bots/{other['id']}", json={"volumeName": fleet.bot["volumeName"]})
    assert body["details"]["field"] == "volumeName"
    assert (await fleet.platform.bot(other["id"]))["containerId"] == other["containerId"]


async def test_patch_keeping_its_own_name_is_not_a_conflict(fleet: Fleet) -> None:
    """Control for the 409s: a bot's own name and volume are not 'taken'."""
    response = await fleet.client.patch(
        f"/fleet/bots/{fleet.bot['id']}", json={"name": fleet.bot["name"], "volumeName": fleet.bot["volumeName"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["containerId"] == fleet.bot["containerId"]


# --- create conflicts -------------------------------------------------------------------------------------


async def test_create_with_a_taken_name_is_409(fleet: Fleet) -> None:
    """The second bot with a name is refused; exactly one container carries it."""
    body = await fleet.refused(409, "POST", "/fleet/bots", json=_create(name=fleet.bot["name"]))
    assert body["details"]["field"] == "name"
    label = f"wopr.platform={fleet.platform.settings.platform_id}"
    assert len(await fleet.docker.containers.list(all=True, filters={"label": [label]})) == 1


async def test_create_with_a_taken_volume_is_409(fleet: Fleet) -> None:
    """A new bot cannot take over another bot's data volume."""
    body = await fleet.refused(409, "POST", "/fleet/bots", json=_create(volumeName=fleet.bot["volumeName"]))
    assert body["details"]["field"] == "volumeName"


# --- query parameters -------------------------------------------------------------------------------------


LOGGED_LINES = 10_005  # written by the test, on top of the stub's own boot line


async def _fill_log(docker: aiodocker.Docker, container_id: str) -> None:
    """Make the container's log hold more than 10000 lines: a shell inside it writes them to PID 1's stdout."""
    script = f'i=0; while [ $i -lt {LOGGED_LINES} ]; do i=$((i + 1)); echo "line $i"; done >/proc/1/fd/1'
    container = docker.containers.container(container_id)
    run = await container.exec(["/bin/sh", "-c", script], stdout=False, stderr=False)
    await run.start(detach=True)
    deadline = asyncio.get_running_loop().time() + 30
    while (state := await run.inspect())["Running"]:
        assert asyncio.get_running_loop().time() < deadline, state
        await asyncio.sleep(0.05)
    assert state["ExitCode"] == 0, state
    while len(await container.log(stdout=True, stderr=True, tail="all")) < LOGGED_LINES + 1:
        assert asyncio.get_running_loop().time() < deadline, "the log never held every line"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("tail", "lines"),
    [
        (None, 100),  # missing
        ("0", 100),
        ("-1", 100),
        ("-20000", 100),
        ("abc", 100),  # not a number: the original's parseInt gave NaN, read as the default
        ("", 100),
        ("10001", 10_000),
        ("99999999999999999999999999", 10_000),
        ("1", 1),
        ("10000", 10_000),
        ("250", 250),
        ("1.5", 1),  # parseInt reads the leading integer
        ("42abc", 42),
    ],
    ids=repr,
)
async def test_logs_tail_is_clamped_not_refused(
    fleet: Fleet, docker: aiodocker.Docker, tail: str | None, lines: int
) -> None:
    """Like the original service, any tail is answered 200: above 10000 reads 10000, no number or one below 1
    reads 100; the lines are the newest ones."""
    await _fill_log(docker, fleet.bot["containerId"])
    before = await fleet.world()
    params = {"tail": tail} if tail is not None else {}
    response = await fleet.client.get(f"/fleet/bots/{fleet.bot['id']}/logs", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    got = response.text.splitlines()
    assert len(got) == lines, (tail, len(got), got[:3])
    assert got[-1] == f"line {LOGGED_LINES}"
    assert await fleet.world() == before


@pytest.mark.parametrize("value", ["maybe", "2", ""])
async def test_delete_with_a_bad_remove_volumes_is_400(fleet: Fleet, value: str) -> None:
    """removeVolumes is a boolean; anything else refuses the delete and the bot stays."""
    await fleet.refused(400, "DELETE", f"/fleet/bots/{fleet.bot['id']}", params={"removeVolumes": value})
    assert (await fleet.platform.bot(fleet.bot["id"]))["containerId"] == fleet.bot["containerId"]


# --- image updates --------------------------------------------------------------------------------------


async def test_update_of_a_locally_built_image_is_409(fleet: Fleet) -> None:
    """A bot whose image has no registry digest has nothing to update from: a clear 409, nothing touched."""
    body = await fleet.refused(409, "POST", f"/fleet/bots/{fleet.bot['id']}/update")
    assert "no registry digest" in body["error"]


@pytest.mark.parametrize("rollout_id", ["nope", str(RUN_ID), "x" * 65])
async def test_unknown_rollouts_are_404(fleet: Fleet, rollout_id: str) -> None:
    await fleet.refused(404, "GET", f"/fleet/rollouts/{rollout_id}")


@pytest.mark.parametrize("limit", ["0", "501", "-1", "many", "1e3"])
async def test_history_limits_out_of_range_are_400(fleet: Fleet, limit: str) -> None:
    await fleet.refused(400, "GET", f"/fleet/rollouts?limit={limit}")
    await fleet.refused(400, "GET", f"/fleet/bots/{fleet.bot['id']}/updates?limit={limit}")
