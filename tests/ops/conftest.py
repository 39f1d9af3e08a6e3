"""Fixtures of the web-view tests: Debian's Chromium driven by Playwright's async API."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.transports.conftest import ensure_debian_tool

IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")  # the browser fixture's loop: mark each browser test


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; apt-get installs it when missing and we are root (fails under CI if it cannot)."""
    return ensure_debian_tool("chromium", "chromium")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium):
    """One headless Chromium per module, driven by Playwright's async API in the module's event loop: nothing
    is left behind in the main thread once the module is done (the sync API keeps a loop running there,
    which breaks every later asyncio test of the session). Tests using it are marked IN_MODULE_LOOP."""
    async_api = pytest.importorskip("playwright.async_api", reason="the playwright package (test extra) is needed")
    async with async_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, args=["--headless=new", "--disable-gpu"])
        yield b
        await b.close()
