"""/docs and /redoc render with every request outside the loopback server refused: Swagger UI and
ReDoc come from the package, not from a CDN."""

from __future__ import annotations

from typing import Any

from tests.service.http.browser.conftest import Offline, Server

REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""ReDoc's sidebar credit always asks for this image; offline it fails and ReDoc hides it."""


def test_swagger_ui_renders_offline(server: Server, page: Any, offline: Offline) -> None:
    page.goto(f"{server.base}/docs")

    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "aeserve" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path[data-path='/score']")
    assert offline.refused == []


def test_redoc_renders_offline(server: Server, page: Any, offline: Offline) -> None:
    page.goto(f"{server.base}/redoc")

    page.wait_for_selector("h1:has-text('aeserve')", timeout=20_000)
    page.get_by_text("Histogram of the calibration scores").first.wait_for()
    assert set(offline.refused) <= {REDOCLY_LOGO}
