"""Which backups retention removes: beyond keep-last-N, older than max-age (never a bot's newest ready one), and
failed ones a day old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from wopr_platform.backups.policies import Rules, _past_retention
from wopr_platform.core import naming

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _backups(*ages_and_states: tuple[float, str]) -> list[tuple[str, str, datetime, str]]:
    """Newest first: (id, tenant, created_at, state) of backups this many days old."""
    return [(f"b{i}", "t", NOW - timedelta(days=age), state) for i, (age, state) in enumerate(ages_and_states)]


def _removed(backups: list[tuple[str, str, datetime, str]], keep_last: int, max_age_days: int) -> list[str]:
    rule = Rules(schedule=None, schedule_scope=None, keep_last=keep_last, max_age_days=max_age_days)
    return sorted(backup_id for backup_id, _ in _past_retention(backups, rule, NOW))


def test_keep_last_counts_ready_backups_only() -> None:
    backups = _backups((0, "ready"), (0.5, "creating"), (1, "ready"), (2, "failed"), (3, "ready"))
    assert _removed(backups, keep_last=2, max_age_days=0) == ["b3", "b4"]  # b3: failed, over a day old
    assert _removed(backups, keep_last=0, max_age_days=0) == ["b3"]


def test_max_age_never_takes_the_newest_ready_backup() -> None:
    backups = _backups((40, "ready"), (50, "ready"))
    assert _removed(backups, keep_last=0, max_age_days=30) == ["b1"]
    assert _removed(_backups((0.5, "failed"), (40, "ready")), keep_last=5, max_age_days=30) == []


def test_volume_generations_never_look_like_another_name() -> None:
    assert naming.volume_name("default", "t1", "data") == "wopr.t1.data"
    assert naming.volume_name("default", "t1", "data", 2) == "wopr.t1.data..2"
    assert naming.volume_name("p", "t1", "data", 1) == "wopr-p.t1.data..1"
