"""Settings from the environment (DESIGN.md's table), their errors, and the `wopr-platform` command."""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
import sys
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest
from pydantic import AliasChoices

from wopr_platform import __version__
from wopr_platform.core.settings import Settings, SettingsError, load_settings
from wopr_platform.db.models import Bot


def _variables() -> set[str]:
    """Every environment variable Settings reads."""
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names.update(str(choice) for choice in choices if choice)
    return names


SETTINGS_VARIABLES = _variables()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No settings variable set, in an empty working directory."""
    for name in os.environ:
        if name.upper() in SETTINGS_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def _clean_environ(**values: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_VARIABLES}
    return {**environ, **values}


def test_reads_the_core_variables_of_the_design() -> None:
    """The core variables of DESIGN.md's table are all read (NODE_ENV as a second name for ENV)."""
    design = {"PORT", "HOST", "ENV", "NODE_ENV", "LOG_LEVEL", "FLEET_API_TOKEN", "WOPR_DATA_DIR", "DATABASE_URL"}
    design |= {"DOCKER_HOST", "FLEET_IMAGE_ALLOWLIST"}
    assert design <= SETTINGS_VARIABLES


def test_defaults_match_the_design(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With nothing set: port 3100 on 0.0.0.0, info logs, development, no token, local engine, wopr images."""
    settings = load_settings()
    assert settings.port == 3100
    assert settings.host == "0.0.0.0"
    assert settings.log_level == "info"
    assert settings.env == "development"
    assert settings.fleet_api_token is None
    assert settings.data_dir == Path("./data")
    assert settings.docker_host == "unix:///var/run/docker.sock"
    assert settings.image_allowlist == ["ghcr.io/wopr-network/"]
    assert settings.max_body_bytes == 1_048_576


def test_tenant_quotas_default_and_zero_or_empty_is_no_limit(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.tenant_max_bots, settings.tenant_max_memory_mb, settings.tenant_max_cpus) == (50, 32768, 32.0)
    env.setenv("FLEET_TENANT_MAX_BOTS", "0")
    env.setenv("FLEET_TENANT_MAX_MEMORY_MB", "")
    env.setenv("FLEET_TENANT_MAX_CPUS", " ")
    settings = load_settings()
    assert (settings.tenant_max_bots, settings.tenant_max_memory_mb, settings.tenant_max_cpus) == (0, 0, 0.0)


def test_default_database_is_a_sqlite_file_in_the_data_dir(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No DATABASE_URL: an absolute SQLite path under WOPR_DATA_DIR (./data by default)."""
    assert load_settings().database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'wopr-platform.db'}"
    env.setenv("WOPR_DATA_DIR", str(tmp_path / "state"))
    assert load_settings().database_url == f"sqlite+aiosqlite:///{tmp_path / 'state' / 'wopr-platform.db'}"
    env.setenv("DATABASE_URL", "postgresql+asyncpg://u@db:5432/wopr")
    assert load_settings().database_url == "postgresql+asyncpg://u@db:5432/wopr"


def test_bots_are_kept_off_the_host_by_default_and_offered_ports_are_parsed(env: pytest.MonkeyPatch) -> None:
    """Isolation on, no port offered; `BOT_HOST_PORTS` is a list of `port[/tcp|/udp]`, deduplicated."""
    settings = load_settings()
    assert (settings.bot_host_isolation, settings.bot_host_ports, settings.bot_host_check_interval) == (True, [], 5.0)
    env.setenv("BOT_HOST_PORTS", " 8080, 53/UDP ,8080/tcp,,")
    env.setenv("BOT_HOST_ISOLATION", "false")
    settings = load_settings()
    assert [str(port) for port in settings.bot_host_ports] == ["53/udp", "8080/tcp"]
    assert settings.bot_host_isolation is False
    env.setenv("PORT", "8080")  # the API's port, but over UDP it is another service
    env.setenv("BOT_HOST_PORTS", "8080/udp")
    assert [str(port) for port in load_settings().bot_host_ports] == ["8080/udp"]


def test_node_env_is_accepted_as_env(env: pytest.MonkeyPatch) -> None:
    """The seed's NODE_ENV works; ENV wins when both are set."""
    env.setenv("NODE_ENV", "production")
    assert load_settings().env == "production"
    env.setenv("ENV", "test")
    assert load_settings().env == "test"


def test_values_are_read_and_normalised(env: pytest.MonkeyPatch) -> None:
    """Set values are used; level and environment are case-folded, WARN means warning, the list is split."""
    env.setenv("PORT", "8080")
    env.setenv("LOG_LEVEL", "WARN")
    env.setenv("ENV", " Production ")
    env.setenv("FLEET_API_TOKEN", "s3cret")
    env.setenv("FLEET_IMAGE_ALLOWLIST", " ghcr.io/wopr-network/ , localhost/wopr-stub,,")
    settings = load_settings()
    assert settings.port == 8080
    assert settings.log_level == "warning"
    assert settings.env == "production"
    assert settings.fleet_api_token is not None and settings.fleet_api_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.image_allowlist == ["ghcr.io/wopr-network/", "localhost/wopr-stub"]


def test_a_shared_volume_driver_for_swarm_is_read_with_its_options(env: pytest.MonkeyPatch) -> None:
    assert (load_settings().swarm_volume_driver, load_settings().swarm_volume_options) == ("local", {})
    env.setenv("FLEET_SWARM_VOLUME_OPTIONS", '{"type": "nfs", "o": "addr=10.0.0.5,rw", "device": ":/wopr/{volume}"}')
    settings = load_settings()
    assert settings.swarm_volume_options["device"] == ":/wopr/{volume}"
    assert settings.swarm_volume_options["o"] == "addr=10.0.0.5,rw"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "notaport"),
        ("PORT", "0"),
        ("PORT", "70000"),
        ("HOST", ""),
        ("LOG_LEVEL", "loud"),
        ("ENV", "staging"),
        ("NODE_ENV", "staging"),
        ("WOPR_PLATFORM_ID", "Bad_Id"),
        ("WOPR_PLATFORM_ID", "ok\n"),
        ("DATABASE_URL", "notaurl"),
        ("DATABASE_URL", "mysql://db/wopr"),
        ("DOCKER_TIMEOUT", "-1"),
        ("FLEET_IMAGE_ALLOWLIST", "UPPER/x"),
        ("FLEET_IMAGE_ALLOWLIST", "ghcr.io/wopr-network/wopr:latest"),
        ("FLEET_MAX_BODY_BYTES", "10"),
        ("FLEET_STOP_TIMEOUT", "abc"),
        ("FLEET_HEALTH_INTERVAL", "0"),
        ("FLEET_HEALTH_RETRIES", "0"),
        ("FLEET_STATS_INTERVAL", "often"),
        ("FLEET_HEALTH_MAX_BACKOFF", "0"),
        ("FLEET_STATS_RATE", "0"),
        ("STRIPE_CHECKOUT_ORIGIN", "checkout.stripe.com"),  # an origin has its scheme
        ("STRIPE_CHECKOUT_ORIGIN", "https://checkout.stripe.com/pay"),  # and no path
        ("FLEET_RESYNC_INTERVAL", "-5"),
        ("PLATFORM_SECRET", "too-short"),
        ("PLATFORM_SECRET_PREVIOUS", "a-long-enough-old-secret,short"),
        ("BOT_HOST_ISOLATION", "maybe"),
        ("BOT_HOST_PORTS", "3100"),  # the API's own port is never offered to bots
        ("BOT_HOST_PORTS", "70000"),
        ("BOT_HOST_PORTS", "80/icmp"),
        ("BOT_HOST_PORTS", "8080-8090"),
        ("BOT_HOST_CHECK_INTERVAL", "0"),
        ("FLEET_TENANT_SUBNETS", "8.8.0.0/16"),
        ("FLEET_TENANT_SUBNETS", "10.0.0.0/16,10.0.0.0/24"),
        ("FLEET_TENANT_SUBNET_PREFIX", "23"),
        ("FLEET_TENANT_SUBNET_PREFIX", "30"),
        ("FLEET_TENANT_MAX_BOTS", "-1"),
        ("FLEET_TENANT_MAX_MEMORY_MB", "lots"),
        ("FLEET_TENANT_MAX_CPUS", "-0.5"),
        ("LOG_FORMAT", "pretty"),
        ("FLEET_SWARM_CONSTRAINTS", "node.role"),
        ("FLEET_SWARM_VOLUME_DRIVER", "bad driver"),
        ("FLEET_SWARM_VOLUME_OPTIONS", "type=nfs"),  # JSON, not key=value
        # one device for every volume would give every bot of every tenant the same files
        ("FLEET_SWARM_VOLUME_OPTIONS", '{"type": "nfs", "o": "addr=10.0.0.5", "device": ":/exports/wopr"}'),
    ],
    ids=repr,
)
def test_a_bad_value_is_one_line_naming_the_variable(env: pytest.MonkeyPatch, variable: str, value: str) -> None:
    """A bad value raises SettingsError whose message is a single line that names the variable set."""
    env.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert f"invalid setting {variable}:" in message
    assert "Value error" not in message


# --- the command ------------------------------------------------------------------------------------------

COMMANDS = {
    "console-script": [str(Path(sys.executable).parent / "wopr-platform")],
    "python-m": [sys.executable, "-m", "wopr_platform"],
}


def _run(command: str, *args: str, **values: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMANDS[command], *args], env=_clean_environ(**values), capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("variable", "value"), [("PORT", "notaport"), ("DATABASE_URL", "notaurl")])
def test_serve_with_a_bad_setting_exits_2_with_one_line(command: str, variable: str, value: str) -> None:
    """`serve` refuses bad settings with exit code 2 and one line on stderr naming the variable, no traceback."""
    result = _run(command, "serve", **{variable: value})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_version_prints_the_package_version(command: str) -> None:
    """`version` prints the installed package version and nothing else."""
    result = _run(command, "version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == version("wopr-platform") == __version__


def test_migrate_creates_the_schema_and_can_run_again(tmp_path: Path) -> None:
    """`migrate` brings an empty SQLite file to the newest schema, matching the models; a second run is a no-op."""
    database = tmp_path / "nested" / "platform.db"
    url = f"sqlite+aiosqlite:///{database}"
    for _ in range(2):
        result = _run("console-script", "migrate", DATABASE_URL=url, WOPR_DATA_DIR=str(tmp_path / "unused"))
        assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {row[1] for row in connection.execute("PRAGMA table_info(bots)")}
        versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"bots", "alembic_version"} <= tables
    assert columns == set(Bot.__table__.columns.keys())
    assert len(versions) == 1
    assert not (tmp_path / "unused").exists()


def test_migrate_with_a_bad_database_url_exits_2() -> None:
    """`migrate` checks DATABASE_URL like `serve` does: exit 2, one line, no traceback."""
    result = _run("python-m", "migrate", DATABASE_URL="mysql://db/wopr")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "DATABASE_URL" in result.stderr


def _migrate_on_a_terminal(tmp_path: Path, **values: str) -> str:
    """What `migrate` writes to its stderr when that is a terminal (a pseudo-terminal here)."""
    leader, follower = pty.openpty()
    url = f"sqlite+aiosqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}"
    try:
        result = subprocess.run(
            [*COMMANDS["console-script"], "migrate"],
            env=_clean_environ(DATABASE_URL=url, **values),
            stdout=subprocess.DEVNULL,
            stderr=follower,
            timeout=120,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other side is closed: all was read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert result.returncode == 0
    return b"".join(chunks).decode()


def test_logs_are_plain_lines_on_a_terminal_and_json_in_production_or_when_asked(tmp_path: Path) -> None:
    plain = _migrate_on_a_terminal(tmp_path).splitlines()
    upgrades = [line for line in plain if "Running upgrade" in line]
    assert upgrades and not any(line.lstrip().startswith("{") for line in plain)
    assert "\x1b[36minfo" in upgrades[0]  # coloured by level on a terminal
    for values in ({"ENV": "production", "PLATFORM_SECRET": "x" * 32}, {"LOG_FORMAT": "json"}):
        lines = [line for line in _migrate_on_a_terminal(tmp_path, **values).splitlines() if line.strip()]
        assert lines and all(json.loads(line)["level"] for line in lines), lines
