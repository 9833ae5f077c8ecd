"""``/docs`` (Swagger UI) and ``/redoc`` render in Chromium with every non-local request blocked."""

from pathlib import Path

from api.app import create_app
from tests.browser.conftest import Browser, screenshot, serve


def test_swagger_ui_and_redoc_render_offline(browser: Browser, tmp_path: Path) -> None:
    blocked_before = len(browser.blocked)
    with serve(create_app(f"duckdb:///{tmp_path / 'empty.duckdb'}")) as base:
        page, errors = browser.open()
        page.goto(f"{base}/docs")
        # Swagger UI built the operation list from /openapi.json: its bundle ran without a CDN.
        page.wait_for_selector(".swagger-ui .opblock-tag", timeout=30_000)
        assert page.locator(".swagger-ui .info .title").inner_text().startswith("afluente read API")
        assert page.locator(".opblock-summary-path", has_text="/api/metrics/summary").count() == 1
        screenshot(page, "api-docs-swagger", full_page=False)

        page.goto(f"{base}/redoc")
        page.wait_for_selector("redoc .api-content h1", timeout=30_000)
        assert "afluente read API" in page.locator("redoc .api-content h1").first.inner_text()
        assert page.get_by_text("/api/metrics/summary").count() >= 1
        screenshot(page, "api-docs-redoc", full_page=False)
        page.close()
    assert errors == []
    assert browser.blocked[blocked_before:] == []  # nothing even tried to reach the internet
