"""Who owns a transaction is stated in one place (`db/unit.py`): no other module opens or commits one by hand."""

from __future__ import annotations

import re
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "wopr_platform"
# the database package itself: the unit of work, the leader lease's own connection, migrations
ALLOWED = {"db/unit.py", "db/leadership.py", "db/migrate.py", "db/engine.py"}
BY_HAND = re.compile(r"\.begin\(\)|\.commit\(\)|\bsessionmaker\(|async_sessionmaker\[")


def test_only_the_database_package_opens_or_commits_transactions() -> None:
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        if relative in ALLOWED or relative.startswith("db/migrations/"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if BY_HAND.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == [], "open transactions through db.unit.Database (read, unit, step):\n" + "\n".join(offenders)
