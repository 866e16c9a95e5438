"""The bots table's rows: every value from the API escaped, the columns in their order."""

from __future__ import annotations

from wopr_platform.web.console import PREFIX
from wopr_platform.web.rows import bot_row, bot_rows

BOT = {
    "id": "0b1e6f3c-1111-2222-3333-444455556666",
    "tenantId": "acme",
    "name": "<script>alert(1)</script>",
    "state": "running",
    "health": "healthy",
    "image": 'ghcr.io/x/y:"1"',
    "uptimeSeconds": 7300,
    "stats": {"cpuPercent": 1.25, "memoryUsageMb": 31.6},
}


def test_a_row_escapes_what_the_api_gave_and_shows_the_columns_in_order() -> None:
    row = str(bot_row(BOT, prefix=PREFIX))
    assert "<script>" not in row and "&lt;script&gt;alert(1)&lt;/script&gt;" in row
    assert "ghcr.io/x/y:&#34;1&#34;" in row
    assert row == (
        '<tr id="b-0b1e6f3c-1111-2222-3333-444455556666"><td><a href="/ui/bots/0b1e6f3c-1111-2222-3333-444455556666">'
        "&lt;script&gt;alert(1)&lt;/script&gt;</a></td>"
        '<td class="running">running</td><td class="healthy">healthy</td><td>ghcr.io/x/y:&#34;1&#34;</td>'
        "<td>2h</td><td>1.2%</td><td>32 MB</td></tr>"
    )


def test_a_stopped_bot_has_empty_cells_and_the_admins_view_names_the_tenant() -> None:
    stopped = {**BOT, "state": "exited", "health": None, "uptimeSeconds": None, "stats": None, "tenantId": "<b>"}
    row = str(bot_row(stopped, across=True, prefix=PREFIX))
    assert row.startswith('<tr id="b-0b1e6f3c-1111-2222-3333-444455556666"><td>&lt;b&gt;</td>')
    assert row.endswith(
        '<td class="exited">exited</td><td class="none"></td><td>ghcr.io/x/y:&#34;1&#34;</td>'
        "<td></td><td></td><td></td></tr>"
    )
    assert str(bot_rows([BOT, stopped], prefix=PREFIX)).count("<tr ") == 2
