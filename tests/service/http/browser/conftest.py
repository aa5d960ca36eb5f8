"""A real `aeserve serve` on loopback and Debian's Chromium driven by Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium (`.ci/run` installs Debian's
`chromium`); without it, or without Playwright, these tests are skipped with a message. Every
page is opened in a context that lets requests reach the loopback server only and records the
others, so a page that needs the internet fails here as it would on an offline host.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from core.repository import ModelRepository
from tests.service.jobs.helpers import AESERVE, API_KEY, free_port
from tests.tiny_model import publish_tiny_model

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

pytestmark = pytest.mark.slow


@dataclass
class Server:
    base: str
    repository: ModelRepository
    process: subprocess.Popen[bytes]


@dataclass
class Offline:
    """Requests the page tried to make outside the loopback server, each refused."""

    refused: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`aeserve serve` with the local job backend, an API key and model `tiny` v1."""
    root = tmp_path_factory.mktemp("console")
    repository = ModelRepository(root / "repository")
    publish_tiny_model(repository, "tiny")
    port = free_port()
    env = {
        **os.environ,
        "AESERVE_API_KEY": API_KEY,
        "AESERVE_DEFAULT_MODEL": "tiny",
        "AESERVE_RELOAD_INTERVAL_S": "0.5",
    }
    command = [
        str(AESERVE),
        "serve",
        "--port",
        str(port),
        "--model-repository",
        str(root / "repository"),
    ]
    with (root / "server.log").open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (root / "server.log").read_text()
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "aeserve serve never became ready"
        time.sleep(0.1)
    yield Server(base, repository, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("no browser: Debian's chromium is not installed (.ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


@pytest.fixture
def offline() -> Offline:
    return Offline()


@pytest.fixture
def page(browser: Any, offline: Offline) -> Iterator[Any]:
    """A page whose requests outside the loopback server are refused and recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def only_loopback(route: Any) -> None:
        url = urlparse(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOOPBACK:
            offline.refused.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", only_loopback)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
