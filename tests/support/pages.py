"""Helpers for the page tests: Debian's Chromium through Playwright, and what every page test
does (collect the page's errors, sign in with an API key)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000  # the longest any expectation waits for the page to catch up


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless; the test skips when it is not installed (browsers are
    never downloaded)."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing (apt-get install chromium); browsers are not downloaded"
        )
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def watch_errors(page: Page, errors: list[str]) -> Page:
    """Collects script errors and console errors (CSP violations, failed module loads)."""

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{page.url}: {message.text} ({message.location['url']})")

    def on_page_error(error: Error) -> None:
        errors.append(f"{page.url}: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return page


def sign_in(page: Page, key: str, label: str = "API key") -> None:
    field = page.get_by_label(label)
    expect(field).to_be_focused()  # the page asks for the key first, focus already there
    field.fill(key)
    field.press("Enter")
    expect(field).to_be_hidden()
