"""Browser tests: Debian's Chromium driven by Playwright, against the read API served by uvicorn.

``playwright install`` cannot download browsers here, so the tests launch the Debian binary
(``tests/browser/install_chromium.sh`` installs it; ``AFLUENTE_CHROMIUM`` overrides the path) with a
fresh profile. Every request to a host other than 127.0.0.1/localhost is blocked, so the pages are
proven to work on an air-gapped machine. Screenshots go to ``tests/browser/screenshots/``
(git-ignored); with ``AFLUENTE_UPDATE_DOC_SCREENSHOTS=1`` they are also copied to ``docs/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Route, sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("AFLUENTE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
DOC_SCREENSHOTS = REPO / "docs" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@dataclass
class Browser:
    context: BrowserContext
    blocked: list[str] = field(default_factory=list)  # non-local URLs a page tried to load

    def open(self) -> tuple[Page, list[str]]:
        """A new page and the list its console errors and uncaught exceptions are appended to."""
        page = self.context.new_page()
        errors: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                errors.append(f"{message.text} @ {message.location.get('url', '')}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
        return page, errors


# Package scope: Playwright's sync API runs an event loop in the main thread while it is open, and the
# tests collected after this package (Dagster's automation evaluation calls asyncio.run) need none.
@pytest.fixture(scope="package")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run tests/browser/install_chromium.sh (make test does)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900},
        )
        session = Browser(context)

        def only_local(route: Route) -> None:
            if urlsplit(route.request.url).hostname in LOCAL_HOSTS or route.request.url.startswith("data:"):
                route.continue_()
            else:
                session.blocked.append(route.request.url)
                route.abort("internetdisconnected")

        context.route("**/*", only_local)
        try:
            yield session
        finally:
            context.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """Full-page PNG under the git-ignored folder (and docs/screenshots/ when asked to update them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("AFLUENTE_UPDATE_DOC_SCREENSHOTS") == "1":
        DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_SCREENSHOTS / path.name)
    return path
