"""Driving the web console over HTTP as a browser would, without one: a client keeping cookies, signing in through
the console's own form, posting forms with the page's CSRF token (or without it, or from another site)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import Platform
from tests.integration.accounts_support import PASSWORD, sign_up

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]*)"')
HIDDEN_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
FLASH = re.compile(r'<p class="flash( error)?"[^>]*>(.*?)</p>', re.DOTALL)


@dataclass
class Console:
    """One person's browser on the console: its cookies, the address of the platform."""

    client: httpx.AsyncClient
    email: str

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params or None)

    async def page(self, path: str, status: int = 200) -> str:
        """A page's HTML, which must come with `status`."""
        response = await self.get(path)
        assert response.status_code == status, (path, response.status_code, response.text[-2000:])
        return response.text

    async def csrf(self, path: str = "/ui/bots") -> str:
        """The CSRF token a page of the console puts in its forms."""
        found = CSRF_FIELD.search((await self.get(path)).text)
        assert found is not None, f"no form with a CSRF token on {path}"
        return found.group(1)

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, origin: str | None = None
    ) -> httpx.Response:
        """Post a form as one of the console's pages would: its CSRF token included unless `csrf=False` or the form
        carries one already (read with `hidden_fields`). The answer is not followed (an action answers 303 and the
        page it names shows its outcome)."""
        form = dict(data or {})
        if csrf and "csrf" not in form:
            form["csrf"] = await self.csrf()
        headers = {"Origin": origin} if origin is not None else {}
        return await self.client.post(path, data=form, headers=headers)

    async def follow(self, answer: httpx.Response) -> httpx.Response:
        """The page an action's redirect names."""
        assert answer.status_code == 303, f"{answer.status_code}: {answer.text[:500]}"
        return await self.get(answer.headers["location"])

    async def act(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, status: int = 200
    ) -> httpx.Response:
        """Post a form and open the page its redirect names (where the outcome is shown), which must come with
        `status`."""
        shown = await self.follow(await self.post(path, data, csrf=csrf))
        assert shown.status_code == status, (shown.url.path, shown.status_code, shown.text[-2000:])
        return shown

    async def flash(self) -> str:
        """The text of the message the last action left, as the next page shows it ("" when there is none)."""
        shown = flash_of(await self.get("/ui/bots"))
        return shown[1] if shown else ""

    async def own_tenant(self) -> str:
        """The id of the tenant the person was made with (their first)."""
        me = (await self.get("/auth/me")).json()
        return str(me["tenants"][0]["tenantId"])

    async def close(self) -> None:
        await self.client.aclose()


def hidden_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields (the CSRF token, an idempotency key, ...) of the page's form that posts to `action`."""
    start = page.index(f'action="{action}"')
    form = page[start : page.index("</form>", start)]
    return {name: html.unescape(value) for name, value in HIDDEN_FIELD.findall(form)}


def flash_of(page: httpx.Response) -> tuple[bool, str] | None:
    """The message an action left on the page it led to: (is it an error, its text)."""
    found = FLASH.search(page.text)
    return (bool(found.group(1)), html.unescape(found.group(2)).strip()) if found else None


async def console_sign_in(platform: Platform, address: str, password: str = PASSWORD) -> Console:
    client = httpx.AsyncClient(base_url=platform.url, trust_env=False, timeout=60)
    answer = await client.post("/ui/login", data={"email": address, "password": password})
    assert answer.status_code == 303, answer.text
    return Console(client, address)


async def new_console_user(platform: Platform, who: str, tenant: str | None = None) -> Console:
    """A new person (their own tenant unless `tenant` names one to make for them), signed in to the console."""
    return await console_sign_in(platform, await sign_up(platform, who, tenant))
