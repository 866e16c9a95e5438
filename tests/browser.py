"""A real browser for the console's tests: Debian's chromium driven by Playwright (no browser download).

Every page a test opens is watched: a console error, an uncaught script error, a failed request of the console's own
files or a Content-Security-Policy violation fails the test at its end (`Watched.assert_clean`). Screenshots go to
`WOPR_TEST_SCREENSHOTS` (default: test-artifacts/screenshots in the repository), one file per name, for review.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Request, async_playwright

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("WOPR_TEST_SCREENSHOTS") or ROOT / "test-artifacts" / "screenshots")
# Debian's `chromium` is a shell wrapper around this binary (its flags are only defaults for desktops)
DEBIAN_CHROMIUM = Path("/usr/lib/chromium/chromium")
REFUSED = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d ")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# reported by the page itself (an init script runs outside the page's policy)
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


def chromium_path() -> str:
    if DEBIAN_CHROMIUM.exists():
        return str(DEBIAN_CHROMIUM)
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("the console's tests need Debian's chromium (apt install chromium); scripts/test installs it")
    return found


@dataclass
class Watched:
    """A browser page and what went wrong on it."""

    page: Page
    problems: list[str] = field(default_factory=list)
    refusals: int = 0  # the API's refusals the test asked for (the browser logs each 4xx answer as an error)

    def expect_refusal(self) -> None:
        """The next refused form is the test's own doing: the browser's log line of its 4xx answer is expected."""
        self.refusals += 1

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)

    async def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


class Chromium:
    """One browser process; each `open` is a fresh profile (its own cookies)."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser
        self._contexts: list[BrowserContext] = []

    async def open(self, base_url: str, *, phone: bool = False) -> Watched:
        context = await self._browser.new_context(
            base_url=base_url, viewport=PHONE if phone else DESKTOP, is_mobile=phone, has_touch=phone
        )
        self._contexts.append(context)
        await context.add_init_script(REPORT_VIOLATIONS)
        page = await context.new_page()
        page.set_default_timeout(20_000)
        watched = Watched(page)

        def on_console(message: ConsoleMessage) -> None:
            if message.type != "error":
                return
            if watched.refusals and REFUSED.match(message.text):
                watched.refusals -= 1
                return
            watched.problems.append(f"console error on {page.url}: {message.text}")

        def on_failed(request: Request) -> None:
            # a stream closed by leaving the page, or a part's refresh dropped because the page moved on, is not
            if "/fleet/events" not in request.url and request.failure != "net::ERR_ABORTED":
                watched.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: watched.problems.append(f"script error on {page.url}: {error}"))
        page.on("requestfailed", on_failed)
        return watched

    async def close(self) -> None:
        for context in self._contexts:
            await context.close()


async def chromium() -> AsyncIterator[Chromium]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        held = Chromium(browser)
        try:
            yield held
        finally:
            await held.close()
            await browser.close()
