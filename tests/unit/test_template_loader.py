"""Template files: the standard six load; a bad file is reported (file, field, reason) and only it is skipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wopr_platform.templates import placeholders
from wopr_platform.templates.errors import SecretsUnavailable
from wopr_platform.templates.loader import load_directory, load_file, packaged_directory
from wopr_platform.templates.secrets import SecretStore, parse_secrets
from wopr_platform.templates.service import plugin_env

STANDARD = {
    "stable-discord": "stable",
    "canary-discord": "canary",
    "staging-discord": "staging",
    "slack-codex": "canary",
    "telegram-anthropic": "stable",
    "whatsapp-opencode": "staging",
}

GOOD = """\
name: good
version: 2
description: a good one
channel:
  plugin: "@wopr-network/wopr-plugin-channel-discord"
  config:
    DISCORD_TOKEN: "${DISCORD_TOKEN}"
provider:
  plugin: "@wopr-network/wopr-plugin-provider-anthropic"
  config:
    ANTHROPIC_API_KEY: "${ANTHROPIC_API_KEY}"
release: stable
image: "ghcr.io/wopr-network/wopr:stable"
restartPolicy: always
healthCheck: {endpoint: /health, intervalSeconds: 30, timeoutSeconds: 5, retries: 3}
volumes: []
env: {GREETING: "hello ${USER_NAME}, literal $${NOT_A_VAR}"}
"""


def _variant(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new).replace("name: good", "name: variant")


def test_the_six_packaged_templates_load() -> None:
    catalog = load_directory(packaged_directory())
    assert catalog.errors == ()
    assert set(catalog.templates) == set(STANDARD)
    for name, loaded in catalog.templates.items():
        template = loaded.template
        assert loaded.file == f"{name}.yaml"
        assert template.version >= 1
        assert template.release == STANDARD[name]
        assert template.image == f"ghcr.io/wopr-network/wopr:{template.release}"
        assert template.channel.plugin.startswith("@wopr-network/wopr-plugin-channel-")
        assert template.provider.plugin.startswith("@wopr-network/wopr-plugin-provider-")
        assert template.health_check is not None and template.health_check.endpoint == "/health"
        assert template.restart_policy == "unless-stopped"
        assert template.required_variables(), name  # every standard bot needs at least one credential
    slack = catalog.templates["slack-codex"].template
    assert slack.required_variables() == ["OPENAI_API_KEY", "SLACK_APP_TOKEN", "SLACK_BOT_TOKEN"]
    assert catalog.templates["telegram-anthropic"].template.required_variables() == [
        "ANTHROPIC_API_KEY",
        "TELEGRAM_BOT_TOKEN",
    ]


def test_the_packaged_folder_is_the_repository_templates_folder_in_a_checkout() -> None:
    root = Path(__file__).resolve().parents[2]
    assert packaged_directory().resolve() == (root / "templates").resolve()


BROKEN = {
    "bad-yaml.yaml": ("name: [unclosed\n", None, "invalid YAML"),
    "missing-field.yaml": (_variant('image: "ghcr.io/wopr-network/wopr:stable"\n', ""), "image", "field required"),
    "wrong-type.yaml": (_variant("intervalSeconds: 30", "intervalSeconds: thirty"), "healthCheck.intervalSeconds", ""),
    "string-version.yaml": (_variant("version: 2", 'version: "2"'), "version", ""),
    "bad-env-key.yaml": (_variant("env: {GREETING:", "env: {BAD-KEY:"), "env.BAD-KEY", "not a valid environment"),
    "unknown-field.yaml": (_variant("volumes: []", "volumes: []\nreplicas: 3"), "replicas", "unknown field"),
    "reserved-key.yaml": (
        _variant("env: {GREETING:", "env: {WOPR_PLUGINS:"),
        "env.WOPR_PLUGINS",
        "set by the platform",
    ),
    "twice.yaml": (_variant("env: {GREETING:", "env: {DISCORD_TOKEN:"), "env.DISCORD_TOKEN", "already set"),
    "bad-placeholder.yaml": (_variant("${USER_NAME}", "${USER-NAME}"), "env.GREETING", "does not name a variable"),
    "unterminated.yaml": (_variant("${USER_NAME}", "${USER_NAME"), "env.GREETING", "unterminated"),
    "bad-release.yaml": (_variant("release: stable", "release: nightly"), "release", ""),
    "bad-plugin.yaml": (
        _variant('"@wopr-network/wopr-plugin-provider-anthropic"', "Not A Package"),
        "provider.plugin",
        "",
    ),
    "sealed-mark.yaml": (_variant("hello ${USER_NAME}", "wopr:enc:v2:x"), "env.GREETING", "sealed secret"),
    "bad-image.yaml": (_variant('"ghcr.io/wopr-network/wopr:stable"', '"UPPER/Case:tag"'), "image", "invalid image"),
    "not-a-mapping.yaml": ("- just\n- a list\n", None, "mapping"),
    "empty.yml": ("", None, "mapping"),
    "two-volumes.yaml": (
        _variant("volumes: []", "volumes: [{name: a, mountPath: /data}, {name: b, mountPath: /data}]"),
        "volumes",
        "",
    ),
    "bad-mount.yaml": (_variant("volumes: []", "volumes: [{name: a, mountPath: /etc}]"), "volumes.0.mountPath", ""),
}


def test_a_broken_file_is_reported_with_file_field_and_reason_and_only_it_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    for file, (text, _, _) in BROKEN.items():
        (tmp_path / file).write_text(text)
    (tmp_path / "notes.txt").write_text("not a template")  # other files are ignored
    (tmp_path / ".hidden.yaml").write_text("name: [")

    catalog = load_directory(tmp_path)

    assert list(catalog.templates) == ["good"]
    by_file: dict[str, list[tuple[str | None, str]]] = {}
    for error in catalog.errors:
        by_file.setdefault(error.file, []).append((error.field, error.reason))
    assert set(by_file) == set(BROKEN)
    for file, (_, field, reason) in BROKEN.items():
        assert any(found_field == field and reason in found_reason for found_field, found_reason in by_file[file]), (
            file,
            by_file[file],
        )


def test_a_wrong_type_is_not_coerced(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(_variant("env: {GREETING:", "env: {PORT: 8080, GREETING:"))
    template, errors = load_file(path)
    assert template is None
    assert [(e.field, e.reason) for e in errors] == [("env.PORT", "Input should be a valid string")]


def test_the_same_name_twice_keeps_the_first_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    catalog = load_directory(tmp_path)
    assert catalog.templates["good"].file == "a.yaml"
    assert [(e.file, e.field) for e in catalog.errors] == [("b.yaml", "name")]
    assert "already defined in a.yaml" in catalog.errors[0].reason


def test_a_missing_folder_is_an_error_not_a_crash(tmp_path: Path) -> None:
    catalog = load_directory(tmp_path / "nowhere")
    assert catalog.templates == {}
    assert len(catalog.errors) == 1 and "does not exist" in catalog.errors[0].reason


def test_a_large_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(GOOD + "#" * 300_000)
    catalog = load_directory(tmp_path)
    assert catalog.templates == {}
    assert "larger than" in catalog.errors[0].reason


def test_the_view_shows_placeholders_and_the_variables_needed(tmp_path: Path) -> None:
    shutil.copy(packaged_directory() / "stable-discord.yaml", tmp_path)
    loaded = load_directory(tmp_path).templates["stable-discord"]
    view = loaded.template.view(loaded.file)
    assert view["channel"]["config"]["DISCORD_TOKEN"] == "${DISCORD_TOKEN}"
    assert view["variables"] == ["ANTHROPIC_API_KEY", "DISCORD_CLIENT_ID", "DISCORD_TOKEN"]
    assert view["healthCheck"] == {"endpoint": "/health", "intervalSeconds": 30, "timeoutSeconds": 5, "retries": 3}
    assert view["file"] == "stable-discord.yaml"
    assert view["restartPolicy"] == "unless-stopped"


def test_plugins_become_the_runtime_env(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    template = load_directory(tmp_path).templates["good"].template
    assert plugin_env(template) == {
        "WOPR_PLUGINS": "@wopr-network/wopr-plugin-channel-discord,@wopr-network/wopr-plugin-provider-anthropic",
        "WOPR_CHANNEL_PLUGIN": "@wopr-network/wopr-plugin-channel-discord",
        "WOPR_PROVIDER_PLUGIN": "@wopr-network/wopr-plugin-provider-anthropic",
    }


# --- placeholders -----------------------------------------------------------------------------------------


def test_placeholders_are_found_and_substituted() -> None:
    value = "a ${ONE} b ${TWO}${ONE} $${THREE} $ {x} $x"
    assert placeholders.names(value) == {"ONE", "TWO"}
    assert placeholders.substitute(value, {"ONE": "1", "TWO": "2"}) == "a 1 b 21 ${THREE} $ {x} $x"
    assert placeholders.names("no placeholders") == set()


@pytest.mark.parametrize("value", ["${}", "${1A}", "${A-B}", "${A", "x ${A ${B}"])
def test_malformed_placeholders_are_refused(value: str) -> None:
    with pytest.raises(placeholders.PlaceholderError):
        placeholders.check(value)


def test_resolution_takes_the_request_first_then_the_secrets_and_lists_every_missing_name_sorted() -> None:
    values, missing = placeholders.resolve(
        ["TOKEN", "ZED", "KEY", "ALPHA", "TOKEN"],
        {"TOKEN": "from-request"},
        {"TOKEN": "from-secrets", "KEY": "from-secrets"},
    )
    assert values == {"TOKEN": "from-request", "KEY": "from-secrets"}
    assert missing == ["ALPHA", "ZED"]
    assert placeholders.resolve(["A"], {"A": ""})[1] == []  # an empty value is a value


# --- secrets ----------------------------------------------------------------------------------------------


def test_the_secrets_file_format() -> None:
    values, bad = parse_secrets(
        "# comment\n\nDISCORD_TOKEN=abc=def\nexport QUOTED = \"with spaces \"\nSINGLE='x'\nnot a line\n1BAD=x\nEMPTY=\n"
    )
    assert values == {"DISCORD_TOKEN": "abc=def", "QUOTED": "with spaces ", "SINGLE": "x", "EMPTY": ""}
    assert bad == [6, 7]


def test_env_secrets_win_over_the_file(tmp_path: Path) -> None:
    file = tmp_path / "secrets.env"
    file.write_text("A=from-file\nB=from-file\n")
    file.chmod(0o600)
    store = SecretStore(
        environ={"WOPR_SECRET_B": "from-env", "WOPR_SECRET_C": "c", "WOPR_SECRET_": "ignored", "OTHER": "x"},
        file=file,
    )
    assert store.values() == {"A": "from-file", "B": "from-env", "C": "c"}
    assert SecretStore(environ={}, file=None).values() == {}


def test_an_unreadable_secrets_file_is_an_error_naming_no_value(tmp_path: Path) -> None:
    store = SecretStore(environ={}, file=tmp_path / "missing.env")
    with pytest.raises(SecretsUnavailable) as caught:
        store.values()
    assert caught.value.status == 503
