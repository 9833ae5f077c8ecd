"""With API_AUTH on, a dashboard page asks for a key instead of failing, and draws its charts once the
browser holds a viewer key (sent as X-API-Key, never in a URL)."""

from pathlib import Path

import pytest

from api.access import hash_key
from api.app import create_app
from tests.browser.conftest import Browser, serve

VIEWER_KEY = "dashboard-viewer-key-0123456789"
EXPECTED_CONSOLE = "Failed to load resource: the server responded with a status of"


def test_a_page_asks_for_a_key_then_reads_with_it(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_AUTH", "true")
    monkeypatch.setenv("API_KEYS", f"wall:viewer:{hash_key(VIEWER_KEY)}")
    app = create_app(f"duckdb:///{tmp_path / 'empty.duckdb'}")
    with serve(app) as base:
        page, errors = browser.open()
        page.goto(f"{base}/dashboard/exports")  # the page itself is open
        page.wait_for_function("Number(document.body.dataset.loaded || 0) >= 1", timeout=60_000)
        assert page.get_attribute("#by-country", "data-state") == "forbidden"
        assert page.locator("#api-key").is_visible()
        assert all(e.startswith(EXPECTED_CONSOLE) for e in errors) and errors  # the 401 answers

        page.evaluate("key => window.localStorage.setItem('afluente_api_key', key)", VIEWER_KEY)
        sent: list[str | None] = []
        page.on(
            "request", lambda r: sent.append(r.headers.get("x-api-key")) if "/metrics/" in r.url else None
        )
        page.reload()
        page.wait_for_function("Number(document.body.dataset.loaded || 0) >= 1", timeout=60_000)
        # An empty warehouse: the key is accepted, so the answer is "not built yet", not "forbidden".
        assert page.get_attribute("#by-country", "data-state") == "not-built"
        assert page.locator("#api-key").is_hidden()
        assert sent and set(sent) == {VIEWER_KEY}
        assert all(
            VIEWER_KEY not in url for url in page.evaluate("performance.getEntries().map(e => e.name)")
        )
        page.close()
