"""Where `wopr` keeps its login: the XDG path, private modes, atomic replacement, and the environment over the file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wopr_platform.client import config
from wopr_platform.client.config import ConfigUnreadable, Credentials
from wopr_platform.client.errors import ExitCode, NotLoggedIn

STORED = Credentials(url="http://platform.test:3100", key="wopr_0123abcd_secret", tenant="acme")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_file_follows_xdg_config_home_and_defaults_to_dot_config(tmp_path: Path) -> None:
    assert config.config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "wopr" / "config.json"
    default = Path.home() / ".config" / "wopr" / "config.json"
    assert config.config_path({}) == default
    assert config.config_path({"XDG_CONFIG_HOME": ""}) == default
    assert config.config_path({"XDG_CONFIG_HOME": "relative/dir"}) == default  # the spec says: ignore it


def test_saved_credentials_are_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "wopr" / "config.json"
    config.save(path, STORED)
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert config.load(path) == STORED
    assert os.listdir(path.parent) == ["config.json"]  # no temporary file left beside it


def test_saving_replaces_the_file_and_tightens_a_loose_directory(tmp_path: Path) -> None:
    path = tmp_path / "wopr" / "config.json"
    path.parent.mkdir(mode=0o755)
    path.parent.chmod(0o755)
    config.save(path, STORED)
    first = path.stat().st_ino
    config.save(path, Credentials(url="http://other.test", key="operator-token"))
    assert config.load(path) == Credentials(url="http://other.test", key="operator-token", tenant=None)
    assert path.stat().st_ino != first  # a new file renamed over the old one, never rewritten in place
    assert _mode(path.parent) == 0o700
    assert "tenant" not in path.read_text()


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wopr" / "config.json"
    config.save(path, STORED)

    def broken_replace(_source: object, _target: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(config.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        config.save(path, Credentials(url="http://other.test", key="k"))
    assert config.load(path) == STORED
    assert os.listdir(path.parent) == ["config.json"]


def test_forget_removes_the_file_once(tmp_path: Path) -> None:
    path = tmp_path / "wopr" / "config.json"
    config.save(path, STORED)
    assert config.forget(path) is True
    assert not path.exists()
    assert config.forget(path) is False
    assert config.load(path) is None


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"url": "http://x"}', '{"url": 1, "key": "k"}'])
def test_a_file_that_is_not_a_login_is_refused_with_a_hint(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigUnreadable, match="wopr login"):
        config.load(path)


def test_without_file_or_environment_nobody_is_logged_in(tmp_path: Path) -> None:
    with pytest.raises(NotLoggedIn) as raised:
        config.current(tmp_path / "none.json", {})
    assert raised.value.exit_code == ExitCode.NOT_LOGGED_IN
    with pytest.raises(NotLoggedIn):
        config.current(tmp_path / "none.json", {"WOPR_URL": "http://platform.test"})  # a URL alone is no login


def test_the_environment_takes_the_place_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    config.save(path, STORED)
    assert config.current(path, {}) == STORED
    assert config.current(path, {"WOPR_KEY": "env-key"}) == Credentials(url=STORED.url, key="env-key")
    both = {"WOPR_URL": "http://env.test", "WOPR_KEY": "env-key"}
    assert config.current(path, both) == Credentials(url="http://env.test", key="env-key")
    assert config.current(tmp_path / "none.json", both) == Credentials(url="http://env.test", key="env-key")
    assert config.current(path, {"WOPR_URL": STORED.url}) == STORED


def test_the_stored_key_never_goes_to_another_server(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    config.save(path, STORED)
    with pytest.raises(NotLoggedIn, match="WOPR_KEY"):
        config.current(path, {"WOPR_URL": "http://elsewhere.test"})


def test_the_tenant_comes_from_the_option_then_the_environment_then_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    config.save(path, STORED)
    assert config.current(path, {}).tenant == "acme"
    assert config.current(path, {"WOPR_TENANT": "globex"}).tenant == "globex"
    assert config.current(path, {"WOPR_TENANT": "globex"}, tenant="initech").tenant == "initech"
    # the stored tenant belongs to the stored key: a key from the environment acts for its own
    assert config.current(path, {"WOPR_KEY": "env-key"}).tenant is None
