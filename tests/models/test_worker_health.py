"""The worker image's health check, `python -m models.jobs.health`, against a real Redis and a
real `aeserve worker`: healthy while this host's worker answers, unhealthy without a worker or a
broker, in a line that says which and without the broker's password."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.jobs.helpers import RedisServer, Worker

pytestmark = pytest.mark.slow


def health(broker_url: str) -> tuple[int, str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "models.jobs.health"],
        env={**os.environ, "AESERVE_BROKER_URL": broker_url},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def test_unhealthy_without_a_worker(redis_server: RedisServer) -> None:
    code, output, _ = health(redis_server.url(1))
    assert code == 1
    assert output.startswith("unhealthy: no worker on ")


def test_unhealthy_without_a_broker_and_the_password_stays_out() -> None:
    code, output, took = health("redis://:secret@127.0.0.1:1/0")
    assert code == 1
    assert output.startswith("unhealthy: cannot reach the broker redis://:**@127.0.0.1:1/0")
    assert "secret" not in output
    assert took < 10  # inside the image's HEALTHCHECK timeout


def test_healthy_while_the_worker_of_this_host_answers(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    worker = Worker(redis_server.url(2), tmp_path / "repository", 1, tmp_path / "worker.log")
    try:
        code, output, took = health(redis_server.url(2))
        assert code == 0, output
        assert output.startswith("healthy: aeserve-")
        assert took < 5  # the first answer ends the wait
    finally:
        worker.stop()
    code, output, _ = health(redis_server.url(2))
    assert code == 1, output
