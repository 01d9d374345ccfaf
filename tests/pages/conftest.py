from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.pages.browser import chromium


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium under Playwright (no browser download: the system's binary)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()
